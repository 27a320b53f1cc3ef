//! AWS credentials and SigV4 request signing, for Bedrock.
//!
//! Credentials come, in the order the AWS SDKs use: from the provider's config
//! (`aws_access_key_id`/`aws_secret_access_key`/`aws_session_token`), from the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then from the shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
//! `AWS_PROFILE` or `default`). Container and instance roles (ECS, IMDS), SSO and web identity
//! are not read. Signing is AWS's own `aws-sigv4`.

use std::time::SystemTime;

use crate::error::GatewayError;

/// Bedrock's region and the provider's own credentials, if set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCfg {
    pub region: String,
    pub static_credentials: Option<Credentials>,
}

/// One set of AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials to sign with: the provider's, else the environment's, else the shared
    /// credentials file's.
    pub fn resolve(
        cfg: &AwsCfg,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, GatewayError> {
        if let Some(c) = &cfg.static_credentials {
            return Ok(c.clone());
        }
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Self {
                access_key_id: id,
                secret_access_key: secret,
                session_token: var("AWS_SESSION_TOKEN"),
            });
        }
        let path = var("AWS_SHARED_CREDENTIALS_FILE")
            .or_else(|| var("HOME").map(|h| format!("{h}/.aws/credentials")));
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
        if let Some(c) = path
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| from_profile(&text, &profile))
        {
            return Ok(c);
        }
        Err(GatewayError::UpstreamUnreachable {
            provider: "bedrock".into(),
            message: format!(
                "no AWS credentials: set aws_access_key_id and aws_secret_access_key on the \
                 provider, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile {profile:?} \
                 in the shared credentials file"
            ),
        })
    }
}

/// The credentials of `profile` in a shared credentials file (INI).
fn from_profile(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

/// The headers that sign a request (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` with temporary credentials), for `service` in `region`.
pub fn sign(
    creds: &Credentials,
    (region, service): (&str, &str),
    (method, url, headers): (&str, &str, &[(&str, &str)]),
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, GatewayError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "gatehouse",
    )
    .into();
    let failed = |what: String| GatewayError::UpstreamUnreachable {
        provider: service.to_owned(),
        message: format!("cannot sign the request: {what}"),
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| failed(e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| failed(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 test suite (`aws-sig-v4-test-suite`): the example credentials,
    /// region and service, at 2015-08-30T12:36:00Z.
    fn suite(method: &str, url: &str) -> String {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = sign(
            &creds,
            ("us-east-1", "service"),
            (method, url, &[("host", "example.amazonaws.com")]),
            b"",
            at,
        )
        .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("x-amz-date"), "20150830T123600Z");
        get("authorization")
    }

    #[test]
    fn signatures_match_awss_published_test_vectors() {
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
        for (name, method, url, signature) in [
            (
                "get-vanilla",
                "GET",
                "https://example.amazonaws.com/",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-vanilla-query-order-key-case",
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "post-vanilla",
                "POST",
                "https://example.amazonaws.com/",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ] {
            assert_eq!(suite(method, url), format!("{prefix}{signature}"), "{name}");
        }
    }

    #[test]
    fn temporary_credentials_send_their_token() {
        let creds = Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("token-1".into()),
        };
        let headers = sign(
            &creds,
            ("eu-west-1", "bedrock"),
            (
                "POST",
                "https://bedrock-runtime.eu-west-1.amazonaws.com/model/m/converse",
                &[("content-type", "application/json")],
            ),
            b"{}",
            SystemTime::now(),
        )
        .unwrap();
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-amz-security-token" && v == "token-1"));
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert!(auth.contains("/eu-west-1/bedrock/aws4_request"), "{auth}");
    }

    #[test]
    fn credentials_come_from_the_config_the_environment_or_the_profile() {
        let cfg = AwsCfg {
            region: "us-east-1".into(),
            static_credentials: None,
        };
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = Credentials::resolve(
            &cfg,
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKIA1"),
                ("AWS_SECRET_ACCESS_KEY", "s1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.access_key_id, "AKIA1");
        let dir = std::env::temp_dir().join(format!("gatehouse-aws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = sdef\n\n[work]\naws_access_key_id=AKIAWORK\naws_secret_access_key=swork\naws_session_token=tok\n",
        )
        .unwrap();
        let path: &'static str = Box::leak(file.display().to_string().into_boxed_str());
        let vars: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
            ("AWS_SHARED_CREDENTIALS_FILE", path),
            ("AWS_PROFILE", "work"),
        ]));
        let c = Credentials::resolve(&cfg, &env(vars)).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKIAWORK", Some("tok"))
        );
        let none = Credentials::resolve(&cfg, &env(&[])).unwrap_err();
        assert!(none.to_string().contains("no AWS credentials"), "{none}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
