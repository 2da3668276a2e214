//! Forwarding a request to the service that owns its route.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use polyclinic_auth::{AuthError, Principal, authenticate};
use polyclinic_http::client_address::limit_key;
use polyclinic_http::{ApiError, ClientAddress, REQUEST_ID_HEADER, RequestId};

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

/// The largest answer passed on whole rather than streamed.
const WHOLE_BODY_LIMIT: u64 = 256 * 1024;

fn forwardable(name: &HeaderName, connection_listed: &[String]) -> bool {
    let name = name.as_str();
    !HOP_BY_HOP.contains(&name)
        && !SPOOFABLE_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        && !connection_listed.iter().any(|listed| listed == name)
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
    let url = state
        .upstream_url(rule.service, parts.uri.path(), parts.uri.query())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!("The {} service cannot be reached.", rule.service),
            )
        })?;

    let listed = connection_listed(&parts.headers);
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 3);
    for (name, value) in &parts.headers {
        if forwardable(name, &listed) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    // The address as the gateway resolved it (the peer, or what its trusted proxies said):
    // the services trust the gateway's word, and only its.
    headers.insert("x-forwarded-for", forwarded_for(client));
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(state.public_scheme),
    );

    let head = parts.method == axum::http::Method::HEAD;
    let upstream = state
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .timeout(state.upstream_timeout)
        .send()
        .await
        .map_err(|err| upstream_error(rule, err, state.upstream_timeout))?;

    let status = upstream.status();
    let listed = connection_listed(upstream.headers());
    let mut response_headers = HeaderMap::with_capacity(upstream.headers().len());
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(&name.as_str())
            && !listed.iter().any(|l| l == name.as_str())
            && name != "content-length"
        {
            response_headers.append(name.clone(), value.clone());
        }
    }
    // An answer of known, modest size is passed on whole: its head and body leave in one
    // write, with its length. Anything else (large, or of unknown length) streams through.
    let body = match upstream.content_length() {
        Some(length) if length <= WHOLE_BODY_LIMIT && !head => Body::from(
            upstream
                .bytes()
                .await
                .map_err(|err| upstream_error(rule, err, state.upstream_timeout))?,
        ),
        _ => Body::from_stream(upstream.bytes_stream()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    Ok(response)
}

fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The answer to a request the upstream did not answer. The logged error leaves out the URL:
/// a path may hold a credential (a calendar feed's secret).
fn upstream_error(rule: Rule, err: reqwest::Error, timeout: Duration) -> ApiError {
    let service = rule.service;
    let err = err.without_url();
    if err.is_timeout() {
        tracing::warn!(%service, error = %err, "upstream timed out");
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!(
                "The {service} service did not answer within {} s.",
                timeout.as_secs()
            ),
        )
    } else {
        tracing::warn!(%service, error = %err, "upstream unreachable");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            format!("The {service} service cannot be reached."),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
