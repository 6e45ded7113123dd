//! `kcl watch` in a real terminal: a detached tmux session draws it, the
//! test reads the screen with `capture-pane`, changes the lease in Redis,
//! and sees the screen follow (new owner, lag, records/s).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use kcl_cli::store_url::{DynamoSettings, lease_store_from_url};
use kcl_core::{ExtendedSequenceNumber as Esn, Lease, ShardId, WorkerId};
use support::{EmbeddedKinesis, fast_options};

/// Run tmux on our private socket.
fn tmux(bin: &str, socket: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("run tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait until the screen satisfies `ok`; the last screen on timeout.
async fn screen_until(bin: &str, socket: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = tmux(bin, socket, &["capture-pane", "-p", "-t", "watch"]);
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("screen never showed {what}; last screen:\n{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_the_leases_and_follows_them() {
    let Some(redis) = support::server_from_env("KCL_TEST_REDIS_URL") else {
        return;
    };
    let Some(bin) = support::server_from_env("KCL_TEST_TMUX") else {
        return;
    };
    let app = support::unique("watch");
    let store = lease_store_from_url(&redis, &app, DynamoSettings::default())
        .await
        .unwrap();
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("w");
    support::create_stream(&client, &stream, 1).await;
    let mut ledger = support::Ledger::default();
    ledger.put(&client, &stream, 20).await;
    let mut sequences: Vec<(String, String)> = ledger.ids.clone().into_iter().collect();
    sequences.sort();
    let shard = ShardId::new("shardId-000000000000").unwrap();
    store
        .create_lease_if_absent(&Lease::new(shard.clone(), Esn::TrimHorizon))
        .await
        .unwrap();
    let observed = store.get_lease(&shard).await.unwrap().unwrap();
    let w1 = WorkerId::new("worker-one").unwrap();
    let held = store.take_lease(&observed, &w1).await.unwrap();

    let socket = support::unique("kcl-test");
    let command = format!(
        "env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 {} watch --store {redis} --app {app} --stream {stream} --endpoint {}; sleep 60",
        env!("CARGO_BIN_EXE_kcl"),
        kinesis.endpoint
    );
    tmux(
        &bin,
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "watch",
            "-x",
            "160",
            "-y",
            "30",
            &command,
        ],
    );
    let first = screen_until(
        &bin,
        &socket,
        "the lease, its owner and 20 records behind",
        |s| s.contains("shardId-000000000000") && s.contains("worker-one") && s.contains(" 20 "),
    )
    .await;
    println!("first screen:\n{first}");

    // The owner checkpoints 10 records and hands the lease to another
    // worker: the view follows within a refresh or two.
    store
        .update_checkpoint(&held, &Esn::at(sequences[9].1.parse().unwrap(), 0))
        .await
        .unwrap();
    let held = store.get_lease(&shard).await.unwrap().unwrap();
    let w2 = WorkerId::new("worker-two").unwrap();
    store.release_lease(&held, Some(&w2)).await.unwrap();
    let second = screen_until(&bin, &socket, "the new owner, 10 behind and a rate", |s| {
        let row = s
            .lines()
            .find(|l| l.starts_with("shardId-000000000000"))
            .unwrap_or("");
        row.contains("worker-two")
            && row.split_whitespace().nth(5) == Some("10")
            && row.split_whitespace().nth(6).is_some_and(|r| r != "-")
    })
    .await;
    println!("second screen:\n{second}");
    // A refresh after that with no progress shows 0.0 records/s.
    screen_until(
        &bin,
        &socket,
        "a rate of 0.0 once the checkpoint stops",
        |s| {
            s.lines()
                .find(|l| l.starts_with("shardId-000000000000"))
                .is_some_and(|row| row.split_whitespace().nth(6) == Some("0.0"))
        },
    )
    .await;
    tmux(&bin, &socket, &["kill-server"]);
}
