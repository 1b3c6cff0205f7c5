//! The gateways allowed to speak for a client (`auth.trusted_proxies`): only their requests may
//! name the user (`auth.mode = "gateway-header"`) or the client's address
//! (`rate_limit.client_header`). Anyone else could set either header to whatever they like.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether `request` came straight from a trusted gateway; with none configured
    /// (development) every peer is.
    pub fn admit(&self, request: &HttpRequest) -> bool {
        if self.0.is_empty() {
            return true;
        }
        request
            .peer_addr()
            .map(|peer| canonical(peer.ip()))
            .is_some_and(|ip| self.0.iter().any(|net| net.contains(&ip)))
    }
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`: compare it as IPv4, as
/// the configured CIDRs are written.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_peers_inside_the_networks_are_admitted() -> Result<(), Box<dyn std::error::Error>> {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse()?, "fd00::/8".parse()?]);
        let from = |peer: &str| -> Result<bool, std::net::AddrParseError> {
            Ok(proxies.admit(
                &TestRequest::default()
                    .peer_addr(peer.parse()?)
                    .to_http_request(),
            ))
        };
        assert!(from("10.1.2.3:4000")?);
        assert!(
            from("[::ffff:10.1.2.3]:4000")?,
            "IPv4-mapped IPv6 is compared as IPv4"
        );
        assert!(from("[fd00::1]:4000")?);
        assert!(!from("127.0.0.1:4000")?);
        assert!(!from("[::1]:4000")?);
        assert!(
            !proxies.admit(&TestRequest::default().to_http_request()),
            "no peer address"
        );
        assert!(TrustedProxies::default().admit(&TestRequest::default().to_http_request()));
        Ok(())
    }
}
