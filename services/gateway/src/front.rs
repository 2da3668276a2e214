//! What answers each of the gateway's connections.
//!
//! A request for one of the table's `/api` routes, in a method the table gives it, is
//! forwarded from here, with the platform's own work on a request around it
//! ([`Platform::answer`]: request id, span, access log, metrics, security headers, a panic
//! answered as a 500). Everything else goes to the router: the FHIR routes with their
//! content negotiation, the gateway's own pages, a method a route does not take, a path no
//! route has. The router has every route of the table as well, so it answers all of them
//! the same way; this is the shorter road to the same answer.
//!
//! Why the shorter road: the gateway exists to forward, and a profile of it under load
//! (`valgrind --tool=callgrind`, instructions per proxied `GET /api/users/me`) showed the
//! router's matching, per-route boxed services, extractors and middleware futures as about
//! a tenth of every forwarded request, for no check of the gateway's own. No `/api` path is
//! the gateway's own, so the two roads cannot disagree on which route a request is for: its
//! own routes are `/status` (a test holds its documented routes to that), `/docs`, the
//! FHIR paths and every service's `/health`, `/metrics` and `/openapi.json`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::Method;
use axum::response::Response;
use polyclinic_http::axum::Router;
use polyclinic_http::{ClientAddress, Platform};
use tower::{Service, ServiceExt};

use crate::GatewayState;
use crate::proxy;
use crate::table::{Rule, TABLE};

/// The service for one connection: the gateway's parts and the connection's peer.
#[derive(Clone)]
pub struct Front {
    parts: Arc<Parts>,
    peer: SocketAddr,
}

/// What every connection's [`Front`] shares.
pub struct Parts {
    forwarded: Forwarded,
    router: Router,
    platform: Platform,
    state: GatewayState,
}

impl Parts {
    pub fn new(router: Router, platform: Platform, state: GatewayState) -> anyhow::Result<Self> {
        Ok(Self {
            forwarded: Forwarded::of(TABLE)?,
            router,
            platform,
            state,
        })
    }

    /// The service for a connection from `peer`.
    pub fn front(self: &Arc<Self>, peer: SocketAddr) -> Front {
        Front {
            parts: self.clone(),
            peer,
        }
    }
}

/// The table's `/api` routes, by path, with their rules (one per method).
struct Forwarded(matchit::Router<Vec<Rule>>);

impl Forwarded {
    fn of(table: &[Rule]) -> anyhow::Result<Self> {
        let mut by_path: BTreeMap<&'static str, Vec<Rule>> = BTreeMap::new();
        for rule in table.iter().filter(|rule| rule.path.starts_with("/api/")) {
            by_path.entry(rule.path).or_default().push(*rule);
        }
        let mut routes = matchit::Router::new();
        for (path, rules) in by_path {
            routes.insert(path, rules)?;
        }
        Ok(Self(routes))
    }

    /// The rule for a request of `method` for `path`, if it is one of them.
    fn rule(&self, method: &Method, path: &str) -> Option<Rule> {
        let found = self.0.at(path).ok()?;
        found
            .value
            .iter()
            .find(|rule| rule.verb == method.as_str())
            .copied()
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let parts = self.parts.clone();
        let peer = self.peer;
        match parts.forwarded.rule(request.method(), request.uri().path()) {
            Some(rule) => Box::pin(async move {
                let client = parts.platform.client_address(peer.ip(), request.headers());
                let state = parts.state.clone();
                let answered = parts
                    .platform
                    .answer(rule.path, request, |request_id, request| {
                        proxy::forward(state, rule, ClientAddress(client), request_id, request)
                    })
                    .await;
                Ok(answered)
            }),
            None => {
                request.extensions_mut().insert(ConnectInfo(peer));
                Box::pin(parts.router.clone().oneshot(request))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_of_the_table_is_forwarded_in_its_own_methods_only() {
        let forwarded = Forwarded::of(TABLE).unwrap();
        let concrete = |path: &str| {
            path.split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "x1"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        for rule in TABLE {
            let method = Method::from_bytes(rule.verb.as_bytes()).unwrap();
            let found = forwarded.rule(&method, &concrete(rule.path));
            if rule.path.starts_with("/api/") {
                let found = found.unwrap_or_else(|| panic!("{} {}", rule.verb, rule.path));
                assert_eq!((found.verb, found.path), (rule.verb, rule.path));
            } else {
                assert!(
                    found.is_none(),
                    "{} {} goes to the router",
                    rule.verb,
                    rule.path
                );
            }
        }
        assert!(forwarded.rule(&Method::HEAD, "/api/users/me").is_none());
        assert!(forwarded.rule(&Method::PUT, "/api/users/me").is_none());
        assert!(forwarded.rule(&Method::GET, "/api/no/such/route").is_none());
        assert!(forwarded.rule(&Method::GET, "/status").is_none());
    }

    #[test]
    fn none_of_the_gateways_own_routes_is_under_api() {
        let own = crate::openapi();
        for path in own.paths.paths.keys() {
            assert!(!path.starts_with("/api/"), "{path}");
        }
    }
}
