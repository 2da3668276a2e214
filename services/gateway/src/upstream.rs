//! The services behind the gateway: where each one is, and the client that forwards to them.
//!
//! Forwarding uses hyper's pooled HTTP/1 client (hyper-util's), the one reqwest is built on,
//! without reqwest's per-request conveniences: a proxy wants none of them, and a profile
//! of the gateway under load showed them (its redirect layer parsed every answer's URL
//! again, its request and response types were built around each call). The gateway's other
//! calls (the status page's probes, the merged OpenAPI document) still use reqwest.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderValue, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use polyclinic_config::{Config, Service};

/// The forwarding client: plain HTTP or TLS (rustls, with the webpki roots), as each
/// service's URL says.
pub type Forwarder = Client<HttpsConnector<HttpConnector>, Body>;

/// A forwarding client whose idle connections are kept for a minute. It never follows a
/// redirect: that is the client's to follow (the authorization endpoint's 303 to an app).
pub fn forwarder() -> Forwarder {
    let mut http = HttpConnector::new();
    // The TLS layer above it takes `https` URLs; this one only ever sees plain TCP.
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        // The gateway sets `Host` itself, from the upstream's URL split once at start-up.
        .set_host(false)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// One service's base URL, split once at start-up.
#[derive(Debug, Clone)]
struct Base {
    scheme: Scheme,
    authority: Authority,
    /// The path the service is mounted under, without a trailing slash (usually empty).
    path: String,
    /// The `Host` header its requests carry: the host, and the port unless it is the
    /// scheme's own (what the client would write itself, made once here instead).
    host: HeaderValue,
}

/// Every service's base URL.
#[derive(Debug)]
pub struct Upstreams {
    bases: HashMap<Service, Base>,
}

impl Upstreams {
    /// The services' URLs from `config`; an error names one that is not an http(s) URL.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let bases = Service::ALL
            .into_iter()
            .map(|service| {
                let url = config.service_url(service);
                parse_base(&url)
                    .map(|base| (service, base))
                    .with_context(|| format!("the {service} service's URL `{url}` is not a URL"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { bases })
    }

    /// `service`'s base URL, without a trailing slash.
    pub fn base_url(&self, service: Service) -> String {
        self.bases
            .get(&service)
            .map(|base| format!("{}://{}{}", base.scheme, base.authority, base.path))
            .unwrap_or_default()
    }

    /// Where a request for `path_and_query` goes at `service`: its base URL followed by the
    /// request's path and query exactly as the client sent them (dot segments and escapes
    /// untouched, so that the service routes the very path the gateway's table matched),
    /// and the `Host` header that goes with it.
    pub fn url_for(
        &self,
        service: Service,
        path_and_query: &PathAndQuery,
    ) -> Option<(Uri, HeaderValue)> {
        let base = self.bases.get(&service)?;
        let path_and_query = if base.path.is_empty() {
            path_and_query.clone()
        } else {
            PathAndQuery::try_from(format!("{}{}", base.path, path_and_query.as_str())).ok()?
        };
        Uri::builder()
            .scheme(base.scheme.clone())
            .authority(base.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
            .map(|uri| (uri, base.host.clone()))
    }
}

fn parse_base(url: &str) -> anyhow::Result<Base> {
    let uri: Uri = url.parse()?;
    let scheme = uri.scheme().cloned().context("no scheme")?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        bail!("the scheme is neither http nor https");
    }
    let authority = uri.authority().cloned().context("no host")?;
    if uri.query().is_some() {
        bail!("a service's URL has no query");
    }
    let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
    let host = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    };
    Ok(Base {
        host: HeaderValue::try_from(host)?,
        scheme,
        authority,
        path: uri.path().trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(url: &str) -> Upstreams {
        Upstreams {
            bases: HashMap::from([(Service::Identity, parse_base(url).unwrap())]),
        }
    }

    fn forwarded(base: &str, request: &str) -> String {
        upstreams(base)
            .url_for(Service::Identity, &request.parse::<PathAndQuery>().unwrap())
            .unwrap()
            .0
            .to_string()
    }

    #[test]
    fn a_request_keeps_its_path_and_query_under_the_services_base() {
        assert_eq!(
            forwarded("http://identity:8081", "/api/users/me?x=1&y=%20"),
            "http://identity:8081/api/users/me?x=1&y=%20"
        );
        assert_eq!(
            forwarded("https://clinic.example/identity/", "/api/users/me"),
            "https://clinic.example/identity/api/users/me"
        );
        assert_eq!(
            upstreams("https://clinic.example/identity/").base_url(Service::Identity),
            "https://clinic.example/identity"
        );
    }

    #[test]
    fn the_host_header_names_the_port_only_when_it_is_not_the_schemes_own() {
        for (base, host) in [
            ("http://identity:8081", "identity:8081"),
            ("http://identity:80/", "identity"),
            ("https://clinic.example:443/identity", "clinic.example"),
            ("https://clinic.example:8443", "clinic.example:8443"),
            ("http://[::1]:8081", "[::1]:8081"),
        ] {
            let (_, sent) = upstreams(base)
                .url_for(Service::Identity, &PathAndQuery::from_static("/api"))
                .unwrap();
            assert_eq!(sent, host, "{base}");
        }
    }

    #[test]
    fn dot_segments_reach_the_service_as_the_gateway_matched_them() {
        assert_eq!(
            forwarded("http://identity:8081", "/api/doctors/../internal"),
            "http://identity:8081/api/doctors/../internal"
        );
    }

    #[test]
    fn a_base_that_is_not_an_http_url_is_refused() {
        for url in [
            "identity:8081",
            "ftp://identity",
            "http://identity/?q=1",
            "",
        ] {
            assert!(parse_base(url).is_err(), "{url}");
        }
    }
}
