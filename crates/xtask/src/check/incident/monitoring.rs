//! The real monitoring of a run: Debian's Prometheus server, scraping the run's issuer-api and
//! coupon-consumers under the job names the rules assume and loaded with every rule file of
//! deploy/prometheus, and Debian's Alertmanager with deploy/alertmanager's routing tree and
//! inhibitions as written, only its receivers' webhook URLs pointed at the [`Pager`]. Both on
//! free loopback ports, with their data in the run's directory, stopped by
//! [`Monitoring::stop`] (or killed when dropped, on every other exit path).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_yaml_ng::Value;

use super::pager::Pager;
use crate::check::alerts::Layout;
use crate::process::{Service, wait_all_ok};
use crate::tools;

/// How long Prometheus and Alertmanager get to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What Prometheus scrapes: `host:port` of the API and of each consumer's ops port.
#[derive(Debug)]
pub struct Targets {
    pub api: String,
    pub consumers: Vec<String>,
}

/// An alert Prometheus holds (pending or firing).
#[derive(Debug, Clone)]
pub struct ActiveAlert {
    pub name: String,
    pub severity: String,
    pub state: String,
}

impl std::fmt::Display for ActiveAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.severity, self.state)
    }
}

/// The running Prometheus and Alertmanager.
#[derive(Debug)]
pub struct Monitoring {
    prometheus: Service,
    alertmanager: Service,
    prometheus_url: String,
    client: reqwest::Client,
}

impl Monitoring {
    /// Writes both configurations into `dir`, starts both servers (logs in `log_dir`) and waits
    /// until both answer `/-/ready`.
    pub async fn start(
        dir: &Path,
        log_dir: &Path,
        layout: &Layout,
        targets: &Targets,
        pager: &Pager,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let prometheus_bin = tools::require("prometheus").await?;
        let alertmanager_bin = tools::require("alertmanager").await?;
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;

        let am_text = std::fs::read_to_string(layout.alertmanager_config())
            .with_context(|| format!("read {}", layout.alertmanager_config().display()))?;
        let am_config = dir.join("alertmanager.yaml");
        std::fs::write(&am_config, stand_in_receivers(&am_text, pager)?)?;
        let am_address = format!("127.0.0.1:{}", couponrush_testkit::closed_port()?);
        let alertmanager = Service::spawn(
            "alertmanager",
            &alertmanager_bin,
            [
                format!("--config.file={}", am_config.display()),
                format!("--storage.path={}", dir.join("alertmanager-data").display()),
                format!("--web.listen-address={am_address}"),
                // No high-availability peer: its gossip port would be another fixed port.
                "--cluster.listen-address=".to_owned(),
            ],
            &[],
            log_dir,
        )?;

        let prometheus_config = dir.join("prometheus.yaml");
        let rule_files = layout.rule_files()?;
        std::fs::write(
            &prometheus_config,
            prometheus_config_text(&rule_files, targets, &am_address, interval)?,
        )?;
        let prometheus_address = format!("127.0.0.1:{}", couponrush_testkit::closed_port()?);
        let prometheus = Service::spawn(
            "prometheus",
            &prometheus_bin,
            [
                format!("--config.file={}", prometheus_config.display()),
                format!(
                    "--storage.tsdb.path={}",
                    dir.join("prometheus-data").display()
                ),
                format!("--web.listen-address={prometheus_address}"),
            ],
            &[],
            log_dir,
        )?;
        let mut monitoring = Self {
            prometheus,
            alertmanager,
            prometheus_url: format!("http://{prometheus_address}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        let urls = [
            format!("http://{am_address}/-/ready"),
            format!("{}/-/ready", monitoring.prometheus_url),
        ];
        wait_all_ok(
            vec![
                (&mut monitoring.alertmanager, urls[0].clone()),
                (&mut monitoring.prometheus, urls[1].clone()),
            ],
            Duration::from_secs(30),
        )
        .await?;
        eprintln!(
            "[check-incident] prometheus {} ({} rule file(s), every {interval:?}), alertmanager \
             http://{am_address}",
            monitoring.prometheus_url,
            rule_files.len()
        );
        Ok(monitoring)
    }

    /// An instant query's result vector: each sample's labels and value.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<(serde_json::Value, f64)>> {
        let answer: serde_json::Value = self
            .client
            .get(format!("{}/api/v1/query", self.prometheus_url))
            .query(&[("query", promql)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let samples = answer["data"]["result"]
            .as_array()
            .with_context(|| format!("no result vector for {promql}: {answer}"))?;
        Ok(samples
            .iter()
            .map(|sample| {
                let value = sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (sample["metric"].clone(), value)
            })
            .collect())
    }

    /// The alerts Prometheus holds now, pending or firing.
    pub async fn alerts(&self) -> anyhow::Result<Vec<ActiveAlert>> {
        let answer: serde_json::Value = self
            .client
            .get(format!("{}/api/v1/alerts", self.prometheus_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Ok(answer["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|alert| ActiveAlert {
                name: text(&alert["labels"]["alertname"]),
                severity: text(&alert["labels"]["severity"]),
                state: text(&alert["state"]),
            })
            .collect())
    }

    /// An error if either server has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.prometheus.check_alive()?;
        self.alertmanager.check_alive()
    }

    /// Stops Prometheus, then Alertmanager; reports, never fails.
    pub async fn stop(self) {
        for service in [self.prometheus, self.alertmanager] {
            let name = service.name().to_owned();
            match service.stop(STOP_GRACE).await {
                Ok(status) => eprintln!("[xtask] stopped {name} ({status})"),
                Err(error) => eprintln!("[xtask] stopping {name}: {error:#}"),
            }
        }
    }
}

/// Prometheus's configuration: `interval` for scraping and rule evaluation, the job names the
/// rules' header promises (`issuer-api`, `coupon-consumer`), `rule_files`, and the
/// Alertmanager at `alertmanager`.
fn prometheus_config_text(
    rule_files: &[std::path::PathBuf],
    targets: &Targets,
    alertmanager: &str,
    interval: Duration,
) -> anyhow::Result<String> {
    let interval = format!("{}s", interval.as_secs().max(1));
    let config = serde_json::json!({
        "global": { "scrape_interval": interval, "evaluation_interval": interval },
        "rule_files": rule_files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "alerting": { "alertmanagers": [ { "static_configs": [ { "targets": [alertmanager] } ] } ] },
        "scrape_configs": [
            { "job_name": "issuer-api", "static_configs": [ { "targets": [&targets.api] } ] },
            { "job_name": "coupon-consumer", "static_configs": [ { "targets": &targets.consumers } ] },
        ],
    });
    Ok(serde_yaml_ng::to_string(&config)?)
}

/// The Alertmanager configuration `text` with each receiver's webhook URLs replaced by the
/// pager's URL for that receiver; routes, inhibitions and every other setting unchanged.
/// A receiver with another kind of integration (e-mail, PagerDuty...) has nothing to stand in
/// for it here: refused.
pub fn stand_in_receivers(text: &str, pager: &Pager) -> anyhow::Result<String> {
    let mut config: Value =
        serde_yaml_ng::from_str(text).context("the Alertmanager configuration is not YAML")?;
    let receivers = config
        .get_mut("receivers")
        .and_then(Value::as_sequence_mut)
        .context("the Alertmanager configuration has no receivers")?;
    for receiver in receivers {
        let name = receiver["name"]
            .as_str()
            .context("a receiver without a name")?
            .to_owned();
        let mapping = receiver
            .as_mapping_mut()
            .context("a receiver that is not a mapping")?;
        for (key, value) in mapping.iter_mut() {
            let key = key.as_str().unwrap_or_default();
            if key == "webhook_configs" {
                for webhook in value.as_sequence_mut().into_iter().flatten() {
                    webhook["url"] = Value::from(pager.url(&name));
                }
            } else if key.ends_with("_configs") {
                anyhow::bail!("receiver {name} has {key}: only webhooks can be stood in for");
            }
        }
    }
    Ok(serde_yaml_ng::to_string(&config)?)
}
