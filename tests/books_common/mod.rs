//! The vendor's service as its customers meet it (docs/http.md#the-vendors-service):
//! `entitle serve --books` started as a child process over books made
//! with the CLI, and a plain HTTP/1.1 client on one keep-alive loopback
//! connection, for tests and benches that drive the real server (a
//! `kill -9` must reach the process that owns the books).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use entitle::token::SigningKey;
use serde_json::{json, Value};

/// The admin token the service is started with.
pub const ADMIN_TOKEN: &str = "a-long-admin-token-123";

/// The books' product.
pub const PRODUCT: &str = "acme";

/// Books made with the CLI in `dir` (the vendor key `vendor.key`, the
/// admin token `admin.tok`), in a state directory or a PostgreSQL
/// namespace.
pub struct BooksState {
    dir: PathBuf,
    /// The global options naming the store: `--state books`, or
    /// `--store URL --namespace NS`.
    location: Vec<String>,
}

impl BooksState {
    /// Books in the state directory `dir/books`.
    pub fn in_dir(dir: &Path) -> BooksState {
        BooksState::init(dir, vec!["--state".into(), "books".into()])
    }

    /// Books in the PostgreSQL namespace `namespace` of `url` (made by
    /// `init`); the key and token files in `dir`.
    pub fn on_postgres(dir: &Path, url: &str, namespace: &str) -> BooksState {
        BooksState::init(
            dir,
            vec![
                "--store".into(),
                url.into(),
                "--namespace".into(),
                namespace.into(),
            ],
        )
    }

    fn init(dir: &Path, location: Vec<String>) -> BooksState {
        let books = BooksState {
            dir: dir.to_owned(),
            location,
        };
        books.entitle(&["keygen", "--out", "vendor"]);
        books.entitle(&["init", "--pub", "vendor.pub", "--product", PRODUCT]);
        std::fs::write(dir.join("admin.tok"), format!("{ADMIN_TOKEN}\n")).unwrap();
        books
    }

    /// Runs `entitle` on the books with `args`: its standard output,
    /// after asserting it succeeded.
    pub fn entitle(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(&self.dir)
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_STORE")
            .env_remove("ENTITLE_NAMESPACE")
            .env_remove("ENTITLE_NOW")
            .args(&self.location)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("entitle runs");
        assert!(
            out.status.success(),
            "entitle {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The devices the books hold, as (license id, fingerprint), read by
    /// `entitle activation list --json` (the service stopped or not).
    pub fn activations(&self) -> Vec<(String, String)> {
        let text = self.entitle(&["activation", "list", "--json"]);
        let listed: Value = serde_json::from_str(&text).expect("a JSON listing");
        let items = listed["items"].as_array().expect("an array of activations");
        items
            .iter()
            .map(|item| {
                (
                    item["license_id"].as_str().unwrap().to_owned(),
                    item["fingerprint"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Starts `entitle serve --books` on a free loopback port, returning
    /// once it accepts connections.
    pub fn serve(&self) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_entitle"))
            .current_dir(&self.dir)
            .env_remove("ENTITLE_STATE")
            .env_remove("ENTITLE_STORE")
            .env_remove("ENTITLE_NAMESPACE")
            .env_remove("ENTITLE_NOW")
            .args(&self.location)
            .args(["serve", "--books", "--vendor-key", "vendor.key"])
            .args(["--listen", "127.0.0.1:0", "--admin-token-file", "admin.tok"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // The request log: a line per request, noise in a test's output.
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
            .unwrap_or_else(|| panic!("no listening line: {line:?}"))
            .to_owned();
        Server {
            child: Some(child),
            addr,
        }
    }
}

/// A running `entitle serve --books`; killed if dropped still running.
pub struct Server {
    child: Option<Child>,
    /// Where it listens (`127.0.0.1:PORT`).
    pub addr: String,
}

impl Server {
    /// `kill -9`: the process ends at once, whatever it was doing.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    /// SIGTERM, and waits for the clean stop.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
            let exit = child.wait().unwrap();
            assert!(exit.success(), "the service stopped with {exit}");
        }
    }

    /// Issues a license from `spec` through the admin route: its id and
    /// key.
    pub fn issue(&self, spec: Value) -> (String, String) {
        let mut conn = Conn::open(&self.addr).unwrap();
        let body = json!({ "spec": spec }).to_string();
        let (status, answer) = conn
            .call("POST", "/admin/licenses", Some(ADMIN_TOKEN), &body)
            .unwrap();
        assert_eq!(status, 201, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        (
            answer["id"].as_str().unwrap().to_owned(),
            answer["key"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects to `addr`; reads wait at most 30 s.
    pub fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends a request (with the bearer token `auth`, if any) and reads
    /// the whole answer: status and body. An error if the connection
    /// broke before the answer was complete.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
             {auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        let broken = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no answer");
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(broken());
        }
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(broken)?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(broken());
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().map_err(|_| broken())?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// The fingerprint of device `n`.
pub fn fingerprint(n: u64) -> String {
    format!("device-{n:08}")
}

/// The body of `POST /v1/activations` for device `n` with license key
/// `key`: a request as `Engine::activate_online` sends it (no license id,
/// an install key of the device's own, the same each time for one `n`,
/// so that device `n` asking again is the same device).
pub fn activation_body(key: &str, n: u64) -> String {
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    let install = SigningKey::from_seed(&seed);
    let request = json!({
        "v": 1, "license_id": "", "fingerprint": fingerprint(n),
        "hostname": format!("host-{n}"), "nonce": format!("n-{n}"),
        "created_at": "2026-01-01T00:00:00Z", "vm": false,
        "install_key": install.public_key().to_base64url(),
    });
    json!({"request": request.to_string(), "key": key}).to_string()
}
