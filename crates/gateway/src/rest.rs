//! The REST gateway: `/s/{service}/…` proxied to a REST service's upstream nodes.
//!
//! A call is authenticated and authorised like an AI call (the key's app needs an approved
//! subscription to the service, or the service is its tenant's), counted by the policies that
//! apply to the service, matched to the first route whose prefix and methods fit, and sent to the
//! service's nodes in weighted order, passing over ejected ones. Idempotent methods (GET, HEAD,
//! OPTIONS, PUT, DELETE) move on to the next node when one cannot be reached or answers 502, 503
//! or 504; others are sent once. The request body is read (bounded by `server.max_body`) so a
//! retry can resend it; the response body streams back as it comes. The client's `Authorization`
//! (its Gatehouse key) never reaches the upstream; hop-by-hop headers are dropped and
//! `x-forwarded-host` and `x-forwarded-proto` added.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::config::{Lifecycle, RawRoute, RawService, ServiceKind};
use crate::error::GatewayError;
use crate::health::{Outcome, TargetHealth};

/// One upstream node of a REST service.
#[derive(Debug)]
pub struct Node {
    pub url: String,
    pub weight: u32,
    pub health: Arc<TargetHealth>,
}

/// A REST service ready to proxy.
#[derive(Debug)]
pub struct RestService {
    pub name: String,
    pub nodes: Vec<Node>,
    pub routes: Vec<RawRoute>,
    client: reqwest::Client,
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

impl RestService {
    /// The callable REST services of a config (`published` or `deprecated`).
    pub fn build_all(services: &[RawService]) -> Vec<RestService> {
        services
            .iter()
            .filter(|s| s.kind == ServiceKind::Rest && s.state.callable())
            .filter(|s| s.state != Lifecycle::Retired)
            .map(|s| RestService {
                name: s.name.clone(),
                nodes: s
                    .upstreams
                    .iter()
                    .map(|u| Node {
                        url: u.url.trim_end_matches('/').to_owned(),
                        weight: u.weight,
                        health: Arc::default(),
                    })
                    .collect(),
                routes: s.routes.clone(),
                client: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .tcp_nodelay(true)
                    .build()
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The route for a path (under the service) and method.
    pub fn route(&self, path: &str, method: &Method) -> Result<&RawRoute, GatewayError> {
        let mut path_matched = false;
        for r in &self.routes {
            let prefix = r.path.trim_end_matches('/');
            let hit =
                path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty();
            if !hit {
                continue;
            }
            path_matched = true;
            if r.methods.is_empty()
                || r.methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(method.as_str()))
            {
                return Ok(r);
            }
        }
        Err(if path_matched {
            GatewayError::InvalidRequest(format!(
                "service `{}` does not allow {method} on {path}",
                self.name
            ))
        } else {
            GatewayError::RouteNotFound {
                method: method.to_string(),
                path: format!("/s/{}{path}", self.name),
            }
        })
    }

    /// The nodes in weighted random order, available ones first.
    fn order(&self) -> Vec<&Node> {
        let mut pool: Vec<&Node> = self.nodes.iter().filter(|n| n.weight > 0).collect();
        let mut out = Vec::with_capacity(pool.len());
        while !pool.is_empty() {
            let total: u64 = pool.iter().map(|n| u64::from(n.weight)).sum();
            let mut r = fastrand::u64(0..total.max(1));
            let i = pool
                .iter()
                .position(|n| {
                    let w = u64::from(n.weight);
                    if r < w {
                        true
                    } else {
                        r -= w;
                        false
                    }
                })
                .unwrap_or(0);
            out.push(pool.remove(i));
        }
        out.sort_by_key(|n| !n.health.available());
        out
    }

    /// Sends the call to the service's nodes; returns the upstream response and attempts made.
    pub async fn forward(
        &self,
        route: &RawRoute,
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: bytes::Bytes,
    ) -> (Result<Response, GatewayError>, u32) {
        let prefix = route.path.trim_end_matches('/');
        let rest = path.strip_prefix(prefix).unwrap_or(path);
        let upstream_path = match &route.rewrite {
            Some(r) => format!("{}{rest}", r.trim_end_matches('/')),
            None => path.to_owned(),
        };
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        let order = self.order();
        let mut attempts = 0;
        let mut last_err = GatewayError::UpstreamUnreachable {
            provider: self.name.clone(),
            message: "the service has no upstream node".into(),
        };
        for (i, node) in order.iter().enumerate() {
            let last = i + 1 == order.len() || !idempotent;
            attempts += 1;
            let mut url = format!("{}{upstream_path}", node.url);
            if let Some(q) = query {
                url.push('?');
                url.push_str(q);
            }
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                let name = k.as_str();
                if name == "authorization" || HOP_BY_HOP.contains(&name) {
                    continue;
                }
                if route
                    .remove_headers
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                h.append(k.clone(), v.clone());
            }
            for (k, v) in &route.add_headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    h.insert(k, v);
                }
            }
            if let Some(host) = headers.get(http::header::HOST) {
                h.insert("x-forwarded-host", host.clone());
            }
            h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
            let sent = self
                .client
                .request(method.clone(), &url)
                .headers(h)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Err(e) => {
                    node.health.record(Outcome::Failure);
                    last_err = GatewayError::UpstreamUnreachable {
                        provider: format!("{} ({})", self.name, node.url),
                        message: e.to_string(),
                    };
                    if !last {
                        continue;
                    }
                    return (Err(last_err), attempts);
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    node.health.record(match status {
                        502..=504 => Outcome::Failure,
                        _ => Outcome::Success,
                    });
                    if matches!(status, 502..=504) && !last {
                        continue;
                    }
                    return (Ok(relay(resp)), attempts);
                }
            }
        }
        (Err(last_err), attempts)
    }
}

/// The upstream response, its body streamed, hop-by-hop headers dropped.
fn relay(resp: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !HOP_BY_HOP.contains(&k.as_str()) && k.as_str() != "content-length" {
            headers.append(k.clone(), v.clone());
        }
    }
    let mut out = Response::new(Body::from_stream(resp.bytes_stream()));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}
