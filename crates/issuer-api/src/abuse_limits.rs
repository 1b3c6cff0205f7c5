//! The abuse limits of the issue endpoint as this instance applies them: the configured
//! defaults (`[rate_limit]`), and who the client is. Counting happens in Redis, in the
//! reservation script, so every instance shares one count.

use std::net::{IpAddr, Ipv6Addr};

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use couponrush_config::RateLimitSettings;
use couponrush_domain::{RateLimitOverride, RateLimits};
use serde_json::{Value, json};

use crate::trusted_proxies::TrustedProxies;

/// Stands for a client whose address is unknown (no peer address, e.g. a Unix socket): they
/// share one limit rather than escape it.
const UNKNOWN_CLIENT: &str = "unknown";

#[derive(Debug, Clone)]
pub struct AbuseLimits {
    enabled: bool,
    defaults: RateLimits,
    /// The gateway's header naming the client; `None`: the peer address.
    client_header: Option<HeaderName>,
    /// Only these peers' header is believed: anyone else could name a fresh address per
    /// request and never be limited.
    trusted: TrustedProxies,
}

impl AbuseLimits {
    pub fn new(settings: &RateLimitSettings, trusted: TrustedProxies) -> Self {
        Self {
            enabled: settings.enabled,
            defaults: RateLimits {
                per_user: settings.per_user,
                per_client: settings.per_client,
                window_ms: settings.window_ms,
            },
            // The config layer refused a name that is not a header name.
            client_header: settings
                .client_header()
                .and_then(|name| HeaderName::try_from(name).ok()),
            trusted,
        }
    }

    /// The defaults the reservation script applies, `None` when limits are off.
    pub fn defaults(&self) -> Option<RateLimits> {
        self.enabled.then_some(self.defaults)
    }

    /// The client of `request`: the configured header's first entry if it holds an IP
    /// address and the request came from a trusted gateway, else the peer address. IPv6 counts per /64, the block one subscriber gets, so
    /// a bot cannot take a fresh address per request.
    pub fn client(&self, request: &HttpRequest) -> String {
        let believed = self
            .client_header
            .as_ref()
            .filter(|_| self.trusted.admit(request));
        let from_header = believed.and_then(|name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            value.split(',').next()?.trim().parse::<IpAddr>().ok()
        });
        from_header
            .or_else(|| request.peer_addr().map(|peer| peer.ip()))
            .map_or_else(|| UNKNOWN_CLIENT.to_owned(), client_key)
    }

    /// What the admin stats show: whether limits are on, those in force for an event with
    /// `own` limits, and `own` itself.
    pub fn describe(&self, own: RateLimitOverride) -> Value {
        let limits = own.over(self.defaults);
        json!({
            "enabled": self.enabled,
            "perUser": limits.per_user,
            "perClient": limits.per_client,
            "windowMs": limits.window_ms,
            "eventOverrides": own,
        })
    }
}

/// The limit key of an address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 as its /64.
fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let block = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", Ipv6Addr::from(block))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limits(header: &str) -> AbuseLimits {
        AbuseLimits {
            enabled: true,
            defaults: RateLimits {
                per_user: 1,
                per_client: 1,
                window_ms: 1000,
            },
            client_header: HeaderName::try_from(header).ok(),
            trusted: TrustedProxies::default(),
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_the_gateway_header_names_an_address()
    -> Result<(), Box<dyn std::error::Error>> {
        let peer = "203.0.113.9:5555".parse()?;
        let plain = TestRequest::default().peer_addr(peer).to_http_request();
        assert_eq!(limits("").client(&plain), "203.0.113.9");
        let forwarded = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("X-Forwarded-For", "198.51.100.7, 10.0.0.1"))
            .to_http_request();
        assert_eq!(limits("x-forwarded-for").client(&forwarded), "198.51.100.7");
        // Without the header setting, a caller's own X-Forwarded-For is ignored.
        assert_eq!(limits("").client(&forwarded), "203.0.113.9");
        let garbage = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("X-Real-IP", "not an address"))
            .to_http_request();
        assert_eq!(limits("X-Real-IP").client(&garbage), "203.0.113.9");
        // With gateways configured, only their header is believed.
        let mut behind_gateway = limits("x-forwarded-for");
        behind_gateway.trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse()?]);
        assert_eq!(behind_gateway.client(&forwarded), "203.0.113.9");
        let via_gateway = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse()?)
            .insert_header(("X-Forwarded-For", "198.51.100.7"))
            .to_http_request();
        assert_eq!(behind_gateway.client(&via_gateway), "198.51.100.7");
        assert_eq!(
            limits("").client(&TestRequest::default().to_http_request()),
            UNKNOWN_CLIENT
        );
        Ok(())
    }

    #[test]
    fn ipv6_counts_per_64() -> Result<(), std::net::AddrParseError> {
        let key = |raw: &str| raw.parse().map(client_key);
        assert_eq!(key("2001:db8:1:2:aaaa::1")?, "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9")?, "2001:db8:1:2::/64");
        assert_eq!(key("::ffff:192.0.2.1")?, "192.0.2.1");
        Ok(())
    }
}
