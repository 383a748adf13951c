//! Named users and seats.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::decision::{Decision, Reason};
use crate::engine::state::User;
use crate::engine::{Engine, Plan};
use crate::error::{Error, Result};
use crate::policy::seats;
use crate::store::{Change, UserRecord};

/// The most users one page of [`Engine::usage`] returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Seat usage now, as `entitle license status` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EngineStatus {
    /// Users active within the window.
    pub active_user_count: u64,
    /// Sum of `seats.max` over licenses in force.
    pub license_seats: u64,
    /// Sum of `seats.hard_max` over the same licenses.
    pub hard_seats: u64,
    /// Whether one more user may be added now.
    #[serde(serialize_with = "allowed_only")]
    pub can_add_user: Decision,
    /// The reason for `can_add_user`.
    pub reason: Reason,
    /// All users, active or not.
    pub total_users: u64,
    /// Installed licenses.
    pub licenses: usize,
    /// Whether the clock is behind the latest time seen.
    pub clock_tampered: bool,
}

fn allowed_only<S: serde::Serializer>(d: &Decision, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(d.allowed())
}

/// One user in a usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UserUsage {
    /// User id.
    pub id: String,
    /// User type.
    pub user_type: String,
    /// Display name, if one was given ([`NewUser::name`]).
    pub name: Option<String>,
    /// Email address, if one was given ([`NewUser::email`]).
    pub email: Option<String>,
    /// Active within the window now.
    pub active: bool,
    /// Latest activity.
    pub last_active_at: Timestamp,
}

/// Counts for one user type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct TypeSummary {
    /// All users of the type.
    pub total: u64,
    /// Active ones.
    pub active: u64,
    /// Idle ones.
    pub inactive: u64,
}

/// A page of users and a summary over all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Usage {
    /// The page, ordered by user id.
    pub users: Vec<UserUsage>,
    /// By user type, over all users.
    pub summary: BTreeMap<String, TypeSummary>,
    /// All users.
    pub total: u64,
    /// The page's offset.
    pub offset: usize,
    /// The page's size.
    pub size: usize,
}

fn check_user_id(id: &str) -> Result<()> {
    crate::ident::check("a user id", id)
}

/// A named user to add, with what a usage listing shows of them besides
/// the id and type: a display name and an email address. Both are words,
/// kept and shown, never enforced (editing them in the state gains
/// nothing).
///
/// ```
/// use entitle::engine::NewUser;
/// use entitle::license::{License, Seats};
/// use entitle::token::SigningKey;
/// use entitle::Engine;
///
/// let vendor = SigningKey::generate()?;
/// let engine = Engine::builder("acme").in_memory().trust(vendor.public_key().clone())
///     .background_refresh(false).build()?;
/// engine.add_license(&License::builder("acme").seats(Seats::new(5)).sign(&vendor)?)?;
///
/// let ann = NewUser::new("ann", "editor").name("Ann Lee").email("ann@example.com");
/// assert!(engine.add_user_with(&ann)?.allowed());
/// engine.add_user("ann", "editor")?; // keeps her name and email
/// let usage = engine.usage(0, 10);
/// assert_eq!(usage.users[0].name.as_deref(), Some("Ann Lee"));
/// assert_eq!(usage.users[0].email.as_deref(), Some("ann@example.com"));
///
/// let bad = NewUser::new("bob", "editor").email("bob");
/// assert_eq!(engine.add_user_with(&bad).unwrap_err().code(), "INVALID_ARGUMENT");
/// # Ok::<(), entitle::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a NewUser does nothing until given to `Engine::add_user_with`"]
pub struct NewUser {
    id: String,
    user_type: String,
    name: Option<String>,
    email: Option<String>,
}

impl NewUser {
    /// A user `id` of `user_type`, without name or email.
    pub fn new(id: impl Into<String>, user_type: impl Into<String>) -> Self {
        NewUser {
            id: id.into(),
            user_type: user_type.into(),
            name: None,
            email: None,
        }
    }

    /// The user's display name (1 to 256 printable characters).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The user's email address (1 to 256 printable characters, with an
    /// `@`).
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    fn check(&self) -> Result<()> {
        check_user_id(&self.id)?;
        if self.user_type.len() > 64 {
            return Err(Error::InvalidArgument(
                "a user type is at most 64 characters".into(),
            ));
        }
        if let Some(name) = &self.name {
            crate::ident::check("a user's name", name)?;
        }
        if let Some(email) = &self.email {
            crate::ident::check("a user's email", email)?;
            if !email.contains('@') {
                return Err(Error::InvalidArgument(format!(
                    "`{email}` is not an email address (it has no `@`)"
                )));
            }
        }
        Ok(())
    }
}

/// Plans taking a seat for a user who is not active now.
fn take_seat(plan: &Plan<'_>, id: &str) -> Result<()> {
    let reason = seats::can_add(&plan.seats, plan.active_users);
    if reason.allows() {
        return Ok(());
    }
    let message = match reason {
        Reason::SeatLimit => format!(
            "no seat for user `{id}`: {} users are active and the licenses allow {} (hard limit {}); remove a user or add a seat top-up license",
            plan.active_users, plan.seats.licensed, plan.seats.hard
        ),
        Reason::ClockTampered => "the system clock is behind the latest time this install has seen; set the clock right, or apply a fresh license from the vendor".to_owned(),
        other => format!(
            "no license in force gives user `{id}` a seat ({}); add a valid license",
            other.code()
        ),
    };
    Err(Error::denied(reason, message))
}

impl Engine {
    /// Adds a named user (or records activity for an existing one).
    /// A user who is not active needs a free seat: `SEAT_LIMIT` otherwise.
    /// Returns the decision that let the user in (`OK` or `OVERAGE`).
    /// An existing user keeps the name and email they were given.
    pub fn add_user(&self, id: &str, user_type: &str) -> Result<Decision> {
        self.add_user_with(&NewUser::new(id, user_type))
    }

    /// [`add_user`](Self::add_user), with a name and an email shown in
    /// [`usage`](Self::usage). For an existing user, what `user` gives
    /// replaces what they had; what it leaves out is kept. See
    /// [`NewUser`].
    pub fn add_user_with(&self, user: &NewUser) -> Result<Decision> {
        user.check()?;
        let (id, user_type) = (user.id.as_str(), user.user_type.as_str());
        self.mutate(|plan| {
            let existing = plan.state.users.get(id);
            let active = existing.is_some_and(|u| {
                seats::is_active(u.last_active_at, plan.now, plan.seats.window_secs)
            });
            let reason = if active {
                Reason::Ok
            } else {
                take_seat(plan, id)?;
                seats::can_add(&plan.seats, plan.active_users)
            };
            let change = Change::PutUser(UserRecord {
                id: id.to_owned(),
                user_type: user_type.to_owned(),
                added_at: existing.map_or(plan.now, |u| u.added_at),
                // As `record_activity`: a clock set back a little must not
                // move a user's activity back in time.
                last_active_at: existing.map_or(plan.now, |u| u.last_active_at.max(plan.now)),
                name: user
                    .name
                    .clone()
                    .or_else(|| existing.and_then(|u| u.contact.as_ref()?.name.clone())),
                email: user
                    .email
                    .clone()
                    .or_else(|| existing.and_then(|u| u.contact.as_ref()?.email.clone())),
            });
            Ok((vec![change], Decision::new(reason, None)))
        })
    }

    /// Records activity for a user. A returning idle user needs a free
    /// seat (`SEAT_LIMIT`).
    pub fn record_activity(&self, id: &str) -> Result<()> {
        self.mutate(|plan| {
            let user = plan
                .state
                .users
                .get(id)
                .ok_or_else(|| Error::UserNotFound { id: id.to_owned() })?;
            if !seats::is_active(user.last_active_at, plan.now, plan.seats.window_secs) {
                take_seat(plan, id)?;
            }
            let user_type = plan.state.user_types[user.user_type as usize].to_string();
            Ok((
                vec![Change::PutUser(UserRecord {
                    id: id.to_owned(),
                    user_type,
                    added_at: user.added_at,
                    last_active_at: plan.now.max(user.last_active_at),
                    name: user.contact.as_ref().and_then(|c| c.name.clone()),
                    email: user.contact.as_ref().and_then(|c| c.email.clone()),
                })],
                (),
            ))
        })
    }

    /// Removes a user, freeing their seat.
    pub fn remove_user(&self, id: &str) -> Result<()> {
        self.mutate(|plan| {
            if !plan.state.users.contains_key(id) {
                return Err(Error::UserNotFound { id: id.to_owned() });
            }
            Ok((vec![Change::DeleteUser(id.to_owned())], ()))
        })
    }

    /// Seat usage now. Reads the published snapshot: never waits for a
    /// mutation.
    pub fn status(&self) -> EngineStatus {
        let now = self.inner.clock.now().unix();
        let snapshot = self.inner.snapshot.load();
        let tampered = now < snapshot.tamper_below;
        let device = &self.inner.config.device;
        let totals = seats::totals(&snapshot.views(device), &device.ctx, now, tampered);
        let active = snapshot
            .seats
            .active_at(now, snapshot.tamper_below)
            .unwrap_or_else(|| {
                let active = |u: &User| seats::is_active(u.last_active_at, now, totals.window_secs);
                snapshot.users.values().filter(|u| active(u)).count() as u64
            });
        let reason = seats::can_add(&totals, active);
        EngineStatus {
            active_user_count: active,
            license_seats: totals.licensed,
            hard_seats: totals.hard,
            can_add_user: Decision::new(reason, None),
            reason,
            total_users: snapshot.users.len() as u64,
            licenses: snapshot.licenses.len(),
            clock_tampered: tampered,
        }
    }

    /// A page of users, ordered by id, and a summary by user type over all
    /// users. `size` is capped at 1000. Reads the published snapshot.
    pub fn usage(&self, offset: usize, size: usize) -> Usage {
        let size = size.min(MAX_PAGE_SIZE);
        let now = self.inner.clock.now().unix();
        let snapshot = self.inner.snapshot.load();
        let device = &self.inner.config.device;
        // The same window as `status` and the seat checks, tampered clock
        // included, so the report and the count agree.
        let tampered = now < snapshot.tamper_below;
        let window = seats::totals(&snapshot.views(device), &device.ctx, now, tampered).window_secs;
        let types = &snapshot.user_types;
        let mut by_type = vec![TypeSummary::default(); types.len()];
        for user in snapshot.users.values() {
            let summary = &mut by_type[user.user_type as usize];
            summary.total += 1;
            if seats::is_active(user.last_active_at, now, window) {
                summary.active += 1;
            } else {
                summary.inactive += 1;
            }
        }
        let users = snapshot
            .users
            .iter()
            .skip(offset)
            .take(size)
            .map(|(id, u)| UserUsage {
                id: id.to_string(),
                user_type: types[u.user_type as usize].to_string(),
                name: u.contact.as_ref().and_then(|c| c.name.clone()),
                email: u.contact.as_ref().and_then(|c| c.email.clone()),
                active: seats::is_active(u.last_active_at, now, window),
                last_active_at: Timestamp::from_unix(u.last_active_at),
            })
            .collect();
        let summary = types
            .iter()
            .zip(by_type)
            .filter(|(_, s)| s.total > 0)
            .map(|(t, s)| (t.to_string(), s))
            .collect();
        Usage {
            users,
            summary,
            total: snapshot.users.len() as u64,
            offset,
            size,
        }
    }
}
