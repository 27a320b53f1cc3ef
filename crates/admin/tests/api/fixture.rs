//! A store with two tenants, their members in every role, and a little of everything in each.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use gatehouse_admin::AdminState;
use gatehouse_store::{Actor, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

pub(crate) const PASSWORD: &str = "owner-password-123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Owner,
    AAdmin,
    ADeveloper,
    AViewer,
    BAdmin,
    /// No credentials at all.
    Nobody,
}

/// Ids of tenant B's things, which must never show up for tenant A.
pub(crate) struct BIds {
    pub(crate) tenant_id: String,
    pub(crate) key_id: String,
    pub(crate) subscription: String,
}

pub(crate) struct Fixture {
    pub(crate) store: Store,
    app: Router,
    tokens: Vec<(Who, String)>,
    pub(crate) b: BIds,
    _dir: Option<PathBuf>,
}

impl Fixture {
    pub(crate) async fn sqlite() -> Self {
        let (store, dir) = gatehouse_store::testing::sqlite().await;
        Self::build(store, Some(dir)).await
    }

    pub(crate) async fn postgres() -> Self {
        Self::build(gatehouse_store::testing::postgres().await, None).await
    }

    async fn build(store: Store, dir: Option<PathBuf>) -> Self {
        let init = Actor("test".into());
        let mut tokens = Vec::new();
        for (who, name, owner) in [
            (Who::Owner, "owner", true),
            (Who::AAdmin, "a-admin", false),
            (Who::ADeveloper, "a-dev", false),
            (Who::AViewer, "a-viewer", false),
            (Who::BAdmin, "b-admin", false),
        ] {
            let pw = if owner { PASSWORD } else { "a-long-password-1" };
            let u = store.create_user(name, pw, owner, &init).await.unwrap();
            let token = format!("gatehouse_admin_test_{name}");
            store
                .create_admin_token(&u, "test", &token, None, &init)
                .await
                .unwrap();
            tokens.push((who, token));
        }
        store
            .create_user("outsider", "a-long-password-1", false, &init)
            .await
            .unwrap();
        let app = gatehouse_admin::router(AdminState {
            store: store.clone(),
            data: None,
        });
        let mut f = Self {
            store,
            app,
            tokens,
            b: BIds {
                tenant_id: String::new(),
                key_id: String::new(),
                subscription: String::new(),
            },
            _dir: dir,
        };
        let setup: Vec<(&str, &str, Value)> = vec![
            ("POST", "/tenants", json!({"name": "a"})),
            ("POST", "/tenants", json!({"name": "b"})),
            (
                "PUT",
                "/tenants/a/members/a-admin",
                json!({"role": "admin"}),
            ),
            (
                "PUT",
                "/tenants/a/members/a-dev",
                json!({"role": "developer"}),
            ),
            (
                "PUT",
                "/tenants/a/members/a-viewer",
                json!({"role": "viewer"}),
            ),
            (
                "PUT",
                "/tenants/b/members/b-admin",
                json!({"role": "admin"}),
            ),
            (
                "POST",
                "/providers",
                json!({"name": "a-llm", "tenant": "a", "kind": "openai", "api_keys": ["sk-a-secret"]}),
            ),
            (
                "POST",
                "/providers",
                json!({"name": "b-llm", "tenant": "b", "kind": "openai", "api_keys": ["sk-b-secret"]}),
            ),
            (
                "POST",
                "/models",
                json!({"name": "a-model", "tenant": "a", "targets": [{"provider": "a-llm", "model": "gpt-4o-mini"}]}),
            ),
            (
                "POST",
                "/models",
                json!({"name": "b-model", "tenant": "b", "targets": [{"provider": "b-llm", "model": "gpt-4o-mini"}]}),
            ),
            (
                "POST",
                "/services",
                json!({"name": "a-svc", "tenant": "a", "state": "published", "requires_approval": true, "models": ["a-model"]}),
            ),
            (
                "POST",
                "/services",
                json!({"name": "b-svc", "tenant": "b", "state": "published", "requires_approval": true, "models": ["b-model"]}),
            ),
            ("POST", "/tenants/a/apps", json!({"name": "a-app"})),
            ("POST", "/tenants/b/apps", json!({"name": "b-app"})),
        ];
        for (method, path, body) in setup {
            let (s, resp) = f.call(Who::Owner, method, path, Some(body)).await;
            assert!(s.is_success(), "setup {method} {path}: {s} {resp}");
            if path == "/tenants" && resp["name"] == "b" {
                f.b.tenant_id = resp["id"].as_str().unwrap().to_owned();
            }
        }
        let (_, key) = f
            .call(
                Who::BAdmin,
                "POST",
                "/tenants/b/apps/b-app/keys",
                Some(json!({"name": "b-key"})),
            )
            .await;
        f.b.key_id = key["id"].as_str().unwrap().to_owned();
        let (_, sub) = f
            .call(
                Who::BAdmin,
                "POST",
                "/tenants/b/apps/b-app/subscriptions",
                Some(json!({"service": "b-svc"})),
            )
            .await;
        f.b.subscription = sub["id"].as_str().unwrap().to_owned();
        f
    }

    fn token(&self, who: Who) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(w, _)| *w == who)
            .map(|(_, t)| t.as_str())
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value, http::HeaderMap) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body, headers)
    }

    fn request(
        &self,
        who: Who,
        method: &str,
        path: &str,
        if_match: Option<&str>,
    ) -> http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("/admin/v1{path}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = self.token(who) {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(m) = if_match {
            b = b.header(header::IF_MATCH, m);
        }
        b
    }

    /// Serves the admin API beside a gateway snapshot of the store (so limiter counters can be
    /// read), as `gatehouse serve` does.
    pub(crate) async fn with_gateway(&mut self) -> gatehouse_gateway::snapshot::Shared {
        let traffic = gatehouse_gateway::limits::Traffic::local();
        let mut settings = gatehouse_gateway::RawConfig::default();
        // The store is this one; the URL only tells validation that there is one.
        settings.server.store = Some("sqlite://fixture".into());
        let snap = gatehouse_gateway::reload::build(
            &self.store,
            &settings,
            &self.store.shared_key(),
            &traffic,
            None,
        )
        .await
        .unwrap();
        let shared = snap.into_shared();
        self.app = gatehouse_admin::router(AdminState {
            store: self.store.clone(),
            data: Some(std::sync::Arc::clone(&shared)),
        });
        shared
    }

    pub(crate) async fn call(
        &self,
        who: Who,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(who, method, path, body, None).await
    }

    pub(crate) async fn call_with(
        &self,
        who: Who,
        method: &str,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let req = self
            .request(who, method, path, if_match)
            .body(body)
            .unwrap();
        let (s, v, _) = self.send(req).await;
        (s, v)
    }

    pub(crate) async fn call_raw(
        &self,
        who: Who,
        method: &str,
        path: &str,
        raw: &str,
    ) -> (StatusCode, Value) {
        let req = self
            .request(who, method, path, None)
            .body(Body::from(raw.to_owned()))
            .unwrap();
        let (s, v, _) = self.send(req).await;
        (s, v)
    }

    pub(crate) async fn etag(&self, who: Who, path: &str) -> String {
        let req = self
            .request(who, "GET", path, None)
            .body(Body::empty())
            .unwrap();
        let (_, _, h) = self.send(req).await;
        h.get(header::ETAG).unwrap().to_str().unwrap().to_owned()
    }

    pub(crate) async fn anonymous(
        &self,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(Who::Nobody, method, path, Some(body)).await
    }

    pub(crate) async fn anonymous_get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Who::Nobody, "GET", path, None).await
    }

    pub(crate) async fn anonymous_text(&self, path: &str) -> (StatusCode, String) {
        let (s, v) = self.anonymous_get(path).await;
        (s, v.as_str().unwrap_or_default().to_owned())
    }

    /// Logs in and returns the session cookie (`name=value`).
    pub(crate) async fn login(&self, username: &str, password: &str) -> String {
        let req = self
            .request(Who::Nobody, "POST", "/login", None)
            .body(Body::from(
                json!({"username": username, "password": password}).to_string(),
            ))
            .unwrap();
        let (s, _, h) = self.send(req).await;
        assert_eq!(s, StatusCode::OK);
        let set = h.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Strict")
        );
        set.split(';').next().unwrap().to_owned()
    }

    pub(crate) async fn with_cookie(
        &self,
        method: &str,
        path: &str,
        cookie: &str,
    ) -> (StatusCode, Value) {
        let req = self
            .request(Who::Nobody, method, path, None)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let (s, v, _) = self.send(req).await;
        (s, v)
    }
}
