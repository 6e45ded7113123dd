//! Where the binaries' metrics go: a Prometheus endpoint
//! (`--metrics-addr`) and, with the `cloudwatch` feature, CloudWatch
//! (`--cloudwatch-namespace`). The library crates only record through the
//! `metrics` facade; this module installs the recorder and describes every
//! metric ([`kcl_core::engine::metric`], the stores').
//!
//! CloudWatch publishing (`cloudwatch` module) sends, every interval, each
//! counter's increase, each gauge's value and each histogram as a
//! statistic set, every label a dimension, in `PutMetricData` calls of at
//! most 1,000 values and well under the API's 1 MB; what a failed call
//! carried is sent with the next one. The region, credentials
//! and endpoint come from the usual AWS chain (`AWS_REGION`, profiles,
//! `AWS_ENDPOINT_URL_CLOUDWATCH` or `AWS_ENDPOINT_URL`); `kcl multilang`
//! falls back to the properties file's `regionName`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::MetricKindMask;

/// The metrics flags of `kcl multilang` and `kcl watch`.
#[derive(Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics over HTTP on this address (e.g.
    /// 127.0.0.1:9464); any path answers with the text format.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Drop a series not updated for this long, so the per-shard series of
    /// leases this worker no longer holds disappear.
    #[arg(long, default_value = "5m", value_parser = crate::admin::workers::parse_duration, value_name = "DURATION")]
    pub metrics_idle_timeout: Duration,
    /// Publish every metric to CloudWatch under this namespace (needs a kcl
    /// built with the `cloudwatch` feature).
    #[arg(long, value_name = "NAMESPACE")]
    pub cloudwatch_namespace: Option<String>,
    /// How often to send to CloudWatch (whole seconds; Java KCL's
    /// `metricsBufferTimeMillis` is 10 s too).
    #[arg(long, default_value = "10s", value_parser = crate::admin::workers::parse_duration, value_name = "DURATION")]
    pub cloudwatch_interval: Duration,
    /// A dimension added to every CloudWatch metric, e.g.
    /// `--cloudwatch-dimension WorkerId=host-1` (repeatable; at most 30
    /// dimensions per metric in all).
    #[arg(long = "cloudwatch-dimension", value_name = "NAME=VALUE", value_parser = parse_dimension)]
    pub cloudwatch_dimensions: Vec<(String, String)>,
}

fn parse_dimension(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?}: expected NAME=VALUE")),
    }
}

/// The exporters [`MetricsArgs::install`] started; [`Exporters::flush`]
/// sends what CloudWatch has not had yet before the process exits.
#[derive(Debug, Default)]
#[must_use = "call flush() before exiting, or the last CloudWatch interval is lost"]
pub struct Exporters {
    #[cfg(feature = "cloudwatch")]
    cloudwatch: Option<cloudwatch::Publisher>,
}

impl Exporters {
    /// Send what is buffered for CloudWatch and stop publishing (bounded:
    /// at most a few seconds). The Prometheus endpoint needs no flush.
    pub async fn flush(self) {
        #[cfg(feature = "cloudwatch")]
        if let Some(publisher) = self.cloudwatch {
            publisher.flush().await;
        }
    }
}

impl MetricsArgs {
    /// Whether any exporter was asked for.
    pub fn enabled(&self) -> bool {
        self.metrics_addr.is_some() || self.cloudwatch_namespace.is_some()
    }

    /// Install the asked-for exporters as the global recorder and describe
    /// every metric. Call inside a Tokio runtime (the exporters run on it);
    /// does nothing when no exporter was asked for. `region` is used for
    /// CloudWatch when the AWS chain names none.
    pub async fn install(&self, region: Option<&str>) -> Result<Exporters, String> {
        #[cfg_attr(not(feature = "cloudwatch"), allow(unused_mut))]
        let mut exporters = Exporters::default();
        if !self.enabled() {
            return Ok(exporters);
        }
        let mut fanout = metrics_util::layers::FanoutBuilder::default();
        if let Some(addr) = self.metrics_addr {
            let (recorder, exporter) = PrometheusBuilder::new()
                .with_http_listener(addr)
                .idle_timeout(MetricKindMask::ALL, Some(self.metrics_idle_timeout))
                .build()
                .map_err(|e| format!("Prometheus endpoint on {addr}: {e}"))?;
            tokio::spawn(async move {
                if let Err(e) = exporter.await {
                    tracing::error!(error = ?e, "the Prometheus endpoint stopped");
                }
            });
            tracing::info!(%addr, "serving Prometheus metrics");
            fanout = fanout.add_recorder(recorder);
        }
        if let Some(namespace) = &self.cloudwatch_namespace {
            #[cfg(feature = "cloudwatch")]
            {
                let (recorder, publisher) = cloudwatch::start(self, namespace, region).await?;
                fanout = fanout.add_recorder(recorder);
                exporters.cloudwatch = Some(publisher);
            }
            #[cfg(not(feature = "cloudwatch"))]
            {
                let _ = (namespace, region);
                return Err("--cloudwatch-namespace: this kcl was built without the \
                            `cloudwatch` feature (cargo install kcl-cli --features cloudwatch)"
                    .into());
            }
        }
        metrics::set_global_recorder(fanout.build())
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        describe();
        Ok(exporters)
    }
}

/// Describe every metric kcl records (engine, retrieval, stores).
pub fn describe() {
    kcl_core::engine::metric::describe();
    #[cfg(feature = "dynamodb")]
    kcl_store_dynamo::describe_metrics();
}

#[cfg(feature = "cloudwatch")]
mod cloudwatch;
