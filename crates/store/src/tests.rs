//! The store suite: every test runs on SQLite and on PostgreSQL.

use serde_json::json;

use crate::testing;
use crate::*;

fn actor() -> Actor {
    Actor("alice".into())
}

fn input(kind: Kind, tenant: Option<&str>, name: &str) -> ResourceInput {
    ResourceInput {
        kind,
        tenant_id: tenant.map(str::to_owned),
        name: name.to_owned(),
        spec: json!({"description": name}),
        secret: None,
        managed_by: None,
    }
}

async fn resources_round_trip(store: Store) {
    let rev0 = store.revision().await.unwrap();
    let tenant = store
        .create_resource(input(Kind::Tenant, None, "acme"), &actor())
        .await
        .unwrap();
    assert!(tenant.id.starts_with("ten_"));
    let mut p = input(Kind::Provider, Some(&tenant.id), "openai-main");
    p.secret = Some(r#"["sk-live-abcdef1234"]"#.into());
    let provider = store.create_resource(p.clone(), &actor()).await.unwrap();
    assert!(store.revision().await.unwrap() >= rev0 + 2);

    let got = store
        .resource_by_id(Kind::Provider, &provider.id)
        .await
        .unwrap();
    assert_eq!(got, provider);
    assert_eq!(got.secret.as_deref(), Some(r#"["sk-live-abcdef1234"]"#));
    let by_name = store
        .resource_by_name(Kind::Provider, None, "openai-main")
        .await
        .unwrap();
    assert_eq!(by_name.id, provider.id);
    assert!(matches!(
        store.create_resource(p.clone(), &actor()).await,
        Err(StoreError::Conflict { .. })
    ));

    // The secret is sealed at rest.
    let raw: Vec<u8> = crate::db::on!(store, pool => sqlx::query_scalar("SELECT secret FROM resources WHERE id = $1")
        .bind(&provider.id)
        .fetch_one(pool)
        .await
        .unwrap());
    assert!(!raw.windows(8).any(|w| w == b"sk-live-"));

    // Optimistic concurrency.
    let mut change = p.clone();
    change.spec = json!({"description": "changed"});
    let updated = store
        .update_resource(&provider.id, Some(1), change.clone(), &actor())
        .await
        .unwrap();
    assert_eq!(updated.revision, 2);
    assert!(matches!(
        store
            .update_resource(&provider.id, Some(1), change.clone(), &actor())
            .await,
        Err(StoreError::Stale {
            current: 2,
            expected: 1,
            ..
        })
    ));
    assert!(matches!(
        store
            .delete_resource(Kind::Provider, &provider.id, Some(1), &actor())
            .await,
        Err(StoreError::Stale { .. })
    ));

    // Pages in creation order.
    for i in 0..5 {
        store
            .create_resource(input(Kind::Model, None, &format!("m{i}")), &actor())
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_resources(
                Kind::Model,
                &ListFilter {
                    include_install: true,
                    after: after.clone(),
                    limit: 2,
                    ..ListFilter::default()
                },
            )
            .await
            .unwrap();
        names.extend(page.items.iter().map(|r| r.name.clone()));
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(names, ["m0", "m1", "m2", "m3", "m4"]);
    let tenant_only = store
        .list_resources(
            Kind::Provider,
            &ListFilter {
                tenant_ids: Some(vec!["ten_other".into()]),
                limit: 10,
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(tenant_only.items.is_empty());

    store
        .delete_resource(Kind::Provider, &provider.id, Some(2), &actor())
        .await
        .unwrap();
    assert!(matches!(
        store.resource_by_id(Kind::Provider, &provider.id).await,
        Err(StoreError::NotFound { .. })
    ));

    // The audit log has each change, newest first, with the secret masked.
    let log = store
        .list_audit(&AuditFilter {
            tenant_ids: Some(vec![tenant.id.clone()]),
            limit: 50,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["delete", "update", "create", "create"]);
    let update = &log.items[1];
    assert_eq!(update.actor, "alice");
    assert_eq!(
        update.before.as_ref().unwrap()["spec"]["description"],
        "openai-main"
    );
    assert_eq!(
        update.after.as_ref().unwrap()["spec"]["description"],
        "changed"
    );
    assert_eq!(update.after.as_ref().unwrap()["secret"], "[redacted]");
    assert!(!serde_json::to_string(&log).unwrap().contains("sk-live"));
}

async fn apps_are_named_within_their_tenant_and_go_with_it(store: Store) {
    let a = store
        .create_resource(input(Kind::Tenant, None, "a"), &actor())
        .await
        .unwrap();
    let b = store
        .create_resource(input(Kind::Tenant, None, "b"), &actor())
        .await
        .unwrap();
    let app_a = store
        .create_resource(input(Kind::App, Some(&a.id), "web"), &actor())
        .await
        .unwrap();
    store
        .create_resource(input(Kind::App, Some(&b.id), "web"), &actor())
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_resource(input(Kind::App, Some(&a.id), "web"), &actor())
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let (key, _) = store
        .create_key(&app_a, "ci", vec![], None, 0, &actor())
        .await
        .unwrap();
    store
        .delete_resource(Kind::Tenant, &a.id, None, &actor())
        .await
        .unwrap();
    assert!(store.resource_by_id(Kind::App, &app_a.id).await.is_err());
    assert!(store
        .active_keys()
        .await
        .unwrap()
        .iter()
        .all(|k| k.key.id != key.id));
    assert!(store
        .resource_by_name(Kind::App, Some(&b.id), "web")
        .await
        .is_ok());
}

async fn users_roles_tokens_and_sessions(store: Store) {
    let owner = store
        .create_user("root", "pw-1", true, &Actor("init".into()))
        .await
        .unwrap();
    assert!(owner.is_owner);
    assert!(matches!(
        store.create_user("root", "x", false, &actor()).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.check_password("root", "pw-1").await.unwrap(),
        Some(owner.clone())
    );
    assert_eq!(store.check_password("root", "pw-2").await.unwrap(), None);
    assert_eq!(store.check_password("nobody", "pw-1").await.unwrap(), None);

    let t = store
        .create_resource(input(Kind::Tenant, None, "acme"), &actor())
        .await
        .unwrap();
    let dev = store
        .create_user("dev", "pw", false, &actor())
        .await
        .unwrap();
    store
        .set_member(&t.id, &dev, Role::Viewer, &actor())
        .await
        .unwrap();
    store
        .set_member(&t.id, &dev, Role::Developer, &actor())
        .await
        .unwrap();
    let ms = store.memberships(&dev.id).await.unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].role, Role::Developer);
    assert_eq!(store.members_of(&t.id).await.unwrap()[0].username, "dev");
    store.remove_member(&t.id, &dev, &actor()).await.unwrap();
    assert!(store.memberships(&dev.id).await.unwrap().is_empty());
    assert!(store.remove_member(&t.id, &dev, &actor()).await.is_err());

    let tok = store
        .create_admin_token(&dev, "cli", "gatehouse_adm_secret", None, &actor())
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_admin_token("gatehouse_adm_secret")
            .await
            .unwrap(),
        Some(dev.clone())
    );
    assert_eq!(
        store
            .user_by_admin_token("gatehouse_adm_other")
            .await
            .unwrap(),
        None
    );
    store
        .create_admin_token(&dev, "old", "expired-token", Some(1), &actor())
        .await
        .unwrap();
    assert_eq!(
        store.user_by_admin_token("expired-token").await.unwrap(),
        None
    );
    assert!(
        store
            .revoke_admin_token(&owner.id, &tok.id, &actor())
            .await
            .is_err(),
        "not the owner's token"
    );
    store
        .revoke_admin_token(&dev.id, &tok.id, &actor())
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_admin_token("gatehouse_adm_secret")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.admin_tokens_of(&dev.id).await.unwrap().len(), 2);

    store
        .create_session(&dev.id, "cookie-value", crate::ids::now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(
        store.user_by_session("cookie-value").await.unwrap(),
        Some(dev.clone())
    );
    store.delete_session("cookie-value").await.unwrap();
    assert_eq!(store.user_by_session("cookie-value").await.unwrap(), None);
}

async fn keys_are_hashed_revoked_and_rotated(store: Store) {
    let t = store
        .create_resource(input(Kind::Tenant, None, "acme"), &actor())
        .await
        .unwrap();
    let app = store
        .create_resource(input(Kind::App, Some(&t.id), "web"), &actor())
        .await
        .unwrap();
    let (key, secret) = store
        .create_key(&app, "prod", vec!["chat".into()], None, 3, &actor())
        .await
        .unwrap();
    assert!(secret.starts_with(&format!("{KEY_PREFIX}{}_", key.id)));
    assert_eq!(secret.len(), KEY_PREFIX.len() + 10 + 1 + 32);
    let active = store.active_keys().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].hash, store.key().hash(&secret).to_vec());
    assert_eq!(active[0].key.scopes, ["chat"]);
    assert_eq!(active[0].key.priority, 3);

    let (new, new_secret) = store
        .rotate_key(&app, &key.id, 60_000, &actor())
        .await
        .unwrap();
    assert_ne!(new_secret, secret);
    let active = store.active_keys().await.unwrap();
    assert_eq!(active.len(), 2, "the old key lives on for the overlap");
    let old = store.key_by_id(&app.id, &key.id).await.unwrap();
    assert!(old.expires_at.unwrap() > crate::ids::now_ms());
    store.rotate_key(&app, &new.id, 0, &actor()).await.unwrap();
    let ids: Vec<_> = store
        .active_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key.id)
        .collect();
    assert!(!ids.contains(&new.id), "overlap 0 ends the old key now");

    store.revoke_key(&app.id, &key.id, &actor()).await.unwrap();
    let ids: Vec<_> = store
        .active_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key.id)
        .collect();
    assert!(!ids.contains(&key.id));
    assert_eq!(store.keys_of(&app.id).await.unwrap().len(), 3);
    assert!(
        store
            .rotate_key(&app, &key.id, 1000, &actor())
            .await
            .is_err(),
        "revoked"
    );
}

async fn subscriptions_follow_their_states(store: Store) {
    let provider_t = store
        .create_resource(input(Kind::Tenant, None, "platform"), &actor())
        .await
        .unwrap();
    let consumer_t = store
        .create_resource(input(Kind::Tenant, None, "acme"), &actor())
        .await
        .unwrap();
    let svc = store
        .create_resource(input(Kind::Service, Some(&provider_t.id), "chat"), &actor())
        .await
        .unwrap();
    let open = store
        .create_resource(input(Kind::Service, None, "open"), &actor())
        .await
        .unwrap();
    let app = store
        .create_resource(input(Kind::App, Some(&consumer_t.id), "web"), &actor())
        .await
        .unwrap();

    let s = store.subscribe(&app, &svc, true, &actor()).await.unwrap();
    assert_eq!(s.state, SubState::Pending);
    assert_eq!(s.app_tenant_id, consumer_t.id);
    assert_eq!(s.service_tenant_id.as_deref(), Some(provider_t.id.as_str()));
    assert!(matches!(
        store.subscribe(&app, &svc, true, &actor()).await,
        Err(StoreError::Conflict { .. })
    ));
    let auto = store.subscribe(&app, &open, false, &actor()).await.unwrap();
    assert_eq!(auto.state, SubState::Approved);
    assert_eq!(auto.decided_by.as_deref(), Some("auto"));

    assert!(matches!(
        store
            .decide(&s.id, SubState::Approved, Some(99), None, &actor())
            .await,
        Err(StoreError::Stale { .. })
    ));
    let ok = store
        .decide(
            &s.id,
            SubState::Approved,
            Some(s.revision),
            Some("looks fine"),
            &Actor("boss".into()),
        )
        .await
        .unwrap();
    assert_eq!(ok.state, SubState::Approved);
    assert_eq!(ok.decided_by.as_deref(), Some("boss"));
    assert_eq!(ok.reason.as_deref(), Some("looks fine"));
    assert_eq!(store.approved_subscriptions().await.unwrap().len(), 2);
    assert!(
        matches!(
            store
                .decide(&s.id, SubState::Rejected, None, None, &actor())
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "approved cannot become rejected"
    );
    store
        .decide(&s.id, SubState::Revoked, None, Some("abuse"), &actor())
        .await
        .unwrap();
    assert_eq!(store.approved_subscriptions().await.unwrap().len(), 1);
    let again = store.subscribe(&app, &svc, true, &actor()).await.unwrap();
    assert_eq!(
        (again.id.as_str(), again.state),
        (s.id.as_str(), SubState::Pending)
    );

    let consumer_view = store
        .list_subscriptions(&SubscriptionFilter {
            app_tenants: Some(vec![consumer_t.id.clone()]),
            limit: 10,
            ..SubscriptionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(consumer_view.items.len(), 2);
    let approver_view = store
        .list_subscriptions(&SubscriptionFilter {
            service_tenants: Some(vec![Some(provider_t.id.clone())]),
            state: Some(SubState::Pending),
            limit: 10,
            ..SubscriptionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(approver_view.items.len(), 1);
    let nobody = store
        .list_subscriptions(&SubscriptionFilter {
            app_tenants: Some(vec![]),
            service_tenants: Some(vec![]),
            limit: 10,
            ..SubscriptionFilter::default()
        })
        .await
        .unwrap();
    assert!(nobody.items.is_empty());
}

async fn writes_move_the_revision_and_wake_watchers(store: Store) {
    let mut watch = store.watch();
    let before = *watch.borrow_and_update();
    store
        .create_resource(input(Kind::Tenant, None, "t"), &actor())
        .await
        .unwrap();
    watch.changed().await.unwrap();
    assert!(*watch.borrow() > before);
    assert_eq!(*watch.borrow(), store.revision().await.unwrap());
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $name() {
                let (store, dir) = crate::testing::sqlite().await;
                super::$name(store).await;
                let _ = std::fs::remove_dir_all(dir);
            })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::testing::postgres().await).await;
            })*
        }
    };
}

on_both!(
    resources_round_trip,
    apps_are_named_within_their_tenant_and_go_with_it,
    users_roles_tokens_and_sessions,
    keys_are_hashed_revoked_and_rotated,
    subscriptions_follow_their_states,
    writes_move_the_revision_and_wake_watchers,
);

#[tokio::test]
async fn postgres_nodes_hear_each_others_writes() {
    let url = testing::postgres_database().await;
    let key = || secrets::MasterKey::from_bytes(&[7; 32]).unwrap();
    let a = Store::open(&url, key()).await.unwrap();
    let b = Store::open(&url, key()).await.unwrap();
    let mut listener = b.listen().await.unwrap().expect("postgres listens");
    a.create_resource(input(Kind::Tenant, None, "t"), &actor())
        .await
        .unwrap();
    let note = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification arrives")
        .unwrap();
    assert_eq!(note.payload(), a.revision().await.unwrap().to_string());
    assert_eq!(b.revision().await.unwrap(), a.revision().await.unwrap());
}

#[tokio::test]
async fn a_sqlite_store_reopens_with_its_data() {
    let (store, dir) = testing::sqlite().await;
    let url = format!("sqlite://{}", dir.join("gatehouse.db").display());
    store
        .create_resource(input(Kind::Tenant, None, "kept"), &actor())
        .await
        .unwrap();
    store.close().await;
    let again = Store::open(&url, secrets::MasterKey::ephemeral().unwrap())
        .await
        .unwrap();
    assert!(again
        .resource_by_name(Kind::Tenant, None, "kept")
        .await
        .is_ok());
    let mode: String = crate::db::on!(again, pool => sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap());
    assert_eq!(mode, "wal");
    let _ = std::fs::remove_dir_all(dir);
}

async fn alerts_are_recorded_and_listed_by_tenant(store: Store) {
    let a = AlertRecord {
        id: crate::ids::new_id("alr_"),
        at: 1,
        tenant_id: Some("ten_a".into()),
        policy: "p".into(),
        limit_label: "$1.00 per month".into(),
        period: "2026-11".into(),
        threshold: 80,
        used: 800_000_000,
        of: 1_000_000_000,
        webhook: "http://x".into(),
        status: "pending".into(),
        attempts: 0,
        detail: None,
    };
    store.record_alert(&a).await.unwrap();
    store
        .alert_delivery(&a.id, "delivered", 2, Some("200"))
        .await
        .unwrap();
    let mine = store
        .list_alerts(&AlertFilter {
            tenant_ids: Some(vec!["ten_a".into()]),
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1);
    assert_eq!(
        (mine.items[0].status.as_str(), mine.items[0].attempts),
        ("delivered", 2)
    );
    let theirs = store
        .list_alerts(&AlertFilter {
            tenant_ids: Some(vec!["ten_b".into()]),
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert!(theirs.items.is_empty());
}

mod alerts_on_both {
    #[tokio::test]
    async fn on_sqlite() {
        let (store, dir) = crate::testing::sqlite().await;
        super::alerts_are_recorded_and_listed_by_tenant(store).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn on_postgres() {
        super::alerts_are_recorded_and_listed_by_tenant(crate::testing::postgres().await).await;
    }
}

async fn call_records_are_written_once_and_paged_by_tenant(store: Store) {
    let rec = |i: i64, tenant: Option<&str>| CallRecord {
        id: crate::ids::new_id("cal_"),
        request_id: format!("r{i}"),
        at: i,
        tenant_id: tenant.map(str::to_owned),
        app_id: None,
        key_id: "k".into(),
        surface: "chat".into(),
        service: None,
        model_asked: "m".into(),
        model_served: None,
        provider: None,
        status: 200,
        error_code: None,
        attempts: vec![Attempt {
            provider: "p".into(),
            model: "m".into(),
            outcome: "ok".into(),
        }],
        stream: i % 2 == 0,
        duration_ms: 1,
        input_tokens: 1,
        output_tokens: 1,
        cached_tokens: 0,
        cost_nano: 5,
        dialect: "openai".into(),
        ..CallRecord::default()
    };
    let mut batch: Vec<CallRecord> = (0..5).map(|i| rec(i, Some("ten_a"))).collect();
    batch.push(rec(9, None));
    store.insert_calls(&batch).await.unwrap();
    store.insert_calls(&batch).await.unwrap();
    let all = store
        .list_calls(&CallFilter {
            limit: 100,
            ..CallFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6, "a replayed batch adds nothing");
    assert_eq!(all.items[0].request_id, "r9", "newest first");
    let mine = store
        .list_calls(&CallFilter {
            tenant_ids: Some(vec!["ten_a".into()]),
            limit: 2,
            ..CallFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 2);
    assert_eq!(mine.items[0].attempts[0].outcome, "ok");
    let next = store
        .list_calls(&CallFilter {
            tenant_ids: Some(vec!["ten_a".into()]),
            before: mine.next_cursor,
            limit: 10,
            ..CallFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(next.items.len(), 3);
}

/// Search filters, one record in full, rollups that count each record once (replays
/// included), aggregates by time and group, and retention.
async fn call_search_rollups_and_retention(store: Store) {
    use crate::{Aggregate, Dim, Rank, StatusFilter};
    let minute = 60_000;
    let base = 1_800_000_000_000 - 1_800_000_000_000 % minute;
    let rec = |i: i64, model: &str, status: i64, ms: i64| CallRecord {
        id: format!("cal_{i:020}"),
        request_id: format!("r{i}"),
        at: base + i * 20_000,
        tenant_id: Some(if i % 2 == 0 { "ten_a" } else { "ten_b" }.into()),
        key_id: "k".into(),
        surface: "chat".into(),
        dialect: "openai".into(),
        model_asked: model.into(),
        provider: Some("p".into()),
        status,
        duration_ms: ms,
        input_tokens: 10,
        output_tokens: 5,
        cost_nano: 1000 * i,
        ttft_ms: (i % 3 == 0).then_some(ms / 2),
        tags: vec!["batch".into(), format!("n{i}")],
        request_body: Some(format!("{{\"content\":\"needle {i}\"}}")),
        ..CallRecord::default()
    };
    // Six calls over two minutes: three per minute.
    let batch = [
        rec(0, "m1", 200, 40),
        rec(1, "m1", 200, 90),
        rec(2, "m2", 500, 400),
        rec(3, "m1", 429, 20),
        rec(4, "m2", 200, 1200),
        rec(5, "m1", 200, 60),
    ];
    store.insert_calls(&batch[..4]).await.unwrap();
    // A replay of a batch that overlaps what was written: only the new records count.
    store.insert_calls(&batch[2..]).await.unwrap();

    let list = |f: CallFilter| {
        let store = store.clone();
        async move {
            store
                .list_calls(&CallFilter { limit: 100, ..f })
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.request_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(CallFilter {
            status: Some(StatusFilter::Error),
            ..Default::default()
        })
        .await,
        ["r3", "r2"]
    );
    assert_eq!(
        list(CallFilter {
            status: Some(StatusFilter::Class(5)),
            ..Default::default()
        })
        .await,
        ["r2"]
    );
    assert_eq!(
        list(CallFilter {
            tag: Some("n4".into()),
            ..Default::default()
        })
        .await,
        ["r4"]
    );
    assert_eq!(
        list(CallFilter {
            text: Some("NEEDLE 5".into()),
            ..Default::default()
        })
        .await,
        ["r5"],
        "text search ignores case"
    );
    assert_eq!(
        list(CallFilter {
            text: Some("%".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new(),
        "LIKE wildcards are taken literally"
    );
    assert_eq!(
        list(CallFilter {
            from: Some(base + minute),
            model: Some("m1".into()),
            ..Default::default()
        })
        .await,
        ["r5", "r3"]
    );
    let one = store.get_call(&batch[4].id).await.unwrap().unwrap();
    assert_eq!(one, batch[4]);
    assert!(store.get_call("cal_nope").await.unwrap().is_none());

    let window = Aggregate {
        from: base,
        to: base + 10 * minute,
        ..Aggregate::default()
    };
    let total = store.aggregate(&window).await.unwrap();
    assert_eq!(total.len(), 1);
    assert_eq!(total[0].requests, 6, "each record counted once");
    assert_eq!(total[0].errors, 2);
    assert_eq!(total[0].input_tokens, 60);
    assert_eq!(total[0].cost_nano, 15_000);
    assert_eq!(total[0].latency.iter().sum::<i64>(), 6);
    assert_eq!(total[0].ttft_count, 2);

    let series = store
        .aggregate(&Aggregate {
            step_ms: Some(minute),
            group_by: vec![Dim::Model],
            ..window.clone()
        })
        .await
        .unwrap();
    let mut points: Vec<(i64, &str, i64)> = series
        .iter()
        .map(|r| (r.t.unwrap() - base, r.group[0].as_str(), r.requests))
        .collect();
    points.sort_unstable();
    assert_eq!(
        points,
        [
            (0, "m1", 2),
            (0, "m2", 1),
            (minute, "m1", 2),
            (minute, "m2", 1)
        ]
    );

    let top = store
        .aggregate(&Aggregate {
            group_by: vec![Dim::Tenant],
            top: Some((Rank::Cost, 1)),
            ..window.clone()
        })
        .await
        .unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].group, ["ten_b"], "1 + 3 + 5 beats 0 + 2 + 4");
    let scoped = store
        .aggregate(&Aggregate {
            tenant_ids: Some(vec!["ten_a".into()]),
            filters: vec![(Dim::Status, "2xx".into())],
            ..window.clone()
        })
        .await
        .unwrap();
    assert_eq!(scoped[0].requests, 2);

    // The hour's rollup holds the same as its minutes'.
    let hour = store
        .aggregate(&Aggregate {
            from: base,
            to: base + 60 * minute,
            ..Aggregate::default()
        })
        .await
        .unwrap();
    assert_eq!(
        crate::rollups::table_for(base, base + 60 * minute, None, false),
        "call_rollups_hour"
    );
    assert_eq!(hour, total);

    assert_eq!(store.prune_calls(base + minute, 2).await.unwrap(), 2);
    assert_eq!(store.prune_calls(base + minute, 2).await.unwrap(), 1);
    assert_eq!(store.prune_rollups(base + minute).await.unwrap(), 3);
    let left = store.aggregate(&window).await.unwrap();
    assert_eq!(left[0].requests, 3);
}

mod calls_on_both {
    #[tokio::test]
    async fn search_rollups_and_retention_on_sqlite() {
        let (store, dir) = crate::testing::sqlite().await;
        super::call_search_rollups_and_retention(store).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn search_rollups_and_retention_on_postgres() {
        super::call_search_rollups_and_retention(crate::testing::postgres().await).await;
    }

    #[tokio::test]
    async fn on_sqlite() {
        let (store, dir) = crate::testing::sqlite().await;
        super::call_records_are_written_once_and_paged_by_tenant(store).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn on_postgres() {
        super::call_records_are_written_once_and_paged_by_tenant(crate::testing::postgres().await)
            .await;
    }
}
