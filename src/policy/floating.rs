//! Floating seats: the pool a checkout draws from, and the rules for
//! leases and borrowing.

use crate::decision::Reason;
use crate::license::License;
use crate::policy::validity::{best, grants_new, license_reason, Context, LicenseView};

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
        if !own_pools {
            pool.borrow_max_secs = match (pool.borrow_max_secs, floating.borrow_max_secs) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    if reason == Reason::Ok {
        Ok(pool)
    } else {
        Err(reason)
    }
}

/// Whether a client may take a seat when `in_use` leases of the pool are
/// live. A client renewing its own lease always may.
pub fn checkout(pool: &Pool, in_use: u64, renewing: bool) -> Result<(), Reason> {
    if renewing || in_use < pool.seats {
        Ok(())
    } else {
        Err(Reason::FloatingExhausted)
    }
}

/// Whether a lease may be borrowed for `secs`.
///
/// ```
/// use entitle::policy::floating::{borrow, Pool};
/// use entitle::Reason;
/// let pool = Pool { seats: 1, lease_secs: 60, borrow_max_secs: Some(3600) };
/// assert_eq!(borrow(&pool, 3600), Ok(()));
/// assert_eq!(borrow(&pool, 3601), Err(Reason::BorrowTooLong));
/// ```
pub fn borrow(pool: &Pool, secs: i64) -> Result<(), Reason> {
    match pool.borrow_max_secs {
        None => Err(Reason::BorrowNotAllowed),
        Some(max) if secs > max => Err(Reason::BorrowTooLong),
        Some(_) => Ok(()),
    }
}
