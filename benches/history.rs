//! The site server's history (docs/http.md#history), measured.
//!
//! `query/*`: a series over 90 days of a pool that had an event every
//! second (7.8 million events, kept as 129,600 minute buckets, written
//! straight through the store's history API so that the setup is quick),
//! by day and by hour, on the file store. Target: at most 200 ms.
//!
//! `record/*`: checkout and check-in pairs through the engine on the file
//! store, with the server's recorder on (events buffered, a thread
//! flushing them once a second as the server's task does) and off, in one
//! run; then the same pairs timed in alternating rounds, printed as a
//! ratio. Target: history on at most 10% slower. And `record/two_events_recorded`:
//! the recorder's own part of a pair, alone.
//!
//! ```text
//! cargo bench --features server --bench history -- --warm-up-time 1 --measurement-time 4
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use entitle::server::history::Recorder;
use entitle::store::{EventKind, FileStore, MinuteBucket, Step, Store};
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

const DAYS: i64 = 90;

/// 90 days of minute buckets ending at `end`: seats in use wander
/// between 0 and 50, a few denials when the pool is full.
fn fill(store: &FileStore, end: i64) {
    let history = store.history().expect("the file store keeps history");
    let first = end - DAYS * 86_400;
    let first = first - first.rem_euclid(60);
    let mut day = Vec::with_capacity(1440);
    for n in 0..(DAYS * 1440) {
        let minute = first + n * 60;
        let level = ((n * 7919) % 51) as u32;
        day.push(
            MinuteBucket::new(None, minute + 59)
                .in_use(level)
                .denials(if level == 50 { 3 } else { 0 }),
        );
        if day.len() == 1440 {
            history.merge_buckets(&day).unwrap();
            day.clear();
        }
    }
    history.merge_buckets(&day).unwrap();
}

fn query(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::create(dir.path()).unwrap();
    let end = 1_800_000_000;
    let started = Instant::now();
    fill(&store, end);
    eprintln!(
        "query: {} minute buckets written in {:.1} s",
        DAYS * 1440,
        started.elapsed().as_secs_f64()
    );
    let history = store.history().unwrap();
    let from = end - DAYS * 86_400;
    let mut group = c.benchmark_group("query");
    group.sample_size(10);
    for (name, step, points) in [("day", Step::Day, 91), ("hour", Step::Hour, 2161)] {
        let series = history.series(None, from, end, step).unwrap();
        assert!(series.len() >= points - 1 && series.len() <= points);
        assert!(series.iter().any(|p| p.denials > 0));
        group.bench_function(format!("90_days_by_{name}"), |b| {
            b.iter(|| history.series(None, from, end, step).unwrap())
        });
    }
    group.finish();
}

/// An engine on a new file store in `dir` with a license of 100 floating
/// seats.
fn floating_engine(dir: &std::path::Path) -> Engine {
    let vendor = SigningKey::from_seed(&[7; 32]);
    let engine = Engine::builder("bench")
        .trust(vendor.public_key().clone())
        .clock(SystemClock)
        .store(FileStore::create(dir).unwrap())
        .background_refresh(false)
        .build()
        .unwrap();
    let license = json!({"v": 1, "id": "lic", "product": "bench",
        "issued_at": "2026-01-01T00:00:00Z",
        "floating": {"seats": 100, "lease_secs": 600}});
    engine
        .add_license(&sign(&license, &vendor, TokenType::License).unwrap())
        .unwrap();
    engine
}

/// One checkout and its check-in, each recorded as the server records
/// them.
fn pair(engine: &Engine, recorder: &Recorder) {
    let lease = engine.checkout("desk-1", None).unwrap();
    recorder.record_lease(EventKind::Checkout, &lease, 0);
    engine.checkin(&lease.id).unwrap();
    recorder.record_lease(EventKind::Checkin, &lease, 0);
}

fn record(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine = floating_engine(dir.path());
    let on = Arc::new(Recorder::new(engine.clone(), 90));
    let off = Recorder::new(engine.clone(), 0);
    assert!(on.is_on() && !off.is_on());
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (on, stop) = (Arc::clone(&on), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                on.flush().unwrap();
            }
        })
    };
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("checkout_checkin_history_off", |b| {
        b.iter(|| pair(&engine, &off))
    });
    group.bench_function("checkout_checkin_history_on", |b| {
        b.iter(|| pair(&engine, &on))
    });
    // The recorder's own part of a pair: two events buffered (with the
    // pool's count read from the engine), timed without the engine's
    // durable writes; the buffer is written out between chunks, untimed.
    let lease = engine.checkout("desk-2", None).unwrap();
    let alone = Recorder::new(engine.clone(), 90);
    group.bench_function("two_events_recorded", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(10_000);
                let started = Instant::now();
                for _ in 0..chunk {
                    alone.record_lease(EventKind::Checkout, &lease, 0);
                    alone.record_lease(EventKind::Checkin, &lease, 0);
                }
                took += started.elapsed();
                alone.flush().unwrap();
                left -= chunk;
            }
            took
        })
    });
    group.finish();
    assert_eq!(alone.dropped(), 0);

    // The same, in alternating rounds, so that both see the same disk.
    let round = |recorder: &Recorder| {
        let started = Instant::now();
        for _ in 0..300 {
            pair(&engine, recorder);
        }
        started.elapsed()
    };
    let (mut took_off, mut took_on) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..6 {
        took_off += round(&off);
        took_on += round(&on);
    }
    let pairs = 6.0 * 300.0;
    eprintln!(
        "record: history off {:.0} pairs/s, on {:.0} pairs/s, on/off time ratio {:.3}",
        pairs / took_off.as_secs_f64(),
        pairs / took_on.as_secs_f64(),
        took_on.as_secs_f64() / took_off.as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    flusher.join().unwrap();
    assert_eq!(on.dropped(), 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).sample_size(20);
    targets = query, record
}
criterion_main!(benches);
