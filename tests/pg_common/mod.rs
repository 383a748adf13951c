//! A real PostgreSQL for the tests (docs/semantics.md#durability-and-sharing): `$ENTITLE_TEST_PG`
//! when set (a URL whose user may create databases), else a throwaway
//! cluster made with the system's `initdb` and `pg_ctl` in a temporary
//! directory, on a free loopback port, run as the unprivileged `postgres`
//! user when the tests run as root. No mock stands in for the database.
//!
//! A watchdog process stops each cluster and removes its directory once
//! the test process is gone, however it ended (a panic, an abort, kill
//! -9): no cluster outlives its tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable naming an existing server to use instead.
pub const TEST_PG_ENV: &str = "ENTITLE_TEST_PG";

/// The server this test process uses: `$ENTITLE_TEST_PG`, or a cluster
/// started on first use and stopped when the process ends. Child
/// processes a test spawns get it through `$ENTITLE_TEST_PG`.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var(TEST_PG_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let cluster = Cluster::start();
            let url = cluster.url();
            // Stopped by its watchdog when this process ends.
            std::mem::forget(cluster);
            url
        }
    })
}

/// A namespace no other test (or test process) uses.
pub fn namespace(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A namespace no other test uses, made on the test server
/// (`PgStore::create`): `PgStore::open` opens only namespaces that exist.
#[cfg(feature = "postgres")]
pub fn created_namespace(prefix: &str) -> String {
    let namespace = namespace(prefix);
    if let Err(e) = entitle::store::PgStore::create(server_url(), &namespace) {
        panic!("namespace {namespace} cannot be made: {e}");
    }
    namespace
}

/// A new, empty database on the test server, and its URL: for tests that
/// change the tables themselves.
pub fn fresh_database(prefix: &str) -> String {
    let name = namespace(prefix).replace('-', "_");
    psql(server_url(), &format!("CREATE DATABASE {name}"));
    with_database(server_url(), &name)
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// Where PostgreSQL's program `name` is: on `PATH`, or else in the
/// newest of Debian's `/usr/lib/postgresql/<version>/bin`, which the
/// server package does not put on `PATH`.
pub fn pg_program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| {
            let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse().ok()?;
                    let program = e.path().join("bin").join(name);
                    program.is_file().then_some((version, program))
                })
                .collect();
            versions.sort();
            versions.pop().map(|(_, program)| program)
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs SQL with `psql` on `url`, panicking with its output on failure.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(pg_program("psql"))
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A throwaway cluster of the tests' own, stopped (and its directory
/// removed) when dropped, or by its watchdog when the process ends.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
}

fn as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// A command run as the unprivileged `postgres` user when we are root
/// (PostgreSQL refuses to run as root), as ourselves otherwise.
fn as_postgres(program: &str) -> Command {
    let program = pg_program(program);
    if as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// Makes and starts a cluster on a free port.
    pub fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "entitle-pg-{}-{}",
            std::process::id(),
            namespace("c")
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster");
        if as_root() {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown runs");
            assert!(chown.success(), "chown of {}", dir.display());
        }
        let cluster = Cluster {
            port: free_port(),
            dir,
        };
        cluster.watch();
        let init = as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions", "-D"])
            .arg(cluster.data())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("initdb runs (PostgreSQL's server package is installed)");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        cluster.run();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=2",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again), on the same port.
    pub fn run(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c shared_buffers=32MB",
            self.port,
            self.dir.display()
        );
        let started = as_postgres("pg_ctl")
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .arg("-D")
            .arg(self.data())
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        assert!(started.success(), "pg_ctl start: {log}");
        // Up and accepting connections.
        let since = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "no server: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (`fast`: clients are disconnected, open
    /// transactions rolled back).
    pub fn stop(&self) {
        let _ = as_postgres("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(self.data())
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// A process that outlives this one for as long as it takes to see it
    /// gone, then stops the cluster and removes its directory.
    fn watch(&self) {
        let pg_ctl = pg_program("pg_ctl");
        let stop = if as_root() {
            format!("runuser -u postgres -- '{}'", pg_ctl.display())
        } else {
            format!("'{}'", pg_ctl.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        // Never waited for: it is meant to outlive this process.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the cluster's watchdog starts");
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
