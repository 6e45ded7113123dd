//! What this process uses, from `/proc/self` (Linux; zero elsewhere).

use std::time::Duration;

/// CPU time of every thread of this process so far, from
/// `/proc/self/task/*/schedstat` (nanoseconds on the CPU; Linux), or zero
/// where the kernel does not say.
pub fn cpu() -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

/// Resident memory of this process now (`VmRSS`) and at its peak
/// (`VmHWM`), in bytes, from `/proc/self/status`; zero where not listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rss {
    /// Resident set size now.
    pub now: u64,
    /// The high-water mark of the resident set size.
    pub peak: u64,
}

/// This process's [`Rss`].
pub fn rss() -> Rss {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    Rss {
        now: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// Bytes in MiB, for printing.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}
