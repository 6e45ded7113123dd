//! One MultiLang child process: spawned in its own process group, written
//! by one task and read by another (so a tens-of-MB `processRecords` line
//! never blocks reading the child's answers), stderr forwarded line by
//! line with the shard id, and stopped with a bounded wait.

use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use super::ChildConfig;
use crate::protocol::{ChildMessage, DEFAULT_MAX_CHILD_LINE, Line, LineReader, parse_child_line};

/// Why talking to the child failed. Every one ends that child only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildFailure {
    /// The executable could not be started.
    #[error("could not start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The child closed its stdout or exited (a crash, or EOF).
    #[error("the child closed its stdout (exited or crashed){}", status.as_deref().map(|s| format!(": {s}")).unwrap_or_default())]
    Gone {
        /// Its exit status, if known.
        status: Option<String>,
    },
    /// Writing to the child's stdin failed (broken pipe).
    #[error("writing to the child failed (broken pipe)")]
    BrokenPipe,
    /// The child answered an action with a `status` for another one.
    #[error("the child answered {expected:?} with a status for {got:?}")]
    WrongStatus {
        /// The action sent.
        expected: String,
        /// The `responseFor` received.
        got: String,
    },
    /// No message from the child within the action timeout.
    #[error("no answer from the child within {0:?} (action {1:?})")]
    Timeout(Duration, String),
}

/// A running child.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    child: Child,
    pid: Option<Pid>,
    exited: bool,
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    messages: mpsc::Receiver<ChildMessage>,
    /// Set by the writer when a write to the child's stdin failed: a
    /// child that closed its stdin but still runs never answers, so the
    /// wait for its answer must end here, not at the action timeout.
    write_failed: watch::Receiver<bool>,
}

impl ChildProcess {
    /// Start `config.command` for `shard`.
    pub(crate) fn spawn(config: &ChildConfig, shard: &str) -> Result<Self, ChildFailure> {
        let (program, args) = config
            .command
            .split_first()
            .ok_or_else(|| ChildFailure::Spawn {
                program: String::new(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
            })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C or a container's
            // signal to our group does not kill it before it checkpoints;
            // we stop it ourselves.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| ChildFailure::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => {
                    return Err(ChildFailure::Spawn {
                        program: program.clone(),
                        source: std::io::Error::other("no pipes to the child"),
                    });
                }
            };
        let (to_child, mut outgoing) = mpsc::channel::<Vec<u8>>(1);
        let (write_failed_tx, write_failed) = watch::channel(false);
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(bytes) = outgoing.recv().await {
                if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                    let _ = write_failed_tx.send(true);
                    break;
                }
            }
            // Dropping stdin closes the pipe: the child sees EOF.
        });
        let (incoming, messages) = mpsc::channel(16);
        let reader_shard = shard.to_string();
        tokio::spawn(async move {
            let mut lines = LineReader::new(BufReader::new(stdout), DEFAULT_MAX_CHILD_LINE);
            loop {
                match lines.next_line().await {
                    Ok(Some(Line::Text(text))) => match parse_child_line(&text) {
                        Ok(message) => {
                            if incoming.send(message).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(shard = %reader_shard, error = %e, line = %truncate(&text), "skipping a line from the child")
                        }
                    },
                    Ok(Some(Line::Skipped(why))) => {
                        tracing::warn!(shard = %reader_shard, why, "skipping a line from the child")
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        });
        tokio::spawn(forward_stderr(stderr, shard.to_string()));
        Ok(ChildProcess {
            child,
            pid,
            exited: false,
            stdin: Some(to_child),
            messages,
            write_failed,
        })
    }

    /// Queue one line for the child's stdin.
    pub(crate) async fn send(&mut self, bytes: Vec<u8>) -> Result<(), ChildFailure> {
        let Some(stdin) = &self.stdin else {
            return Err(ChildFailure::BrokenPipe);
        };
        stdin
            .send(bytes)
            .await
            .map_err(|_| ChildFailure::BrokenPipe)
    }

    /// The next message, within `timeout`.
    pub(crate) async fn recv(
        &mut self,
        timeout: Duration,
        action: &str,
    ) -> Result<ChildMessage, ChildFailure> {
        let messages = &mut self.messages;
        let write_failed = &mut self.write_failed;
        let broken_pipe = async {
            // The writer ending without a failure (stdin closed by us) is
            // no broken pipe: wait on.
            if write_failed.wait_for(|failed| *failed).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        // Biased: what the child said before the pipe broke comes first.
        let received = tokio::select! {
            biased;
            received = tokio::time::timeout(timeout, messages.recv()) => received,
            () = broken_pipe => return Err(ChildFailure::BrokenPipe),
        };
        match received {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(self.gone().await),
            Err(_) => Err(ChildFailure::Timeout(timeout, action.to_string())),
        }
    }

    async fn gone(&mut self) -> ChildFailure {
        let status = tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        if status.is_some() {
            self.exited = true;
        }
        ChildFailure::Gone {
            status: status.map(|s| s.to_string()),
        }
    }

    /// Close stdin and wait for the child to exit: `exit_wait`, then
    /// SIGTERM to its process group, `term_wait`, then SIGKILL.
    pub(crate) async fn stop(mut self, exit_wait: Duration, term_wait: Duration, shard: &str) {
        self.stdin = None;
        if let Ok(Ok(status)) = tokio::time::timeout(exit_wait, self.child.wait()).await {
            self.exited = true;
            tracing::debug!(shard, %status, "child exited");
            return;
        }
        tracing::warn!(shard, wait = ?exit_wait, "child still running after stdin closed; sending SIGTERM");
        self.signal(Signal::TERM);
        if let Ok(Ok(_)) = tokio::time::timeout(term_wait, self.child.wait()).await {
            self.exited = true;
            return;
        }
        tracing::warn!(shard, "child ignored SIGTERM; sending SIGKILL");
        self.kill().await;
    }

    /// Kill the child's process group at once and reap it.
    pub(crate) async fn kill(&mut self) {
        self.signal(Signal::KILL);
        let _ = self.child.start_kill();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_ok()
        {
            self.exited = true;
        }
    }

    fn signal(&self, signal: Signal) {
        // Never after the child was reaped (its pid may be reused), and
        // never a pid of 1 or less (that would signal every process).
        if let Some(pid) = self.pid
            && !self.exited
            && pid.as_raw_nonzero().get() > 1
        {
            let _ = kill_process_group(pid, signal);
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // The processor was dropped with its child still up (the engine
        // gave the shard up): take the whole group down.
        self.signal(Signal::KILL);
    }
}

/// Longest piece of stderr forwarded as one line: a child that never
/// writes a newline (kclpy's sample logs records without one) is still
/// forwarded, in pieces of this size.
const STDERR_PIECE: usize = 64 << 10;

/// How long a partial stderr line waits for its end before it is shown.
const STDERR_IDLE_FLUSH: Duration = Duration::from_millis(250);

/// Forward the child's stderr line by line (`\n`, `\r\n` or `\r`), with
/// the shard id; a partial line is forwarded when the child pauses and at
/// EOF.
async fn forward_stderr(mut stderr: tokio::process::ChildStderr, shard: String) {
    use tokio::io::AsyncReadExt;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let emit = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches(['\r', '\n']);
        if !text.is_empty() {
            tracing::info!(target: "kcl_multilang::child_stderr", shard = %shard, "{text}");
        }
    };
    loop {
        let read = stderr.read(&mut chunk);
        let n = if pending.is_empty() {
            read.await
        } else {
            // A partial line is shown once the child pauses, not only at
            // EOF as in Java.
            match tokio::time::timeout(STDERR_IDLE_FLUSH, read).await {
                Ok(result) => result,
                Err(_) => {
                    emit(&pending);
                    pending.clear();
                    continue;
                }
            }
        };
        let n = match n {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n' || b == b'\r') {
            emit(&pending[..end]);
            pending.drain(..=end);
        }
        if pending.len() >= STDERR_PIECE {
            emit(&pending);
            pending.clear();
        }
    }
    emit(&pending);
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
