//! The listener: one thread per database per process, on a connection of
//! its own, `LISTEN`ing to the channel every commit notifies. A
//! notification of a namespace open here, at a generation later than
//! known, makes it read the generations from the table at once (one
//! query, however many came together), and raise them in memory, which is
//! all that [`Store::generation`](crate::store::Store::generation) reads:
//! the engines' refresher asks every engine once a second, and a thousand
//! engines cost a thousand atomic loads, not a thousand queries. The
//! table, never a payload, says what is known: anyone who can connect may
//! `NOTIFY` the channel, and a spoofed generation (one far ahead) would
//! otherwise have every engine on the namespace reload every second.
//!
//! It also polls the generations once a second, in one query for every
//! namespace open here: a process that commits and dies before it
//! announces its commit (see `announce.rs`) notifies nobody.
//!
//! When its connection fails, the listener says so (stores then know the
//! generations may be stale), polls the generations once a second with
//! one query while it tries to connect again, and once listening again
//! polls once more: what was committed while it was deaf was never
//! notified to it, and the poll makes every engine concerned reload.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::database::Database;

/// How long the listener waits for a notification before it looks
/// whether its database is still wanted; and the polling period while it
/// cannot listen.
const TICK: Duration = Duration::from_secs(1);

/// Starts the listener of `database`. It ends when the last store on the
/// database is dropped.
pub(super) fn start(database: Weak<Database>) {
    // Should the thread not start, engines still see other processes'
    // changes on every mutation (it locks the namespace and reads its
    // generation) and on reload.
    let _ = std::thread::Builder::new()
        .name("entitle-pg-listen".into())
        .spawn(move || run(database));
}

fn run(database: Weak<Database>) {
    let mut client: Option<Client> = None;
    loop {
        // Held for one tick at a time: dropping the last store drops the
        // database, and this thread ends at its next tick.
        let Some(db) = database.upgrade() else {
            return;
        };
        match client.as_mut() {
            None => match db.connect_listener() {
                Ok(mut fresh) => {
                    *db.unreachable.lock() = None;
                    // Listening from here on; what came before is read.
                    let caught_up = db.poll(Some(&mut fresh)).is_ok();
                    db.listening.store(caught_up, Ordering::Release);
                    if caught_up {
                        client = Some(fresh);
                    } else {
                        drop(db);
                        std::thread::sleep(TICK);
                    }
                }
                Err(e) => {
                    db.listening.store(false, Ordering::Release);
                    *db.unreachable.lock() = Some(super::database::explain(&e));
                    let _ = db.poll(None);
                    drop(db);
                    std::thread::sleep(TICK);
                }
            },
            Some(listening) => {
                if !hear(&db, listening) || db.poll(Some(listening)).is_err() {
                    db.listening.store(false, Ordering::Release);
                    client = None;
                    let _ = db.poll(None);
                }
            }
        }
    }
}

/// Hears notifications for a tick, or until one is worth reading the
/// table for (then those already arrived are taken too, and the caller
/// polls); false once the connection has failed.
fn hear(db: &Database, client: &mut Client) -> bool {
    let until = Instant::now() + TICK;
    {
        let mut notifications = client.notifications();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let next = notifications.timeout_iter(left).next();
            match next {
                Ok(Some(notification)) => {
                    if db.notified(notification.payload()) {
                        // One poll covers every notification pending.
                        let mut pending = notifications.iter();
                        loop {
                            match pending.next() {
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(_) => return false,
                            }
                        }
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => return false,
            }
        }
    }
    !client.is_closed()
}
