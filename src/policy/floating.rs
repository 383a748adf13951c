//! Floating seats: the pool a checkout draws from, and the rules for
//! leases and borrowing.

use crate::decision::Reason;
use crate::license::License;
use crate::policy::validity::{best, grants_new, license_reason, Context, LicenseView};
use crate::policy::Denial;
use crate::store::{Change, LeaseRecord};

/// The seats available to one client for one pool (the license-level pool,
/// or a feature's own), added up over the licenses in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Concurrent seats.
    pub seats: u64,
    /// How long a lease lasts without a heartbeat: the shortest of the
    /// contributing licenses'.
    pub lease_secs: i64,
    /// The longest borrow allowed, if any contributing license allows it.
    pub borrow_max_secs: Option<i64>,
    /// How long a checked-in seat stays with its client: the longest of
    /// the contributing licenses' `linger_secs` (0: none).
    pub linger_secs: i64,
}

/// The pool `feature` (or the license-level pool, for `None`) offers a
/// client. A feature with its own pools uses them; otherwise the
/// license-level pools of the licenses that grant it. A node-locked license
/// contributes only to clients that are devices activated for it
/// (`is_activated`), so one license can cap both devices and concurrency.
///
/// Returns the reason when the pool is empty for this client.
pub fn pool<'a>(
    views: impl IntoIterator<Item = &'a LicenseView<'a>>,
    feature: Option<&str>,
    is_activated: impl Fn(&License) -> bool,
    ctx: &Context,
    now: i64,
    tampered: bool,
) -> Result<Pool, Reason> {
    let views: Vec<&LicenseView<'_>> = views.into_iter().collect();
    let own_pools = feature.is_some_and(|code| {
        views.iter().any(|v| {
            v.license
                .feature(code)
                .is_some_and(|f| f.floating.is_some())
        })
    });
    let mut pool = Pool {
        seats: 0,
        lease_secs: i64::MAX,
        borrow_max_secs: None,
        linger_secs: 0,
    };
    let mut reason = Reason::NotLicensed;
    for view in views {
        let license = view.license;
        let floating = match feature {
            Some(code) => match license.feature(code) {
                Some(f) if own_pools => f.floating,
                Some(_) => license.floating,
                None => None,
            },
            None => license.floating,
        };
        let Some(floating) = floating else { continue };
        if !grants_new(view, ctx, now, tampered) {
            let r = license_reason(view, ctx, now, tampered);
            reason = best(
                reason,
                if r == Reason::ExpiredKept {
                    Reason::Expired
                } else {
                    r
                },
            );
            continue;
        }
        if license.activations.is_some() && !is_activated(license) {
            reason = best(reason, Reason::NotActivated);
            continue;
        }
        reason = Reason::Ok;
        pool.seats = pool.seats.saturating_add(u64::from(floating.seats));
        pool.lease_secs = pool.lease_secs.min(floating.lease_secs);
        pool.linger_secs = pool.linger_secs.max(floating.linger_secs.unwrap_or(0));
        // The pool's own block says whether its leases may be borrowed: a
        // feature's pool by its `floating`, the license-level one by the
        // license's.
        pool.borrow_max_secs = match (pool.borrow_max_secs, floating.borrow_max_secs) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    if reason == Reason::Ok {
        Ok(pool)
    } else {
        Err(reason)
    }
}

/// How long a lapsed lease is remembered after its end. It holds no seat
/// (only live leases count), but a client coming back from a suspended
/// laptop or a network outage hears `LEASE_EXPIRED`, which tells it what
/// happened, rather than `LEASE_NOT_FOUND`.
pub const LAPSED_KEPT_SECS: i64 = 24 * 3600;

/// The leases lapsed for longer than [`LAPSED_KEPT_SECS`], deleted. A
/// lapsed lease frees its seat the moment it ends, whether or not any
/// thread has run (seats in use count only live leases); this only keeps
/// the store from growing.
pub fn reclaim<'a>(leases: impl IntoIterator<Item = &'a LeaseRecord>, now: i64) -> Vec<Change> {
    leases
        .into_iter()
        .filter(|l| l.expires_at.saturating_add(LAPSED_KEPT_SECS) <= now)
        .map(|l| Change::DeleteLease(l.id.clone()))
        .collect()
}

/// A checkout by `client` from `pool`, whose live leases are `in_pool`:
/// the client's own lease renewed (a client checking out again renews),
/// or a new one (`new_id`) if a seat is free; else `FLOATING_EXHAUSTED`
/// with the instant the next lease ends.
pub fn checkout(
    pool: &Pool,
    in_pool: &[&LeaseRecord],
    client: &str,
    feature: Option<&str>,
    new_id: &str,
    now: i64,
) -> Result<LeaseRecord, Denial> {
    if let Some(own) = in_pool.iter().find(|l| l.client == client) {
        if is_lingering(own) {
            // The seat lingering after its check-in: back to its client
            // at once, as a new lease.
            return Ok(LeaseRecord {
                id: new_id.to_owned(),
                created_at: now,
                expires_at: now.saturating_add(pool.lease_secs),
                borrowed_until: None,
                ..(*own).clone()
            });
        }
        return Ok(renew(own, pool, now));
    }
    if (in_pool.len() as u64) >= pool.seats {
        return Err(Denial {
            reason: Reason::FloatingExhausted,
            retry_at: in_pool.iter().map(|l| l.expires_at).min(),
        });
    }
    Ok(LeaseRecord {
        id: new_id.to_owned(),
        client: client.to_owned(),
        feature: feature.map(str::to_owned),
        created_at: now,
        expires_at: now.saturating_add(pool.lease_secs),
        borrowed_until: None,
    })
}

/// The id prefix of a seat lingering after its check-in.
pub const LINGER_PREFIX: &str = "linger_";

/// Whether a lease record is a seat lingering after its check-in: it
/// holds the seat for its client, but gives no right (the client checked
/// in) until the client checks out again.
pub fn is_lingering(lease: &LeaseRecord) -> bool {
    lease.id.starts_with(LINGER_PREFIX)
}

/// A check-in of a live `lease` from `pool`: the seat lingers with its
/// client for the pool's `linger_secs` (a record the client's next
/// checkout takes back), or is free at once (`None`). A lingering seat
/// checked in again is freed.
///
/// ```
/// use entitle::policy::floating::{checkin, checkout, Pool};
/// let pool = Pool { seats: 1, lease_secs: 60, borrow_max_secs: None, linger_secs: 30 };
/// let lease = checkout(&pool, &[], "desk-1", None, "lease_1", 0).unwrap();
/// let lingering = checkin(&lease, &pool, 10).unwrap();
/// assert_eq!(lingering.expires_at, 40);
/// // Nobody else gets the seat...
/// assert!(checkout(&pool, &[&lingering], "desk-2", None, "lease_2", 11).is_err());
/// // ...its client gets it back at once.
/// let back = checkout(&pool, &[&lingering], "desk-1", None, "lease_3", 11).unwrap();
/// assert_eq!((back.id.as_str(), back.expires_at), ("lease_3", 71));
/// ```
pub fn checkin(lease: &LeaseRecord, pool: &Pool, now: i64) -> Option<LeaseRecord> {
    if pool.linger_secs <= 0 || is_lingering(lease) || !lease.live_at(now) {
        return None;
    }
    Some(LeaseRecord {
        id: format!("{LINGER_PREFIX}{}", lease.id),
        expires_at: now.saturating_add(pool.linger_secs),
        borrowed_until: None,
        ..lease.clone()
    })
}

/// Whether `lease` is borrowed and its borrow still runs at `now`: then
/// its seat is held until the lease ends, whatever the client asks. A
/// borrowed token is a signed promise that holds offline until
/// `expires_at` (every token of the lease ends by then: a lease never
/// ends sooner than it did), and nothing can show that every copy of it
/// was given back, so a check-in before then would free a seat the
/// token still uses (`LEASE_BORROWED`).
///
/// ```
/// use entitle::policy::floating::{borrow, borrow_holds, Pool};
/// let pool = Pool { seats: 1, lease_secs: 60, borrow_max_secs: Some(3600), linger_secs: 0 };
/// let lease = Default::default();
/// let borrowed = borrow(&lease, &pool, 3600, 0).unwrap();
/// assert!(borrow_holds(&borrowed, 3599));
/// assert!(!borrow_holds(&borrowed, 3600));
/// assert!(!borrow_holds(&lease, 0)); // not borrowed
/// ```
pub fn borrow_holds(lease: &LeaseRecord, now: i64) -> bool {
    lease.borrowed_until.is_some() && lease.live_at(now)
}

/// A live lease renewed: it lasts the pool's `lease_secs` from now, and
/// never ends sooner than it did (a borrow keeps its end).
pub fn renew(lease: &LeaseRecord, pool: &Pool, now: i64) -> LeaseRecord {
    LeaseRecord {
        expires_at: lease.expires_at.max(now.saturating_add(pool.lease_secs)),
        ..lease.clone()
    }
}

/// A live lease borrowed for `secs`: it holds its seat without
/// heartbeats until then, or until the lease already ended if that is
/// later (a borrow never shortens a lease). `BORROW_NOT_ALLOWED` or `BORROW_TOO_LONG` per
/// the pool's licenses.
///
/// ```
/// use entitle::policy::floating::{borrow, Pool};
/// use entitle::Reason;
/// let pool = Pool { seats: 1, lease_secs: 60, borrow_max_secs: Some(3600), linger_secs: 0 };
/// let lease = Default::default();
/// assert_eq!(borrow(&lease, &pool, 3600, 0).unwrap().borrowed_until, Some(3600));
/// assert_eq!(borrow(&lease, &pool, 3601, 0).unwrap_err(), Reason::BorrowTooLong);
/// ```
pub fn borrow(
    lease: &LeaseRecord,
    pool: &Pool,
    secs: i64,
    now: i64,
) -> Result<LeaseRecord, Reason> {
    match pool.borrow_max_secs {
        None => return Err(Reason::BorrowNotAllowed),
        Some(max) if secs > max => return Err(Reason::BorrowTooLong),
        Some(_) => {}
    }
    // Never shorter than the lease already runs (a borrow asked for less
    // than a heartbeat gave, or than an earlier borrow).
    let until = now.saturating_add(secs).max(lease.expires_at);
    Ok(LeaseRecord {
        expires_at: until,
        borrowed_until: Some(until),
        ..lease.clone()
    })
}

/// What a program holds in a floating pool at an instant: a live lease
/// (until when), one that lapsed, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// A live lease, ending then.
    Live(i64),
    /// A lease that lapsed (its seat may be someone else's now), until it
    /// is forgotten at this instant ([`LAPSED_KEPT_SECS`] after its end).
    Lapsed(i64),
    /// No lease.
    None,
}

/// What `client` holds in the pool `key` (a feature's own pool, or the
/// license-level one for `None`) at `now`.
pub fn held<'a>(
    leases: impl IntoIterator<Item = &'a LeaseRecord>,
    client: &str,
    key: Option<&str>,
    now: i64,
) -> Held {
    leases
        .into_iter()
        .filter(|l| l.client == client && l.feature.as_deref() == key)
        // A lingering seat gives no right: its client checked it in.
        .filter(|l| !is_lingering(l))
        .filter(|l| now < l.expires_at.saturating_add(LAPSED_KEPT_SECS))
        .fold(Held::None, |acc, l| {
            let forgotten = l.expires_at.saturating_add(LAPSED_KEPT_SECS);
            match (acc, l.live_at(now)) {
                (Held::Live(a), true) => Held::Live(a.max(l.expires_at)),
                (_, true) => Held::Live(l.expires_at),
                (Held::Live(a), false) => Held::Live(a),
                (Held::Lapsed(a), false) => Held::Lapsed(a.max(forgotten)),
                (Held::None, false) => Held::Lapsed(forgotten),
            }
        })
}

/// What a program holds when it holds `a` and `b` (in two places): live
/// until the later live end, else lapsed until the later of the two.
pub fn either(a: Held, b: Held) -> Held {
    match (a, b) {
        (Held::Live(x), Held::Live(y)) => Held::Live(x.max(y)),
        (Held::Live(x), _) | (_, Held::Live(x)) => Held::Live(x),
        (Held::Lapsed(x), Held::Lapsed(y)) => Held::Lapsed(x.max(y)),
        (Held::Lapsed(x), Held::None) | (Held::None, Held::Lapsed(x)) => Held::Lapsed(x),
        (Held::None, Held::None) => Held::None,
    }
}

/// The pool leases for `code` are taken from: the feature's own, when a
/// license gives it one (`Some(code)`), else the license-level pool.
pub fn pool_key<'a>(views: &[LicenseView<'_>], code: &'a str) -> Option<&'a str> {
    views
        .iter()
        .any(|v| {
            v.license
                .feature(code)
                .is_some_and(|f| f.floating.is_some())
        })
        .then_some(code)
}

/// Whether a license grants `code` through a floating pool (the feature's
/// own, or the license-level one): then its grant holds for a program
/// only while the program holds a lease.
pub fn grants_floating(license: &License, code: &str) -> bool {
    license
        .feature(code)
        .is_some_and(|f| f.floating.is_some() || license.floating.is_some())
}

/// A gate's answer for `code` on a program that holds `held` in the
/// feature's pool: as [`feature_decision`](crate::policy::validity::feature_decision),
/// except that a grant through a floating pool allows only while the
/// lease is live (`LEASE_REQUIRED` without one, `LEASE_EXPIRED` once it
/// lapsed), and never on a `tampered` clock (`CLOCK_TAMPERED`): a lease,
/// borrowed or not, lives until an instant, so a clock set back would
/// stretch it. A grant without a pool allows by itself.
pub fn gate_reason(
    views: &[LicenseView<'_>],
    code: &str,
    ctx: &Context,
    now: i64,
    tampered: bool,
    held: Held,
) -> Reason {
    let mut reason = Reason::NotLicensed;
    for view in views {
        let Some(feature) = view.license.feature(code) else {
            continue;
        };
        let mut r = crate::policy::validity::feature_reason(view, feature, ctx, now, tampered);
        if r.allows() && grants_floating(view.license, code) {
            r = match held {
                Held::Live(_) if tampered => Reason::ClockTampered,
                Held::Live(_) => r,
                Held::Lapsed(_) => Reason::LeaseExpired,
                Held::None => Reason::LeaseRequired,
            };
        }
        reason = best(reason, r);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::{Feature, Floating};

    fn license() -> License {
        License::builder("acme")
            .floating(Floating::new(3, 60).with_borrow_max_secs(86_400))
            .feature(
                Feature::new("render")
                    .with_floating(Floating::new(2, 60).with_borrow_max_secs(3600)),
            )
            .feature(Feature::new("print").with_floating(Floating::new(1, 60)))
            .feature(Feature::new("view"))
            .build()
            .unwrap()
    }

    fn borrow_max(license: &License, feature: Option<&str>) -> Option<i64> {
        let view = LicenseView::of(license);
        pool([&view], feature, |_| true, &Context::default(), 0, false)
            .unwrap()
            .borrow_max_secs
    }

    #[test]
    fn a_feature_pool_lends_by_its_own_block_not_the_license_level_one() {
        let license = license();
        assert_eq!(borrow_max(&license, Some("render")), Some(3600));
        assert_eq!(borrow_max(&license, Some("print")), None);
        // A feature without a pool of its own uses the license-level one.
        assert_eq!(borrow_max(&license, Some("view")), Some(86_400));
        assert_eq!(borrow_max(&license, None), Some(86_400));
    }

    #[test]
    fn a_lease_of_a_feature_pool_is_borrowed_within_its_limit_only() {
        let license = license();
        let view = LicenseView::of(&license);
        let render = pool(
            [&view],
            Some("render"),
            |_| true,
            &Context::default(),
            0,
            false,
        )
        .unwrap();
        let lease = checkout(&render, &[], "desk", Some("render"), "lease_1", 0).unwrap();
        assert_eq!(
            borrow(&lease, &render, 3600, 0).unwrap().borrowed_until,
            Some(3600)
        );
        assert_eq!(borrow(&lease, &render, 3601, 0), Err(Reason::BorrowTooLong));
        let print = pool(
            [&view],
            Some("print"),
            |_| true,
            &Context::default(),
            0,
            false,
        )
        .unwrap();
        assert_eq!(borrow(&lease, &print, 60, 0), Err(Reason::BorrowNotAllowed));
    }
}
