//! The upstream HTTP client: one pooled client per provider, its key pool and timeouts.
//!
//! Each provider gets its own `reqwest::Client` (rustls, HTTP/1.1 and HTTP/2 by ALPN, keep-alive
//! pool) so that its connect timeout and pool are its own. The first-byte timeout bounds the wait
//! for response headers; the idle and total timeouts are applied while the body is read, by
//! `read_body` here and by the stream driver in `stream.rs`.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::Provider;
use crate::error::GatewayError;
use crate::providers::Endpoints;
use crate::snapshot::SnapshotError;

/// A provider ready to be called.
#[derive(Debug)]
pub struct Upstream {
    pub cfg: Provider,
    pub client: reqwest::Client,
    pub endpoints: Endpoints,
    /// How many calls the provider takes at once, when it is adaptive.
    pub adaptive: Option<std::sync::Arc<crate::adaptive::Adaptive>>,
    /// The provider's API keys and what it said of each.
    pub keys: crate::key_pool::KeyPool,
}

impl Upstream {
    pub fn new(cfg: Provider) -> Result<Self, SnapshotError> {
        let endpoints =
            Endpoints::new(cfg.kind, &cfg.base_url).map_err(|source| SnapshotError::Url {
                provider: cfg.name.clone(),
                source,
            })?;
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| SnapshotError::Client {
                provider: cfg.name.clone(),
                source,
            })?;
        Ok(Self {
            adaptive: cfg.adaptive.map(crate::adaptive::Adaptive::new),
            keys: crate::key_pool::KeyPool::new(&cfg.api_keys),
            cfg,
            client,
            endpoints,
        })
    }

    /// Sends a request and waits for the response headers, bounded by the first-byte timeout.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GatewayError> {
        match tokio::time::timeout(self.cfg.timeouts.first_byte, req.send()).await {
            Err(_) => Err(GatewayError::UpstreamTimeout {
                provider: self.cfg.name.clone(),
                what: "no response headers within timeouts.first_byte",
            }),
            Ok(Err(e)) => Err(self.transport_error(&e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Reads a whole body, bounded by the idle timeout between chunks and the total deadline.
    pub async fn read_body(
        &self,
        mut resp: reqwest::Response,
        deadline: Instant,
    ) -> Result<Bytes, GatewayError> {
        let mut buf = Vec::new();
        loop {
            let idle = Instant::now() + self.cfg.timeouts.idle;
            let (until, what) = if idle < deadline {
                (idle, "no body bytes within timeouts.idle")
            } else {
                (deadline, "the response took longer than timeouts.total")
            };
            match tokio::time::timeout_at(until, resp.chunk()).await {
                Err(_) => {
                    return Err(GatewayError::UpstreamTimeout {
                        provider: self.cfg.name.clone(),
                        what,
                    })
                }
                Ok(Err(e)) => {
                    return Err(GatewayError::UpstreamBroken {
                        provider: self.cfg.name.clone(),
                        message: root_cause(&e),
                    })
                }
                Ok(Ok(None)) => return Ok(Bytes::from(buf)),
                Ok(Ok(Some(chunk))) => buf.extend_from_slice(&chunk),
            }
        }
    }

    /// A transport failure as the client should see it: unreachable, timed out, or cut.
    pub fn transport_error(&self, e: &reqwest::Error) -> GatewayError {
        let provider = self.cfg.name.clone();
        if e.is_timeout() {
            GatewayError::UpstreamTimeout {
                provider,
                what: "timeouts.connect",
            }
        } else if e.is_connect() {
            GatewayError::UpstreamUnreachable {
                provider,
                message: root_cause(e),
            }
        } else {
            GatewayError::UpstreamBroken {
                provider,
                message: root_cause(e),
            }
        }
    }
}

/// The innermost cause of an error, which is the part that names the problem.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
