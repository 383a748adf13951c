//! A load generator against the real `entitle serve` on 127.0.0.1 (the
//! bench starts both): `GET /v1/features/{code}` against the server's
//! smallest route (`GET /healthz`, a constant JSON object) in the same
//! run, and checkout + check-in pairs, each client on its own keep-alive
//! connection (`SERVER_BENCH_CLIENTS`, default 32). Then one address
//! against another: a client on 127.0.0.2, a new connection per request,
//! alone and while 127.0.0.1 holds its cap of connections (1,024 of them
//! opened, kept, and opened again when closed), on a second server with
//! the default limits. Bounded: each scenario runs for
//! `SERVER_BENCH_SECS` seconds (default 3), then the servers are stopped
//! with SIGTERM. Loopback only.
//!
//! `cargo bench --features server --bench server_load`

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
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

fn start(dir: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .args(["--state", "state", "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        // The request log writes a line per request: measured as a
        // server run under a service manager pays for it, to a sink.
        .stderr(Stdio::null())
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

impl Figures {
    fn of(mut latencies: Vec<Duration>, elapsed: f64) -> Figures {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
        Figures {
            per_sec: latencies.len() as f64 / elapsed,
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// Runs `work` on `clients()` threads, each with its own connection, for
/// `secs`: operations per second and latency percentiles.
fn load(addr: &str, secs: u64, work: impl Fn(&mut Conn, usize) + Sync) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
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
    Figures::of(latencies, started.elapsed().as_secs_f64())
}

/// A connection to `addr` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, addr: &str) -> std::io::Result<TcpStream> {
    let to: SocketAddr = addr.parse().expect("a socket address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// `GET /healthz` on a new connection from `from`, closed after.
fn fresh_request(from: Ipv4Addr, addr: &str) {
    let mut stream = connect_from(from, addr).expect("the client connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "the client was not served"
    );
}

/// One client on 127.0.0.2, a new connection per request, for `secs`.
fn other_address(addr: &str, secs: u64) -> Figures {
    let client = Ipv4Addr::new(127, 0, 0, 2);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        fresh_request(client, addr);
        latencies.push(t.elapsed());
    }
    Figures::of(latencies, started.elapsed().as_secs_f64())
}

/// The attack of docs/http.md#limits from 127.0.0.1: `ATTACK` connections, each
/// starting a request it never finishes (a header byte every 500 ms);
/// whichever the server closes is opened again, until `stop`. Returns
/// how many were open at the end.
fn hold_connections(addr: &str, stop: &AtomicBool) -> usize {
    const ATTACK: usize = 1024;
    let attacker = Ipv4Addr::new(127, 0, 0, 1);
    let mut slots: Vec<Option<TcpStream>> = (0..ATTACK).map(|_| None).collect();
    while !stop.load(Ordering::Relaxed) {
        for slot in &mut slots {
            let alive = match slot {
                Some(stream) => stream.write_all(b"a").is_ok(),
                None => false,
            };
            if !alive {
                *slot = connect_from(attacker, addr).ok().and_then(|mut stream| {
                    stream
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
                        .ok()?;
                    Some(stream)
                });
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Open: a read would block (the server closed the others).
    slots
        .iter()
        .flatten()
        .filter(|stream| {
            stream.set_nonblocking(true).is_ok()
                && matches!(
                    (&mut &**stream).read(&mut [0; 1]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock
                )
        })
        .count()
}

fn stop_server(mut server: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
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
    // The client threads all come from 127.0.0.1: up to 256 of them.
    let (server, addr) = start(path, &["--max-connections-per-address", "1024"]);

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
    stop_server(server);

    // One address against another, on a server with the default limits.
    let (server, addr) = start(path, &[]);
    let _warm_up = other_address(&addr, 1);
    let alone = other_address(&addr, secs);
    let stop = AtomicBool::new(false);
    let (attacked, held) = std::thread::scope(|scope| {
        let attack = scope.spawn(|| hold_connections(&addr, &stop));
        // Let the attacker open its connections first.
        std::thread::sleep(Duration::from_secs(2));
        let attacked = other_address(&addr, secs);
        stop.store(true, Ordering::Relaxed);
        (attacked, attack.join().unwrap())
    });
    stop_server(server);
    println!();
    println!(
        "a client on 127.0.0.2, a new connection per request; 127.0.0.1 opened 1024 \
         connections and held {held} (its cap: 64)"
    );
    println!("| scenario | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    row("127.0.0.2 alone", &alone);
    row("127.0.0.2 while 127.0.0.1 holds its cap", &attacked);
    println!(
        "ratio of p99 latencies, attacked / alone: {:.2}",
        attacked.p99.as_secs_f64() / alone.p99.as_secs_f64()
    );
}
