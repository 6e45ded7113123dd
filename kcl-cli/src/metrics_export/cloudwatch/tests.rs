use std::sync::atomic::{AtomicBool, Ordering};

use metrics::Recorder;

use super::*;

/// Records every call; fails them while `failing` is set.
#[derive(Clone, Default)]
struct Calls {
    calls: Arc<Mutex<Vec<Vec<MetricDatum>>>>,
    failing: Arc<AtomicBool>,
}

impl Sink for Calls {
    async fn put(&self, data: Vec<MetricDatum>) -> Result<(), String> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("503 Service Unavailable".into());
        }
        self.calls.lock().unwrap().push(data);
        Ok(())
    }
}

impl Calls {
    fn take(&self) -> Vec<Vec<MetricDatum>> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

fn setup(defaults: &[(&str, &str)]) -> (CloudWatchRecorder, Publishing<Calls>, Calls) {
    let recorder = CloudWatchRecorder::new();
    let calls = Calls::default();
    let defaults = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let publishing = Publishing::new(&recorder, calls.clone(), defaults, Duration::from_secs(300));
    (recorder, publishing, calls)
}

const META: Metadata<'static> = Metadata::new("test", metrics::Level::INFO, None);

fn counter(recorder: &CloudWatchRecorder, name: &'static str, shard: &str) -> metrics::Counter {
    let key = Key::from_parts(name, vec![metrics::Label::new("shard", shard.to_string())]);
    recorder.register_counter(&key, &META)
}

fn values_of<'a>(calls: &'a [Vec<MetricDatum>], name: &str) -> Vec<&'a MetricDatum> {
    calls
        .iter()
        .flatten()
        .filter(|d| d.metric_name() == Some(name))
        .collect()
}

#[tokio::test]
async fn a_counter_sends_its_increase_and_nothing_when_it_stood_still() {
    let (recorder, mut publishing, calls) = setup(&[]);
    let c = counter(&recorder, "kcl_records_processed_total", "shardId-0");
    c.increment(5);
    publishing.publish().await;
    c.increment(3);
    publishing.publish().await;
    publishing.publish().await;
    let sent = calls.take();
    let values: Vec<f64> = values_of(&sent, "kcl_records_processed_total")
        .iter()
        .map(|d| d.value().unwrap())
        .collect();
    assert_eq!(values, vec![5.0, 3.0]);
}

#[tokio::test]
async fn a_failed_call_loses_no_count_and_no_sample() {
    let (recorder, mut publishing, calls) = setup(&[]);
    let c = counter(&recorder, "kcl_records_processed_total", "shardId-0");
    let h = recorder.register_histogram(&Key::from_name("kcl_checkpoint_seconds"), &META);
    c.increment(5);
    h.record(0.5);
    calls.failing.store(true, Ordering::SeqCst);
    assert_eq!(publishing.publish().await, (0, 1));
    c.increment(2);
    h.record(2.0);
    calls.failing.store(false, Ordering::SeqCst);
    assert_eq!(publishing.publish().await, (2, 0));
    let sent = calls.take();
    let counts = values_of(&sent, "kcl_records_processed_total");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].value(), Some(7.0));
    let stats = values_of(&sent, "kcl_checkpoint_seconds")[0]
        .statistic_values()
        .unwrap()
        .clone();
    assert_eq!(
        (
            stats.sample_count(),
            stats.sum(),
            stats.minimum(),
            stats.maximum()
        ),
        (Some(2.0), Some(2.5), Some(0.5), Some(2.0))
    );
    // Sent once, not again.
    publishing.publish().await;
    assert!(calls.take().is_empty());
}

#[tokio::test]
async fn gauges_send_their_value_each_round_with_unit_and_dimensions() {
    let (recorder, mut publishing, calls) = setup(&[("WorkerId", "w-1")]);
    recorder.describe_gauge("kcl_current_leases".into(), Some(Unit::Count), "".into());
    let key = Key::from_parts(
        "kcl_current_leases",
        vec![
            metrics::Label::new("empty", ""),
            metrics::Label::new("stream", "orders"),
        ],
    );
    recorder.register_gauge(&key, &META).set(4.0);
    publishing.publish().await;
    publishing.publish().await;
    let sent = calls.take();
    let gauges = values_of(&sent, "kcl_current_leases");
    assert_eq!(gauges.len(), 2);
    let d = gauges[0];
    assert_eq!(d.value(), Some(4.0));
    assert_eq!(d.unit(), Some(&StandardUnit::Count));
    let dims: Vec<(&str, &str)> = d
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap(), d.value().unwrap()))
        .collect();
    assert_eq!(dims, vec![("WorkerId", "w-1"), ("stream", "orders")]);
}

#[tokio::test]
async fn calls_hold_at_most_a_thousand_values_and_every_series_arrives() {
    let (recorder, mut publishing, calls) = setup(&[]);
    for shard in 0..2_500 {
        counter(
            &recorder,
            "kcl_records_processed_total",
            &format!("shardId-{shard:012}"),
        )
        .increment(1);
    }
    assert_eq!(publishing.publish().await, (2_500, 0));
    let sent = calls.take();
    assert_eq!(
        sent.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1_000, 1_000, 500]
    );
}

#[tokio::test]
async fn calls_stay_under_a_megabyte_with_long_dimensions() {
    let (recorder, mut publishing, calls) = setup(&[]);
    let long = "x".repeat(1_000);
    for n in 0..900 {
        let key = Key::from_parts(
            "kcl_current_leases",
            vec![
                metrics::Label::new("a", format!("{n}{long}")),
                metrics::Label::new("b", long.clone()),
            ],
        );
        recorder.register_gauge(&key, &META).set(1.0);
    }
    publishing.publish().await;
    let sent = calls.take();
    assert!(sent.len() > 1, "900 values of ~6 KB each must split");
    for call in &sent {
        let bytes: usize = call.iter().map(encoded_size).sum();
        assert!(bytes <= MAX_BYTES_PER_CALL, "{bytes} bytes in one call");
    }
    assert_eq!(sent.iter().map(Vec::len).sum::<usize>(), 900);
}

#[test]
fn at_most_thirty_dimensions() {
    let (recorder, mut publishing, _) = setup(&[("WorkerId", "w")]);
    let labels: Vec<metrics::Label> = (0..40)
        .map(|i| metrics::Label::new(format!("l{i}"), "v"))
        .collect();
    let key = Key::from_parts("kcl_current_leases", labels);
    recorder.register_gauge(&key, &META).set(1.0);
    let entries = publishing.snapshot(SystemTime::now());
    assert_eq!(entries[0].datum.dimensions().len(), MAX_DIMENSIONS);
    assert_eq!(entries[0].datum.dimensions()[0].name(), Some("WorkerId"));
}

#[test]
fn namespaces_follow_cloudwatch_rules() {
    assert!(validate_namespace("kcl/orders").is_ok());
    assert!(validate_namespace("").is_err());
    assert!(validate_namespace("AWS/Kinesis").is_err());
    assert!(validate_namespace("bad\nname").is_err());
    assert!(validate_namespace(&"n".repeat(256)).is_err());
}
