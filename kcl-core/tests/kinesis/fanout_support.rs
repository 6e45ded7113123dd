//! Enhanced fan-out scenarios shared by `fanout_ferro.rs` and
//! `fanout_local.rs`, and a loopback TCP proxy that can freeze or
//! cut the connections it carries (a half-open HTTP connection, a reset
//! subscription) on command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kcl_core::ShardId;
use kcl_core::retrieval::kinesis::{FanOutSource, KinesisSource};
use kcl_core::retrieval::{Record, ShardSource, StartingPosition};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support;

/// Which connections the proxy freezes or cuts: those accepted before
/// the given connection number.
#[derive(Clone, Copy, Debug, Default)]
struct Orders {
    freeze_before: u64,
    cut_before: u64,
}

/// A TCP proxy on `127.0.0.1` in front of an emulator.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    orders: watch::Sender<Orders>,
    accepted: Arc<AtomicU64>,
    /// Bytes forwarded from the server to the client.
    pub bytes_down: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Start forwarding to `upstream` (`http://host:port`).
    pub(crate) async fn start(upstream: &str) -> Proxy {
        let target = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (orders, watcher) = watch::channel(Orders::default());
        let accepted = Arc::new(AtomicU64::new(0));
        let bytes_down = Arc::new(AtomicU64::new(0));
        let (acc, down) = (accepted.clone(), bytes_down.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let id = acc.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                tokio::spawn(carry(id, client, server, watcher.clone(), down.clone()));
            }
        });
        Proxy {
            endpoint,
            orders,
            accepted,
            bytes_down,
            task,
        }
    }

    /// Every connection open now stops forwarding in both directions but
    /// stays open (new connections work).
    pub(crate) fn freeze_existing(&self) {
        let n = self.accepted.load(Ordering::SeqCst);
        self.orders.send_modify(|o| o.freeze_before = n);
    }

    /// Every connection open now is closed (new connections work).
    pub(crate) fn cut_existing(&self) {
        let n = self.accepted.load(Ordering::SeqCst);
        self.orders.send_modify(|o| o.cut_before = n);
    }
}

async fn carry(
    id: u64,
    client: TcpStream,
    server: TcpStream,
    orders: watch::Receiver<Orders>,
    down: Arc<AtomicU64>,
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let none = Arc::new(AtomicU64::new(0));
    let up = pipe(id, cr, sw, orders.clone(), none);
    let downstream = pipe(id, sr, cw, orders, down);
    // Either direction finishing (EOF, error, cut) ends both.
    tokio::select! {
        _ = up => {}
        _ = downstream => {}
    }
}

async fn pipe(
    id: u64,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut orders: watch::Receiver<Orders>,
    counter: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let o = *orders.borrow_and_update();
        if id < o.cut_before {
            return;
        }
        if id < o.freeze_before {
            // Hold both sockets open, forward nothing, until cut.
            if orders.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            continue;
        }
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // Orders given while reading apply to these bytes too.
                let o = *orders.borrow();
                if id < o.cut_before {
                    return;
                }
                if id < o.freeze_before {
                    continue;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
            _ = orders.changed() => {}
        }
    }
}

pub(crate) fn payloads(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect()
}

fn expected(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

/// Register, reuse by name, reuse by ARN, deregister.
pub(crate) async fn registration(endpoint: &str) {
    let stream = support::unique_stream("reg");
    let c = support::client(endpoint);
    support::create_stream(&c, &stream, 1).await;
    let polling = support::source(endpoint, &stream).await;
    let app = support::unique_stream("app");
    let build = |b: kcl_core::retrieval::kinesis::FanOutSourceBuilder| {
        b.describe_interval(Duration::from_millis(50)).build()
    };

    let first = build(polling.clone().fan_out().application(&app))
        .await
        .expect("registered");
    let described = c
        .describe_stream_consumer()
        .consumer_arn(first.consumer_arn())
        .send()
        .await
        .unwrap();
    let description = described.consumer_description().unwrap();
    assert_eq!(
        description.consumer_name(),
        app,
        "named after the application"
    );
    assert_eq!(
        description.consumer_status(),
        &aws_sdk_kinesis::types::ConsumerStatus::Active,
        "build() waits until ACTIVE"
    );

    let again = build(polling.clone().fan_out().application(&app))
        .await
        .unwrap();
    assert_eq!(again.consumer_arn(), first.consumer_arn(), "reused by name");
    let by_arn = build(polling.clone().fan_out().consumer_arn(first.consumer_arn()))
        .await
        .unwrap();
    assert_eq!(by_arn.consumer_arn(), first.consumer_arn(), "used by ARN");
    let named = build(
        polling
            .clone()
            .fan_out()
            .consumer_name(format!("{app}-other"))
            .application(&app),
    )
    .await
    .unwrap();
    assert_ne!(
        named.consumer_arn(),
        first.consumer_arn(),
        "consumer_name wins over the application name"
    );
    let listed = c
        .list_stream_consumers()
        .stream_arn(
            c.describe_stream_summary()
                .stream_name(&stream)
                .send()
                .await
                .unwrap()
                .stream_description_summary()
                .unwrap()
                .stream_arn(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.consumers().len(), 2, "no duplicate registration");

    let missing = polling.clone().fan_out().build().await.unwrap_err();
    assert!(matches!(missing, kcl_core::Error::Config(_)), "{missing:?}");

    first.deregister().await.expect("deregister");
    let start = Instant::now();
    loop {
        let gone = build(polling.clone().fan_out().consumer_arn(first.consumer_arn())).await;
        if gone.is_err() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never deregistered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    named.deregister().await.unwrap();
    support::delete_stream(&c, &stream).await;
}

/// Records put continuously while subscriptions end or are cut under the
/// reader (`disrupt` is called every `period`): all arrive, in order,
/// none twice. Returns how many disruptions the reader lived through.
pub(crate) async fn renewal_no_gap_no_repeat(
    write_endpoint: &str,
    read_source: FanOutSource,
    stream: &str,
    shard: ShardId,
    period: Duration,
    disrupt: impl Fn() + Send + 'static,
) -> u32 {
    let c = support::client(write_endpoint);
    let total = 300;
    let stream_name = stream.to_owned();
    let writer = tokio::spawn(async move {
        for i in 0..30 {
            let entries: Vec<_> = (i * 10..i * 10 + 10)
                .map(|j| {
                    aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                        .partition_key("k")
                        .data(aws_sdk_kinesis::primitives::Blob::new(format!("r-{j}")))
                        .build()
                        .unwrap()
                })
                .collect();
            c.put_records()
                .stream_name(&stream_name)
                .set_records(Some(entries))
                .send()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let disruptions = Arc::new(AtomicU64::new(0));
    let count = disruptions.clone();
    let disruptor = tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            disrupt();
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut reader = read_source
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let (got, _) = support::drain(&mut *reader, total, Duration::from_secs(60)).await;
    writer.await.unwrap();
    disruptor.abort();
    assert_eq!(
        payloads(&got),
        expected("r", total),
        "0 lost, 0 repeated, in order"
    );
    disruptions.load(Ordering::SeqCst) as u32
}

/// A subscription whose connection stops forwarding (but stays open) is
/// detected by the watchdog and replaced; the records put meanwhile all
/// arrive once. Returns the time from the freeze to recovery.
pub(crate) async fn stall_recovered(endpoint: &str, event_timeout: Duration) -> Duration {
    let stream = support::unique_stream("stall");
    let c = support::client(endpoint);
    support::create_stream(&c, &stream, 1).await;
    let placed = support::put(&c, &stream, "s", 5).await;
    let shard = ShardId::new(&placed[0].0).unwrap();
    let proxy = Proxy::start(endpoint).await;
    let polling = KinesisSource::builder()
        .stream(&stream)
        .client(support::client(&proxy.endpoint))
        .build()
        .await
        .unwrap();
    let source = polling
        .fan_out()
        .application(support::unique_stream("app"))
        .describe_interval(Duration::from_millis(50))
        .subscribe_timeout(event_timeout)
        .event_timeout(event_timeout)
        .retry_delays(Duration::from_millis(20), Duration::from_millis(200))
        .max_retries(1_000)
        .build()
        .await
        .unwrap();
    let mut reader = source
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let (first, _) = support::drain(&mut *reader, 5, Duration::from_secs(20)).await;
    assert_eq!(payloads(&first), expected("s", 5));

    proxy.freeze_existing();
    let frozen_at = Instant::now();
    let mut more = support::put(&c, &stream, "t", 5).await;
    more.clear();
    let (second, _) = support::drain(&mut *reader, 5, Duration::from_secs(60)).await;
    let recovered = frozen_at.elapsed();
    assert_eq!(
        payloads(&second),
        expected("t", 5),
        "nothing lost or repeated"
    );
    assert!(
        recovered >= event_timeout.mul_f64(0.9),
        "recovered in {recovered:?}: faster than the watchdog, so the freeze did not hold"
    );
    support::delete_stream(&c, &stream).await;
    recovered
}

/// A reader whose caller stops asking for batches stops pulling bytes
/// off the connection: the proxy forwards a bounded amount while the
/// shard holds far more; then everything arrives in order.
pub(crate) async fn back_pressure(endpoint: &str) -> (u64, u64) {
    let stream = support::unique_stream("bp");
    let c = support::client(endpoint);
    support::create_stream(&c, &stream, 1).await;
    let n = 1_500;
    let payload = "x".repeat(8 * 1024);
    let mut shard = None;
    for chunk in 0..(n / 100) {
        let entries: Vec<_> = (chunk * 100..chunk * 100 + 100)
            .map(|i| {
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .partition_key("k")
                    .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                        "{i}:{payload}"
                    )))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = c
            .put_records()
            .stream_name(&stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        shard = out.records()[0].shard_id().map(str::to_owned);
    }
    let total_bytes = (n * (payload.len() + 6)) as u64 * 4 / 3;
    let proxy = Proxy::start(endpoint).await;
    let polling = KinesisSource::builder()
        .stream(&stream)
        .client(support::client(&proxy.endpoint))
        .build()
        .await
        .unwrap();
    let source = support::fan_out(polling).await;
    let mut reader = source
        .open_reader(
            &ShardId::new(shard.unwrap()).unwrap(),
            StartingPosition::TrimHorizon,
        )
        .await
        .unwrap();
    let first = reader.next_batch().await.unwrap();
    assert!(!first.records.is_empty());
    // A slow processor: nobody asks for the next batch for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pulled = proxy.bytes_down.load(Ordering::Relaxed);
    assert!(
        pulled < total_bytes / 2,
        "read ahead {pulled} of {total_bytes} bytes while the caller was idle"
    );
    let mut seen: Vec<Record> = first.records;
    while seen.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(30), reader.next_batch())
            .await
            .unwrap()
            .unwrap();
        seen.extend(batch.records);
    }
    let indices: Vec<usize> = seen
        .iter()
        .map(|r| {
            let s = std::str::from_utf8(&r.data).unwrap();
            s.split(':').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(indices, (0..n).collect::<Vec<_>>());
    support::delete_stream(&c, &stream).await;
    (pulled, total_bytes)
}

/// Show the library's logs (`RUST_LOG`) in a failing test's output.
pub(crate) fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The old owner's reader holds the shard's subscription; the new owner's
/// reader opens meanwhile (and keeps getting `ResourceInUseException` on
/// services that enforce one subscription per shard); the old one is
/// dropped after 1.5 s. The new reader then delivers exactly the records
/// after the old one's last. Returns how long after the drop it took.
pub(crate) async fn resource_in_use_after_failover(endpoint: &str) -> Duration {
    let stream = support::unique_stream("inuse");
    let c = support::client(endpoint);
    support::create_stream(&c, &stream, 1).await;
    let placed = support::put(&c, &stream, "a", 3).await;
    let shard = ShardId::new(&placed[0].0).unwrap();
    let source = support::fan_out(support::source(endpoint, &stream).await).await;
    let mut old = source
        .open_reader(&shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let (first, _) = support::drain(&mut *old, 3, Duration::from_secs(20)).await;
    assert_eq!(payloads(&first), expected("a", 3));
    let last = first.last().unwrap().sequence_number.clone();
    let new_owner = source.clone();
    let shard_id = shard.clone();
    let taken_over = tokio::spawn(async move {
        let mut reader = new_owner
            .open_reader(&shard_id, StartingPosition::AfterSequenceNumber(last))
            .await
            .unwrap();
        let (got, _) = support::drain(&mut *reader, 3, Duration::from_secs(60)).await;
        (got, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    support::put(&c, &stream, "b", 3).await;
    drop(old);
    let dropped = Instant::now();
    let (got, done) = taken_over.await.unwrap();
    assert_eq!(payloads(&got), expected("b", 3), "the rest, once");
    support::delete_stream(&c, &stream).await;
    done.saturating_duration_since(dropped)
}
