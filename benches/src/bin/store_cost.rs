//! Store cost at steady state: lease-store operations per shard per hour,
//! counted by a counting wrapper around each store while two workers hold
//! an idle stream's shards, beside Java KCL 2.x's rate at the same lease
//! duration (derived: one renew per lease per lease/3, one scan per 20 s
//! per worker, each scan reading every lease).
//!
//! A lease read is one lease item returned by `get_lease` or
//! `list_leases`; a write is any other call (renew, take, release,
//! checkpoint, heartbeat…); `list_workers` counts one read per worker
//! returned. Stores whose `KCL_TEST_*` variable is unset are skipped.
//!
//! `cargo run --release -p kcl-benches --bin store_cost [warm-up-s] [window-s]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kcl_core::testkit::FakeStream;
use kcl_core::testkit::conformance::random_application;
use kcl_core::{
    ExtendedSequenceNumber as Esn, Lease, LeaseStore, PendingCheckpoint, Result, ShardId, Worker,
    WorkerHeartbeat, WorkerId,
};
use tokio_util::sync::CancellationToken;

const SHARDS: usize = 8;
const WORKERS: usize = 2;
const LEASE: Duration = Duration::from_secs(10);
/// Java KCL 2.x: one lease-table scan per worker every 20 s.
const JAVA_SCAN_INTERVAL: f64 = 20.0;

/// Counts reads and writes of the store it wraps.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn LeaseStore>,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Counting {
    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
    fn read(&self, n: usize) {
        self.reads.fetch_add(n as u64, Ordering::Relaxed);
    }
    fn snapshot(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl LeaseStore for Counting {
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.write();
        self.inner.create_lease_if_absent(lease).await
    }
    async fn get_lease(&self, shard_id: &ShardId) -> Result<Option<Lease>> {
        self.read(1);
        self.inner.get_lease(shard_id).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>> {
        let leases = self.inner.list_leases().await?;
        self.read(leases.len().max(1));
        Ok(leases)
    }
    async fn take_lease(&self, observed: &Lease, new_owner: &WorkerId) -> Result<Lease> {
        self.write();
        self.inner.take_lease(observed, new_owner).await
    }
    async fn renew_lease(&self, held: &Lease) -> Result<Lease> {
        self.write();
        self.inner.renew_lease(held).await
    }
    async fn release_lease(&self, held: &Lease, to: Option<&WorkerId>) -> Result<()> {
        self.write();
        self.inner.release_lease(held, to).await
    }
    async fn request_handoff(&self, observed: &Lease, to: &WorkerId) -> Result<()> {
        self.write();
        self.inner.request_handoff(observed, to).await
    }
    async fn update_checkpoint(&self, held: &Lease, checkpoint: &Esn) -> Result<()> {
        self.write();
        self.inner.update_checkpoint(held, checkpoint).await
    }
    async fn prepare_checkpoint(&self, held: &Lease, pending: &PendingCheckpoint) -> Result<()> {
        self.write();
        self.inner.prepare_checkpoint(held, pending).await
    }
    async fn update_child_shard_ids(&self, held: &Lease, children: &[ShardId]) -> Result<()> {
        self.write();
        self.inner.update_child_shard_ids(held, children).await
    }
    async fn pin_start(&self, held: &Lease, at: std::time::SystemTime) -> Result<()> {
        self.write();
        self.inner.pin_start(held, at).await
    }
    async fn withdraw_handoff(&self, observed: &Lease, requester: &WorkerId) -> Result<()> {
        self.write();
        self.inner.withdraw_handoff(observed, requester).await
    }
    async fn delete_lease(&self, shard_id: &ShardId) -> Result<()> {
        self.write();
        self.inner.delete_lease(shard_id).await
    }
    async fn reset_checkpoint(&self, shard_id: &ShardId, checkpoint: &Esn) -> Result<()> {
        self.write();
        self.inner.reset_checkpoint(shard_id, checkpoint).await
    }
    async fn heartbeat(&self, worker: &WorkerId) -> Result<()> {
        self.write();
        self.inner.heartbeat(worker).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerHeartbeat>> {
        let workers = self.inner.list_workers().await?;
        self.read(workers.len().max(1));
        Ok(workers)
    }
    async fn remove_worker(&self, worker: &WorkerId) -> Result<()> {
        self.write();
        self.inner.remove_worker(worker).await
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn stores() -> Vec<(&'static str, Arc<dyn LeaseStore>)> {
    let app = || random_application().as_str().to_string();
    let mut out: Vec<(&'static str, Arc<dyn LeaseStore>)> = vec![(
        "memory",
        Arc::new(
            kcl_store_memory::MemoryStore::builder()
                .application(app())
                .build()
                .unwrap(),
        ),
    )];
    if let Some(url) = env("KCL_TEST_REDIS_URL") {
        let store = kcl_store_redis::RedisStore::builder()
            .url(url)
            .application(app())
            .build()
            .await
            .expect("redis");
        out.push(("redis", Arc::new(store)));
    }
    if let Some(url) = env("KCL_TEST_POSTGRES_URL") {
        let schema = format!("kcl_bench_{}", &app()[9..]);
        let store = kcl_store_postgres::PostgresStore::builder()
            .url(url)
            .schema(schema)
            .application(app())
            .build()
            .await
            .expect("postgres");
        out.push(("postgres", Arc::new(store)));
    }
    if let Some(endpoint) = env("KCL_TEST_DYNAMO_ENDPOINT") {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("bench", "bench", None, None, "kcl-bench"))
            .build();
        let store = kcl_store_dynamo::DynamoStore::builder()
            .application(app())
            .client(aws_sdk_dynamodb::Client::from_conf(config))
            .build()
            .await
            .expect("dynamodb");
        out.push(("dynamodb", Arc::new(store)));
    }
    out
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, default: f64| {
        std::env::args()
            .nth(i)
            .map(|s| s.parse().expect("seconds"))
            .unwrap_or(default)
    };
    let warm_up = Duration::from_secs_f64(arg(1, 12.0));
    let window = Duration::from_secs_f64(arg(2, 20.0));
    let lease = LEASE.as_secs_f64();
    // Java 2.x per shard per hour: renews every lease/3; each worker scans
    // every 20 s and reads every lease.
    let java_writes = 3600.0 / (lease / 3.0);
    let java_reads = 3600.0 / JAVA_SCAN_INTERVAL * WORKERS as f64;
    println!(
        "store_cost: {SHARDS} shards, {WORKERS} workers, lease {lease} s, idle stream; \
         warm-up {warm_up:?}, window {window:?}"
    );
    println!(
        "Java 2.x (derived): {java_reads:.0} lease reads + {java_writes:.0} writes per shard per hour"
    );
    for (name, store) in stores().await {
        let counting = Arc::new(Counting {
            inner: store,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        });
        let stream = FakeStream::new(SHARDS);
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let worker = Worker::builder()
                .worker_id(format!("cost-{w}"))
                .lease_store(counting.clone())
                .source(Arc::new(stream.clone()))
                .lease_duration(LEASE)
                .process_with(|_batch| async { Ok(()) })
                .build()
                .expect("worker");
            tasks.push(tokio::spawn(worker.run(cancel.clone())));
        }
        tokio::time::sleep(warm_up).await;
        let (r0, w0) = counting.snapshot();
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let (r1, w1) = counting.snapshot();
        let took = started.elapsed().as_secs_f64() / 3600.0;
        cancel.cancel();
        for task in tasks {
            let _ = task.await;
        }
        let reads = (r1 - r0) as f64 / SHARDS as f64 / took;
        let writes = (w1 - w0) as f64 / SHARDS as f64 / took;
        println!(
            "{name:>9}: {reads:>8.0} lease reads ({:.1}x Java) + {writes:>6.0} writes ({:.2}x Java) per shard per hour",
            reads / java_reads,
            writes / java_writes,
        );
    }
}
