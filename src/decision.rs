//! What a check answers: [`Decision`] and its [`Reason`].

use crate::clock::Timestamp;

/// Why a check or a mutation came out the way it did. Each reason has a
/// stable [`code`](Reason::code).
///
/// The first four allow; every other reason denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    /// Allowed by a license in force.
    Ok,
    /// Allowed: past `expires_at`, within `grace_secs`.
    InGrace,
    /// Allowed, but beyond the licensed amount (soft seats, consumption overage).
    Overage,
    /// Allowed: expired with `on_expiry: keep`; show `notice_on_expire`.
    ExpiredKept,
    /// No license grants it.
    NotLicensed,
    /// Every license that granted it has expired.
    Expired,
    /// The license granting it starts later.
    NotYetValid,
    /// The license granting it is suspended (`enabled: false`).
    Suspended,
    /// The license granting it was revoked.
    Revoked,
    /// This build was released after maintenance ended.
    MaintenanceExpired,
    /// The license is node-locked and this device is not activated.
    NotActivated,
    /// The license is node-locked and this machine gives no machine id to
    /// lock it to.
    DeviceUnknown,
    /// No seat is free.
    SeatLimit,
    /// The clock is behind the latest time seen: time-dependent rights are held.
    ClockTampered,
    /// All activation slots are taken.
    ActivationLimit,
    /// No transfers (deactivations) are left.
    TransferLimit,
    /// Only a vendor-signed machine certificate can activate this license.
    CertificateRequired,
    /// The license refuses virtual machines.
    VmNotAllowed,
    /// Every floating seat is leased.
    FloatingExhausted,
    /// The lease ended.
    LeaseExpired,
    /// No such lease.
    LeaseNotFound,
    /// The license does not allow borrowing.
    BorrowNotAllowed,
    /// The borrow is longer than the license allows.
    BorrowTooLong,
    /// The quota for this period is used up.
    ConsumptionLimit,
    /// The feature is floating: this program may use it only while it holds
    /// a lease on one of its seats ([`Engine::lease`](crate::Engine::lease)).
    LeaseRequired,
    /// The machine certificate was given up on this install (a deactivation
    /// receipt was made for it): the same certificate never activates again.
    CertificateDeactivated,
    /// The lease is borrowed: its seat is held until the borrow ends, and
    /// it cannot be checked in early.
    LeaseBorrowed,
    /// The license is for other versions or release channels of the
    /// program (its `versions`, `channels`), or the program does not say
    /// its version or channel (`EngineBuilder::version`, `channel`) and
    /// the license limits them.
    VersionNotLicensed,
}

impl Reason {
    /// Every reason, in declaration order (`reason as usize` is its
    /// index; the C ABI numbers its statuses in this order).
    ///
    /// ```
    /// use entitle::Reason;
    /// assert_eq!(Reason::ALL[0], Reason::Ok);
    /// assert!(Reason::ALL.contains(&Reason::LeaseBorrowed));
    /// ```
    pub const ALL: [Reason; 28] = {
        use Reason::*;
        [
            Ok,
            InGrace,
            Overage,
            ExpiredKept,
            NotLicensed,
            Expired,
            NotYetValid,
            Suspended,
            Revoked,
            MaintenanceExpired,
            NotActivated,
            DeviceUnknown,
            SeatLimit,
            ClockTampered,
            ActivationLimit,
            TransferLimit,
            CertificateRequired,
            VmNotAllowed,
            FloatingExhausted,
            LeaseExpired,
            LeaseNotFound,
            BorrowNotAllowed,
            BorrowTooLong,
            ConsumptionLimit,
            LeaseRequired,
            CertificateDeactivated,
            LeaseBorrowed,
            VersionNotLicensed,
        ]
    };

    /// The reason whose [`code`](Reason::code) is `code`, as a server or a
    /// stored answer writes it.
    ///
    /// ```
    /// use entitle::Reason;
    /// assert_eq!(Reason::from_code("IN_GRACE"), Some(Reason::InGrace));
    /// assert_eq!(Reason::from_code("in_grace"), None);
    /// ```
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// The stable code, e.g. `"IN_GRACE"`.
    ///
    /// ```
    /// assert_eq!(entitle::Reason::InGrace.code(), "IN_GRACE");
    /// ```
    pub const fn code(self) -> &'static str {
        match self {
            Reason::Ok => "OK",
            Reason::InGrace => "IN_GRACE",
            Reason::Overage => "OVERAGE",
            Reason::ExpiredKept => "EXPIRED_KEPT",
            Reason::NotLicensed => "NOT_LICENSED",
            Reason::Expired => "EXPIRED",
            Reason::NotYetValid => "NOT_YET_VALID",
            Reason::Suspended => "SUSPENDED",
            Reason::Revoked => "REVOKED",
            Reason::MaintenanceExpired => "MAINTENANCE_EXPIRED",
            Reason::NotActivated => "NOT_ACTIVATED",
            Reason::DeviceUnknown => "DEVICE_UNKNOWN",
            Reason::SeatLimit => "SEAT_LIMIT",
            Reason::ClockTampered => "CLOCK_TAMPERED",
            Reason::ActivationLimit => "ACTIVATION_LIMIT",
            Reason::TransferLimit => "TRANSFER_LIMIT",
            Reason::CertificateRequired => "CERTIFICATE_REQUIRED",
            Reason::VmNotAllowed => "VM_NOT_ALLOWED",
            Reason::FloatingExhausted => "FLOATING_EXHAUSTED",
            Reason::LeaseExpired => "LEASE_EXPIRED",
            Reason::LeaseNotFound => "LEASE_NOT_FOUND",
            Reason::BorrowNotAllowed => "BORROW_NOT_ALLOWED",
            Reason::BorrowTooLong => "BORROW_TOO_LONG",
            Reason::ConsumptionLimit => "CONSUMPTION_LIMIT",
            Reason::LeaseRequired => "LEASE_REQUIRED",
            Reason::CertificateDeactivated => "CERTIFICATE_DEACTIVATED",
            Reason::LeaseBorrowed => "LEASE_BORROWED",
            Reason::VersionNotLicensed => "VERSION_NOT_LICENSED",
        }
    }

    /// A sentence fit for an application's dialog, in the words of its
    /// user (no codes, no commands: the program adds what its user can do
    /// about it, such as a button to enter a license key).
    ///
    /// ```
    /// use entitle::Reason;
    /// assert_eq!(Reason::Expired.message(), "Your license has expired.");
    /// assert!(Reason::LeaseRequired.message().starts_with("This feature needs a seat"));
    /// ```
    pub const fn message(self) -> &'static str {
        match self {
            Reason::Ok => "Licensed.",
            Reason::InGrace => {
                "Your license has expired. You can keep working for a short grace period: please renew it."
            }
            Reason::Overage => "Licensed, above the amount your license includes.",
            Reason::ExpiredKept => "Your license has expired. You can keep using what it included.",
            Reason::NotLicensed => "Your license does not include this feature.",
            Reason::Expired => "Your license has expired.",
            Reason::NotYetValid => "Your license is not valid yet.",
            Reason::Suspended => "Your license is suspended. Please contact your vendor.",
            Reason::Revoked => "Your license has been revoked. Please contact your vendor.",
            Reason::MaintenanceExpired => {
                "This version was released after your maintenance period ended. Renew maintenance, or use an earlier version."
            }
            Reason::NotActivated => "This computer is not activated for your license.",
            Reason::DeviceUnknown => {
                "This computer cannot be identified, so a license locked to a computer cannot be used on it."
            }
            Reason::SeatLimit => "All the seats of your license are in use.",
            Reason::ClockTampered => {
                "The computer's clock is set earlier than it was. Please correct the date and time."
            }
            Reason::ActivationLimit => "Your license is activated on as many computers as it allows.",
            Reason::TransferLimit => "Your license allows no more moves to another computer.",
            Reason::CertificateRequired => {
                "Your license must be activated by your vendor for this computer."
            }
            Reason::VmNotAllowed => "Your license cannot be used in a virtual machine.",
            Reason::FloatingExhausted => "All the shared seats of your license are in use. Please try again later.",
            Reason::LeaseExpired => "Your seat was released after a period without contact.",
            Reason::LeaseNotFound => "Your seat is no longer held.",
            Reason::BorrowNotAllowed => "Your license does not allow taking a seat offline.",
            Reason::BorrowTooLong => "Your license allows taking a seat offline only for a shorter time.",
            Reason::ConsumptionLimit => "You have used all of this feature your license includes for now.",
            Reason::LeaseRequired => "This feature needs a seat, and none is held by this program.",
            Reason::CertificateDeactivated => {
                "This activation file was given up when this computer was deactivated. Please ask your vendor for a new one."
            }
            Reason::LeaseBorrowed => {
                "This seat is taken offline: it stays taken until the borrowing period ends."
            }
            Reason::VersionNotLicensed => {
                "Your license is for another version or edition of this program. Use a version it covers, or ask your vendor for an upgrade."
            }
        }
    }

    /// Whether this reason allows.
    ///
    /// ```
    /// assert!(entitle::Reason::Overage.allows());
    /// assert!(!entitle::Reason::Expired.allows());
    /// ```
    pub const fn allows(self) -> bool {
        matches!(
            self,
            Reason::Ok | Reason::InGrace | Reason::Overage | Reason::ExpiredKept
        )
    }

    /// How good a reason is when several licenses answer the same question:
    /// the engine keeps the best. Allowing beats denying; among denials the
    /// one that tells the user most about what to do wins.
    pub(crate) const fn rank(self) -> u8 {
        match self {
            Reason::Ok => 100,
            Reason::Overage => 95,
            Reason::InGrace => 90,
            Reason::ExpiredKept => 85,
            Reason::ClockTampered => 60,
            // A seat to take is closer to use than any other denial.
            Reason::LeaseRequired | Reason::LeaseExpired => 58,
            Reason::NotActivated => 55,
            Reason::DeviceUnknown => 54,
            Reason::MaintenanceExpired => 50,
            Reason::VersionNotLicensed => 48,
            Reason::NotYetValid => 45,
            Reason::Expired => 40,
            Reason::Suspended => 35,
            Reason::Revoked => 30,
            Reason::SeatLimit => 25,
            _ => 10,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// How long before a feature's right lapses a check says so: 14 days.
/// Within it, an allowed [`Decision`] whose right ends (every license that
/// grants the feature expires, its trial ends, the feature's own
/// `expires_at` passes) has the warning [`Warning::Ending`]. A right that
/// another license carries on past the end does not end, and gives no
/// warning.
pub const ENDING_NOTICE_SECS: i64 = 14 * 24 * 3600;

/// A notice the user should see while a check is allowed
/// ([`Decision::warning`]): the program keeps working, and its user should
/// act before it stops.
///
/// ```
/// use entitle::{Decision, Reason, Warning};
///
/// let d = Decision::new(Reason::InGrace, None);
/// assert!(d.allowed());
/// assert_eq!(d.warning(), Some(Warning::InGrace));
/// assert_eq!(Warning::InGrace.code(), "IN_GRACE");
/// assert_eq!(Decision::new(Reason::Ok, None).warning(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Warning {
    /// The license has expired and its grace runs (`IN_GRACE`): renew it.
    InGrace,
    /// Beyond the licensed amount, within what is allowed as overage
    /// (`OVERAGE`).
    Overage,
    /// Expired, kept by `on_expiry: keep` (`EXPIRED_KEPT`): the license's
    /// `notice_on_expire` says what to show.
    ExpiredKept,
    /// The right ends within [`ENDING_NOTICE_SECS`] (`ENDING`): the license
    /// or trial granting it, or the feature, expires then and nothing
    /// carries it on. [`LicenseInfo::expires_at`](crate::engine::LicenseInfo::expires_at)
    /// says when.
    Ending,
}

impl Warning {
    /// A stable code: the reason's (`IN_GRACE`, `OVERAGE`, `EXPIRED_KEPT`),
    /// or `ENDING`.
    pub const fn code(self) -> &'static str {
        match self {
            Warning::InGrace => Reason::InGrace.code(),
            Warning::Overage => Reason::Overage.code(),
            Warning::ExpiredKept => Reason::ExpiredKept.code(),
            Warning::Ending => "ENDING",
        }
    }

    /// A sentence fit for an application's notice, in the words of its
    /// user.
    ///
    /// ```
    /// assert_eq!(entitle::Warning::Ending.message(), "Your license ends soon. Please renew it.");
    /// ```
    pub const fn message(self) -> &'static str {
        match self {
            Warning::InGrace => Reason::InGrace.message(),
            Warning::Overage => Reason::Overage.message(),
            Warning::ExpiredKept => Reason::ExpiredKept.message(),
            Warning::Ending => "Your license ends soon. Please renew it.",
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The answer to a check: allowed or not, why, until when it holds, and
/// whether the user should see a notice while it is allowed
/// ([`warning`](Decision::warning)).
///
/// Small and `Copy`, so the hot path returns it by value without allocating.
///
/// ```
/// use entitle::{Decision, Reason};
///
/// let d = Decision::new(Reason::InGrace, None);
/// assert!(d.allowed());
/// assert_eq!(d.reason().code(), "IN_GRACE");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    reason: Reason,
    /// The right ends within [`ENDING_NOTICE_SECS`]: a byte in what would
    /// be padding, so a decision stays 24 bytes.
    ending: bool,
    until: Option<Timestamp>,
}

impl Decision {
    /// A decision for `reason` that holds until `until` (`None`: until
    /// something changes other than time).
    pub const fn new(reason: Reason, until: Option<Timestamp>) -> Self {
        Decision {
            reason,
            ending: false,
            until,
        }
    }

    /// The same decision, saying whether its right ends within
    /// [`ENDING_NOTICE_SECS`] (only an `OK` one can).
    #[inline]
    pub(crate) const fn ending(mut self, ending: bool) -> Self {
        self.ending = ending && matches!(self.reason, Reason::Ok);
        self
    }

    /// A decision from its parts, as a gate's word holds them.
    #[inline(always)]
    pub(crate) const fn from_parts(reason: Reason, ending: bool, until: Option<Timestamp>) -> Self {
        Decision {
            reason,
            ending,
            until,
        }
    }

    /// Whether it says its right ends within [`ENDING_NOTICE_SECS`].
    #[inline]
    pub(crate) const fn is_ending(&self) -> bool {
        self.ending
    }

    /// The notice the user should see while the check is allowed, if any:
    /// `IN_GRACE`, `OVERAGE`, `EXPIRED_KEPT`, or the right ending within
    /// [`ENDING_NOTICE_SECS`]. `None` when denied ([`message`](Decision::message)
    /// says why) or allowed with nothing to say. [`allowed`](Decision::allowed)
    /// is true whatever it says. Costs a comparison; allocates nothing.
    ///
    /// ```
    /// # use entitle::token::{sign, SigningKey, TokenType};
    /// # use entitle::{Engine, ManualClock, Timestamp};
    /// use entitle::Warning;
    ///
    /// # let vendor = SigningKey::generate().unwrap();
    /// let clock = ManualClock::new(Timestamp::parse("2026-12-25T00:00:00Z").unwrap());
    /// # let engine = Engine::builder("acme").in_memory().virtual_machine(false)
    /// #     .trust(vendor.public_key().clone()).clock(clock.clone()).build().unwrap();
    /// # engine.add_license(&sign(&serde_json::json!({
    /// #     "v": 1, "id": "lic_1", "product": "acme", "issued_at": "2026-01-01T00:00:00Z",
    /// #     "expires_at": "2027-01-01T00:00:00Z", "grace_secs": 604800,
    /// #     "features": [{"code": "export"}]}), &vendor, TokenType::License).unwrap()).unwrap();
    /// let export = engine.feature("export");
    /// // A week before the license ends: allowed, with a notice.
    /// let d = export.check();
    /// assert!(d.allowed());
    /// assert_eq!(d.warning(), Some(Warning::Ending));
    /// // Expired, in grace: still allowed.
    /// clock.advance(8 * 24 * 3600);
    /// assert_eq!(export.check().warning(), Some(Warning::InGrace));
    /// ```
    #[inline]
    pub const fn warning(&self) -> Option<Warning> {
        match self.reason {
            Reason::InGrace => Some(Warning::InGrace),
            Reason::Overage => Some(Warning::Overage),
            Reason::ExpiredKept => Some(Warning::ExpiredKept),
            Reason::Ok if self.ending => Some(Warning::Ending),
            _ => None,
        }
    }

    /// Whether the check is allowed.
    #[inline]
    pub const fn allowed(&self) -> bool {
        self.reason.allows()
    }

    /// Why.
    #[inline]
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// A sentence for the application's user ([`Reason::message`]).
    ///
    /// ```
    /// let d = entitle::Decision::new(entitle::Reason::SeatLimit, None);
    /// assert_eq!(d.message(), "All the seats of your license are in use.");
    /// ```
    pub const fn message(&self) -> &'static str {
        self.reason.message()
    }

    /// The instant this decision stops holding by the passage of time alone
    /// (a license expiring, grace ending, a license starting), if any.
    #[inline]
    pub const fn until(&self) -> Option<Timestamp> {
        self.until
    }
}

/// A reason is written as its stable code (`"OK"`, `"SEAT_LIMIT"`...).
impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::{Decision, Reason, Warning};

    #[test]
    fn a_warning_costs_a_decision_no_bytes() {
        // Reason, then padding, then the 16-byte `Option<Timestamp>`: the
        // flag lives in the padding.
        assert_eq!(std::mem::size_of::<Decision>(), 24);
    }

    #[test]
    fn only_allowed_decisions_warn_and_only_an_ok_one_ends() {
        for reason in Reason::ALL {
            let warned = Decision::new(reason, None).ending(true).warning();
            let expected = match reason {
                Reason::Ok => Some(Warning::Ending),
                Reason::InGrace => Some(Warning::InGrace),
                Reason::Overage => Some(Warning::Overage),
                Reason::ExpiredKept => Some(Warning::ExpiredKept),
                _ => None,
            };
            assert_eq!(warned, expected, "{reason:?}");
            assert!(warned.is_none() || reason.allows(), "{reason:?}");
            let plain = Decision::new(reason, None).warning();
            assert_eq!(plain, expected.filter(|w| *w != Warning::Ending));
        }
    }

    #[test]
    fn every_reason_has_a_sentence_for_users_without_codes_or_commands() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason:?} out of order");
            let words = reason.message();
            assert!(words.ends_with('.'), "{reason:?}: {words}");
            assert!(
                !words.contains('`') && !words.contains('_'),
                "{reason:?}: {words}"
            );
        }
    }

    #[test]
    fn every_code_names_one_reason() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(Reason::from_code("ENDING"), None);
        assert_eq!(Reason::from_code(""), None);
    }
}
