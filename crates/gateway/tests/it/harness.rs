//! Starts a mock upstream and a gateway in-process, on ephemeral ports.

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_gateway::{RawConfig, Snapshot};
use gatehouse_mock::MockConfig;
use serde_json::Value;
use tokio::sync::oneshot;

pub(crate) const KEY: &str = "test-client-key-0123456789";

pub(crate) struct Env {
    pub(crate) base: String,
    pub(crate) mock: SocketAddr,
    pub(crate) http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

/// A gateway whose providers `p-openai`, `p-anthropic`, `p-gemini` point at one mock, plus
/// `extra_providers` (YAML list items, `{mock}` replaced by the mock's address) and `server`.
pub(crate) async fn start(extra_providers: &[&str], server: &str) -> Env {
    start_with(extra_providers, server, "").await
}

/// Like `start`, with `extra` YAML appended (more models under `models:`, `policies:`…).
pub(crate) async fn start_with(extra_providers: &[&str], server: &str, extra: &str) -> Env {
    let mock_cfg = MockConfig {
        expect_key: Some("upstream-key".into()),
        ..MockConfig::default()
    };
    let mock = gatehouse_mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), mock_cfg)
        .await
        .unwrap();
    let mut providers = vec![
        "{ name: p-openai, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key] }".to_owned(),
        "{ name: p-anthropic, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key] }".to_owned(),
        "{ name: p-gemini, kind: gemini, base_url: 'http://{mock}/v1beta', api_keys: [upstream-key] }".to_owned(),
    ];
    providers.extend(extra_providers.iter().map(|p| (*p).to_owned()));
    let providers: String = providers
        .iter()
        .map(|p| format!("  - {}\n", p.replace("{mock}", &mock.to_string())))
        .collect();
    let yaml = format!(
        "server: {{ {server} }}\nkeys: [{{ name: tester, key: {KEY} }}]\nproviders:\n{providers}models:\n  \
         - {{ name: gpt, targets: [{{ provider: p-openai, model: gpt-4o-mini }}] }}\n  \
         - {{ name: claude, targets: [{{ provider: p-anthropic, model: claude-sonnet-4-5 }}] }}\n  \
         - {{ name: gemini, targets: [{{ provider: p-gemini, model: gemini-2.5-flash }}] }}\n"
    );
    // Extra models join the list above; other sections follow it.
    let extra = extra.replacen("models:\n", "", 1);
    let yaml = format!("{yaml}{extra}");
    let cfg = RawConfig::parse(&yaml, &|_| None)
        .unwrap()
        .validate()
        .unwrap();
    let snap = Snapshot::build(cfg).unwrap().into_shared();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(gatehouse_gateway::server::serve(
        listener,
        snap,
        Duration::from_secs(5),
        async {
            let _ = rx.await;
        },
    ));
    Env {
        base: format!("http://{addr}/v1"),
        mock,
        http: reqwest::Client::new(),
        _stop: tx,
    }
}

impl Env {
    pub(crate) fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .json(body)
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(KEY)
    }

    pub(crate) async fn chat(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self.post("/chat/completions", &body).send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let json = resp.json::<Value>().await.unwrap();
        (status, headers, json)
    }

    /// Sends a streamed chat call and returns each `data:` payload in order.
    pub(crate) async fn stream(&self, body: Value) -> Vec<String> {
        let resp = self.post("/chat/completions", &body).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        let text = resp.text().await.unwrap();
        data_lines(&text)
    }

    pub(crate) async fn mock_stats(&self) -> Value {
        reqwest::get(format!("http://{}/mock/stats", self.mock))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub(crate) fn data_lines(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

pub(crate) fn user(text: &str) -> Value {
    serde_json::json!([{ "role": "user", "content": text }])
}

pub(crate) fn weather_tool() -> Value {
    serde_json::json!([{ "type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": { "type": "object", "properties": {
            "city": { "type": "string" }, "days": { "type": "integer" } }, "required": ["city"] } } }])
}
