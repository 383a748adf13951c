//! Feature gates. A gate's answer is a decision that holds over a span of
//! time; the engine writes it into one atomic word per gate whenever it
//! publishes, before the mutation that changed it returns. `check` is then
//! one load of that word, one of the coarse clock and a comparison; only
//! when the clock has left the span does it go back to the snapshot.
//!
//! A gate answers for this program, not only for the licenses: a feature
//! granted through a floating pool is allowed only while this program
//! holds a live lease on it, taken by this engine ([`Engine::lease`]),
//! from a license server through a client made from this engine
//! (`client::Client::lease`), or borrowed ([`LeaseGuard::borrowed`](crate::LeaseGuard::borrowed)),
//! and a metered feature says when
//! its quota is used up (`CONSUMPTION_LIMIT`, or `OVERAGE` inside the
//! band). [`Engine::check_feature`] answers for the licenses alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::clock::Timestamp;
use crate::decision::{Decision, Reason};
use crate::engine::consumption;
use crate::engine::snapshot::Snapshot;
use crate::engine::state::DeviceContext;
use crate::engine::{ClockSource, Engine, Inner};
use crate::policy::consumption as metering;
use crate::policy::floating::{self, Held};
use crate::policy::validity;

/// A handle on one feature, resolved once by [`Engine::feature`]: the
/// fastest check there is, and the one a program should use. It follows
/// every later change (licenses, activations, leases, consumption).
///
/// ```
/// # use entitle::{Engine};
/// let engine = Engine::builder("acme").in_memory().build().unwrap();
/// let gate = engine.feature("export");
/// assert!(!gate.check().allowed());
/// assert_eq!(gate.check().reason().code(), "NOT_LICENSED");
/// ```
#[derive(Clone)]
pub struct FeatureGate {
    slot: Arc<Slot>,
    engine: Engine,
}

/// What every gate of one code on one engine shares: the word.
pub(crate) struct Slot {
    word: AtomicU64,
    /// The instant the word's times count from (see [`word`]).
    epoch: i64,
    /// The engine reads the system clock: read the coarse clock directly.
    system_clock: bool,
    index: u32,
    code: Box<str>,
}

impl FeatureGate {
    /// Whether the feature may be used now: no hash, no lock, no
    /// allocation, and on the fast path one atomic load and a clock read.
    ///
    /// This is the one call a program gates on. The answer is the
    /// licenses' ([`Engine::check_feature`]), narrowed for this program: a
    /// feature granted through a floating pool needs a live lease this
    /// program holds, whether this engine took it ([`Engine::lease`]), a
    /// license server gave it through a client made from this engine
    /// (`client::Client::lease`), or it was borrowed
    /// ([`LeaseGuard::borrowed`](crate::LeaseGuard::borrowed)):
    /// `LEASE_REQUIRED` without one, `LEASE_EXPIRED` once it lapsed. A
    /// metered feature whose quota
    /// for the period is used up is `CONSUMPTION_LIMIT` (`OVERAGE` while
    /// the next unit falls in the licensed overage).
    // Always inlined: a caller that reads `allowed()` alone then computes
    // neither the end nor the notice (29 instructions a check, against 56
    // and a call when the compiler declined to inline it).
    #[inline(always)]
    pub fn check(&self) -> Decision {
        let slot = &*self.slot;
        let word = slot.word.load(Ordering::Relaxed);
        let now = if slot.system_clock {
            crate::clock::coarse_unix()
        } else {
            self.engine.inner.clock.now_coarse()
        };
        match word::decode(word, now, slot.epoch) {
            Some(decision) => decision,
            None => self.recheck(now),
        }
    }

    /// The feature code.
    pub fn code(&self) -> &str {
        &self.slot.code
    }

    /// The clock has left the span of the word: decide from the snapshot,
    /// and write the word anew unless a publish is under way (which will).
    #[cold]
    #[inline(never)]
    fn recheck(&self, now: i64) -> Decision {
        let inner = &*self.engine.inner;
        match inner.gates.try_lock() {
            Some(_publishing) => {
                // Under the lock no publish can come between the load and
                // the store: the word is the latest snapshot's.
                let snapshot = inner.snapshot.load();
                let decision = decide(inner, &snapshot, &self.slot, now);
                self.slot.write(decision, now, snapshot.tamper_below);
                decision
            }
            None => decide(inner, &inner.snapshot.load(), &self.slot, now),
        }
    }
}

impl std::fmt::Debug for FeatureGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureGate")
            .field("code", &self.slot.code)
            .finish()
    }
}

impl Slot {
    fn write(&self, decision: Decision, now: i64, tamper_below: i64) {
        // A tampered clock's answer is kept out of the word: it is rare,
        // and the snapshot decides it.
        let word = if now < tamper_below {
            word::NONE
        } else {
            word::encode(decision, now, self.epoch)
        };
        self.word.store(word, Ordering::Relaxed);
    }
}

impl Engine {
    /// A handle for one feature, resolved once: the fastest check there
    /// is, and the one that answers for this program (see
    /// [`FeatureGate::check`]). It follows later changes.
    pub fn feature(&self, code: &str) -> FeatureGate {
        let index = self.index_of(code);
        let inner = &*self.inner;
        let mut gates = inner.gates.lock();
        let slot = gates
            .entry(index)
            .or_insert_with(|| {
                let slot = Arc::new(Slot {
                    word: AtomicU64::new(word::NONE),
                    epoch: inner.gate_epoch,
                    system_clock: matches!(inner.clock, ClockSource::System),
                    index,
                    code: Box::from(code),
                });
                let now = inner.clock.now().unix();
                let snapshot = inner.snapshot.load();
                slot.write(
                    decide(inner, &snapshot, &slot, now),
                    now,
                    snapshot.tamper_below,
                );
                slot
            })
            .clone();
        drop(gates);
        FeatureGate {
            slot,
            engine: self.clone(),
        }
    }

    /// Writes every gate's word anew from the current snapshot: what this
    /// program holds outside the state changed (a server's lease guard
    /// renewed, lost or dropped its seat).
    pub(crate) fn rewrite_gates(&self) {
        let inner = &*self.inner;
        let gates = inner.gates.lock();
        write_words(inner, &gates, &inner.snapshot.load());
    }

    /// Publishes `snapshot` unless a later one is out already (a mutation
    /// whose sync returned first, covering this one), and writes every
    /// gate's word from it before returning.
    pub(crate) fn publish(&self, snapshot: Arc<Snapshot>) {
        let inner = &*self.inner;
        let gates = inner.gates.lock();
        if inner.snapshot.load().seq >= snapshot.seq {
            return;
        }
        inner.snapshot.store(Arc::clone(&snapshot));
        write_words(inner, &gates, &snapshot);
    }
}

/// Writes the word of every gate in `gates` (held locked) from `snapshot`.
fn write_words(inner: &Inner, gates: &FxHashMap<u32, Arc<Slot>>, snapshot: &Snapshot) {
    if gates.is_empty() {
        return;
    }
    // The exact clock: it also moves the coarse one forward, so a check
    // made after this returns finds itself inside the words' spans.
    let now = inner.clock.now().unix();
    for slot in gates.values() {
        slot.write(
            decide(inner, snapshot, slot, now),
            now,
            snapshot.tamper_below,
        );
    }
}

/// A gate's decision at `now` from a snapshot.
fn decide(inner: &Inner, snapshot: &Snapshot, slot: &Slot, now: i64) -> Decision {
    let entry = snapshot.features.by_index(slot.index);
    let base = entry.decide(now, snapshot.tamper_below);
    if !(entry.leased || entry.metered) || !base.allowed() {
        return base;
    }
    let code = &*slot.code;
    let device = &inner.config.device;
    let tampered = now < snapshot.tamper_below;
    let mut reason = base.reason();
    let mut until = base.until().map(Timestamp::unix);
    // The decision holds until the first of the instants that can change it.
    let mut bound = |at: Option<i64>| {
        if let Some(at) = at {
            until = Some(until.map_or(at, |u| u.min(at)));
        }
    };
    if entry.leased {
        let views = snapshot.views(device);
        let key = floating::pool_key(&views, code);
        // A seat in this engine's state, or one held outside it (from a
        // license server through the client, or borrowed): the later end.
        let own = floating::held(snapshot.leases.values(), &inner.client_id, key, now);
        let held = floating::either(own, inner.outside.held(key, code, now));
        match held {
            Held::Live(end) | Held::Lapsed(end) => bound((end != i64::MAX).then_some(end)),
            Held::None => {}
        }
        reason = floating::gate_reason(&views, code, &device.ctx, now, tampered, held);
    }
    if entry.metered && reason.allows() {
        let found = consumption::candidates(
            snapshot.licenses.iter(),
            &snapshot.device_activations,
            &snapshot.counters,
            device,
            code,
            now,
            tampered,
        );
        if !tampered {
            // The licenses a unit can be charged to change whenever one
            // of them starts or ends, even where the feature's reason
            // does not (another license carries it on).
            bound(next_change(snapshot, device, code, now));
        }
        if !found.is_empty() {
            match metering::consume(&found, code, 1) {
                Ok((_, Reason::Ok, _)) => {}
                Ok((i, other, _)) => {
                    reason = other;
                    let (_, end) = metering::period(found[i].quota.reset, found[i].period_start);
                    bound((end != i64::MAX).then_some(end));
                }
                Err(denial) => {
                    reason = denial.reason;
                    bound(denial.retry_at);
                }
            }
        }
    }
    Decision::new(reason, until.map(Timestamp::from_unix)).ending(base.is_ending())
}

/// The first instant after `now` at which a license granting `code` on
/// this device changes what it grants.
fn next_change(snapshot: &Snapshot, device: &DeviceContext, code: &str, now: i64) -> Option<i64> {
    let mut points = Vec::new();
    for view in snapshot.views(device) {
        if view.license.feature(code).is_some() {
            validity::view_breakpoints(&view, &mut points);
        }
    }
    points.into_iter().filter(|&at| at > now).min()
}

/// The word: a reason and the span `[from, until)` over which it holds,
/// in 64 bits. Times count in seconds from the engine's epoch (some eight
/// years before it was built), in 29 bits each: about 17 years. A span
/// that does not fit is not written (the word is [`NONE`], and the check
/// decides from the snapshot).
///
/// ```text
/// | until: 29 | from: 29 | reason: 6 |
/// ```
///
/// The reason's last two values are `OK` with a notice: 63 is `OK` whose
/// right ends within the notice window ([`Warning::Ending`](crate::Warning::Ending)),
/// 62 an `OK` whose notice starts later: its span ends where the notice
/// starts (so the gate decides again then), and its `until` is that
/// instant plus the window.
pub(crate) mod word {
    use super::{Decision, Reason, Timestamp};
    use crate::decision::ENDING_NOTICE_SECS;

    const REASON_BITS: u32 = 6;
    const TIME_BITS: u32 = 29;
    const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
    /// `until` for a decision that holds until something other than time
    /// changes.
    const NEVER: u64 = TIME_MASK;
    /// An empty span: never valid.
    pub(crate) const NONE: u64 = 0;
    /// How far before the engine was built its epoch lies.
    pub(crate) const EPOCH_BEFORE: i64 = 1 << (TIME_BITS - 1);
    /// The reason bits of an `OK` that ends within the notice window.
    const ENDING_OK: u64 = (1 << REASON_BITS) - 1;
    /// The reason bits of an `OK` whose notice window opens at the end of
    /// the span.
    const NOTICE_AHEAD: u64 = ENDING_OK - 1;
    const _: () = assert!(Reason::ALL.len() < NOTICE_AHEAD as usize);

    /// Every reason, at its declaration index (`reason as usize`), padded
    /// to 64 so a masked index needs no bounds check.
    const REASONS: [Reason; 1 << REASON_BITS] = {
        let listed = Reason::ALL;
        let mut all = [Reason::NotLicensed; 1 << REASON_BITS];
        let mut i = 0;
        while i < listed.len() {
            all[i] = listed[i];
            i += 1;
        }
        all[ENDING_OK as usize] = Reason::Ok;
        all[NOTICE_AHEAD as usize] = Reason::Ok;
        all
    };

    /// The word for `decision`, holding from `now` on.
    pub(crate) fn encode(decision: Decision, now: i64, epoch: i64) -> u64 {
        let from = now.saturating_sub(epoch);
        if !(0..NEVER as i64).contains(&from) {
            return NONE;
        }
        let (reason, span_end) = match decision.until().map(Timestamp::unix) {
            _ if decision.is_ending() => (ENDING_OK, decision.until().map(Timestamp::unix)),
            Some(u)
                if decision.reason() == Reason::Ok
                    && u.saturating_sub(ENDING_NOTICE_SECS) > now =>
            {
                (NOTICE_AHEAD, Some(u - ENDING_NOTICE_SECS))
            }
            until => (decision.reason() as u64, until),
        };
        let until = match span_end {
            None => NEVER,
            Some(t) => match t.saturating_sub(epoch) {
                u if u > from && u < NEVER as i64 => u as u64,
                _ => return NONE,
            },
        };
        debug_assert!(REASONS[reason as usize] == decision.reason());
        reason | (from as u64) << REASON_BITS | until << (REASON_BITS + TIME_BITS)
    }

    /// The decision in `word`, if `now` is inside its span.
    #[inline(always)]
    pub(crate) fn decode(word: u64, now: i64, epoch: i64) -> Option<Decision> {
        let at = now.wrapping_sub(epoch) as u64;
        let from = (word >> REASON_BITS) & TIME_MASK;
        let until = word >> (REASON_BITS + TIME_BITS);
        // from <= at < until, in one comparison (until >= from always).
        if at.wrapping_sub(from) >= until.wrapping_sub(from) {
            return None;
        }
        let bits = word & ((1 << REASON_BITS) - 1);
        let ahead = if bits == NOTICE_AHEAD {
            ENDING_NOTICE_SECS
        } else {
            0
        };
        let until = (until != NEVER).then(|| Timestamp::from_unix(epoch + until as i64 + ahead));
        Some(Decision::from_parts(
            REASONS[bits as usize],
            bits == ENDING_OK,
            until,
        ))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_reason_sits_at_its_own_index() {
            for (i, reason) in REASONS.iter().enumerate() {
                if i == ENDING_OK as usize || i == NOTICE_AHEAD as usize {
                    assert_eq!(*reason, Reason::Ok);
                } else if *reason != Reason::NotLicensed || i == Reason::NotLicensed as usize {
                    assert_eq!(*reason as usize, i, "{reason:?}");
                }
            }
            assert_eq!(
                REASONS[Reason::LeaseRequired as usize],
                Reason::LeaseRequired
            );
        }

        #[test]
        fn a_word_holds_exactly_over_its_span() {
            let epoch = 1_000;
            let d = Decision::new(Reason::InGrace, Some(Timestamp::from_unix(2_000)));
            let w = encode(d, 1_500, epoch);
            assert_eq!(decode(w, 1_499, epoch), None);
            assert_eq!(decode(w, 1_500, epoch), Some(d));
            assert_eq!(decode(w, 1_999, epoch), Some(d));
            assert_eq!(decode(w, 2_000, epoch), None);
            assert_eq!(decode(w, i64::MIN, epoch), None);
            assert_eq!(decode(w, i64::MAX, epoch), None);
            let forever = Decision::new(Reason::Ok, None);
            let w = encode(forever, 1_500, epoch);
            assert_eq!(decode(w, 1_000_000, epoch), Some(forever));
            assert_eq!(decode(NONE, 1_500, epoch), None);
            // Out of range: not written.
            assert_eq!(encode(forever, 999, epoch), NONE);
            let far = Decision::new(Reason::Ok, Some(Timestamp::from_unix(epoch + (1 << 30))));
            assert_eq!(encode(far, 1_500, epoch), NONE);
            let past = Decision::new(Reason::Ok, Some(Timestamp::from_unix(1_500)));
            assert_eq!(encode(past, 1_500, epoch), NONE);
        }

        #[test]
        fn a_word_keeps_the_notice_that_a_right_ends() {
            let epoch = 1_000;
            let until = Some(Timestamp::from_unix(2_000));
            let ending = Decision::new(Reason::Ok, until).ending(true);
            let decoded = decode(encode(ending, 1_500, epoch), 1_500, epoch);
            assert_eq!(decoded, Some(ending));
            assert_eq!(
                decoded.and_then(|d| d.warning()),
                Some(crate::Warning::Ending)
            );
            let plain = Decision::new(Reason::Ok, until);
            assert_eq!(
                decode(encode(plain, 1_500, epoch), 1_500, epoch),
                Some(plain)
            );
        }

        #[test]
        fn a_word_ends_where_the_notice_starts_and_keeps_its_until() {
            let epoch = 1_000;
            let end = 2_000 + ENDING_NOTICE_SECS;
            let ok = Decision::new(Reason::Ok, Some(Timestamp::from_unix(end)));
            let w = encode(ok, 1_500, epoch);
            assert_eq!(decode(w, 1_999, epoch), Some(ok));
            // The notice starts: the gate decides again.
            assert_eq!(decode(w, 2_000, epoch), None);
            // Other reasons hold to their end.
            let grace = Decision::new(Reason::InGrace, Some(Timestamp::from_unix(end)));
            assert_eq!(
                decode(encode(grace, 1_500, epoch), 2_000, epoch),
                Some(grace)
            );
        }
    }
}
