//! Durable state: nothing acknowledged is lost, several processes share one
//! state directory without exceeding a limit.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use entitle::store::{FileStore, IssueMark};
use entitle::{Engine, Reason, SystemClock};
use serde_json::json;

fn open(vendor: &Vendor, dir: &Path, clock: &entitle::ManualClock) -> Engine {
    vendor
        .builder(clock)
        .store(FileStore::create(dir).unwrap())
        .build()
        .unwrap()
}

/// A store that holds every sync until the test lets it through: the
/// moment between a mutation's commit and its fsync, stretched.
#[derive(Debug, Clone, Default)]
struct HeldSync(std::sync::Arc<Gate>);

#[derive(Debug, Default)]
struct Gate {
    inner: entitle::store::MemoryStore,
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl HeldSync {
    fn open(&self, open: bool) {
        *self.0.open.lock().unwrap() = open;
        self.0.opened.notify_all();
    }
}

struct Release(HeldSync);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.open(true);
    }
}

impl entitle::store::Store for HeldSync {
    fn generation(&self) -> entitle::Result<u64> {
        self.0.inner.generation()
    }
    fn load(&self) -> entitle::Result<(u64, entitle::store::Persisted)> {
        self.0.inner.load()
    }
    fn begin(&self) -> entitle::Result<Box<dyn entitle::store::Transaction + '_>> {
        self.0.inner.begin()
    }
    fn sync(&self, _generation: u64) -> entitle::Result<()> {
        let mut open = self.0.open.lock().unwrap();
        while !*open {
            open = self.0.opened.wait(open).unwrap();
        }
        Ok(())
    }
}

/// docs/semantics.md#architecture: a snapshot is published after its mutation is
/// durable. While a license's commit waits for its fsync, readers do not
/// see the right it gives (a crash then would take it back); once the
/// store says it is durable, they do, before `add_license` returns.
#[test]
fn a_right_is_seen_only_once_its_mutation_is_durable() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let store = HeldSync::default();
    store.open(true);
    let engine = vendor.builder(&clock).store(store.clone()).build().unwrap();
    store.open(false);
    let license = vendor.license(json!({"id": "lic", "features": [{"code": "export"}]}));
    std::thread::scope(|s| {
        // Should an assertion fail, the held add is let go all the same.
        let _release = Release(store.clone());
        let adding = s.spawn(|| engine.add_license(&license));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!adding.is_finished(), "the add waits for its sync");
        assert_eq!(engine.check_feature("export").reason(), Reason::NotLicensed);
        assert!(engine.license_infos().is_empty());
        store.open(true);
        adding.join().unwrap().unwrap();
        assert!(engine.check_feature("export").allowed());
    });
}

#[test]
fn a_corrupt_state_file_is_reported_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.sqlite"), vec![0x5a; 8192]).unwrap();
    let err = FileStore::open(dir.path()).unwrap_err();
    assert_eq!(err.code(), "STATE_CORRUPT", "{err}");
    let missing = tempfile::tempdir().unwrap();
    assert_eq!(
        FileStore::open(missing.path()).unwrap_err().code(),
        "STATE_MISSING"
    );
}

#[test]
fn a_hand_edited_license_is_not_trusted() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(T0);
    drop(open(&vendor, dir.path(), &clock));
    let forged = {
        let token = vendor.license(json!({"id": "lic", "features": [{"code": "export"}]}));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = json!({"v": 1, "id": "lic", "product": "acme", "issued_at": T0,
            "features": [{"code": "export"}, {"code": "everything"}]});
        parts[1] = b64.encode(payload.to_string());
        parts.join(".")
    };
    assert!(rusqlite_free_insert(dir.path(), &forged));
    let err = vendor
        .builder(&clock)
        .store(FileStore::create(dir.path()).unwrap())
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "STATE_CORRUPT");
}

/// Writes a license row by hand, as someone editing the state would.
fn rusqlite_free_insert(dir: &Path, token: &str) -> bool {
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute(\"INSERT INTO licenses (id, token, added_at, revoked) VALUES ('lic', ?, 0, 0)\", (sys.argv[2],)); \
             c.commit()",
        )
        .arg(dir.join("state.sqlite"))
        .arg(token)
        .status()
        .expect("python3 is needed for this test (it edits the state by hand)");
    status.success()
}

const WORKER_ENV: &str = "ENTITLE_TEST_WORKER_DIR";

/// Not a test on its own: the body of each worker process of
/// `two_processes_never_exceed_ten_seats`.
#[test]
fn seat_worker() {
    let Ok(dir) = std::env::var(WORKER_ENV) else {
        return;
    };
    let prefix = std::env::var("ENTITLE_TEST_WORKER_PREFIX").unwrap();
    let vendor = Vendor::new();
    let engine = Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .clock(SystemClock)
        .store(FileStore::open(&dir).unwrap())
        .background_refresh(false)
        .build()
        .unwrap();
    let mut admitted = 0;
    for i in 0..10 {
        match engine.add_user(&format!("{prefix}-{i}"), "member") {
            Ok(_) => admitted += 1,
            Err(e) => assert_eq!(e.code(), "SEAT_LIMIT", "{e}"),
        }
    }
    println!("ADMITTED {admitted}");
}

#[test]
fn two_processes_never_exceed_ten_seats() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::builder("acme")
            .trust(vendor.key.public_key().clone())
            .store(FileStore::create(dir.path()).unwrap())
            .background_refresh(false)
            .build()
            .unwrap();
        engine
            .add_license(&vendor.license(json!({"id": "lic", "seats": {"max": 10}})))
            .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["x", "y"]
        .iter()
        .map(|prefix| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "seat_worker",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(WORKER_ENV, dir.path())
                .env("ENTITLE_TEST_WORKER_PREFIX", prefix)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut admitted = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let n: u32 = text
            .lines()
            .find_map(|l| l.split_once("ADMITTED ").map(|(_, n)| n))
            .expect("worker printed its count")
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        admitted += n;
    }
    let engine = Engine::builder("acme")
        .trust(vendor.key.public_key().clone())
        .store(FileStore::open(dir.path()).unwrap())
        .background_refresh(false)
        .build()
        .unwrap();
    let status = engine.status();
    // Twenty attempts at once for ten seats: exactly ten admitted, each
    // a real user, none lost and none double counted.
    assert_eq!(admitted, 10);
    assert_eq!(status.active_user_count, 10);
    assert_eq!(status.total_users, 10);
}

/// Mutations that commit while another's batch is open share its SQLite
/// transaction; one that is abandoned must take only its own changes with
/// it. (Were the batch one plain transaction, dropping the second would
/// roll the first back too, after it had been handed a generation.)
#[test]
fn an_abandoned_mutation_takes_nothing_of_its_batch() {
    use entitle::store::{Change, IssueMark, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::create(dir.path()).unwrap();
    let mut first = store.begin().unwrap();
    first
        .write(&[Change::Serial("first".into(), IssueMark::new(1, 0))])
        .unwrap();
    let generation = first.commit().unwrap();
    let mut second = store.begin().unwrap();
    assert_eq!(
        second.generation(),
        generation,
        "the second joins the batch"
    );
    second
        .write(&[Change::Serial("second".into(), IssueMark::new(2, 0))])
        .unwrap();
    drop(second);
    // Loading with the batch still open reads it, not an error.
    let (seen, rows) = store.load().unwrap();
    assert_eq!(seen, generation);
    assert_eq!(rows.serials, [("first".to_owned(), IssueMark::new(1, 0))]);
    store.sync(generation).unwrap();
    drop(store);

    let store = FileStore::open(dir.path()).unwrap();
    let (reopened, rows) = store.load().unwrap();
    assert_eq!(reopened, generation);
    assert_eq!(
        rows.serials,
        [("first".to_owned(), IssueMark::new(1, 0))],
        "the second is gone"
    );
}

/// A mutation whose write fails undoes all of its own changes and none of
/// the batch it joined: several changes are undone together (a
/// savepoint), a single one by SQLite itself, and the batch still commits.
#[test]
fn a_failed_write_undoes_only_its_own_mutation() {
    use entitle::store::{Change, Store};
    let dir = tempfile::tempdir().unwrap();
    let path = FileStore::create(dir.path()).unwrap().path().to_owned();
    // A trigger of our own refuses one key, so that a write fails midway.
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON serials WHEN NEW.id = 'refused'
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    drop(conn);
    let store = FileStore::open(dir.path()).unwrap();
    let meta = |k: &str, _: &str| Change::Serial(k.into(), IssueMark::new(1, 0));
    let mut first = store.begin().unwrap();
    first.write(&[meta("first", "kept")]).unwrap();
    first.commit().unwrap();
    let mut several = store.begin().unwrap();
    several
        .write(&[meta("half", "undone"), meta("refused", "x")])
        .unwrap();
    assert!(several.commit().is_err());
    let mut single = store.begin().unwrap();
    single.write(&[meta("refused", "y")]).unwrap();
    assert!(single.commit().is_err());
    let mut last = store.begin().unwrap();
    last.write(&[meta("last", "kept")]).unwrap();
    let generation = last.commit().unwrap();
    store.sync(generation).unwrap();
    drop(store);

    let (_, rows) = FileStore::open(dir.path()).unwrap().load().unwrap();
    let mut ids: Vec<&str> = rows.serials.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["first", "last"], "`half` undone with its mutation");
}

/// Eight threads consuming at once share batches and fsyncs; every
/// acknowledged unit is on disk when the state is opened again, and no
/// generation is handed out twice.
#[test]
fn concurrent_consumes_all_survive_a_reopen() {
    let vendor = Vendor::new();
    let dir = tempfile::tempdir().unwrap();
    let license = vendor.license(json!({"id": "lic",
        "features": [{"code": "api", "consumption": {"reset": "monthly"}}]}));
    let (threads, each) = (8, 40);
    let clock = clock_at(T0);
    {
        let engine = vendor
            .builder(&clock)
            .store(FileStore::create(dir.path()).unwrap())
            .build()
            .unwrap();
        engine.add_license(&license).unwrap();
        let used: Vec<u64> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        (0..each)
                            .map(|_| engine.consume("api", 1).unwrap().used)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        // Each consume saw a distinct count: none was lost or doubled.
        let mut sorted = used.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), threads * each);
    }
    let engine = vendor
        .builder(&clock)
        .store(FileStore::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let next = engine.consume("api", 1).unwrap();
    assert_eq!(next.used, (threads * each + 1) as u64);
}

/// A commit whose caller never reached `sync` (a panic in between) is not
/// left to be rolled back when the store closes: it is what a commit
/// without batches would have written.
#[test]
fn a_commit_left_unsynced_is_written_when_the_store_closes() {
    use entitle::store::{Change, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::create(dir.path()).unwrap();
    let mut txn = store.begin().unwrap();
    txn.write(&[Change::Serial("left".into(), IssueMark::new(7, 0))])
        .unwrap();
    let generation = txn.commit().unwrap();
    drop(store);
    let (reopened, rows) = FileStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(reopened, generation);
    assert_eq!(rows.serials, [("left".to_owned(), IssueMark::new(7, 0))]);
}
