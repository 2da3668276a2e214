//! The client's address as a service should believe it: the TCP peer, unless the peer is
//! one of the service's trusted proxies, in which case the address that proxy (and any
//! trusted proxy before it) wrote into `X-Forwarded-For` (or RFC 7239 `Forwarded`).
//!
//! The chain is read right to left, because each proxy appends the address it saw: the
//! rightmost entry was written by the nearest proxy, and everything left of the first
//! untrusted entry was written by someone who may lie. So the answer is the first entry,
//! from the right, that is not itself a trusted proxy. Parsing the two headers is a few
//! lines over `std::net`; the trust walk is the part that matters, and it is this module's
//! own (the crates that parse the headers leave it to the application).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use polyclinic_config::ClientAddressHeader;

/// Who may tell this service a client's address, and in which header.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    networks: Arc<[IpNet]>,
    header: ClientAddressHeader,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>, header: ClientAddressHeader) -> Self {
        Self {
            networks: networks.into(),
            header,
        }
    }

    /// No proxy is trusted: the peer is the client.
    pub fn none() -> Self {
        Self::new(Vec::new(), ClientAddressHeader::XForwardedFor)
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = match self.header {
            ClientAddressHeader::XForwardedFor => forwarded_for(headers),
            ClientAddressHeader::Forwarded => forwarded(headers),
        };
        // The nearest hop whose word we take: a malformed entry ends the walk there.
        let mut client = peer;
        for entry in chain.iter().rev() {
            match entry {
                Some(address) if self.trusts(*address) => client = *address,
                Some(address) => return *address,
                None => return client,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are the IPv4 address they map.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The entries of every `X-Forwarded-For` header, left to right; `None` for one that is
/// not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| {
            let text = value.to_str().unwrap_or("\u{0}");
            text.split(',')
                .map(|entry| parse_node(entry.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `for=` parameters of every `Forwarded` element, left to right (RFC 7239 section 4).
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|value| {
            let text = value.to_str().unwrap_or("\u{0}");
            text.split(',')
                .map(|element| {
                    element
                        .split(';')
                        .filter_map(|pair| pair.split_once('='))
                        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                        .and_then(|(_, node)| parse_node(node.trim().trim_matches('"')))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A node as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`. Obfuscated identifiers (`_hidden`, `unknown`) are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(canonical)
}

/// The key a per-client limit should count under: the address itself for IPv4, its /64
/// for IPv6 (one subscriber usually holds a whole /64, so per-address keys would let one
/// client take billions of buckets).
pub fn limit_key(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The calling client's address (see the module): an extractor for handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        let address = match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => trusted.client_address(peer, &parts.headers),
            None => canonical(peer),
        };
        Ok(ClientAddress(address))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn trusted(networks: &[&str], header: ClientAddressHeader) -> TrustedProxies {
        TrustedProxies::new(
            networks
                .iter()
                .map(|network| network.parse().expect("a network"))
                .collect(),
            header,
        )
    }

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = trusted(&["10.0.0.0/8"], ClientAddressHeader::XForwardedFor);
        let claims = headers("x-forwarded-for", "203.0.113.9");
        assert_eq!(
            proxies.client_address(ip("198.51.100.7"), &claims),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_chain_is_read_right_to_left_up_to_the_first_untrusted_hop() {
        let proxies = trusted(&["10.0.0.0/8"], ClientAddressHeader::XForwardedFor);
        // A client claimed 1.1.1.1; the ingress (10.0.0.2) appended the real 203.0.113.9.
        let chain = headers("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2");
        assert_eq!(
            proxies.client_address(ip("10.0.0.3"), &chain),
            ip("203.0.113.9")
        );
        let garbage = headers("x-forwarded-for", "203.0.113.9, nonsense");
        assert_eq!(
            proxies.client_address(ip("10.0.0.3"), &garbage),
            ip("10.0.0.3"),
            "a malformed entry stops at the proxy that wrote it"
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let xff = trusted(&["127.0.0.0/8"], ClientAddressHeader::XForwardedFor);
        let rfc = trusted(&["127.0.0.0/8"], ClientAddressHeader::Forwarded);
        let mut both = headers("forwarded", "for=\"[2001:db8::1]:4711\";proto=https");
        both.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.60"));
        assert_eq!(xff.client_address(ip("127.0.0.1"), &both), ip("192.0.2.60"));
        assert_eq!(
            rfc.client_address(ip("127.0.0.1"), &both),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
