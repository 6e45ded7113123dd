//! `kcl multilang --cloudwatch-namespace`: the daemon publishes to a real
//! CloudWatch endpoint (moto, from the test-server scripts) while it runs
//! and flushes on shutdown; the counts read back through CloudWatch's own
//! API match what was processed, once each.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Statistic};
use rustix::process::{Pid, Signal, kill_process};
use support::{EmbeddedKinesis, fast_options};

fn cloudwatch(endpoint: &str) -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kcl-tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// Every series of `metric` in `namespace`, with its dimensions.
async fn series(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    metric: &str,
) -> Vec<Vec<Dimension>> {
    let out = cw
        .list_metrics()
        .namespace(namespace)
        .metric_name(metric)
        .send()
        .await
        .expect("ListMetrics");
    out.metrics()
        .iter()
        .map(|m| m.dimensions().to_vec())
        .collect()
}

/// The sum of `metric` over the last hour, over every series.
async fn total(cw: &aws_sdk_cloudwatch::Client, namespace: &str, metric: &str) -> f64 {
    let now = SystemTime::now();
    let mut sum = 0.0;
    for dims in series(cw, namespace, metric).await {
        let out = cw
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(metric)
            .set_dimensions(Some(dims))
            .start_time((now - Duration::from_secs(3600)).into())
            .end_time((now + Duration::from_secs(600)).into())
            .period(60)
            .statistics(Statistic::Sum)
            .send()
            .await
            .expect("GetMetricStatistics");
        sum += out.datapoints().iter().filter_map(|d| d.sum()).sum::<f64>();
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_publishes_its_metrics_to_cloudwatch() {
    let (Some(redis), Some(moto)) = (
        support::server_from_env("KCL_TEST_REDIS_URL"),
        support::server_from_env("KCL_TEST_DYNAMO_ENDPOINT"),
    ) else {
        return;
    };
    let cw = cloudwatch(&moto);
    let kinesis = EmbeddedKinesis::start(fast_options()).await.unwrap();
    let client = support::client(&kinesis.endpoint);
    let stream = support::unique("cwm");
    support::create_stream(&client, &stream, 2).await;
    let mut ledger = support::Ledger::default();
    ledger.put(&client, &stream, 30).await;
    let namespace = support::unique("kcl-test");
    let dir = tempfile::tempdir().unwrap();
    let props = support::sample_child_properties(
        dir.path(),
        &stream,
        &kinesis.endpoint,
        "cw-worker",
        &redis,
    );
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_kcl"))
        .args([
            "multilang",
            "--cloudwatch-namespace",
            &namespace,
            "--cloudwatch-interval",
            "1s",
            "--cloudwatch-dimension",
            "Application=cw-test",
            "--properties-file",
        ])
        .arg(&props)
        .env("KCL_SAMPLE_OUT", dir.path().join("records"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_REGION")
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &moto)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    // While it runs: the records arrive, interval by interval.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen = 0.0;
    while Instant::now() < deadline && seen < 30.0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        seen = total(&cw, &namespace, "kcl_records_processed_total").await;
    }
    let leases = series(&cw, &namespace, "kcl_current_leases").await;
    let _ = kill_process(Pid::from_raw(daemon.id() as i32).unwrap(), Signal::TERM);
    let status = tokio::task::spawn_blocking(move || daemon.wait())
        .await
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(
        seen >= 30.0,
        "CloudWatch saw {seen} of 30 records in 40 s; log:\n{log}"
    );
    assert!(status.unwrap().success(), "{log}");
    // After the flush on shutdown: each record counted once, not re-sent.
    let after = total(&cw, &namespace, "kcl_records_processed_total").await;
    assert_eq!(after, 30.0, "{log}");
    // Gauges carry their labels and the default dimension.
    assert!(
        !leases.is_empty(),
        "no kcl_current_leases series; log:\n{log}"
    );
    let names: Vec<&str> = leases[0].iter().filter_map(|d| d.name()).collect();
    assert!(
        names.contains(&"Application") && names.contains(&"worker"),
        "{names:?}"
    );
    // A histogram lands as a statistic set.
    let checkpoints = cw
        .list_metrics()
        .namespace(&namespace)
        .dimensions(
            DimensionFilter::builder()
                .name("Application")
                .value("cw-test")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let metric_names: Vec<&str> = checkpoints
        .metrics()
        .iter()
        .filter_map(|m| m.metric_name())
        .collect();
    assert!(
        metric_names.iter().any(|n| n.ends_with("_seconds")),
        "no timing histogram among {metric_names:?}"
    );
    assert!(!log.contains("PutMetricData failed"), "{log}");
}

#[test]
fn without_a_region_it_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_kcl"))
        .args([
            "watch",
            "--store",
            "memory://",
            "--app",
            "nothing",
            "--count",
            "1",
        ])
        .args(["--cloudwatch-namespace", "kcl-test"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no AWS region"), "{stderr}");
}
