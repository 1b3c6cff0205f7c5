//! `api-ready` and `consumers-ready`: live and ready, on the API and on every consumer.
//!
//! A consumer ops URL names a host that may stand for many pods (a headless Service returns
//! every pod's address, ready or not): it is resolved to ALL its addresses and each is asked,
//! so one consumer that never connected cannot hide behind the others.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use url::{Host, Url};

use super::http::{client, endpoint, get_ok};
use super::plan::Plan;

const PROBES: [&str; 2] = ["/health/live", "/health/ready"];

/// One consumer process: an address a consumer ops URL resolved to.
#[derive(Debug)]
pub struct Consumer {
    pub url: Url,
    pub address: SocketAddr,
    /// Reaches `url`'s host at `address` only.
    pub client: reqwest::Client,
}

impl Consumer {
    /// `http://coupon-consumer-ops:9090/ at 10.0.0.7:9090`: the URL, and which of its pods.
    pub fn label(&self) -> String {
        match self.url.host() {
            Some(Host::Domain(_)) => format!("{} at {}", self.url, self.address),
            _ => self.url.to_string(),
        }
    }

    pub fn endpoint(&self, path: &str) -> Result<Url, String> {
        endpoint(&self.url, path)
    }
}

/// The API's `/health/live` and `/health/ready` answer 200.
pub async fn api_ready(plan: &Plan) -> Result<((), String), String> {
    let client = client(plan.http_timeout, None)?;
    let mut seen = Vec::new();
    for path in PROBES {
        let url = endpoint(&plan.api, path)?;
        let answer = get_ok(&client, &url).await?;
        seen.push(format!("{path} {}", answer.status));
    }
    Ok(((), format!("{}: {}", plan.api, seen.join(", "))))
}

/// Every address of every consumer ops URL answers 200 on `/health/live` and `/health/ready`.
/// Every consumer is asked, and every failure reported, before the step ends.
pub async fn consumers_ready(plan: &Plan) -> Result<(Vec<Consumer>, String), String> {
    let mut consumers = Vec::new();
    let mut failures = Vec::new();
    for url in &plan.consumers {
        match resolve(url).await {
            Ok(addresses) => {
                for address in addresses {
                    match consumer(plan.http_timeout, url, address) {
                        Ok(consumer) => consumers.push(consumer),
                        Err(error) => failures.push(error),
                    }
                }
            }
            Err(error) => failures.push(error),
        }
    }
    let mut ready = Vec::new();
    for consumer in &consumers {
        match probe(consumer).await {
            Ok(()) => ready.push(consumer.label()),
            Err(error) => failures.push(error),
        }
    }
    if consumers.is_empty() && failures.is_empty() {
        failures.push("no consumer ops URL to check".to_owned());
    }
    if failures.is_empty() {
        Ok((
            consumers,
            format!(
                "{} consumer(s) live and ready: {}",
                ready.len(),
                ready.join(", ")
            ),
        ))
    } else {
        Err(format!(
            "{} consumer(s) ready, {} failing: {}",
            ready.len(),
            failures.len(),
            failures.join("; ")
        ))
    }
}

fn consumer(timeout: Duration, url: &Url, address: SocketAddr) -> Result<Consumer, String> {
    let pinned = match url.host() {
        Some(Host::Domain(host)) => Some((host, address)),
        _ => None,
    };
    Ok(Consumer {
        url: url.clone(),
        address,
        client: client(timeout, pinned)?,
    })
}

async fn probe(consumer: &Consumer) -> Result<(), String> {
    for path in PROBES {
        let url = consumer.endpoint(path)?;
        get_ok(&consumer.client, &url)
            .await
            .map_err(|error| match consumer.url.host() {
                Some(Host::Domain(_)) => format!("{error} (address {})", consumer.address),
                _ => error,
            })?;
    }
    Ok(())
}

/// Every address `url`'s host has (an IP host is its own); none is an error naming the URL.
async fn resolve(url: &Url) -> Result<BTreeSet<SocketAddr>, String> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{url}: no port"))?;
    let addresses: BTreeSet<SocketAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => [SocketAddr::from((ip, port))].into(),
        Some(Host::Ipv6(ip)) => [SocketAddr::from((ip, port))].into(),
        Some(Host::Domain(host)) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|error| format!("{url}: {host} does not resolve: {error}"))?
            .collect(),
        None => return Err(format!("{url}: no host")),
    };
    if addresses.is_empty() {
        return Err(format!("{url}: resolves to no address (no consumer pod?)"));
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Result<Url, String> {
        Url::parse(raw).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_name_stands_for_every_address_it_resolves_to() -> Result<(), String> {
        let ip = resolve(&url("http://10.1.2.3:9090")?).await?;
        assert_eq!(
            ip.into_iter().collect::<Vec<_>>(),
            [SocketAddr::from(([10, 1, 2, 3], 9090))]
        );
        // However many addresses localhost has here, 127.0.0.1 is one of them.
        let local = resolve(&url("http://localhost:9090")?).await?;
        assert!(
            local.contains(&SocketAddr::from(([127, 0, 0, 1], 9090))),
            "{local:?}"
        );
        Ok(())
    }

    /// Ready, with no metrics: all a probe reads.
    #[derive(Debug)]
    struct Ready;

    impl couponrush_ops::HealthReport for Ready {
        fn readiness(&self) -> (bool, serde_json::Value) {
            (true, serde_json::json!({ "status": "UP" }))
        }
        fn metrics(&self) -> String {
            String::new()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_address_is_asked_under_the_url_s_own_name() -> anyhow::Result<()> {
        // The ops port every binary serves; a name nobody resolves, so only the pinned
        // address can reach it.
        let ops = couponrush_ops::OpsPort::serve("127.0.0.1:0", "test", Ready)?;
        let url = url(&format!("http://consumer-pod.invalid:{}", ops.addr.port()))
            .map_err(anyhow::Error::msg)?;
        let timeout = Duration::from_secs(5);
        let pod = consumer(timeout, &url, ops.addr).map_err(anyhow::Error::msg)?;
        assert_eq!(
            pod.label(),
            format!(
                "http://consumer-pod.invalid:{}/ at {}",
                ops.addr.port(),
                ops.addr
            )
        );
        probe(&pod).await.map_err(anyhow::Error::msg)?;

        // The same name at another pod's address, where nothing listens (the port is always
        // the URL's): named, with that address.
        let gone = SocketAddr::from(([127, 0, 0, 2], ops.addr.port()));
        let error = probe(&consumer(timeout, &url, gone).map_err(anyhow::Error::msg)?)
            .await
            .err()
            .unwrap_or_default();
        assert!(
            error.starts_with(&format!("GET {url}health/live: ")),
            "{error}"
        );
        assert!(error.ends_with(&format!("(address {gone})")), "{error}");
        ops.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_failure_naming_the_url() -> Result<(), String> {
        // `.invalid` never resolves (RFC 2606).
        let error = resolve(&url("http://coupon-consumer-ops.invalid:9090")?)
            .await
            .err()
            .unwrap_or_default();
        assert!(
            error.starts_with("http://coupon-consumer-ops.invalid:9090/: "),
            "{error}"
        );
        Ok(())
    }
}
