//! Private `redis-server` processes for tests that need a server of their
//! own (to kill and restart it, or to run it with TLS or in cluster mode).
//! Each runs on a free loopback port in its own temporary directory and is
//! killed, by its own process handle, when dropped.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kcl_core::testkit::conformance::random_application;

/// A redis-server this test started.
pub struct RedisProcess {
    bin: String,
    args: Vec<String>,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisProcess {
    /// A fresh temporary directory and port; the server is not started
    /// yet. `args` go to redis-server as given, after `--bind 127.0.0.1`.
    pub fn new(bin: &str, port: u16, args: &[&str]) -> RedisProcess {
        let dir =
            std::env::temp_dir().join(format!("kcl-redis-test-{port}-{}", random_application()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        RedisProcess {
            bin: bin.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            port,
            dir,
            child: None,
        }
    }

    /// A plain server on a free port with `args`, started.
    pub fn start(bin: &str, args: &[&str]) -> RedisProcess {
        let port = free_port();
        let mut args: Vec<&str> = args.to_vec();
        let port_arg = port.to_string();
        args.extend(["--port", &port_arg]);
        let mut server = RedisProcess::new(bin, port, &args);
        server.spawn();
        server
    }

    /// Start (or start again) the server and wait until it listens.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the server (no shutdown save) and wait for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A started redis-server that keeps every acknowledged write across a
/// kill and restart on the same port (append-only file, fsync always).
pub fn persistent_server(bin: &str) -> RedisProcess {
    let port = free_port();
    let port_arg = port.to_string();
    let mut server = RedisProcess::new(
        bin,
        port,
        &[
            "--port",
            &port_arg,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
    );
    server.spawn();
    server
}

/// A store on `server` in a fresh namespace, with timeouts short enough
/// that calls fail fast (and retryably) while the server is down.
pub async fn restart_tolerant_store(server: &RedisProcess) -> kcl_store_redis::RedisStore {
    kcl_store_redis::RedisStore::builder()
        .url(server.url())
        .application(random_application().as_str())
        .connection_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("connect")
}
