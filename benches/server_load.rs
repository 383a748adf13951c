//! A load generator against the real `entitle serve` on 127.0.0.1 (the
//! bench starts both): `GET /v1/features/{code}` against the server's
//! smallest route (`GET /healthz`, a constant JSON object) in the same
//! run, and checkout + check-in pairs, each client on its own keep-alive
//! connection (`SERVER_BENCH_CLIENTS`, default 32). Bounded: each
//! scenario runs for `SERVER_BENCH_SECS` seconds (default 3), then the
//! server is stopped with SIGTERM.
//!
//! `cargo bench --features server --bench server_load`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Client threads, each on its own connection (`SERVER_BENCH_CLIENTS`).
fn clients() -> usize {
    std::env::var("SERVER_BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32)
        .clamp(1, 256)
}

fn entitle(dir: &Path, args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .args(["--state", "state"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("entitle runs");
    assert!(status.success(), "{args:?}");
}

fn start(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .args(["--state", "state", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("entitle serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .expect("listening line")
        .to_owned();
    (child, addr)
}

/// One keep-alive connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends a request and reads the answer: status and body.
    fn call(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `work` on `clients()` threads, each with its own connection, for
/// `secs`: operations per second and latency percentiles.
fn load(addr: &str, secs: u64, work: impl Fn(&mut Conn, usize) + Sync) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients())
            .map(|i| {
                let work = &work;
                scope.spawn(move || {
                    let mut conn = Conn::open(addr);
                    let mut mine = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        work(&mut conn, i);
                        mine.push(t.elapsed());
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Figures {
        per_sec: latencies.len() as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn row(name: &str, f: &Figures) {
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} |",
        f.per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench`-less args:
    // do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs: u64 = std::env::var("SERVER_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    entitle(path, &["keygen", "--out", "vendor"]);
    let spec = r#"{"product": "acme", "id": "lic_1",
        "floating": {"seats": 10000, "lease_secs": 600}, "features": [{"code": "cad"}]}"#;
    std::fs::write(path.join("spec.json"), spec).unwrap();
    entitle(
        path,
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "spec.json",
            "--out",
            "l.lic",
        ],
    );
    entitle(path, &["init", "--pub", "vendor.pub", "--product", "acme"]);
    entitle(path, &["license", "add", "l.lic"]);
    let (mut server, addr) = start(path);

    println!(
        "{} clients, each on its own keep-alive connection, {secs} s per scenario",
        clients()
    );
    println!("| scenario | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    let hello = load(&addr, secs, |c, _| {
        assert_eq!(c.call("GET", "/healthz", "").0, 200);
    });
    row("GET /healthz (baseline)", &hello);
    let check = load(&addr, secs, |c, _| {
        assert_eq!(c.call("GET", "/v1/features/cad", "").0, 200);
    });
    row("GET /v1/features/cad", &check);
    println!(
        "ratio of p50 latencies, check / baseline: {:.2}; of throughputs, baseline / check: {:.2}",
        check.p50.as_secs_f64() / hello.p50.as_secs_f64(),
        hello.per_sec / check.per_sec
    );
    let pairs = load(&addr, secs, |c, i| {
        let body = format!(r#"{{"client": "bench-{i}"}}"#);
        let (status, answer) = c.call("POST", "/v1/leases", &body);
        assert_eq!(status, 201, "{answer}");
        let id_start = answer.find(r#""id":""#).unwrap() + 6;
        let id_end = id_start + answer[id_start..].find('"').unwrap();
        let id = answer[id_start..id_end].to_owned();
        assert_eq!(c.call("DELETE", &format!("/v1/leases/{id}"), "").0, 200);
    });
    row("checkout + check-in pair (durable)", &pairs);

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
}
