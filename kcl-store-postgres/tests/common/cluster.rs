//! A private PostgreSQL cluster for tests that stop, restart or configure
//! a server of their own (initdb + pg_ctl from `KCL_TEST_POSTGRES_BIN_DIR`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL cluster, stopped and deleted on drop.
pub(crate) struct Cluster {
    bin: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    /// Extra `-c name=value` server settings.
    settings: Vec<String>,
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command for a PostgreSQL binary, run as the postgres user when we are
/// root (the server refuses to run as root).
pub(crate) fn pg_command(bin: &Path, program: &str) -> Command {
    let program = bin.join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub(crate) fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Cluster {
    /// initdb a fresh cluster in a temporary directory; `before_start`
    /// may write files into its data directory (certificates, pg_hba.conf)
    /// before it starts with the extra `settings` (`name=value`).
    pub(crate) fn create_with(
        bin: PathBuf,
        settings: &[&str],
        before_start: impl FnOnce(&Cluster),
    ) -> Cluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("kcl-pg-test-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(&dir);
                    c
                },
                "chown",
            );
        }
        let cluster = Cluster {
            bin,
            dir,
            port,
            settings: settings.iter().map(|s| format!(" -c {s}")).collect(),
        };
        let mut initdb = pg_command(&cluster.bin, "initdb");
        initdb.arg("-D").arg(cluster.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        before_start(&cluster);
        cluster.start();
        cluster
    }

    /// A fresh cluster with the extra `settings`, started.
    pub(crate) fn create(bin: PathBuf, settings: &[&str]) -> Cluster {
        Cluster::create_with(bin, settings, |_| {})
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn start(&self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {}{}",
                self.port,
                self.dir.display(),
                self.settings.concat()
            ))
            .arg("start");
        run(c, "pg_ctl start");
    }

    /// Stop like a crash: no shutdown checkpoint, clients cut off at once.
    pub(crate) fn stop(&self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        run(c, "pg_ctl stop");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
