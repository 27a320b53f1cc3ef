use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "OPENAI_API_KEY" => Some("sk-test".into()),
        "CLIENT_KEY" => Some("client-key-0123456789".into()),
        _ => None,
    }
}

const GOOD: &str = r#"
server: { listen: "127.0.0.1:9000", max_body: 1MiB, drain_timeout: 5s }
keys: [{ name: alice, key: "${CLIENT_KEY}" }]
providers:
  - name: openai-main
    kind: openai
    api_keys: ["${OPENAI_API_KEY}"]
    timeouts: { connect: 2s, idle: 500ms }
  - name: local
    kind: openai_compatible
    base_url: "http://127.0.0.1:8000/v1/"
models:
  - name: text-generator-v2
    targets:
      - { provider: openai-main, model: gpt-4o-2024-05-13, weight: 90 }
      - { provider: local, model: llama, weight: 10 }
"#;

#[test]
fn a_good_config_validates_with_env_and_defaults() {
    let cfg = RawConfig::parse(GOOD, &env).unwrap().validate().unwrap();
    assert_eq!(cfg.server.listen.port(), 9000);
    assert_eq!(cfg.server.max_body, 1 << 20);
    assert_eq!(cfg.keys[0].key, "client-key-0123456789");
    let openai = &cfg.providers[0];
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.api_keys, vec!["sk-test".to_owned()]);
    assert_eq!(openai.timeouts.connect, Duration::from_secs(2));
    assert_eq!(openai.timeouts.idle, Duration::from_millis(500));
    assert_eq!(openai.timeouts.total, Timeouts::default().total);
    assert_eq!(cfg.providers[1].base_url, "http://127.0.0.1:8000/v1");
}

#[test]
fn an_unset_variable_names_its_path() {
    let text = GOOD.replace("${OPENAI_API_KEY}", "${NOPE}");
    let err = RawConfig::parse(&text, &env).unwrap_err();
    assert_eq!(
        err.problems,
        vec![(
            "providers[0].api_keys[0]".to_owned(),
            "environment variable NOPE is not set".to_owned()
        )]
    );
    let with_default = GOOD.replace("${OPENAI_API_KEY}", "${NOPE:-fallback}");
    let cfg = RawConfig::parse(&with_default, &env)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(cfg.providers[0].api_keys, vec!["fallback".to_owned()]);
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let text = GOOD.replace("kind: openai\n", "kind: openai\n    kidn: x\n");
    let err = RawConfig::parse(&text, &env).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].0.starts_with("providers[0]"), "{err}");
    assert!(err.problems[0].1.contains("unknown field `kidn`"), "{err}");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = r#"
server: { listen: "nope", max_body: 12 parsecs }
keys: [{ name: a, key: short }]
providers:
  - { name: p, kind: openai_compatible, timeouts: { idle: forever } }
  - { name: q, kind: openai_compatible, base_url: "http://exa mple.com/v1" }
  - { name: r, kind: openai_compatible, base_url: "ftp://example.com" }
  - { name: p, kind: anthropic }
models:
  - name: m
    targets: [{ provider: opena1, model: x }]
"#;
    let err = RawConfig::parse(text, &env)
        .unwrap()
        .validate()
        .unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "server.listen",
            "server.max_body",
            "keys[0].key",
            "providers[0].base_url",
            "providers[0].timeouts.idle",
            "providers[1].base_url",
            "providers[2].base_url",
            "providers[3].name",
            "providers[3].api_keys",
            "models[0].targets[0].provider",
        ],
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("models[0].targets[0].provider: no provider named \"opena1\""));
}

#[test]
fn sizes_and_durations_parse() {
    assert_eq!(parse_size("32MiB"), Ok(32 << 20));
    assert_eq!(parse_size("1000"), Ok(1000));
    assert!(parse_size("1 potato").is_err());
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("soon").is_err());
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    assert!(parse_duration("99999999999999999999d").is_err());
    assert!(parse_duration("999999999999999999d").is_err());
}

#[test]
fn tenant_resources_need_a_store_and_keep_to_their_tenant() {
    let text = r#"
keys: [{ name: a, key: "client-key-0123456789" }]
tenants: [{ name: acme }, { name: "bad name" }]
providers:
  - { name: acme-llm, tenant: acme, kind: openai, api_keys: [k] }
  - { name: ghost-llm, tenant: ghost, kind: openai, api_keys: [k] }
models:
  - { name: shared, targets: [{ provider: acme-llm, model: m }] }
services:
  - { name: svc, models: [nope], upstreams: [{ url: "http://x" }] }
apps:
  - { name: web, tenant: acme }
  - { name: web, tenant: acme }
"#;
    let problems = RawConfig::parse(text, &env)
        .unwrap()
        .validate()
        .unwrap_err()
        .problems;
    let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "tenants",
        "apps",
        "tenants[1].name",
        "providers[1].tenant",
        "models[0].targets[0].provider",
        "services[0].kind",
        "services[0].models[0]",
        "apps[1].name",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {problems:?}"
        );
    }
    let with_store = format!("server: {{ data_dir: /tmp/x }}\n{text}");
    let problems = RawConfig::parse(&with_store, &env)
        .unwrap()
        .validate()
        .unwrap_err()
        .problems;
    assert!(
        !problems.iter().any(|(p, _)| p == "tenants"),
        "a store allows tenants"
    );
}
