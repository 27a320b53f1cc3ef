//! Resources as the admin API shows and accepts them.
//!
//! Out: the resource's fields as in the config file, credentials masked to their last four
//! characters, plus `id`, `revision`, `managed_by` and RFC 3339 times. In: the same fields;
//! the read-only ones are ignored, so a client can GET, edit and PUT back; credentials that are
//! left out or sent back masked keep their stored value.

use gatehouse_gateway::stored::Doc;
use gatehouse_gateway::RawConfig;
use gatehouse_store::{Kind, Resource};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::json::from_value;

/// The mark that starts a masked credential.
pub const MASK: char = '…';

const READ_ONLY: [&str; 5] = ["id", "revision", "managed_by", "created_at", "updated_at"];

/// Unix milliseconds as RFC 3339.
pub fn time(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Value::from(t.to_string()))
        .unwrap_or(Value::Null)
}

/// Unix milliseconds as RFC 3339, or null.
pub fn opt_time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, time)
}

/// Masks a credential to its last four characters.
pub fn mask(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{MASK}{tail}")
}

/// A doc's fields with credentials masked.
pub fn masked(doc: &Doc) -> Value {
    let mut v = doc.to_value();
    if let Some(Value::Object(alerts)) = v.get_mut("alerts") {
        if let Some(Value::String(s)) = alerts.get("secret") {
            let m = mask(s);
            alerts.insert("secret".into(), Value::from(m));
        }
    }
    if let (Doc::Provider(p), Value::Object(map)) = (doc, &mut v) {
        let mut keys = p.api_keys.clone();
        keys.extend(p.api_key.clone());
        map.remove("api_key");
        for field in ["aws_secret_access_key", "aws_session_token"] {
            if let Some(Value::String(s)) = map.get(field) {
                let m = mask(s);
                map.insert(field.into(), Value::from(m));
            }
        }
        if keys.is_empty() {
            map.remove("api_keys");
        } else {
            map.insert(
                "api_keys".into(),
                keys.iter().map(|k| Value::from(mask(k))).collect(),
            );
        }
    }
    v
}

/// A stored resource as the API shows it.
pub fn resource(r: &Resource, tenant: Option<&str>) -> Result<Value, ApiError> {
    let doc = Doc::from_resource(r, tenant)?;
    let mut v = masked(&doc);
    if let Value::Object(map) = &mut v {
        map.insert("id".into(), Value::from(r.id.clone()));
        map.insert("revision".into(), Value::from(r.revision));
        map.insert(
            "managed_by".into(),
            r.managed_by.clone().map_or(Value::Null, Value::from),
        );
        map.insert("created_at".into(), time(r.created_at));
        map.insert("updated_at".into(), time(r.updated_at));
    }
    Ok(v)
}

/// Reads a request body as a resource of `kind`. `defaults` fill in fields the URL implies
/// (the name, the tenant); `existing` supplies credentials the body leaves out or masks.
pub fn doc_from_body(
    kind: Kind,
    body: Value,
    defaults: &[(&str, &str)],
    existing: Option<&Doc>,
) -> Result<Doc, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::field("", "the body must be a JSON object"));
    };
    for key in READ_ONLY {
        map.remove(key);
    }
    for (key, value) in defaults {
        match map.get(*key) {
            None => {
                map.insert((*key).to_owned(), Value::from(*value));
            }
            Some(Value::String(given)) if given == value => {}
            Some(_) if *key == "tenant" => {
                return Err(ApiError::field(
                    key,
                    format!("must be {value:?}, the tenant in the URL"),
                ))
            }
            Some(_) => {}
        }
    }
    if kind == Kind::Provider {
        keep_credentials(&mut map, existing);
    }
    if let (Some(Value::Object(alerts)), Some(Doc::Policy(old))) = (map.get_mut("alerts"), existing)
    {
        let masked = alerts
            .get("secret")
            .and_then(Value::as_str)
            .is_none_or(|s| s.starts_with(MASK));
        if masked {
            alerts.remove("secret");
            if let Some(s) = old.alerts.as_ref().and_then(|a| a.secret.clone()) {
                alerts.insert("secret".into(), Value::from(s));
            }
        }
    }
    let v = Value::Object(map);
    Ok(match kind {
        Kind::Tenant => Doc::Tenant(from_value(v)?),
        Kind::Provider => Doc::Provider(from_value(v)?),
        Kind::Model => Doc::Model(from_value(v)?),
        Kind::Service => Doc::Service(from_value(v)?),
        Kind::App => Doc::App(from_value(v)?),
        Kind::Policy => Doc::Policy(from_value(v)?),
    })
}

fn keep_credentials(map: &mut Map<String, Value>, existing: Option<&Doc>) {
    // AWS secrets sent back masked (or left out) keep their stored values.
    if let Some(Doc::Provider(p)) = existing {
        for (field, old) in [
            ("aws_secret_access_key", &p.aws_secret_access_key),
            ("aws_session_token", &p.aws_session_token),
        ] {
            let masked = map
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(|s| s.starts_with(MASK));
            if masked {
                map.remove(field);
                if let Some(v) = old {
                    map.insert(field.into(), Value::from(v.clone()));
                }
            }
        }
    }
    let given: Vec<&str> = map
        .get("api_keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let single = map.get("api_key").and_then(Value::as_str);
    let all_masked = given
        .iter()
        .chain(single.iter())
        .all(|k| k.starts_with(MASK));
    if all_masked {
        map.remove("api_key");
        map.remove("api_keys");
        if let Some(Doc::Provider(p)) = existing {
            let mut keys = p.api_keys.clone();
            keys.extend(p.api_key.clone());
            if !keys.is_empty() {
                map.insert(
                    "api_keys".into(),
                    keys.into_iter().map(Value::from).collect(),
                );
            }
        }
    }
}

/// A whole config's resources as one document (for export), credentials masked unless asked.
pub fn document(cfg: &RawConfig, secrets: bool) -> Value {
    let list = |docs: Vec<Doc>| -> Value {
        docs.iter()
            .map(|d| if secrets { d.to_value() } else { masked(d) })
            .collect()
    };
    let mut out = Map::new();
    let kinds: [(&str, Vec<Doc>); 6] = [
        (
            "tenants",
            cfg.tenants.iter().cloned().map(Doc::Tenant).collect(),
        ),
        (
            "providers",
            cfg.providers.iter().cloned().map(Doc::Provider).collect(),
        ),
        (
            "models",
            cfg.models.iter().cloned().map(Doc::Model).collect(),
        ),
        (
            "services",
            cfg.services.iter().cloned().map(Doc::Service).collect(),
        ),
        ("apps", cfg.apps.iter().cloned().map(Doc::App).collect()),
        (
            "policies",
            cfg.policies.iter().cloned().map(Doc::Policy).collect(),
        ),
    ];
    for (name, docs) in kinds {
        if !docs.is_empty() {
            out.insert(name.into(), list(docs));
        }
    }
    Value::Object(out)
}
