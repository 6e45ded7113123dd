//! Shared by the Redis tests: the test server (`KCL_TEST_REDIS_URL`) and
//! stores in fresh namespaces on it, and private `redis-server` processes
//! for tests that need a server of their own (to kill and restart it, or
//! to run it with TLS or in cluster mode). Each private server runs on a
//! free loopback port in its own temporary directory and is killed, by
//! its own process handle, when dropped.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kcl_core::testkit::conformance::random_application;
use kcl_core::testkit::server_from_env;
use kcl_store_redis::RedisStore;

/// The test server's URL, or `None` (with a printed skip line) when unset.
pub(crate) fn url() -> Option<String> {
    server_from_env("KCL_TEST_REDIS_URL")
}

/// A store on `url` in a fresh namespace: a random application name and,
/// so a failed run leaves nothing that could meet a later one, a random
/// key prefix too.
pub(crate) async fn store(url: &str) -> RedisStore {
    let application = random_application();
    RedisStore::builder()
        .url(url)
        .application(application.as_str())
        .key_prefix(format!("kcl-test-{}", &application.as_str()[9..]))
        .build()
        .await
        .expect("connect to KCL_TEST_REDIS_URL")
}

/// A redis-server this test started.
pub(crate) struct RedisProcess {
    bin: String,
    args: Vec<String>,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisProcess {
    /// A fresh temporary directory and port; the server is not started
    /// yet. `args` go to redis-server as given, after `--bind 127.0.0.1`.
    pub(crate) fn new(bin: &str, port: u16, args: &[&str]) -> RedisProcess {
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
    pub(crate) fn start(bin: &str, args: &[&str]) -> RedisProcess {
        let port = free_port();
        let mut args: Vec<&str> = args.to_vec();
        let port_arg = port.to_string();
        args.extend(["--port", &port_arg]);
        let mut server = RedisProcess::new(bin, port, &args);
        server.spawn();
        server
    }

    /// Start (or start again) the server and wait until it listens.
    pub(crate) fn spawn(&mut self) {
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
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
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
pub(crate) fn persistent_server(bin: &str) -> RedisProcess {
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
pub(crate) async fn restart_tolerant_store(server: &RedisProcess) -> RedisStore {
    RedisStore::builder()
        .url(server.url())
        .application(random_application().as_str())
        .connection_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("connect")
}

/// A Redis Cluster of `primaries` primaries with one replica each, every
/// node a private redis-server on loopback, joined by
/// `redis-cli --cluster create`. The nodes stop when it is dropped.
pub(crate) struct Cluster {
    pub nodes: Vec<RedisProcess>,
}

/// The redis-cli binary: `KCL_TEST_REDIS_CLI_BIN` (scripts/servers/redis.sh
/// sets it), else the one beside `server_bin`, else `redis-cli` on PATH.
pub(crate) fn redis_cli(server_bin: &str) -> String {
    if let Ok(cli) = std::env::var("KCL_TEST_REDIS_CLI_BIN")
        && !cli.is_empty()
    {
        return cli;
    }
    let beside = std::path::Path::new(server_bin).with_file_name("redis-cli");
    if beside.exists() {
        return beside.display().to_string();
    }
    "redis-cli".to_string()
}

impl Cluster {
    pub(crate) async fn start(server_bin: &str, primaries: usize) -> Cluster {
        let nodes: Vec<RedisProcess> = (0..primaries * 2)
            .map(|_| {
                RedisProcess::start(
                    server_bin,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "3000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                )
            })
            .collect();
        let mut create = Command::new(redis_cli(server_bin));
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        cluster.wait_until_settled().await;
        cluster
    }

    /// Until every node says the cluster is ok, knows every node, and every
    /// replica's link to its primary is up.
    pub(crate) async fn wait_until_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for node in &self.nodes {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]).await;
                let replication = node.command(&["INFO", "replication"]).await;
                let known = format!("cluster_known_nodes:{}", self.nodes.len());
                let linked = replication.contains("role:master")
                    || replication.contains("master_link_status:up");
                if info.contains("cluster_state:ok") && info.contains(&known) && linked {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster never settled: {info}\n{replication}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The URL of one node (the store finds the others from it).
    pub(crate) fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The node serving `key`'s slot as primary, and its replica.
    pub(crate) async fn primary_and_replica_of(&self, key: &str) -> (&RedisProcess, &RedisProcess) {
        let slot: i64 = {
            let mut con = self.nodes[0].connection().await;
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap()
        };
        let nodes = self.nodes[0].command(&["CLUSTER", "NODES"]).await;
        let mut primary_id = None;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<i64>(), hi.parse::<i64>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            });
            if serves {
                primary_id = Some(fields[0].to_string());
            }
        }
        let primary_id = primary_id.expect("a primary serves the slot");
        let port_of = |id: &str, as_replica: bool| -> u16 {
            nodes
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| if as_replica { f[3] == id } else { f[0] == id })
                .and_then(|f| f[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok()))
                .expect("node address")
        };
        let primary = port_of(&primary_id, false);
        let replica = port_of(&primary_id, true);
        let by_port = |p: u16| self.nodes.iter().find(|n| n.port == p).expect("our node");
        (by_port(primary), by_port(replica))
    }
}

impl RedisProcess {
    /// A plain connection to this one server.
    pub(crate) async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the node")
    }

    /// Run one command on this server and read its reply as text.
    pub(crate) async fn command(&self, args: &[&str]) -> String {
        let mut con = self.connection().await;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async(&mut con)
            .await
            .expect("command on the node")
    }
}

/// A TCP forwarder on loopback that sends each new connection to the port
/// it currently points at: what a DNS name or virtual address does when a
/// failover moves it. Connections already open stay where they were.
pub(crate) struct Forwarder {
    pub port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub(crate) async fn start(target: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(target));
        let current = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = current.load(std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder { port, target, task }
    }

    /// Send new connections to `port` from now on.
    pub(crate) fn point_at(&self, port: u16) {
        self.target.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
