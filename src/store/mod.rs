//! Durable state: the [`Store`] trait, an in-memory store for tests and
//! short-lived engines, and the crash-safe [`FileStore`].
//!
//! A store persists [`Change`]s in transactions. It knows nothing of
//! policy: the engine decides, the store remembers.

mod file;
mod group;
mod memory;

pub use crate::engine::state::{ActivationKind, ActivationRecord, Change, LeaseRecord};
pub use crate::policy::consumption::Counter;
pub use file::FileStore;
pub use memory::MemoryStore;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicUsize;

use crate::error::Result;

/// The version of the stored layout this crate writes. A state written by
/// an older version opens; one written by a newer version is refused.
pub const FORMAT_VERSION: u32 = 2;

/// A stored license, as rows hold it: the token is verified again on load,
/// so a hand-edited state is never trusted to grant more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseRow {
    /// License id.
    pub id: String,
    /// The compact token.
    pub token: String,
    /// When it was added (Unix seconds).
    pub added_at: i64,
    /// Revoked by a revocation list.
    pub revoked: bool,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// User id.
    pub id: String,
    /// User type.
    pub user_type: String,
    /// First added (Unix seconds).
    pub added_at: i64,
    /// Latest activity (Unix seconds).
    pub last_active_at: i64,
}

/// A signed fact kept as its token: a revocation list or a key rotation.
/// Verified and applied again every time the state is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRow {
    /// The token's `typ`: `revocations` or `keys`.
    pub typ: String,
    /// The compact token.
    pub token: String,
    /// When it was first stored (Unix seconds).
    pub added_at: i64,
}

/// Everything a store holds, as rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Settings and counters: `product`, `keys`, `latest_seen`, ...
    pub meta: BTreeMap<String, String>,
    /// Installed licenses.
    pub licenses: Vec<LicenseRow>,
    /// Highest serial seen per id.
    pub serials: Vec<(String, u64)>,
    /// Ids that can never be added again.
    pub tombstones: Vec<(String, i64)>,
    /// Users.
    pub users: Vec<UserRow>,
    /// Device activations: (license id, fingerprint, record).
    pub activations: Vec<(String, String, ActivationRecord)>,
    /// Transfers made per license id.
    pub transfers: Vec<(String, u32)>,
    /// Floating leases by id.
    pub leases: Vec<(String, LeaseRecord)>,
    /// Consumption counters: (license id, feature code, counter).
    pub counters: Vec<(String, String, Counter)>,
    /// Revocation lists and key rotations, as signed.
    pub signed: Vec<SignedRow>,
}

/// Where the engine's state lives.
///
/// Every mutation runs in one [`Transaction`]: writers exclude each other
/// (across processes, for stores that can be shared), a mutation sees the
/// latest durable state, and a transaction that is dropped without
/// [`commit`](Transaction::commit) leaves no trace.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A counter that changes whenever any writer commits. Cheap: the
    /// engine polls it to notice other processes' changes.
    fn generation(&self) -> Result<u64>;

    /// Reads the whole state and the generation it was read at.
    fn load(&self) -> Result<(u64, Persisted)>;

    /// Starts a write transaction, waiting (bounded) for other writers.
    fn begin(&self) -> Result<Box<dyn Transaction + '_>>;

    /// Makes every transaction committed up to `generation` durable, or
    /// fails if its write did not reach the disk. A store whose commits are
    /// durable by themselves does nothing. Called after the writer lock is
    /// released, so that concurrent writers can share one write and one
    /// fsync (group commit).
    fn sync(&self, generation: u64) -> Result<()> {
        let _ = generation;
        Ok(())
    }

    /// [`sync`](Store::sync), told how many other mutations of this
    /// store's writer are `under_way` (started, not yet committed): a store
    /// that groups commits may wait a moment for them, so that one write
    /// and one fsync cover them too. The engine calls this one.
    fn sync_with(&self, generation: u64, under_way: &AtomicUsize) -> Result<()> {
        let _ = under_way;
        self.sync(generation)
    }

    /// A mutation counted as under way (see [`sync_with`](Store::sync_with))
    /// ended without committing: callers waiting for it to join their group
    /// need not wait any longer.
    fn abandoned(&self) {}

    /// Where the state lives, for messages.
    fn location(&self) -> String {
        "memory".to_owned()
    }
}

/// One write transaction.
pub trait Transaction {
    /// The generation the transaction started from.
    fn generation(&self) -> u64;

    /// Reads the whole state as of this transaction.
    fn load(&mut self) -> Result<Persisted>;

    /// Records changes (not durable until commit).
    fn write(&mut self, changes: &[Change]) -> Result<()>;

    /// Ends the transaction, all of its changes at once, returning the new
    /// generation. They are durable once [`Store::sync`] returns for that
    /// generation; a store may write them with other transactions' only
    /// then, and fail them all there if that write fails.
    fn commit(self: Box<Self>) -> Result<u64>;
}

impl fmt::Debug for dyn Transaction + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("generation", &self.generation())
            .finish()
    }
}
