//! Redis Cluster's key-slot rules: the whole conformance suite against a
//! private `redis-server` in cluster mode that serves every slot itself.
//! In cluster mode the server refuses any script or transaction whose keys
//! span two slots (`CROSSSLOT`) and any key of a slot it does not serve, so
//! passing here proves every operation stays inside the application's
//! hash-tag slot. Needs `KCL_TEST_REDIS_SERVER_BIN`.

mod common;

use std::time::{Duration, Instant};

use kcl_core::testkit::conformance::{self, random_application, store_factory};
use kcl_core::testkit::server_from_env;
use kcl_store_redis::RedisStore;

async fn start(bin: &str) -> common::RedisProcess {
    let node = common::RedisProcess::start(
        bin,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    let client = redis::Client::open(node.url().as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CLUSTER")
        .arg(&["ADDSLOTSRANGE", "0", "16383"])
        .query_async(&mut con)
        .await
        .expect("assign every slot");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut con)
            .await
            .unwrap();
        if info.contains("cluster_state:ok") {
            break;
        }
        assert!(Instant::now() < deadline, "cluster never became ok: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node
}

/// A store on `url` for a random application (so a random slot).
async fn store(url: &str) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .application(random_application().as_str())
        .build()
        .await
        .expect("connect to the cluster node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_under_cluster_key_slot_rules() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let node = start(&bin).await;

    // The server really enforces the rule this test relies on.
    let client = redis::Client::open(node.url().as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let cross: redis::RedisResult<()> = redis::cmd("MSET")
        .arg(&["{a}x", "1", "{b}y", "2"])
        .query_async(&mut con)
        .await;
    assert!(
        matches!(&cross, Err(e) if e.code() == Some("CROSSSLOT")),
        "cluster mode must refuse cross-slot commands: {cross:?}"
    );

    let url = node.url();
    conformance::run_all(&store_factory(|| store(&url))).await;
}
