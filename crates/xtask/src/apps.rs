//! The project's long-running binaries started for a run: issuer-api (with a random admin token)
//! and coupon-consumers (each on its own ops port), each waited for until `/health/ready`
//! answers 200, and stopped the way Kubernetes stops them.
//!
//! ```text
//! let mut apps = Apps::new(Some("info".into()));   // RUST_LOG of what it starts
//! apps.start_consumers(&env, 3, &log_dir)?;
//! apps.start_api(&env, "127.0.0.1:18080", &log_dir)?;
//! apps.wait_ready(Duration::from_secs(60)).await?;
//! let id = apps.api()?.create_coupon(&coupon::open_now(name, 5000, 5000, 30, hour)).await?;
//! ...
//! apps.stop_all().await;
//! ```

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use couponrush_domain::{CouponId, CouponSpec};
use serde::de::DeserializeOwned;

use crate::binaries::release_binary;
use crate::process::{Service, wait_all_ok};
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

impl Api {
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Creates the coupon; its id.
    pub async fn create_coupon(&self, coupon: &CouponSpec) -> anyhow::Result<CouponId> {
        crate::coupon::create(&self.client, &self.base_url, &self.token, coupon).await
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
    /// More variables every binary started gets (e.g. a benchmark's workers and log format).
    vars: Vec<(&'static str, String)>,
    api: Option<Api>,
    /// Each consumer with the base URL of its ops port (`http://host:port`).
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

    /// The same, and every binary started later also gets `vars`.
    pub fn with_vars(mut self, vars: Vec<(&'static str, String)>) -> Self {
        self.vars = vars;
        self
    }

    /// Every binary started from now on also gets `vars` (e.g. an address known only once
    /// the run is under way).
    pub fn add_vars(&mut self, vars: Vec<(&'static str, String)>) {
        self.vars.extend(vars);
    }

    /// The run's variables plus [`Apps::with_vars`], `extra` and the log filter.
    fn vars(&self, env: &RunEnv, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut extra: Vec<(&str, String)> =
            self.vars.iter().cloned().chain(extra.to_vec()).collect();
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
        self.start_consumers_with(env, count, log_dir, &[])
    }

    /// [`Apps::start_consumers`] with `extra` variables for the consumers only (e.g. a client
    /// id of their own, which a fault can single out).
    pub fn start_consumers_with(
        &mut self,
        env: &RunEnv,
        count: usize,
        log_dir: &Path,
        extra: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let binary = release_binary("coupon-consumer")?;
        for n in 1..=count {
            let port = couponrush_testkit::closed_port()?;
            let ops = format!("127.0.0.1:{port}");
            let mut consumer = extra.to_vec();
            consumer.push(("COUPON__CONSUMER__OPS_BIND", ops.clone()));
            let vars = self.vars(env, &consumer);
            let service = Service::spawn(
                &format!("consumer-{n}"),
                &binary,
                std::iter::empty::<&str>(),
                &vars,
                log_dir,
            )?;
            self.consumers.push((service, format!("http://{ops}")));
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

    /// Waits until every started binary answers 200 on `/health/ready`, all within `within`
    /// (see [`wait_all_ok`]: the first one to exit fails the wait at once).
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let api = self.api.as_mut().map(|api| {
            let url = format!("{}/health/ready", api.base_url);
            (&mut api.service, url)
        });
        let consumers = self
            .consumers
            .iter_mut()
            .map(|(service, base)| (service, format!("{base}/health/ready")));
        wait_all_ok(api.into_iter().chain(consumers).collect(), within).await
    }

    /// An error if any started binary has exited (with its status and the end of its log).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let api = self.api.as_mut().map(|api| &mut api.service);
        let consumers = self.consumers.iter_mut().map(|(service, _)| service);
        api.into_iter()
            .chain(consumers)
            .try_for_each(Service::check_alive)
    }

    /// The base URL (`http://host:port`) of each consumer's ops port, in start order.
    pub fn consumer_ops_urls(&self) -> Vec<&str> {
        self.consumers
            .iter()
            .map(|(_, base)| base.as_str())
            .collect()
    }

    /// The process ids of the consumers still running, in start order.
    pub fn consumer_pids(&self) -> Vec<u32> {
        self.consumers
            .iter()
            .filter_map(|(service, _)| service.pid())
            .collect()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to every consumer.
    pub async fn signal_consumers(&self, signal: &str) -> anyhow::Result<()> {
        for (service, _) in &self.consumers {
            service.signal(signal).await?;
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
pub fn loopback_address(bind: &str) -> anyhow::Result<SocketAddr> {
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
