//! Where the binaries' metrics go: a Prometheus endpoint
//! (`--metrics-addr`) and, with the `cloudwatch` feature, CloudWatch
//! (`--cloudwatch-namespace`). The library crates only record through the
//! `metrics` facade; this module installs the recorder and describes every
//! metric ([`kcl_core::engine::metric`], the stores').

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
}

impl MetricsArgs {
    /// Whether any exporter was asked for.
    pub fn enabled(&self) -> bool {
        self.metrics_addr.is_some()
    }

    /// Install the asked-for exporters as the global recorder and describe
    /// every metric. Call inside a Tokio runtime (the exporters run on it);
    /// does nothing when no exporter was asked for.
    pub async fn install(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
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
        metrics::set_global_recorder(fanout.build())
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        describe();
        Ok(())
    }
}

/// Describe every metric kcl records (engine, retrieval, stores).
pub fn describe() {
    kcl_core::engine::metric::describe();
    #[cfg(feature = "dynamodb")]
    kcl_store_dynamo::describe_metrics();
}
