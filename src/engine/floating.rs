//! Floating seats: leases, heartbeats, borrowing.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::decision::Reason;
use crate::engine::{random_id, Engine, Plan};
use crate::error::{Error, Result};
use crate::license::License;
use crate::policy::floating::{self, Pool};
use crate::policy::validity::Activation;
use crate::store::{Change, LeaseRecord};

/// A floating lease: a seat held by one client until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Lease {
    /// The lease id (for heartbeat, checkin, borrow).
    pub id: String,
    /// The client holding it.
    pub client: String,
    /// The feature pool it draws from (`None`: the license-level pool,
    /// which also serves features that have no pool of their own).
    pub feature: Option<String>,
    /// When it lapses unless renewed (or the borrow ends).
    pub expires_at: Timestamp,
    /// Borrowed until then: no heartbeat needed.
    pub borrowed_until: Option<Timestamp>,
}

impl Lease {
    fn of(record: &LeaseRecord) -> Lease {
        Lease {
            id: record.id.clone(),
            client: record.client.clone(),
            feature: record.feature.clone(),
            expires_at: Timestamp::from_unix(record.expires_at),
            borrowed_until: record.borrowed_until.map(Timestamp::from_unix),
        }
    }
}

/// One floating pool as a site server's administrator sees it.
#[cfg(feature = "server")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolUse {
    /// The feature whose own pool it is (`None`: the license-level pool).
    pub(crate) feature: Option<String>,
    /// The seats its licenses in force offer the server's clients.
    pub(crate) seats: u64,
    /// Seats taken: live leases, borrowed ones and seats lingering after
    /// a check-in included.
    pub(crate) in_use: u64,
    /// Of those, borrowed.
    pub(crate) borrowed: u64,
    /// Of those, lingering with their client after a check-in.
    pub(crate) lingering: u64,
    /// The licenses offering it, with the seats each offers now.
    pub(crate) licenses: Vec<(String, u64)>,
    /// Whether an installed license offers it (else only leases taken
    /// before its license went are left in it).
    declared: bool,
}

#[cfg(feature = "server")]
impl PoolUse {
    fn empty(feature: Option<&str>) -> PoolUse {
        PoolUse {
            feature: feature.map(str::to_owned),
            seats: 0,
            in_use: 0,
            borrowed: 0,
            lingering: 0,
            licenses: Vec::new(),
            declared: false,
        }
    }
}

impl Lease {
    /// The lease a license server's token stands for.
    pub(crate) fn from_token(token: &crate::token::LeaseToken) -> Lease {
        Lease {
            id: token.lease_id.clone(),
            client: token.client.clone(),
            feature: token.feature.clone(),
            expires_at: token.expires_at,
            borrowed_until: token.borrowed.then_some(token.expires_at),
        }
    }
}

/// The pool a client draws from in a plan.
fn pool_for(plan: &Plan<'_>, client: &str, feature: Option<&str>) -> Result<Pool> {
    let state = plan.state;
    let views: Vec<_> = state
        .licenses
        .values()
        .map(|l| l.view(Activation::NotLocked))
        .collect();
    // A site server's node-locked license is bound to the server's
    // machine: while that machine is activated, its clients take seats
    // without activations of their own.
    let site = if plan.serves_site {
        plan.state.device_activations(&plan.config.device)
    } else {
        Default::default()
    };
    let is_activated = |license: &License| {
        site.get(&license.id).is_some_and(|until| plan.now < *until)
            || devices_named_by(client).any(|device| {
                state
                    .activations
                    .get(&(license.id.clone(), device.to_owned()))
                    .is_some_and(|r| r.live_at(plan.now))
            })
    };
    floating::pool(
        &views,
        feature,
        is_activated,
        &plan.config.device.ctx,
        plan.now,
        plan.tampered,
    )
    .map_err(|reason| {
        let what = feature.map_or("floating seats".to_owned(), |f| {
            format!("floating seats for `{f}`")
        });
        let message = match reason {
            Reason::NotActivated if plan.serves_site => format!(
                "this server's machine is not activated for the node-locked license that \
                 offers {what}: activate it on the server (`entitle activate`), and its \
                 clients take seats"
            ),
            Reason::NotActivated => format!(
                "client `{client}` must be an activated device to take {what}: activate it first"
            ),
            other => format!("no license in force offers {what} ({})", other.code()),
        };
        Error::denied(reason, message)
    })
}

/// The devices a client id can name: itself, or the part before a `#`
/// (`DEVICE#INSTANCE`: an instance of a program on an activated device).
fn devices_named_by(client: &str) -> impl Iterator<Item = &str> {
    std::iter::once(client).chain(client.match_indices('#').map(|(i, _)| &client[..i]))
}

/// Whether some installed license gives `code` a floating pool of its own.
fn has_own_pool(plan: &Plan<'_>, code: &str) -> bool {
    plan.state.licenses.values().any(|l| {
        l.verified
            .feature(code)
            .is_some_and(|f| f.floating.is_some())
    })
}

/// Leases past their end, freed by any floating operation.
fn reclaim(plan: &Plan<'_>) -> Vec<Change> {
    floating::reclaim(plan.state.leases.values(), plan.now)
}

fn live_lease<'a>(plan: &'a Plan<'_>, id: &str) -> Result<&'a LeaseRecord> {
    let lease = plan
        .state
        .leases
        .get(id)
        .ok_or_else(|| Error::denied(Reason::LeaseNotFound, format!("no lease `{id}`")))?;
    if !lease.live_at(plan.now) {
        return Err(Error::denied(
            Reason::LeaseExpired,
            format!(
                "lease `{id}` ended at {}; check out a new one",
                Timestamp::from_unix(lease.expires_at)
            ),
        ));
    }
    Ok(lease)
}

impl Engine {
    /// Takes a floating seat for `client` from the pool of `feature` (or the
    /// license-level pool). The same client checking out again renews its
    /// lease. `FLOATING_EXHAUSTED` when no seat is free, with the instant
    /// the next lease ends as `retry_at`.
    ///
    /// A program taking a seat for itself uses [`Engine::lease`], which
    /// checks out as [`Engine::client_id`], heartbeats and checks in; this
    /// call is for a program handing out seats to others (a license server).
    ///
    /// The client id names who holds the seat. On a node-locked license
    /// (one with `activations`) it must name a device activated for that
    /// license: its fingerprint, optionally followed by `#` and anything
    /// that tells instances on that device apart (`"3f2a…#editor-4242"`);
    /// otherwise `NOT_ACTIVATED`. Elsewhere any id will do (a user, a host).
    pub fn checkout(&self, client: &str, feature: Option<&str>) -> Result<Lease> {
        crate::ident::check("a client id", client)?;
        let new_id = random_id("lease_");
        self.mutate(|plan| {
            let pool = pool_for(plan, client, feature)?;
            // A feature without pools of its own draws on the license-level
            // pool: its leases count there, with everyone else's.
            let feature = feature.filter(|code| has_own_pool(plan, code));
            let in_pool: Vec<&LeaseRecord> = plan
                .state
                .leases
                .values()
                .filter(|l| l.feature.as_deref() == feature && l.live_at(plan.now))
                .collect();
            let lease = floating::checkout(&pool, &in_pool, client, feature, &new_id, plan.now)
                .map_err(|denial| {
                    let next_free = denial.retry_at.map(Timestamp::from_unix);
                    Error::Denied {
                        reason: denial.reason,
                        message: format!(
                            "all {} floating seats are in use; the next one frees at {}",
                            pool.seats,
                            next_free.map_or("an unknown time".to_owned(), |t| t.to_string())
                        ),
                        retry_at: next_free,
                    }
                })?;
            let out = Lease::of(&lease);
            let mut changes = reclaim(plan);
            // A seat lingering for this client was taken back as a new
            // lease: the lingering record goes.
            changes.extend(
                in_pool
                    .iter()
                    .filter(|l| l.client == client && l.id != lease.id)
                    .map(|l| Change::DeleteLease(l.id.clone())),
            );
            changes.push(Change::PutLease(lease));
            Ok((changes, out))
        })
    }

    /// Renews a lease. `LEASE_EXPIRED` if it lapsed (its seat may be
    /// someone else's now; check out again), `LEASE_NOT_FOUND` if there is
    /// no such lease or it ended more than a day ago
    /// (a lapsed lease is remembered for a day).
    pub fn heartbeat(&self, lease_id: &str) -> Result<Lease> {
        self.mutate(|plan| {
            let lease = live_lease(plan, lease_id)?;
            let pool = pool_for(plan, &lease.client, lease.feature.as_deref())?;
            let renewed = floating::renew(lease, &pool, plan.now);
            let out = Lease::of(&renewed);
            let mut changes = reclaim(plan);
            changes.push(Change::PutLease(renewed));
            Ok((changes, out))
        })
    }

    /// Frees a lease's seat, or, where the pool's licenses say
    /// `linger_secs`, keeps it for the same client that long: its next
    /// checkout gets the seat back at once, nobody else's does. The
    /// lingering seat is listed by [`Engine::leases`] under the id
    /// `linger_<lease id>`; checking that in frees it at once.
    ///
    /// A borrowed lease is refused until its borrow ends
    /// (`LEASE_BORROWED`, with the instant it ends as `retry_at`): its
    /// token keeps a laptop licensed offline until then, so its seat is
    /// held until then too (docs/semantics.md#borrowing). It frees itself at that
    /// instant, with no check-in.
    pub fn checkin(&self, lease_id: &str) -> Result<()> {
        self.mutate(|plan| {
            let Some(lease) = plan.state.leases.get(lease_id) else {
                return Err(Error::denied(
                    Reason::LeaseNotFound,
                    format!("no lease `{lease_id}`"),
                ));
            };
            if floating::borrow_holds(lease, plan.now) {
                let ends = Timestamp::from_unix(lease.expires_at);
                return Err(Error::Denied {
                    reason: Reason::LeaseBorrowed,
                    message: format!(
                        "lease `{lease_id}` is borrowed until {ends}: its token holds offline \
                         until then, so its seat stays taken until then and frees itself at \
                         that instant"
                    ),
                    retry_at: Some(ends),
                });
            }
            let lingering = pool_for(plan, &lease.client, lease.feature.as_deref())
                .ok()
                .and_then(|pool| floating::checkin(lease, &pool, plan.now));
            let mut changes = reclaim(plan);
            changes.push(Change::DeleteLease(lease_id.to_owned()));
            changes.extend(lingering.map(Change::PutLease));
            Ok((changes, ()))
        })
    }

    /// Frees a lease's seat now, whatever its client does: for an
    /// administrator whose user went home with a seat taken. The lease
    /// ends at once (a seat lingering after a check-in goes too); its
    /// client's next heartbeat hears `LEASE_EXPIRED` and checks out anew.
    /// Returns the lease as it ended.
    ///
    /// A borrowed lease is refused (`LEASE_BORROWED`, with the instant
    /// its borrow ends as `retry_at`): its token holds offline until then,
    /// so freeing its seat would hand out one seat twice
    /// (docs/semantics.md#borrowing). `LEASE_NOT_FOUND` for no such lease,
    /// `LEASE_EXPIRED` for one that already ended.
    ///
    /// ```
    /// use entitle::license::{Floating, License};
    /// use entitle::token::SigningKey;
    ///
    /// let vendor = SigningKey::generate().unwrap();
    /// let engine = entitle::Engine::builder("acme").in_memory()
    ///     .trust(vendor.public_key().clone())
    ///     .build()
    ///     .unwrap();
    /// let site = License::builder("acme").id("lic_1").issued_at(engine.now())
    ///     .floating(Floating::new(1, 300))
    ///     .sign(&vendor)
    ///     .unwrap();
    /// engine.add_license(&site).unwrap();
    /// let held = engine.checkout("desk-1", None).unwrap();
    /// assert!(engine.checkout("desk-2", None).is_err()); // the one seat is taken
    ///
    /// engine.force_release(&held.id).unwrap();
    /// assert!(engine.checkout("desk-2", None).is_ok());
    /// let told = engine.heartbeat(&held.id).unwrap_err();
    /// assert_eq!(told.code(), "LEASE_EXPIRED");
    /// ```
    pub fn force_release(&self, lease_id: &str) -> Result<Lease> {
        self.mutate(|plan| {
            let lease = live_lease(plan, lease_id)?;
            if floating::borrow_holds(lease, plan.now) {
                let ends = Timestamp::from_unix(lease.expires_at);
                return Err(Error::Denied {
                    reason: Reason::LeaseBorrowed,
                    message: format!(
                        "lease `{lease_id}` is borrowed until {ends}: its token holds offline \
                         until then, so its seat cannot be freed before; it frees itself at \
                         that instant"
                    ),
                    retry_at: Some(ends),
                });
            }
            // Ended now rather than deleted: a lapsed lease is remembered
            // for a day, so its client hears LEASE_EXPIRED (check out
            // again), not LEASE_NOT_FOUND.
            let ended = LeaseRecord {
                expires_at: plan.now,
                borrowed_until: None,
                ..lease.clone()
            };
            let out = Lease::of(&ended);
            let mut changes = reclaim(plan);
            if floating::is_lingering(lease) {
                changes.push(Change::DeleteLease(ended.id));
            } else {
                changes.push(Change::PutLease(ended));
            }
            Ok((changes, out))
        })
    }

    /// Borrows a leased seat for `secs` seconds: it stays taken without
    /// heartbeats until then (for a laptop going on a trip), or until the
    /// lease already ran if that is later: a borrow never shortens a lease.
    /// Until it ends the seat cannot be checked in (`LEASE_BORROWED`).
    /// `BORROW_NOT_ALLOWED` or `BORROW_TOO_LONG` per the license.
    pub fn borrow(&self, lease_id: &str, secs: i64) -> Result<Lease> {
        if secs <= 0 {
            return Err(Error::InvalidArgument(
                "a borrow lasts at least one second".into(),
            ));
        }
        self.mutate(|plan| {
            let lease = live_lease(plan, lease_id)?;
            let pool = pool_for(plan, &lease.client, lease.feature.as_deref())?;
            let borrowed = floating::borrow(lease, &pool, secs, plan.now).map_err(|reason| {
                let message = match (reason, pool.borrow_max_secs) {
                    (Reason::BorrowTooLong, Some(max)) => format!(
                        "a borrow lasts at most {max} seconds under these licenses; ask for less"
                    ),
                    _ => "the licenses of this pool do not allow borrowing".to_owned(),
                };
                Error::denied(reason, message)
            })?;
            let out = Lease::of(&borrowed);
            Ok((vec![Change::PutLease(borrowed)], out))
        })
    }

    /// Gives back a lease whose borrow has ended, as [`Engine::checkin`]
    /// does. A borrow cannot end early: the borrowed token stays valid
    /// offline until its end, and nothing shows that every copy of it was
    /// given back, so while the borrow runs this is refused
    /// (`LEASE_BORROWED`, with the instant it ends as `retry_at`) and the
    /// seat stays taken (docs/semantics.md#borrowing). Keep borrows short
    /// (`borrow_max_secs`) rather than counting on their return.
    pub fn return_borrow(&self, lease_id: &str) -> Result<()> {
        self.checkin(lease_id)
    }

    /// The client id this engine takes its own leases under
    /// ([`Engine::lease`]): its device's fingerprint, `#`, and a name for
    /// this instance, so that two instances of a program on one machine
    /// each hold their own seat, and both count as that device on a
    /// node-locked license.
    ///
    /// ```
    /// let engine = entitle::Engine::builder("acme").in_memory().fingerprint("3f2a").build().unwrap();
    /// assert!(engine.client_id().starts_with("3f2a#"));
    /// let other = entitle::Engine::builder("acme").in_memory().fingerprint("3f2a").build().unwrap();
    /// assert_ne!(engine.client_id(), other.client_id());
    /// ```
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The licenses in force whose floating seats make up the pool a
    /// lease of `feature` draws on (the license-level pool for `None`, or
    /// for a feature without a pool of its own): what a license server's
    /// lease token names.
    #[cfg(feature = "server")]
    pub(crate) fn pool_license_ids(&self, feature: Option<&str>) -> Vec<String> {
        let snapshot = self.inner.snapshot.load();
        let now = self.now().unix();
        let tampered = now < snapshot.tamper_below;
        let ctx = &self.inner.config.device.ctx;
        let views: Vec<_> = snapshot
            .licenses
            .iter()
            .map(|l| l.view(Activation::NotLocked))
            .collect();
        let own_pools = feature.is_some_and(|code| {
            views.iter().any(|v| {
                v.license
                    .feature(code)
                    .is_some_and(|f| f.floating.is_some())
            })
        });
        views
            .iter()
            .filter(|view| {
                let offers = match feature {
                    Some(code) => match view.license.feature(code) {
                        Some(f) if own_pools => f.floating.is_some(),
                        Some(_) => view.license.floating.is_some(),
                        None => false,
                    },
                    None => view.license.floating.is_some(),
                };
                offers && crate::policy::validity::grants_new(view, ctx, now, tampered)
            })
            .map(|view| view.license.id.clone())
            .collect()
    }

    /// The pool a checkout of `feature` draws on: the feature's own when
    /// an installed license gives it one, else the license-level pool
    /// (`None`), as [`Lease::feature`] names it.
    #[cfg(feature = "server")]
    pub(crate) fn pool_of(&self, feature: Option<&str>) -> Option<String> {
        let code = feature?;
        let snapshot = self.inner.snapshot.load();
        snapshot
            .licenses
            .iter()
            .any(|l| {
                l.verified
                    .feature(code)
                    .is_some_and(|f| f.floating.is_some())
            })
            .then(|| code.to_owned())
    }

    /// Marks this engine as the one a site server (`entitle serve`) hands
    /// out seats from: a node-locked license is bound to the server's
    /// machine, and while it is activated there its clients take seats
    /// without activations of their own.
    #[cfg(feature = "server")]
    pub(crate) fn serve_site(&self) {
        self.inner
            .serves_site
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The live leases as the state keeps them (with when each was taken),
    /// for a server's administrator.
    #[cfg(feature = "server")]
    pub(crate) fn lease_records(&self) -> Vec<LeaseRecord> {
        let now = self.now().unix();
        self.inner
            .snapshot
            .load()
            .leases
            .iter()
            .filter(|(_, l)| l.live_at(now))
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Every floating pool: the license-level one, when a license offers
    /// it, and each feature's own, with its seats and how they are used.
    #[cfg(feature = "server")]
    pub(crate) fn pools(&self) -> Vec<PoolUse> {
        use std::collections::BTreeMap;

        let snapshot = self.inner.snapshot.load();
        let now = self.now().unix();
        let tampered = now < snapshot.tamper_below;
        let ctx = &self.inner.config.device.ctx;
        let site = self
            .inner
            .serves_site
            .load(std::sync::atomic::Ordering::Relaxed);
        let is_activated = |license: &License| {
            site && snapshot
                .device_activations
                .get(&license.id)
                .is_some_and(|until| now < *until)
        };
        let views: Vec<_> = snapshot
            .licenses
            .iter()
            .map(|l| l.view(Activation::NotLocked))
            .collect();
        let mut pools: BTreeMap<Option<String>, PoolUse> = BTreeMap::new();
        let mut declare = |key: Option<&str>| {
            pools
                .entry(key.map(str::to_owned))
                .or_insert_with(|| PoolUse::empty(key))
                .declared = true;
        };
        for view in &views {
            if view.license.floating.is_some() {
                declare(None);
            }
            for feature in &view.license.features {
                if feature.floating.is_some() {
                    declare(Some(&feature.code));
                }
            }
        }
        for (_, lease) in snapshot.leases.iter() {
            if !lease.live_at(now) {
                continue;
            }
            let pool = pools
                .entry(lease.feature.clone())
                .or_insert_with(|| PoolUse::empty(lease.feature.as_deref()));
            pool.in_use += 1;
            pool.borrowed += u64::from(floating::borrow_holds(lease, now));
            pool.lingering += u64::from(floating::is_lingering(lease));
        }
        for pool in pools.values_mut().filter(|p| p.declared) {
            let key = pool.feature.as_deref();
            for view in &views {
                let offers = match key {
                    None => view.license.floating.is_some(),
                    Some(code) => view
                        .license
                        .feature(code)
                        .is_some_and(|f| f.floating.is_some()),
                };
                if !offers {
                    continue;
                }
                let seats = floating::pool([view], key, is_activated, ctx, now, tampered)
                    .map_or(0, |p| p.seats);
                pool.seats = pool.seats.saturating_add(seats);
                pool.licenses.push((view.license.id.clone(), seats));
            }
        }
        pools.into_values().collect()
    }

    /// The live lease `id`, if there is one (the server's history names
    /// the pool and client of a lease it frees).
    #[cfg(feature = "server")]
    pub(crate) fn live_lease(&self, id: &str) -> Option<Lease> {
        let now = self.now().unix();
        let snapshot = self.inner.snapshot.load();
        snapshot
            .leases
            .get(id)
            .filter(|l| l.live_at(now))
            .map(Lease::of)
    }

    /// How many live leases draw on `pool` (a feature's, or `None`: the
    /// license-level pool), counted without copying them.
    #[cfg(feature = "server")]
    pub(crate) fn pool_in_use(&self, pool: Option<&str>) -> usize {
        let now = self.now().unix();
        self.inner
            .snapshot
            .load()
            .leases
            .values()
            .filter(|l| l.live_at(now) && l.feature.as_deref() == pool)
            .count()
    }

    /// The history the engine's store keeps for a license server, if it
    /// keeps one.
    #[cfg(feature = "server")]
    pub(crate) fn history(&self) -> Option<&dyn crate::store::History> {
        self.inner.store.store().history()
    }

    /// The live leases.
    pub fn leases(&self) -> Vec<Lease> {
        let now = self.now().unix();
        self.inner
            .snapshot
            .load()
            .leases
            .iter()
            .filter(|(_, l)| l.live_at(now))
            .map(|(_, l)| Lease::of(l))
            .collect()
    }
}
