//! A store that keeps nothing: the engine's memory is the state.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::error::Result;
use crate::store::{Change, Persisted, Store, Transaction};

/// A store for tests, simulations and engines that need no durability.
/// Everything is lost when the engine is dropped. One engine (and its
/// clones) per store.
///
/// ```
/// use entitle::store::{MemoryStore, Store};
/// let store = MemoryStore::new();
/// assert_eq!(store.generation().unwrap(), 0);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    generation: AtomicU64,
    writer: Mutex<()>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn generation(&self) -> Result<u64> {
        Ok(self.generation.load(Ordering::Acquire))
    }

    fn load(&self) -> Result<(u64, Persisted)> {
        Ok((self.generation()?, Persisted::default()))
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        let guard = self.writer.lock();
        Ok(Box::new(MemoryTransaction {
            store: self,
            start: self.generation.load(Ordering::Acquire),
            _guard: guard,
        }))
    }
}

struct MemoryTransaction<'a> {
    store: &'a MemoryStore,
    start: u64,
    _guard: MutexGuard<'a, ()>,
}

impl Transaction for MemoryTransaction<'_> {
    fn generation(&self) -> u64 {
        self.start
    }

    fn load(&mut self) -> Result<Persisted> {
        Ok(Persisted::default())
    }

    fn write(&mut self, _changes: &[Change]) -> Result<()> {
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<u64> {
        let next = self.start + 1;
        self.store.generation.store(next, Ordering::Release);
        Ok(next)
    }
}
