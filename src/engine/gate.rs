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

use crate::clock::Timestamp;
use crate::decision::{Decision, Reason};
use crate::engine::consumption;
use crate::engine::snapshot::Snapshot;
use crate::engine::{ClockSource, Engine, Inner};
use crate::policy::consumption as metering;
use crate::policy::floating::{self, Held};

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
    #[inline]
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
        let snapshot = inner.snapshot.load();
        let now = inner.clock.now().unix();
        for slot in gates.values() {
            slot.write(
                decide(inner, &snapshot, slot, now),
                now,
                snapshot.tamper_below,
            );
        }
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
        if gates.is_empty() {
            return;
        }
        // The exact clock: it also moves the coarse one forward, so a check
        // made after this returns finds itself inside the words' spans.
        let now = inner.clock.now().unix();
        for slot in gates.values() {
            slot.write(
                decide(inner, &snapshot, slot, now),
                now,
                snapshot.tamper_below,
            );
        }
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
    Decision::new(reason, until.map(Timestamp::from_unix))
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
pub(crate) mod word {
    use super::{Decision, Reason, Timestamp};

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
        all
    };

    /// The word for `decision`, holding from `now` on.
    pub(crate) fn encode(decision: Decision, now: i64, epoch: i64) -> u64 {
        let from = now.saturating_sub(epoch);
        if !(0..NEVER as i64).contains(&from) {
            return NONE;
        }
        let until = match decision.until() {
            None => NEVER,
            Some(t) => match t.unix().saturating_sub(epoch) {
                u if u > from && u < NEVER as i64 => u as u64,
                _ => return NONE,
            },
        };
        let reason = decision.reason() as u64;
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
        let reason = REASONS[(word & ((1 << REASON_BITS) - 1)) as usize];
        let until = (until != NEVER).then(|| Timestamp::from_unix(epoch + until as i64));
        Some(Decision::new(reason, until))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_reason_sits_at_its_own_index() {
            for (i, reason) in REASONS.iter().enumerate() {
                if *reason != Reason::NotLicensed || i == Reason::NotLicensed as usize {
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
    }
}
