//! The real `entitle serve` on 127.0.0.1, port 0, over a state made with
//! the CLI, and a small blocking HTTP/1.1 client written on `TcpStream`
//! (so that tests can also send what no well-behaved client would:
//! oversized, truncated and slow requests).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

pub fn entitle(dir: &Path, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .args(["--json", "--state", "state"])
        .args(args)
        .output()
        .expect("entitle runs");
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(output.status.success(), "{args:?}: {value}");
    value
}

/// A vendor key, a license signed from `spec` (in `l.lic`), an install
/// holding it, and the admin token file.
pub fn install(spec: Value) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    entitle(path, &["keygen", "--out", "vendor"]);
    std::fs::write(path.join("spec.json"), spec.to_string()).unwrap();
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
    std::fs::write(path.join("admin.token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    dir
}

/// A running server, killed when dropped if it is still running.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
    /// Everything it wrote to stderr so far (its request log): read
    /// continuously, so that the server never blocks on a full pipe.
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `entitle serve` on 127.0.0.1:0 over `dir`'s state, with the
    /// admin token unless `args` say otherwise, and waits for its
    /// `listening on` line.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        Server::start_on(dir, "127.0.0.1:0", args)
    }

    /// Starts `entitle serve` on `listen` (a loopback address: a restart
    /// on the port a client knows).
    pub fn start_on(dir: &Path, listen: &str, args: &[&str]) -> Server {
        Server::start_over(dir, &["--state", "state"], listen, args)
    }

    /// Starts `entitle serve` over the state `location` names (`--state
    /// DIR`, or `--store URL --namespace NAME`).
    pub fn start_over(dir: &Path, location: &[&str], listen: &str, args: &[&str]) -> Server {
        assert!(
            listen.starts_with("127.0.0.1:"),
            "tests listen on loopback only"
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(dir)
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_NOW")
            .args(location)
            .args(["serve", "--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("entitle serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining, so that the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the server did not say where it listens: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let said = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut said = said.lock().unwrap();
                    said.push_str(&line);
                    said.push('\n');
                }
            });
        }
        Server {
            child,
            addr,
            dir: dir.to_owned(),
            stderr,
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until a line of stderr satisfies `wanted`, and
    /// returns it; panics with all of stderr otherwise.
    pub fn stderr_line(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let said = self.stderr();
            if let Some(line) = said.lines().find(|line| wanted(line)) {
                return line.to_owned();
            }
            if Instant::now() > deadline {
                panic!("no such line on the server's stderr:\n{said}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits for the process to end; its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not stop within 30 s of SIGTERM");
    }

    pub fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        request(
            &self.addr,
            "POST",
            path,
            &[],
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn delete(&self, path: &str) -> Reply {
        request(&self.addr, "DELETE", path, &[], None)
    }

    /// An admin request with `token` (`None`: no Authorization header).
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        let header = token.map(|t| format!("Authorization: Bearer {t}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        request(&self.addr, method, path, &headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer: its status and JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
    /// The status line and headers, as sent.
    pub head: String,
}

impl Reply {
    /// The value of header `name` (any case), if the answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// One request on its own connection (`Connection: close`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&[u8]>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        // The server may answer (413) and close before reading it all.
        let _ = stream.write_all(body);
    }
    read_reply(&mut stream)
}

pub fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        text: body,
        head: head.to_owned(),
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
