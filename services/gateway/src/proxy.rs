//! Forwarding a request to the service that owns its route.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use polyclinic_auth::{AuthError, Principal, authenticate};
use polyclinic_http::client_address::limit_key;
use polyclinic_http::{ApiError, ClientAddress, REQUEST_ID_HEADER, RequestId};
use tower_http::timeout::TimeoutBody;

use crate::GatewayState;
use crate::table::{Access, Rule};

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Prefixes of headers a client could use to pose as someone: identity is only ever the
/// verified bearer token, and forwarding information is only what the gateway itself saw.
const SPOOFABLE_PREFIXES: [&str; 8] = [
    "x-user",
    "x-auth",
    "x-roles",
    "x-principal",
    "x-client",
    "x-forwarded-",
    "x-real-ip",
    "forwarded",
];

/// The headers the gateway sets itself, named once: a map given a name as a string parses it
/// again on every insert.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The largest answer passed on whole rather than streamed.
const WHOLE_BODY_LIMIT: u64 = 256 * 1024;

/// Whether `name` describes one connection: always so, or because the message's `Connection`
/// header lists it.
fn hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    let name = name.as_str();
    HOP_BY_HOP.contains(&name) || connection_listed.iter().any(|listed| listed == name)
}

fn forwardable(name: &HeaderName, connection_listed: &[String]) -> bool {
    !hop_by_hop(name, connection_listed)
        && !SPOOFABLE_PREFIXES
            .iter()
            .any(|prefix| name.as_str().starts_with(prefix))
        && name != "host"
        && name != "content-length"
}

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect()
}

/// Checks the route's rule and the rate limit, then forwards.
pub async fn forward(
    state: GatewayState,
    rule: Rule,
    client: ClientAddress,
    request_id: RequestId,
    request: Request,
) -> Response {
    match forward_checked(state, rule, client, request_id, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn authorize(
    state: &GatewayState,
    rule: &Rule,
    parts: &Parts,
) -> Result<Option<Principal>, ApiError> {
    let found = authenticate(&state.verifier, &parts.headers, &parts.uri).await;
    let principal = match (rule.access, found) {
        // On a public route the service judges any token; the gateway only uses a valid one
        // to pick the rate-limit bucket.
        (Access::Public, found) => found.ok().flatten(),
        (Access::Webhook | Access::Feed, _) => None,
        (_, Ok(Some(principal))) => Some(principal),
        (_, Ok(None)) => return Err(AuthError::Missing.into()),
        (_, Err(err)) => return Err(err.into()),
    };
    if let (Access::Roles(roles), Some(principal)) = (rule.access, &principal)
        && !principal.roles.any(roles)
    {
        return Err(ApiError::forbidden(
            "forbidden",
            "Your role does not allow this request.",
        ));
    }
    Ok(principal)
}

async fn forward_checked(
    state: GatewayState,
    rule: Rule,
    ClientAddress(client): ClientAddress,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    // The body is not `Sync`; keep only the head borrowed across awaits.
    let (parts, body) = request.into_parts();
    let principal = authorize(&state, &rule, &parts).await?;
    let limits = &state.limits;
    let limited = match rule.access {
        Access::Webhook => limits.webhooks.check(&limit_key(client)),
        Access::Feed => limits
            .anonymous
            .check(&limit_key(client))
            .and_then(|()| limits.feeds.check(&parts.uri.path().into())),
        _ => limits.check(principal.as_ref(), client),
    };
    if let Err(retry_after) = limited {
        return Err(ApiError::too_many_requests("rate_limited", retry_after));
    }

    let body = axum::body::to_bytes(body, state.body_limit)
        .await
        .map_err(|_| polyclinic_http::extract::payload_too_large())?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let (uri, host) = state
        .upstreams
        .url_for(rule.service, &path_and_query)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!("The {} service cannot be reached.", rule.service),
            )
        })?;

    // The client's headers, less those that describe its connection or could pose as
    // someone, then the gateway's own word on who is calling and how.
    let mut headers = parts.headers;
    strip(&mut headers, |name, listed| !forwardable(name, listed));
    headers.insert(header::HOST, host);
    headers.insert(REQUEST_ID_HEADER, request_id.header_value());
    // The address as the gateway resolved it (the peer, or what its trusted proxies said):
    // the services trust the gateway's word, and only its.
    headers.insert(X_FORWARDED_FOR, forwarded_for(client));
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(state.public_scheme),
    );
    let head = parts.method == Method::HEAD;
    let mut upstream_request = Request::new(Body::from(body));
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = uri;
    *upstream_request.headers_mut() = headers;

    let timeout = state.upstream_timeout;
    let answered = tokio::time::timeout(timeout, async {
        let answer = state
            .forwarder
            .request(upstream_request)
            .await
            .map_err(|err| Failure::Unreachable(err.into()))?;
        let (mut answer, incoming) = answer.into_parts();
        strip(&mut answer.headers, hop_by_hop);
        // An answer of known, modest size is passed on whole: its head and body leave in
        // one write. Anything else (large, or of unknown length) streams through with its
        // `Content-Length` if it has one, each read given the upstream timeout (nginx's
        // `proxy_read_timeout`), not the whole stream.
        let whole =
            matches!(incoming.size_hint().exact(), Some(length) if length <= WHOLE_BODY_LIMIT);
        if !whole || head {
            return Ok((answer, Body::new(TimeoutBody::new(timeout, incoming))));
        }
        let collected = incoming
            .collect()
            .await
            .map_err(|err| Failure::Unreachable(err.into()))?;
        answer.headers.remove(header::CONTENT_LENGTH);
        Ok((answer, Body::from(collected.to_bytes())))
    })
    .await
    .unwrap_or(Err(Failure::TimedOut));
    let (answer, body) = answered.map_err(|failure| unanswered(rule, &failure, timeout))?;

    let mut response = Response::new(body);
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    Ok(response)
}

/// Removes from `headers` every header `unwanted` picks, given the names the message's
/// `Connection` header lists (hop-by-hop for this message alone). Nothing is copied: a
/// message usually has none to remove.
fn strip(headers: &mut HeaderMap, unwanted: impl Fn(&HeaderName, &[String]) -> bool) {
    let listed = connection_listed(headers);
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| unwanted(name, &listed))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// `client` as `X-Forwarded-For` carries it. An IPv4 address, nearly every caller's, is
/// written out octet by octet: its `Display` goes through the formatting machinery, which
/// a profile of the gateway showed as a few percent of a proxied request's instructions.
fn forwarded_for(client: IpAddr) -> HeaderValue {
    let text = match client {
        IpAddr::V4(address) => {
            let mut text = String::with_capacity("255.255.255.255".len());
            for (index, octet) in address.octets().into_iter().enumerate() {
                if index > 0 {
                    text.push('.');
                }
                text.push_str(itoa::Buffer::new().format(octet));
            }
            text
        }
        IpAddr::V6(address) => address.to_string(),
    };
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Why an upstream gave no answer.
enum Failure {
    TimedOut,
    Unreachable(Box<dyn std::error::Error + Send + Sync>),
}

/// The answer to a request the upstream did not answer. The logged error leaves out the URL:
/// a path may hold a credential (a calendar feed's secret).
fn unanswered(rule: Rule, failure: &Failure, timeout: Duration) -> ApiError {
    let service = rule.service;
    match failure {
        Failure::TimedOut => {
            tracing::warn!(%service, timeout_secs = timeout.as_secs(), "upstream timed out");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "The {service} service did not answer within {} s.",
                    timeout.as_secs()
                ),
            )
        }
        Failure::Unreachable(err) => {
            tracing::warn!(%service, error = %err, "upstream unreachable");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!("The {service} service cannot be reached."),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_address_is_written_as_the_address_displays() {
        for address in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.3.4",
            "192.168.100.255",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let client: IpAddr = address.parse().unwrap();
            assert_eq!(
                forwarded_for(client),
                client.to_string().as_str(),
                "{address}"
            );
        }
    }

    #[test]
    fn identity_and_hop_by_hop_headers_are_not_forwarded() {
        let listed = vec!["x-custom-hop".to_owned()];
        for name in [
            "x-user-id",
            "x-roles",
            "x-forwarded-for",
            "forwarded",
            "x-real-ip",
            "connection",
            "transfer-encoding",
            "x-custom-hop",
            "host",
            "x-authenticated-user",
            "x-client-id",
        ] {
            assert!(
                !forwardable(&HeaderName::from_static(name), &listed),
                "{name}"
            );
        }
        for name in [
            "authorization",
            "content-type",
            "x-request-id",
            "traceparent",
            "tracestate",
            "baggage",
            "idempotency-key",
            "stripe-signature",
            "accept",
        ] {
            assert!(
                forwardable(&HeaderName::from_static(name), &listed),
                "{name}"
            );
        }
    }
}
