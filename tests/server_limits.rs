//! One address cannot starve the server (docs/http.md#limits): the real
//! `entitle serve` on 127.0.0.1, attacked from loopback addresses of
//! their own (127.0.0.1, 127.0.0.2, ...: every 127.0.0.0/8 address is
//! this machine). Connections capped per client address, idle
//! connections and slow heads cut off within 10 s, heads capped at
//! 16 KiB, and the server's memory bounded under many large, slow heads.
#![cfg(feature = "server")]

mod server_common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server_common::{install, Server};
use socket2::{Domain, Socket, Type};

fn spec() -> Value {
    json!({
        "product": "acme",
        "id": "lic_1",
        "floating": {"seats": 1, "lease_secs": 60, "borrow_max_secs": 3600},
        "features": [{"code": "cad"}],
    })
}

/// A connection to `server` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, server: &Server) -> TcpStream {
    let to: SocketAddr = server.addr.parse().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("binding to {from}: {e}"));
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Sends a keep-alive `GET /healthz` and reads the whole answer: its
/// status, or `None` when the server closed the connection instead.
fn healthz(stream: &mut TcpStream) -> Option<u16> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        if header == "\r\n" {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}

#[test]
fn one_address_over_its_cap_is_closed_and_another_address_is_still_served() {
    let dir = install(spec());
    // As many connections in all as the attacker opens: without a cap
    // per address, the attacker would hold every one of them.
    let server = Server::start(dir.path(), &["--max-connections", "100"]);
    let attacker = Ipv4Addr::new(127, 0, 0, 1);
    let mut held: Vec<TcpStream> = (0..100).map(|_| connect_from(attacker, &server)).collect();
    let mut served = Vec::new();
    let mut closed = 0;
    for mut stream in held.drain(..) {
        match healthz(&mut stream) {
            Some(200) => served.push(stream),
            Some(other) => panic!("answered {other}"),
            None => closed += 1,
        }
    }
    // The default cap per address is 64: the rest were closed unread.
    assert_eq!((served.len(), closed), (64, 36));

    // While 127.0.0.1 holds its cap, 127.0.0.2 is served at once.
    let started = Instant::now();
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), &server);
    assert_eq!(healthz(&mut other), Some(200));
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(1), "served after {waited:?}");

    // A further connection from 127.0.0.1 is closed; once one of its
    // connections closes, it may open another.
    let mut more = connect_from(attacker, &server);
    assert_eq!(healthz(&mut more), None);
    drop(served.pop());
    let started = Instant::now();
    loop {
        let mut again = connect_from(attacker, &server);
        if healthz(&mut again) == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the freed slot never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The held connections were served all along.
    for stream in served.iter_mut().take(3) {
        assert_eq!(healthz(stream), Some(200));
    }
}

#[test]
fn a_request_head_over_16_kib_is_refused_and_normal_ones_are_served() {
    let dir = install(spec());
    let server = Server::start(dir.path(), &[]);
    let ask = |padding: usize| -> Result<Vec<u8>, std::io::Error> {
        let mut stream = TcpStream::connect(&server.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let head = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(padding)
        );
        // The server may refuse and close before reading it all.
        let _ = stream.write_all(head.as_bytes());
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(raw)
    };
    // 20 KiB of headers: 431, or the connection closed; never served.
    match ask(20 * 1024) {
        Ok(raw) => {
            let text = String::from_utf8_lossy(&raw);
            assert!(raw.is_empty() || text.starts_with("HTTP/1.1 431"), "{text}");
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{e}"
        ),
    }
    // 12 KiB is within the cap, and a plain request is served as ever.
    let within = ask(12 * 1024).unwrap();
    assert!(within.starts_with(b"HTTP/1.1 200"));
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn idle_connections_and_slow_heads_are_closed_within_ten_seconds() {
    let dir = install(spec());
    let server = Server::start(dir.path(), &[]);
    let closed_after = |stream: &mut TcpStream, started: Instant| -> Duration {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        started.elapsed()
    };
    let silent = std::thread::scope(|scope| {
        // Connects and never sends a byte.
        let silent = scope.spawn(|| {
            let started = Instant::now();
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            closed_after(&mut stream, started)
        });
        // One request, then idle on the kept-alive connection.
        let idle = scope.spawn(|| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            assert_eq!(healthz(&mut stream), Some(200));
            let started = Instant::now();
            closed_after(&mut stream, started)
        });
        // A head that never ends: a header byte a second.
        let slow = scope.spawn(|| {
            let stream = TcpStream::connect(&server.addr).unwrap();
            let mut writer = stream.try_clone().unwrap();
            let started = Instant::now();
            let trickle = std::thread::spawn(move || {
                let _ = writer.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ");
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_secs(1));
                    if writer.write_all(b"a").is_err() {
                        return;
                    }
                }
            });
            let mut reader = stream;
            let waited = closed_after(&mut reader, started);
            let _ = trickle.join();
            waited
        });
        [
            ("silent", silent.join().unwrap()),
            ("idle", idle.join().unwrap()),
            ("slow head", slow.join().unwrap()),
        ]
    });
    for (what, waited) in silent {
        assert!(
            waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
            "{what}: closed after {waited:?}"
        );
    }
    assert_eq!(server.get("/healthz").status, 200);
}

/// A line of `/proc/PID/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn many_slow_oversized_heads_keep_the_servers_memory_bounded() {
    // 8 addresses of 50 connections each (within the cap per address),
    // each sending 200 KiB of a head that never ends, in 8 KiB pieces
    // 40 ms apart.
    const ADDRESSES: u8 = 8;
    const PER_ADDRESS: usize = 50;
    const PIECE: usize = 8 * 1024;
    const PIECES: usize = 25;
    let dir = install(spec());
    let server = Server::start(dir.path(), &[]);
    let pid = server.child.id();
    assert_eq!(server.get("/healthz").status, 200);
    let before = proc_kib(pid, "VmRSS");

    let barrier = std::sync::Barrier::new(usize::from(ADDRESSES) + 1);
    let cut_off = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..ADDRESSES)
            .map(|a| {
                let (server, barrier) = (&server, &barrier);
                scope.spawn(move || {
                    let from = Ipv4Addr::new(127, 0, 1, 10 + a);
                    let mut streams: Vec<Option<TcpStream>> = (0..PER_ADDRESS)
                        .map(|_| {
                            let mut s = connect_from(from, server);
                            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ")
                                .unwrap();
                            Some(s)
                        })
                        .collect();
                    let piece = vec![b'a'; PIECE];
                    for _ in 0..PIECES {
                        for slot in &mut streams {
                            if let Some(stream) = slot {
                                if stream.write_all(&piece).is_err() {
                                    *slot = None;
                                }
                            }
                        }
                        std::thread::sleep(Duration::from_millis(40));
                    }
                    // Hold what is still open while memory is read.
                    barrier.wait();
                    barrier.wait();
                    streams.iter().filter(|s| s.is_none()).count()
                })
            })
            .collect();
        barrier.wait();
        let peak = proc_kib(pid, "VmHWM");
        barrier.wait();
        let cut_off: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
        (peak, cut_off)
    });
    let (peak, cut_off) = cut_off;
    let grown_mib = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "RSS before {before} KiB, peak {peak} KiB (+{grown_mib:.1} MiB); {cut_off} of {} \
         connections cut off",
        usize::from(ADDRESSES) * PER_ADDRESS
    );
    // What the attackers sent: 400 x 200 KiB = 78 MiB. Held to 16 KiB of
    // head each, the server needs at most 400 x (16 KiB of buffer, which
    // may be allocated twice over while it grows, and a few KiB of
    // connection) < 16 MiB; buffering what was sent would take 78 MiB.
    assert!(
        grown_mib < 24.0,
        "the server grew by {grown_mib:.1} MiB under 400 heads of 200 KiB"
    );
    assert_eq!(
        cut_off,
        usize::from(ADDRESSES) * PER_ADDRESS,
        "every oversized head is refused"
    );
    assert_eq!(server.get("/healthz").status, 200);
}
