//! The project's long-running binaries started for a run: issuer-api (with a random admin token)
//! and coupon-consumers (each on its own ops port), each waited for until `/health/ready`
//! answers 200, and stopped the way Kubernetes stops them.
//!
//! ```text
//! let mut apps = Apps::new(Some("info".into()));   // RUST_LOG of what it starts
//! apps.start_consumers(&env, 3, &log_dir)?;
//! apps.start_api(&env, "127.0.0.1:18080", &log_dir)?;
//! apps.wait_ready(Duration::from_secs(60)).await?;
//! let id = apps.api()?.create_coupon(&NewCoupon::open_now("demo".into(), 5000, 5000, 30)).await?;
//! ...
//! apps.stop_all().await;
//! ```

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_domain::CouponId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::binaries::release_binary;
use crate::process::Service;
use crate::run_env::{RunEnv, random_token};

/// How long a started binary gets to exit after SIGTERM (the API drains its producer, a
/// consumer commits its batch) before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// issuer-api of a run: its address and admin token.
#[derive(Debug)]
pub struct Api {
    service: Service,
    base_url: String,
    token: String,
    client: reqwest::Client,
}

/// A coupon event to create through `POST /admin/coupons`.
#[derive(Debug, Serialize)]
pub struct NewCoupon {
    pub name: String,
    pub discount_amount: u32,
    pub total_quantity: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub issue_starts_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub issue_ends_at: time::OffsetDateTime,
    pub expiry_days: u32,
}

impl NewCoupon {
    /// An event open from a minute ago for an hour (a clock a little behind still sees it open).
    pub fn open_now(name: String, discount_amount: u32, total: u32, expiry_days: u32) -> Self {
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0);
        let now = now.unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        Self {
            name,
            discount_amount,
            total_quantity: total,
            issue_starts_at: now - time::Duration::minutes(1),
            issue_ends_at: now + time::Duration::hours(1),
            expiry_days,
        }
    }
}

impl NewCoupon {
    /// `starts .. ends` in RFC 3339, for a log line.
    pub fn window(&self) -> String {
        let rfc3339 = |at: time::OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| at.to_string())
        };
        format!(
            "{} .. {}",
            rfc3339(self.issue_starts_at),
            rfc3339(self.issue_ends_at)
        )
    }
}

impl Api {
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Creates the coupon; its id.
    pub async fn create_coupon(&self, coupon: &NewCoupon) -> anyhow::Result<CouponId> {
        let response = self
            .client
            .post(format!("{}/admin/coupons", self.base_url))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .json(coupon)
            .send()
            .await
            .context("POST /admin/coupons")?;
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "creating the coupon failed ({status}): {body}"
        );
        let created: serde_json::Value = serde_json::from_str(&body)?;
        let id = created["couponId"]
            .as_u64()
            .with_context(|| format!("no couponId in: {body}"))?;
        Ok(CouponId::new(id)?)
    }

    /// `GET path` with the admin token, within `timeout`, decoded.
    pub async fn admin_get<T: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    /// The process (its log, e.g. to look for panics after a run).
    pub fn service(&self) -> &Service {
        &self.service
    }
}

/// The binaries a run started; stopped by [`Apps::stop_all`] (or killed when dropped).
#[derive(Debug, Default)]
pub struct Apps {
    /// `RUST_LOG` of every binary started (`None`: the caller's).
    rust_log: Option<String>,
    api: Option<Api>,
    /// Each consumer with the URL of its readiness endpoint.
    consumers: Vec<(Service, String)>,
}

impl Apps {
    /// No binary started yet; those started later get `RUST_LOG=rust_log` when it is set.
    pub fn new(rust_log: Option<String>) -> Self {
        Self {
            rust_log,
            ..Self::default()
        }
    }

    /// The run's variables plus `extra` and the log filter.
    fn vars(&self, env: &RunEnv, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut extra = extra.to_vec();
        if let Some(filter) = &self.rust_log {
            extra.push(("RUST_LOG", filter.clone()));
        }
        env.vars_with(&extra)
    }

    /// Starts `count` coupon-consumers, each with its ops endpoints on a free loopback port
    /// (they share this host), logging to `consumer-<n>.log`.
    pub fn start_consumers(
        &mut self,
        env: &RunEnv,
        count: usize,
        log_dir: &Path,
    ) -> anyhow::Result<()> {
        let binary = release_binary("coupon-consumer")?;
        for n in 1..=count {
            let port = couponrush_testkit::closed_port()?;
            let ops = format!("127.0.0.1:{port}");
            let vars = self.vars(env, &[("COUPON__CONSUMER__OPS_BIND", ops.clone())]);
            let service = Service::spawn(
                &format!("consumer-{n}"),
                &binary,
                std::iter::empty::<&str>(),
                &vars,
                log_dir,
            )?;
            self.consumers
                .push((service, format!("http://{ops}/health/ready")));
        }
        Ok(())
    }

    /// Starts issuer-api on `bind` (which must be free) with a random admin token, logging to
    /// `issuer-api.log`.
    pub fn start_api(&mut self, env: &RunEnv, bind: &str, log_dir: &Path) -> anyhow::Result<()> {
        let address = loopback_address(bind)?;
        anyhow::ensure!(
            TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err(),
            "something already listens on {bind}; choose another address"
        );
        let token = random_token()?;
        let vars = self.vars(
            env,
            &[
                ("COUPON__HTTP__BIND", bind.to_owned()),
                ("COUPON__ADMIN__TOKEN", token.clone()),
            ],
        );
        let service = Service::spawn(
            "issuer-api",
            &release_binary("issuer-api")?,
            std::iter::empty::<&str>(),
            &vars,
            log_dir,
        )?;
        self.api = Some(Api {
            service,
            base_url: format!("http://{address}"),
            token,
            client: reqwest::Client::new(),
        });
        Ok(())
    }

    /// Waits until every started binary answers 200 on `/health/ready`, all within `within`.
    /// All are watched at once, so the first one to exit fails the wait at once, with the end
    /// of its log (a consumer that refuses its settings is not hidden behind a slow API).
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let started = Instant::now();
        let api = self.api.as_mut().map(|api| {
            let url = format!("{}/health/ready", api.base_url);
            (&mut api.service, url)
        });
        let consumers = self
            .consumers
            .iter_mut()
            .map(|(service, url)| (service, url.clone()));
        let mut waiting: Vec<(&mut Service, String)> = api.into_iter().chain(consumers).collect();
        while !waiting.is_empty() {
            for (service, _) in &mut waiting {
                service.check_alive()?;
            }
            let mut still = Vec::with_capacity(waiting.len());
            for (service, url) in waiting {
                let ready = client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|response| response.status().is_success());
                if !ready {
                    still.push((service, url));
                }
            }
            waiting = still;
            if let Some((service, url)) = waiting.first() {
                anyhow::ensure!(
                    started.elapsed() < within,
                    "{} did not answer 200 on {url} within {within:?}; last lines of {}:\n{}",
                    service.name(),
                    service.log().display(),
                    service.tail(20)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// The API, once started.
    pub fn api(&self) -> anyhow::Result<&Api> {
        self.api.as_ref().context("issuer-api was not started")
    }

    /// Stops the API first (no new requests), then the consumers; reports, never fails.
    pub async fn stop_all(&mut self) {
        let services = self
            .api
            .take()
            .map(|api| api.service)
            .into_iter()
            .chain(self.consumers.drain(..).map(|(service, _)| service));
        for service in services {
            let name = service.name().to_owned();
            match service.stop(STOP_GRACE).await {
                Ok(status) => eprintln!("[xtask] stopped {name} ({status})"),
                Err(error) => eprintln!("[xtask] stopping {name}: {error:#}"),
            }
        }
    }
}

/// `bind` as an address to connect to: a wildcard host becomes the loopback address.
fn loopback_address(bind: &str) -> anyhow::Result<SocketAddr> {
    let mut address = bind
        .to_socket_addrs()
        .ok()
        .and_then(|mut all| all.next())
        .with_context(|| format!("{bind:?} is not a host:port address"))?;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(address)
}
