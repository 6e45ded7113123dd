//! KPL de-aggregation throughput against raw MD5 over the same bytes.
//!
//! Every de-aggregation must MD5 the whole aggregate (the trailer check),
//! so MD5 is the floor of its cost; the rest is protobuf decoding and
//! building one `Record` per user record (partition key and sequence
//! number copied inline, data as a zero-copy `Bytes` slice). For each workload, aggregates are built
//! with `kcl_core::kpl::Aggregator`, then `deaggregate_into` and
//! `Md5::digest` alternate in short rounds over the same aggregates (so
//! drift on a shared machine hits both) and the best round of each is
//! kept. Figure: de-aggregation MB/s / MD5 MB/s (goal >= 0.8).
//!
//! Each workload runs twice: with no shard range, and with a shard range
//! that is not the full key space (every user record's MD5 hash key is
//! then computed for the reshard filter; all records are inside it). That
//! filter is the Java KCL's rule and costs one more MD5 per distinct
//! partition key: with 100-byte records and unique 36-byte keys (one MD5
//! block each against about two for the data) it alone caps the ratio near
//! 0.68, before any decoding work. Small records are also where the fixed
//! per-record cost (building and dropping a `Record`) shows most.
//!
//! Rounds are timed in thread CPU time (`/proc/thread-self/schedstat`)
//! where available, so a busy shared machine skews both sides alike.
//!
//! ```sh
//! cargo run --release -p kcl-benches --bin kpl_deaggregate [seconds per workload, default 2] [name filter]
//! ```
//!
//! A second argument runs only the workloads whose name contains it (for
//! profiling one, e.g. `"100 B"`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use kcl_core::HashKeyRange;
use kcl_core::kpl::{Aggregator, deaggregate_into};
use kcl_core::retrieval::Record;
use md5::{Digest, Md5};

/// About this many bytes of aggregates per workload.
const CORPUS_BYTES: usize = 8 << 20;
const ROUNDS: u32 = 5;

struct Workload {
    name: &'static str,
    /// The aggregator's size limit (the KPL's default is 51200).
    max_bytes: usize,
    /// Size of each user record's payload.
    record_bytes: usize,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "KPL default 50 KiB aggregates, 500 B records",
        max_bytes: 51_200,
        record_bytes: 500,
    },
    Workload {
        name: "KPL default 50 KiB aggregates, 2 KiB records",
        max_bytes: 51_200,
        record_bytes: 2048,
    },
    Workload {
        name: "1 MiB aggregates, 1 KiB records",
        max_bytes: 1 << 20,
        record_bytes: 1024,
    },
    Workload {
        name: "KPL default 50 KiB aggregates, 100 B records",
        max_bytes: 51_200,
        record_bytes: 100,
    },
];

/// Aggregates of `record_bytes` records with unique UUID-like partition
/// keys (the common KPL usage), about `CORPUS_BYTES` in all.
fn corpus(workload: &Workload) -> (Vec<Record>, usize) {
    let mut aggregator = Aggregator::with_max_bytes(workload.max_bytes).expect("limit <= 1 MiB");
    let mut aggregates = Vec::new();
    let mut total = 0;
    let mut user_records = 0;
    let mut i: u64 = 0;
    while total < CORPUS_BYTES {
        let key = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            i,
            i % 0xffff,
            i % 0xfff,
            (i * 7) % 0xfff,
            i * 2654435761
        );
        let data: Vec<u8> = (0..workload.record_bytes)
            .map(|j| (i as usize + j * 13) as u8)
            .collect();
        if let Some(done) = aggregator.add(key, None, data).expect("fits") {
            total += done.data.len();
            aggregates.push(done);
        }
        user_records += 1;
        i += 1;
    }
    aggregates.extend(aggregator.flush());
    let records = aggregates
        .into_iter()
        .enumerate()
        .map(|(n, a)| {
            Record::new(
                format!("4959033827149025660855969253836157109592157598{n:010}")
                    .parse()
                    .expect("a sequence number"),
                a.partition_key,
                a.data,
            )
        })
        .collect();
    (records, user_records)
}

/// One pass of de-aggregation over every aggregate; returns user records.
fn deaggregate_pass(
    records: &[Record],
    range: Option<&HashKeyRange>,
    out: &mut Vec<Record>,
) -> usize {
    let mut count = 0;
    for record in records {
        out.clear();
        deaggregate_into(record.clone(), range, out);
        count += out.len();
        black_box(&*out);
    }
    count
}

/// One pass of MD5 over the same bytes.
fn md5_pass(records: &[Record]) -> u8 {
    let mut acc = 0;
    for record in records {
        acc ^= Md5::digest(black_box(&record.data[..]))[0];
    }
    acc
}

/// On-CPU time of this thread, from `/proc/thread-self/schedstat` (Linux):
/// unlike wall-clock time it does not count time other processes on a
/// busy machine had the CPU.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The clock rounds are timed with: thread CPU time where the kernel
/// reports it, else wall-clock time.
fn now() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    cpu_time().unwrap_or_else(|| START.get_or_init(Instant::now).elapsed())
}

/// MB/s of `pass`, repeated for about `budget` of (CPU) time.
fn rate(bytes: usize, budget: Duration, mut pass: impl FnMut()) -> f64 {
    let start = now();
    let mut passes = 0u32;
    while now() - start < budget || passes == 0 {
        pass();
        passes += 1;
    }
    bytes as f64 * f64::from(passes) / (now() - start).as_secs_f64() / 1e6
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let only = std::env::args().nth(2).unwrap_or_default();
    // Each workload splits its time between the two sides and two modes.
    let round = Duration::from_secs_f64(seconds / f64::from(ROUNDS) / 4.0);
    // Not the full key space, so the filter runs; every MD5 hash key but
    // the very last one is inside it.
    let partial = HashKeyRange::new(0, u128::MAX - 1).expect("valid range");
    let clock = if cpu_time().is_some() {
        "thread CPU time"
    } else {
        "wall-clock time"
    };
    println!(
        "kpl_deaggregate: {ROUNDS} alternating rounds of {round:?} per side and mode ({clock}), best round kept"
    );
    let mut worst: f64 = f64::INFINITY;
    for workload in WORKLOADS.iter().filter(|w| w.name.contains(only.as_str())) {
        let (records, user_records) = corpus(workload);
        let bytes: usize = records.iter().map(|r| r.data.len()).sum();
        let mut out = Vec::new();
        assert_eq!(
            deaggregate_pass(&records, None, &mut out),
            user_records,
            "every user record comes back"
        );
        assert_eq!(
            deaggregate_pass(&records, Some(&partial), &mut out),
            user_records,
            "the filter kept every record"
        );

        let (mut md5, mut plain, mut filtered) = (0f64, 0f64, 0f64);
        for _ in 0..ROUNDS {
            md5 = md5.max(rate(bytes, round, || {
                black_box(md5_pass(&records));
            }));
            plain = plain.max(rate(bytes, round, || {
                black_box(deaggregate_pass(&records, None, &mut out));
            }));
            md5 = md5.max(rate(bytes, round, || {
                black_box(md5_pass(&records));
            }));
            filtered = filtered.max(rate(bytes, round, || {
                black_box(deaggregate_pass(&records, Some(&partial), &mut out));
            }));
        }
        println!(
            "{}: {} aggregates of ~{} KiB, {} user records",
            workload.name,
            records.len(),
            bytes / records.len() / 1024,
            user_records
        );
        println!("  md5 (baseline)                   {md5:8.1} MB/s");
        println!(
            "  deaggregate_into, no shard range {plain:8.1} MB/s  ratio {:.2}",
            plain / md5
        );
        println!(
            "  deaggregate_into, shard range    {filtered:8.1} MB/s  ratio {:.2}",
            filtered / md5
        );
        worst = worst.min(plain / md5).min(filtered / md5);
    }
    println!("worst ratio: {worst:.2} (goal >= 0.80)");
}
