//! Keep stdout for the protocol.
//!
//! Anything that prints to stdout (a stray `println!`, a dependency's
//! banner) would corrupt the protocol. So the real stdout is duplicated to
//! a private descriptor used for the protocol only, and descriptor 1 is
//! pointed at stderr: later prints end up in the daemon's log instead.
//! Done with `rustix` (safe wrappers over `dup`/`dup2`), since this
//! workspace forbids `unsafe`.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;

/// Take the process's stdout for the protocol; from now on descriptor 1
/// (and so `println!`) writes to stderr.
pub fn reserve_stdout() -> std::io::Result<File> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.flush()?;
    // Above the standard descriptors, closed on exec so children of the
    // child do not inherit the protocol pipe.
    let protocol = rustix::io::fcntl_dupfd_cloexec(lock.as_fd(), 3)?;
    rustix::stdio::dup2_stdout(std::io::stderr().as_fd())?;
    drop(lock);
    Ok(File::from(protocol))
}
