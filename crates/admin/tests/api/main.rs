//! The admin API end to end over its router: roles, tenant isolation, concurrency, validation,
//! file-managed resources, audit, declarative apply/export, and the OpenAPI document.

#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod fixture;

use axum::http::StatusCode;
use fixture::{Fixture, Who};
use gatehouse_admin::apply::{self, Action};
use gatehouse_gateway::RawConfig;
use gatehouse_store::Actor;
use serde_json::{json, Value};

/// Every endpoint, called by members of tenant A (each role) against tenant B's resources,
/// answers 403 or 404 and shows nothing of B.
#[tokio::test]
async fn tenant_a_cannot_see_or_touch_tenant_b() {
    let f = Fixture::sqlite().await;
    let b = &f.b;
    // A call of B's, in its records and rollups.
    let b_call = gatehouse_store::CallRecord {
        id: gatehouse_store::ids::new_id("cal_"),
        request_id: "req-b".into(),
        at: gatehouse_store::ids::now_ms(),
        tenant_id: Some(b.tenant_id.clone()),
        key_id: "gatehouse_bkey".into(),
        surface: "chat".into(),
        dialect: "openai".into(),
        model_asked: "b-model".into(),
        status: 200,
        request_body: Some("sk-b-secret".into()),
        ..Default::default()
    };
    f.store
        .insert_calls(std::slice::from_ref(&b_call))
        .await
        .unwrap();
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/calls/{}", b_call.id), None),
        ("GET", "/calls?tenant=b".into(), None),
        ("GET", "/calls/export?tenant=b".into(), None),
        ("GET", "/analytics/totals?tenant=b".into(), None),
        ("GET", "/analytics/series?tenant=b".into(), None),
        ("GET", "/analytics/top?by=model&tenant=b".into(), None),
        ("GET", "/tenants/b".into(), None),
        (
            "PUT",
            "/tenants/b".into(),
            Some(json!({"name": "b", "description": "mine"})),
        ),
        ("DELETE", "/tenants/b".into(), None),
        ("GET", "/tenants/b/members".into(), None),
        (
            "PUT",
            "/tenants/b/members/a-admin".into(),
            Some(json!({"role": "admin"})),
        ),
        ("DELETE", "/tenants/b/members/b-admin".into(), None),
        ("GET", "/tenants/b/apps".into(), None),
        (
            "POST",
            "/tenants/b/apps".into(),
            Some(json!({"name": "intruder"})),
        ),
        ("GET", "/tenants/b/apps/b-app".into(), None),
        (
            "PUT",
            "/tenants/b/apps/b-app".into(),
            Some(json!({"name": "b-app"})),
        ),
        ("DELETE", "/tenants/b/apps/b-app".into(), None),
        ("GET", "/tenants/b/apps/b-app/keys".into(), None),
        (
            "POST",
            "/tenants/b/apps/b-app/keys".into(),
            Some(json!({"name": "k"})),
        ),
        (
            "GET",
            format!("/tenants/b/apps/b-app/keys/{}", b.key_id),
            None,
        ),
        (
            "DELETE",
            format!("/tenants/b/apps/b-app/keys/{}", b.key_id),
            None,
        ),
        (
            "POST",
            format!("/tenants/b/apps/b-app/keys/{}/rotate", b.key_id),
            Some(json!({})),
        ),
        ("GET", "/tenants/b/apps/b-app/subscriptions".into(), None),
        (
            "POST",
            "/tenants/b/apps/b-app/subscriptions".into(),
            Some(json!({"service": "b-svc"})),
        ),
        ("GET", "/providers/b-llm".into(), None),
        (
            "PUT",
            "/providers/b-llm".into(),
            Some(json!({"name": "b-llm", "kind": "openai", "tenant": "b"})),
        ),
        ("DELETE", "/providers/b-llm".into(), None),
        (
            "POST",
            "/providers".into(),
            Some(json!({"name": "x", "kind": "openai", "tenant": "b", "api_keys": ["k"]})),
        ),
        ("GET", "/models/b-model".into(), None),
        (
            "PUT",
            "/models/b-model".into(),
            Some(
                json!({"name": "b-model", "tenant": "b", "targets": [{"provider": "b-llm", "model": "m"}]}),
            ),
        ),
        ("DELETE", "/models/b-model".into(), None),
        ("GET", "/services/b-svc".into(), None),
        (
            "PUT",
            "/services/b-svc".into(),
            Some(json!({"name": "b-svc", "tenant": "b"})),
        ),
        ("DELETE", "/services/b-svc".into(), None),
        ("GET", format!("/subscriptions/{}", b.subscription), None),
        (
            "POST",
            format!("/subscriptions/{}/approve", b.subscription),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/subscriptions/{}/reject", b.subscription),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/subscriptions/{}/revoke", b.subscription),
            Some(json!({})),
        ),
        ("GET", "/audit?tenant=b".into(), None),
        ("GET", "/providers?tenant=b".into(), None),
        ("GET", "/models?tenant=b".into(), None),
        ("GET", "/services?tenant=b".into(), None),
    ];
    let secrets = [
        b.tenant_id.as_str(),
        b.key_id.as_str(),
        b.subscription.as_str(),
        "b-llm",
        "b-model",
        "b-app",
        "sk-b-secret",
    ];
    for who in [Who::AAdmin, Who::ADeveloper, Who::AViewer] {
        for (method, path, body) in &calls {
            let (status, resp) = f.call(who, method, path, body.clone()).await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
                "{who:?} {method} {path}: {status} {resp}"
            );
            // Nothing of B that the caller did not name itself.
            let asked = format!(
                "{path} {}",
                body.as_ref().map(Value::to_string).unwrap_or_default()
            );
            let text = resp.to_string();
            for s in secrets.iter().filter(|s| !asked.contains(**s)) {
                assert!(
                    !text.contains(s),
                    "{who:?} {method} {path} leaks {s}: {text}"
                );
            }
        }
        // Unfiltered lists show only A's things.
        for path in [
            "/tenants",
            "/providers",
            "/models",
            "/services",
            "/subscriptions",
            "/audit",
            "/catalog",
            "/calls",
            "/calls/export",
            "/calls/export?format=csv",
            "/analytics/totals?group_by=tenant,model,key",
            "/analytics/series?group_by=model",
            "/analytics/top?by=model",
        ] {
            let (status, resp) = f.call(who, "GET", path, None).await;
            assert_eq!(status, StatusCode::OK, "{who:?} {path}");
            let text = resp.to_string();
            for s in secrets {
                assert!(!text.contains(s), "{who:?} GET {path} leaks {s}: {text}");
            }
        }
    }
    // B's own admin sees them (the matrix is not vacuous).
    let (status, resp) = f
        .call(Who::BAdmin, "GET", &format!("/calls/{}", b_call.id), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (_, resp) = f
        .call(Who::BAdmin, "GET", "/analytics/top?by=model", None)
        .await;
    assert_eq!(resp["items"][0]["group"]["model"], "b-model", "{resp}");
    let (status, resp) = f.call(Who::BAdmin, "GET", "/providers/b-llm", None).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["api_keys"], json!(["…cret"]));
}

/// What each role may do in its own tenant.
#[tokio::test]
async fn each_role_may_do_what_its_role_allows() {
    use Who::{AAdmin as Adm, ADeveloper as Dev, AViewer as View};
    let f = Fixture::sqlite().await;
    // (method, path, body, [viewer, developer, admin] allowed?)
    let n = |i: usize| format!("x{i}");
    let mut i = 0;
    let mut next = || {
        i += 1;
        n(i)
    };
    let matrix: Vec<(&str, String, Option<Value>, [bool; 3])> = vec![
        ("GET", "/tenants/a".into(), None, [true, true, true]),
        (
            "GET",
            "/tenants/a/apps/a-app".into(),
            None,
            [true, true, true],
        ),
        (
            "GET",
            "/tenants/a/apps/a-app/keys".into(),
            None,
            [true, true, true],
        ),
        ("GET", "/tenants/a/members".into(), None, [true, true, true]),
        ("GET", "/audit?tenant=a".into(), None, [true, true, true]),
        ("GET", "/services/a-svc".into(), None, [true, true, true]),
        (
            "POST",
            "/tenants/a/apps".into(),
            Some(json!({"name": "app-VAR"})),
            [false, true, true],
        ),
        (
            "POST",
            "/tenants/a/apps/a-app/keys".into(),
            Some(json!({"name": "k"})),
            [false, true, true],
        ),
        (
            "POST",
            "/providers".into(),
            Some(json!({"name": "p-VAR", "tenant": "a", "kind": "openai", "api_keys": ["sk-1"]})),
            [false, false, true],
        ),
        (
            "POST",
            "/models".into(),
            Some(
                json!({"name": "m-VAR", "tenant": "a", "targets": [{"provider": "a-llm", "model": "x"}]}),
            ),
            [false, false, true],
        ),
        (
            "POST",
            "/services".into(),
            Some(json!({"name": "s-VAR", "tenant": "a"})),
            [false, false, true],
        ),
        (
            "PUT",
            "/tenants/a/members/outsider".into(),
            Some(json!({"role": "viewer"})),
            [false, false, true],
        ),
        (
            "PUT",
            "/tenants/a".into(),
            Some(json!({"name": "a", "description": "VAR"})),
            [false, false, true],
        ),
        (
            "POST",
            "/tenants".into(),
            Some(json!({"name": "t-VAR"})),
            [false, false, false],
        ),
        ("GET", "/users".into(), None, [false, false, false]),
        (
            "POST",
            "/users".into(),
            Some(json!({"username": "u-VAR"})),
            [false, false, false],
        ),
        (
            "POST",
            "/providers".into(),
            Some(json!({"name": "i-VAR", "kind": "openai", "api_keys": ["sk-1"]})),
            [false, false, false],
        ),
    ];
    for (method, path, body, allowed) in matrix {
        for (who, ok) in [(View, allowed[0]), (Dev, allowed[1]), (Adm, allowed[2])] {
            let body = body.clone().map(|b| {
                serde_json::from_str::<Value>(&b.to_string().replace("VAR", &next())).unwrap()
            });
            let (status, resp) = f.call(who, method, &path, body).await;
            if ok {
                assert!(
                    status.is_success(),
                    "{who:?} {method} {path} should pass: {status} {resp}"
                );
            } else {
                assert!(
                    status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
                    "{who:?} {method} {path} should be refused: {status} {resp}"
                );
            }
        }
    }
    // Approving needs an admin of the service's tenant: A's developer asks, A's roles decide.
    let (s, sub) = f
        .call(
            Dev,
            "POST",
            "/tenants/a/apps/a-app/subscriptions",
            Some(json!({"service": "a-svc"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["state"], "pending");
    let id = sub["id"].as_str().unwrap();
    for who in [View, Dev] {
        let (s, _) = f
            .call(
                who,
                "POST",
                &format!("/subscriptions/{id}/approve"),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who:?}");
    }
    let (s, done) = f
        .call(
            Adm,
            "POST",
            &format!("/subscriptions/{id}/approve"),
            Some(json!({"reason": "fine"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(
        (done["state"].as_str(), done["decided_by"].as_str()),
        (Some("approved"), Some("a-admin"))
    );
}

#[tokio::test]
async fn concurrent_edits_do_not_overwrite_each_other() {
    let f = Fixture::sqlite().await;
    let (s, _) = f.call(Who::Owner, "GET", "/models/a-model", None).await;
    assert_eq!(s, StatusCode::OK);
    let etag = f.etag(Who::Owner, "/models/a-model").await;
    let body = json!({"name": "a-model", "tenant": "a", "targets": [{"provider": "a-llm", "model": "v2"}]});
    let (s, first) = f
        .call_with(
            Who::Owner,
            "PUT",
            "/models/a-model",
            Some(body.clone()),
            Some(&etag),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let (s, second) = f
        .call_with(
            Who::Owner,
            "PUT",
            "/models/a-model",
            Some(body),
            Some(&etag),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{second}");
    assert!(
        second["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revision 2"),
        "{second}"
    );
    assert_eq!(second["error"]["code"], "stale_revision");
    let (s, _) = f
        .call_with(Who::Owner, "DELETE", "/models/a-model", None, Some(&etag))
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn bad_bodies_get_field_paths_and_broken_references_are_refused() {
    let f = Fixture::sqlite().await;
    let (s, e) = f
        .call(
            Who::Owner,
            "POST",
            "/models",
            Some(json!({"name": "m", "targets": [{"provider": "nope", "model": "x"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["fields"][0]["path"], "targets[0].provider");
    let (s, e) = f
        .call(
            Who::Owner,
            "POST",
            "/providers",
            Some(json!({"name": "p", "kind": "opanai"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["fields"][0]["path"], "kind");
    let (s, e) = f
        .call(Who::Owner, "POST", "/tenants", Some(json!({"name": "a"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    // Deleting a provider that a model still targets would break the model.
    let (s, e) = f.call(Who::Owner, "DELETE", "/providers/a-llm", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model `a-model`"),
        "{e}"
    );
    // A tenant's model cannot use another tenant's provider.
    let (s, e) = f
        .call(Who::Owner, "POST", "/models", Some(json!({"name": "m", "tenant": "a", "targets": [{"provider": "b-llm", "model": "x"}]})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    // Lifecycle runs forward.
    let (s, e) = f
        .call(
            Who::Owner,
            "PUT",
            "/services/a-svc",
            Some(json!({"name": "a-svc", "tenant": "a", "models": ["a-model"], "state": "draft"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["fields"][0]["path"], "state");
    let (s, e) = f
        .call_raw(Who::Owner, "POST", "/tenants", "{not json")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], "bad_request");
}

#[tokio::test]
async fn credentials_stay_masked_and_survive_a_round_trip() {
    let f = Fixture::sqlite().await;
    let (_, p) = f.call(Who::Owner, "GET", "/providers/a-llm", None).await;
    assert_eq!(p["api_keys"], json!(["…cret"]));
    // PUT back what GET gave: the stored key is kept.
    let mut body = p.clone();
    body["default_max_tokens"] = json!(1000);
    let (s, _) = f
        .call(Who::Owner, "PUT", "/providers/a-llm", Some(body))
        .await;
    assert_eq!(s, StatusCode::OK);
    let stored = gatehouse_gateway::stored::load(&f.store).await.unwrap();
    let prov = stored
        .config
        .providers
        .iter()
        .find(|p| p.name == "a-llm")
        .unwrap();
    assert_eq!(prov.api_keys, ["sk-a-secret"]);
    assert_eq!(prov.default_max_tokens, Some(1000));
    // The audit log has the change, the secret masked.
    let (_, log) = f.call(Who::AAdmin, "GET", "/audit?tenant=a", None).await;
    let text = log.to_string();
    assert!(text.contains("\"action\":\"update\""), "{text}");
    assert!(!text.contains("sk-a-secret"), "{text}");
    assert!(text.contains("[redacted]"));
}

#[tokio::test]
async fn file_managed_resources_cannot_be_edited_through_the_api() {
    let f = Fixture::sqlite().await;
    let doc = RawConfig::parse(
        "tenants: [{name: filed}]\nproviders: [{name: file-llm, kind: openai, api_keys: [sk-file]}]\n",
        &|_| None,
    )
    .unwrap();
    let opts = apply::Options {
        prune: true,
        dry_run: false,
        managed_by: Some("file".into()),
        actor: Actor("gatehouse.yaml".into()),
    };
    apply::apply(&f.store, &doc, &opts).await.unwrap();
    let (s, e) = f
        .call(
            Who::Owner,
            "PUT",
            "/providers/file-llm",
            Some(json!({"name": "file-llm", "kind": "anthropic"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], "file_managed");
    let (s, _) = f.call(Who::Owner, "DELETE", "/tenants/filed", None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // `gatehouse apply` (not file-managed) refuses them too.
    let cli = apply::Options {
        managed_by: None,
        ..opts.clone()
    };
    assert!(matches!(
        apply::apply(&f.store, &doc, &cli).await,
        Err(apply::ApplyError::FileManaged(_))
    ));
    // The file's own apply prunes what the file dropped, and only that.
    let steps = apply::apply(&f.store, &RawConfig::default(), &opts)
        .await
        .unwrap();
    let deleted: Vec<_> = steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(deleted, ["filed", "file-llm"]);
    let (s, _) = f.call(Who::Owner, "GET", "/tenants/a", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn apply_and_export_round_trip() {
    let f = Fixture::sqlite().await;
    let doc = RawConfig::parse(
        r#"
tenants: [{name: shop, description: "the shop team"}]
providers:
  - {name: shop-llm, tenant: shop, kind: openai_compatible, base_url: "http://127.0.0.1:1/v1"}
models:
  - {name: shop-chat, tenant: shop, targets: [{provider: shop-llm, model: llama}]}
services:
  - {name: shop-api, tenant: shop, state: published, visibility: shared, requires_approval: true, models: [shop-chat]}
apps:
  - {name: storefront, tenant: shop}
"#,
        &|_| None,
    )
    .unwrap();
    let opts = apply::Options {
        prune: false,
        dry_run: true,
        managed_by: None,
        actor: Actor("test".into()),
    };
    let plan = apply::apply(&f.store, &doc, &opts).await.unwrap();
    assert!(plan.iter().all(|s| s.action == Action::Create), "{plan:?}");
    assert!(
        gatehouse_gateway::stored::load(&f.store)
            .await
            .unwrap()
            .row(gatehouse_store::Kind::Tenant, None, "shop")
            .is_none(),
        "dry run"
    );
    let real = apply::Options {
        dry_run: false,
        ..opts.clone()
    };
    apply::apply(&f.store, &doc, &real).await.unwrap();
    let again = apply::apply(&f.store, &doc, &real).await.unwrap();
    assert!(
        again.iter().all(|s| s.action == Action::Unchanged),
        "idempotent: {again:?}"
    );

    // Export, then apply the export: nothing changes (masked credentials are kept).
    let exported = apply::export(&f.store, false).await.unwrap();
    let text = serde_norway::to_string(&exported).unwrap();
    assert!(
        !text.contains("sk-a-secret") && text.contains("…cret"),
        "{text}"
    );
    let back = RawConfig::parse(&text, &|_| None).unwrap();
    let steps = apply::apply(&f.store, &back, &real).await.unwrap();
    assert!(
        steps.iter().all(|s| s.action == Action::Unchanged),
        "{steps:?}"
    );

    // Prune removes what the document no longer names.
    let mut smaller = doc.clone();
    smaller.apps.clear();
    let pruned = apply::apply(
        &f.store,
        &smaller,
        &apply::Options {
            prune: true,
            ..real.clone()
        },
    )
    .await
    .unwrap();
    let deleted: Vec<_> = pruned
        .iter()
        .filter(|s| s.action == Action::Delete)
        .map(|s| s.name.clone())
        .collect();
    assert!(
        deleted.contains(&"shop/storefront".to_owned()),
        "{deleted:?}"
    );
    assert!(
        deleted.contains(&"a".to_owned()),
        "prune covers everything not named: {deleted:?}"
    );

    // An invalid document changes nothing and names the problem.
    let bad = RawConfig::parse(
        "models: [{name: x, targets: [{provider: ghost, model: y}]}]",
        &|_| None,
    )
    .unwrap();
    let err = apply::apply(&f.store, &bad, &real)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("model `x`") && err.contains("ghost"), "{err}");
}

#[tokio::test]
async fn keys_are_shown_once_and_rotate_with_an_overlap() {
    let f = Fixture::sqlite().await;
    let (s, k) = f
        .call(
            Who::ADeveloper,
            "POST",
            "/tenants/a/apps/a-app/keys",
            Some(json!({"name": "ci", "expires_in": "30d", "scopes": ["a-svc"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let secret = k["key"].as_str().unwrap();
    assert!(secret.starts_with("gatehouse_"));
    let id = k["id"].as_str().unwrap();
    let (_, list) = f
        .call(Who::AViewer, "GET", "/tenants/a/apps/a-app/keys", None)
        .await;
    assert!(!list.to_string().contains(secret), "never shown again");
    let (s, r) = f
        .call(
            Who::ADeveloper,
            "POST",
            &format!("/tenants/a/apps/a-app/keys/{id}/rotate"),
            Some(json!({"overlap": "1h"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["replaces"], id);
    let (_, old) = f
        .call(
            Who::AViewer,
            "GET",
            &format!("/tenants/a/apps/a-app/keys/{id}"),
            None,
        )
        .await;
    assert_eq!(old["status"], "active");
    assert!(old["expires_at"].is_string());
    let (s, e) = f
        .call(
            Who::ADeveloper,
            "POST",
            "/tenants/a/apps/a-app/keys",
            Some(json!({"name": "x", "scopes": ["ghost"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["fields"][0]["path"], "scopes[0]");
}

#[tokio::test]
async fn sessions_and_tokens_sign_in_and_out() {
    let f = Fixture::sqlite().await;
    let (s, _) = f
        .anonymous(
            "POST",
            "/login",
            json!({"username": "owner", "password": "wrong"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let cookie = f.login("owner", fixture::PASSWORD).await;
    let (s, me) = f.with_cookie("GET", "/me", &cookie).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["is_owner"], true);
    let (s, _) = f.with_cookie("POST", "/logout", &cookie).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = f.with_cookie("GET", "/me", &cookie).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, t) = f
        .call(
            Who::AViewer,
            "POST",
            "/tokens",
            Some(json!({"name": "second"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = t["id"].as_str().unwrap().to_owned();
    let (s, _) = f
        .call(Who::AViewer, "DELETE", &format!("/tokens/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = f.call(Who::Nobody, "GET", "/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let f = Fixture::sqlite().await;
    let (s, doc) = f.anonymous_get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let ops: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        ops,
        67,
        "one operation per route: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(doc["components"]["schemas"]["RawProvider"].is_object());
    let (s, page) = f.anonymous_text("/docs").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("openapi.json") && !page.contains("https://"),
        "offline page"
    );
}

#[tokio::test]
async fn the_api_works_on_postgres_too() {
    let f = Fixture::postgres().await;
    let (s, e) = f.call(Who::AAdmin, "GET", "/providers/b-llm", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, sub) = f
        .call(
            Who::ADeveloper,
            "POST",
            "/tenants/a/apps/a-app/subscriptions",
            Some(json!({"service": "a-svc"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
}

fn b_record(f: &Fixture, app_id: &str, at: i64, cost_nano: i64) -> gatehouse_store::CallRecord {
    gatehouse_store::CallRecord {
        id: gatehouse_store::ids::new_id("cal_"),
        request_id: format!("r{at}"),
        at,
        tenant_id: Some(f.b.tenant_id.clone()),
        app_id: Some(app_id.to_owned()),
        key_id: format!("gatehouse_{}", f.b.key_id),
        surface: "chat".into(),
        dialect: "openai".into(),
        model_asked: "b-model".into(),
        status: 200,
        cost_nano,
        ..Default::default()
    }
}

/// A webhook receiver that keeps what it is sent.
async fn hook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: String| {
            let g = g.clone();
            async move {
                assert!(headers["x-gatehouse-signature"]
                    .to_str()
                    .unwrap()
                    .contains("v1="));
                g.lock()
                    .unwrap()
                    .push(serde_json::from_str::<Value>(&body).unwrap());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

/// A key whose spend jumps 100× its usual for this time of day: found for the key, its app,
/// its tenant and the model; reported once (a second pass finds nothing new); sent to the
/// webhook; the key is revoked; and each tenant reads only its own findings.
#[tokio::test]
async fn anomalies_are_found_once_reported_and_a_runaway_key_is_revoked() {
    use gatehouse_gateway::insights::{detect, WINDOW_MS};
    let f = Fixture::sqlite().await;
    let (_, app) = f
        .call(Who::BAdmin, "GET", "/tenants/b/apps/b-app", None)
        .await;
    let app_id = app["id"].as_str().unwrap().to_owned();
    let now = (gatehouse_store::ids::now_ms() / WINDOW_MS) * WINDOW_MS + 60_000;
    let start = now - 60_000 - WINDOW_MS;
    let day = 86_400_000;
    let mut batch = Vec::new();
    for d in 1..=7 {
        for i in 0..30 {
            batch.push(b_record(&f, &app_id, start - d * day + i * 1000, 1_000_000));
        }
    }
    for i in 0..30 {
        batch.push(b_record(&f, &app_id, start + i * 1000, 100_000_000));
    }
    f.store.insert_calls(&batch).await.unwrap();

    // B's policy: revoke a key whose spend jumps 20×.
    let (s, v) = f
        .call(
            Who::Owner,
            "POST",
            "/policies",
            Some(json!({"name": "b-guard", "tenant": "b", "limits": [{"requests": 1000000, "per": "1m"}], "on_anomaly": {"revoke_keys_over": 20}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (url, got) = hook().await;
    let cfg = gatehouse_gateway::config::AnomalyCfg {
        interval: Some(std::time::Duration::from_secs(60)),
        threshold: 4.0,
        webhook: Some(url),
        secret: Some("s3cret".into()),
        revoke_keys_over: None,
    };
    let alerter = gatehouse_gateway::alerts::Alerter::new(Some(f.store.clone()));
    let found = detect(&f.store, &alerter, &cfg, now).await.unwrap();
    let mut what: Vec<(String, String)> = found
        .iter()
        .map(|a| (a.dimension.clone(), a.metric.clone()))
        .collect();
    what.sort();
    let cost = |d: &str| (d.to_owned(), "cost_usd".to_owned());
    assert_eq!(
        what,
        [cost("app"), cost("key"), cost("model"), cost("tenant")],
        "the same request rate is no anomaly; the spend is"
    );
    let key = found.iter().find(|a| a.dimension == "key").unwrap();
    assert_eq!(key.method, "seasonal");
    assert!((key.baseline - 0.03).abs() < 1e-9 && (key.observed - 3.0).abs() < 1e-9);
    assert_eq!(key.action.as_deref(), Some("key_revoked"));
    assert!(detect(&f.store, &alerter, &cfg, now)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(got.lock().unwrap().len(), 4);
    assert!(got
        .lock()
        .unwrap()
        .iter()
        .all(|b| b["type"] == "anomaly" && b["metric"] == "cost_usd"));

    let (_, keys) = f
        .call(Who::BAdmin, "GET", "/tenants/b/apps/b-app/keys", None)
        .await;
    let k = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == f.b.key_id.as_str())
        .unwrap()
        .clone();
    assert!(!k["revoked_at"].is_null(), "{k}");

    let count = |who| {
        let f = &f;
        async move {
            let (s, v) = f.call(who, "GET", "/anomalies", None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(count(Who::Owner).await, 4);
    assert_eq!(
        count(Who::BAdmin).await,
        3,
        "the model's finding is the install's"
    );
    assert_eq!(count(Who::AAdmin).await, 0);
    let (_, v) = f.call(Who::BAdmin, "GET", "/anomalies", None).await;
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["dimension"] == "app" && a["value"] == "b-app" && a["ratio"] == 100.0));
}

/// Three days of steady spend ($0.10 an hour) forecast a week ahead, and a $5 lifetime budget
/// runs out about 50 hours from now.
#[tokio::test]
async fn forecasts_project_spend_and_when_a_budget_runs_out() {
    let mut f = Fixture::sqlite().await;
    let (s, v) = f
        .call(
            Who::Owner,
            "POST",
            "/policies",
            Some(json!({"name": "b-budget", "tenant": "b", "limits": [{"spend_usd": 5.0, "per": "lifetime"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let snap = f.with_gateway().await;
    let (_, app) = f
        .call(Who::BAdmin, "GET", "/tenants/b/apps/b-app", None)
        .await;
    let app_id = app["id"].as_str().unwrap().to_owned();
    let hour = 3_600_000;
    let now = gatehouse_store::ids::now_ms();
    let this_hour = now - now % hour;
    let batch: Vec<_> = (1..=72)
        .map(|h| b_record(&f, &app_id, this_hour - h * hour + 60_000, 100_000_000))
        .collect();
    f.store.insert_calls(&batch).await.unwrap();

    let (s, v) = f
        .call(Who::BAdmin, "GET", "/forecasts?tenant=b&horizon=7d", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["method"], "holt_winters");
    assert_eq!(v["history_hours"], 72);
    let week = v["total"]["cost_usd"].as_f64().unwrap();
    assert!((week - 16.8).abs() < 0.5, "{week}");
    let budget = &v["budgets"][0];
    assert_eq!(budget["policy"], "b-budget", "{v}");
    let out: jiff::Timestamp = budget["runs_out_at"].as_str().unwrap().parse().unwrap();
    let hours = (out.as_millisecond() - now) as f64 / hour as f64;
    assert!((45.0..=55.0).contains(&hours), "runs out in {hours} h: {v}");

    let (s, v) = f
        .call(Who::AAdmin, "GET", "/forecasts?tenant=b", None)
        .await;
    assert!(
        s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
        "{v}"
    );
    let (s, _) = f
        .call(Who::BAdmin, "GET", "/forecasts?tenant=b&horizon=1y", None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Without anyone asking: the hourly check reports the budget once (a day), to B.
    let (url, got) = hook().await;
    let cfg = gatehouse_gateway::config::AnomalyCfg {
        interval: Some(std::time::Duration::from_secs(60)),
        threshold: 4.0,
        webhook: Some(url),
        secret: Some("s".into()),
        revoke_keys_over: None,
    };
    let alerter = gatehouse_gateway::alerts::Alerter::new(Some(f.store.clone()));
    let snap = snap.load_full();
    let check = || gatehouse_gateway::insights::check_budgets(&f.store, &alerter, &cfg, &snap, now);
    assert_eq!(check().await.unwrap(), 1);
    assert_eq!(check().await.unwrap(), 0, "once a day");
    let sent = got.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "budget.runout");
    assert_eq!(sent[0]["policy"], "b-budget");
    let (_, v) = f.call(Who::BAdmin, "GET", "/anomalies", None).await;
    assert_eq!(v["items"][0]["metric"], "budget_runout", "{v}");
}
