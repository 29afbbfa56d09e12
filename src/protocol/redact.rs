//! Keeping secrets out of transcripts, logs and snapshots.
//!
//! Both the mock's transcript and the client's `--trace` pass every frame through here. Secrets
//! are replaced by `"********"`, the placeholder the server itself uses for Secret fields.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::Value;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "********";

/// Object keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "password",
    "old_password",
    "new_password",
    "api_key",
    "token",
    "otp_token",
    "reconnect_token",
    "auth_token",
    "raw_key",
    "client_key",
    "stored_key",
    "server_key",
    "privatekey",
    "private_key",
    "passphrase",
    "secret",
];

/// Words that make a name a secret's wherever they appear in it, in any case
/// (`POSTGRES_PASSWORD`, `SESSION_SECRET`, `GITHUB_TOKEN`, `rootpassword`).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
];

/// Short words that make a name a secret's when they are a whole word of it, split at `_`,
/// `-`, `.` and camelCase (`DB_PASS`, `JWT_KEY`, `apiKey`, `MYSQL_PWD`; not `KEYCLOAK_URL` or
/// `BYPASS_CACHE`).
const SECRET_NAME_PARTS: &[&str] = &["pass", "pwd", "key", "salt", "private"];

/// The rule every output uses (traces, transcripts, `compose config` and `compose diff`): does
/// this name (an object key, an environment variable, a compose variable) look like it holds
/// a secret? Its *string* values are redacted; a boolean such as `password_disabled` or
/// `secret_configured` is not a secret.
pub fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    name_parts(name).any(|part| SECRET_NAME_PARTS.contains(&part.as_str()))
}

/// The words of a name, lower case: split at anything not alphanumeric and where a lower-case
/// letter or digit meets an upper-case one (`apiKey` is `api`, `key`).
fn name_parts(name: &str) -> impl Iterator<Item = String> + '_ {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts.into_iter()
}

/// Is this object key a secret (whatever its value)?
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str())
}

/// Redact every secret at any depth: values of secret keys, string values of secret-looking
/// keys, `NAME=value` list entries with a secret-looking name (compose `environment` lists),
/// and the password in `scheme://user:password@host` URLs.
pub fn redact_keys(value: &mut Value) {
    match value {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if (is_secret_key(k) && !v.is_null()) || (looks_secret(k) && v.is_string()) {
                    *v = REDACTED.into();
                } else if k == "rfc_str"
                    && let Value::String(s) = v
                {
                    *s = redact_scram_message(s);
                } else {
                    redact_keys(v);
                }
            }
        }
        Value::Array(a) => {
            for item in a.iter_mut() {
                if let Value::String(s) = item
                    && let Some((name, _)) = s.split_once('=')
                    && looks_secret(name)
                {
                    *s = format!("{name}={REDACTED}");
                } else {
                    redact_keys(item);
                }
            }
        }
        Value::String(s) => {
            if let Some(clean) = redact_url_passwords(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

/// A SCRAM message (`rfc_str` of `auth.login_ex`) without the client's proof (`p=` of the
/// client-final message `c=…,r=…,p=…`) and the server's signature (`v=`); nonces, salt,
/// iteration count and the client-first GS2 header (`p=tls-server-end-point`) stay readable.
pub fn redact_scram_message(message: &str) -> String {
    if message.starts_with("v=") {
        return format!("v={REDACTED}");
    }
    if !message.starts_with("c=") {
        return message.to_owned();
    }
    message
        .split(',')
        .map(|attr| {
            if attr.starts_with("p=") {
                format!("p={REDACTED}")
            } else {
                attr.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `postgres://app:hunter2@db/x` becomes `postgres://app:********@db/x`; `None` when the text
/// holds no URL with a password.
pub fn redact_url_passwords(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(['/', '?', '#', ' ', '"', '\''])
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority
            .rfind('@')
            .map(|at| (&authority[..at], &authority[at..]))
        {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                out.push_str(&format!("{user}:{REDACTED}{host}"));
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Values known to be secrets in this process, wherever they show up: the values of
/// secret-named variables a compose project interpolated (`--db-password=${DB_PASS}` puts one
/// under a harmless key). See [`remember_secret_values`].
static KNOWN_VALUES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Values shorter than this are not remembered (`1` or `on` would be masked everywhere).
const MIN_KNOWN_VALUE: usize = 4;

/// Remember `values` as secrets: [`scrub_known_values`] masks them in any text from now on.
pub fn remember_secret_values<'a>(values: impl IntoIterator<Item = &'a String>) {
    if let Ok(mut known) = KNOWN_VALUES.lock() {
        known.extend(
            values
                .into_iter()
                .filter(|v| v.chars().count() >= MIN_KNOWN_VALUE)
                .cloned(),
        );
    }
}

/// `text` with every value given to [`remember_secret_values`] replaced by [`REDACTED`] (as it
/// appears, and JSON-escaped, since traces hold JSON frames).
pub fn scrub_known_values(text: &str) -> std::borrow::Cow<'_, str> {
    let Ok(known) = KNOWN_VALUES.lock() else {
        return text.into();
    };
    let mut out = std::borrow::Cow::Borrowed(text);
    for value in known.iter().rev() {
        let escaped = Value::String(value.clone()).to_string();
        for form in [value.as_str(), &escaped[1..escaped.len() - 1]] {
            if out.contains(form) {
                out = out.replace(form, REDACTED).into();
            }
        }
    }
    out
}

/// Redact the params of a call to `method`: positional secrets of the old login methods, and
/// secret-named keys everywhere.
pub fn redact_params(method: &str, params: &mut [Value]) {
    let positional: &[usize] = match method {
        "auth.login" => &[1, 2],
        "auth.login_with_api_key" | "auth.login_with_token" => &[0],
        // A file's content (base64): secrets, keys and configs alike.
        "filesystem.file_receive" => &[1],
        _ => &[],
    };
    for &i in positional {
        if let Some(v) = params.get_mut(i)
            && !v.is_null()
        {
            *v = REDACTED.into();
        }
    }
    params.iter_mut().for_each(redact_keys);
}

/// Redact the result of a call to `method`: issued tokens and keys, and secret-named keys.
pub fn redact_result(method: &str, result: &mut Value) {
    match method {
        "auth.generate_token" => *result = REDACTED.into(),
        "api_key.create" | "api_key.update" => {
            if let Some(k) = result.as_object_mut().and_then(|m| m.get_mut("key")) {
                *k = REDACTED.into();
            }
        }
        _ => {}
    }
    redact_keys(result);
}

/// Redact a whole JSON-RPC request frame (client to server). Other frames pass through
/// [`redact_keys`].
pub fn redact_request_frame(frame: &mut Value) {
    let method = frame
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (method, frame.get_mut("params")) {
        (Some(m), Some(Value::Array(params))) => redact_params(&m, params),
        _ => redact_keys(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scram_proofs_and_signatures_are_redacted() {
        let mut v = json!([
            {"rfc_str": "p=tls-server-end-point,,n=admin:3,r=AAAA"},
            {"rfc_str": "r=AAAABBBB,s=c2FsdA==,i=500000"},
            {"rfc_str": "c=biws,r=AAAABBBB,p=cHJvb2Y="},
            {"rfc_str": "v=c2lnbmF0dXJl"},
        ]);
        redact_keys(&mut v);
        assert_eq!(
            v,
            json!([
                {"rfc_str": "p=tls-server-end-point,,n=admin:3,r=AAAA"},
                {"rfc_str": "r=AAAABBBB,s=c2FsdA==,i=500000"},
                {"rfc_str": "c=biws,r=AAAABBBB,p=********"},
                {"rfc_str": "v=********"},
            ])
        );
    }

    #[test]
    fn uploaded_file_contents_are_redacted() {
        let mut p = vec![
            json!("/mnt/tank/apps/a/.secrets/token"),
            json!("c2VjcmV0"),
            json!({"mode": 0o444}),
        ];
        redact_params("filesystem.file_receive", &mut p);
        assert_eq!(
            p,
            [
                json!("/mnt/tank/apps/a/.secrets/token"),
                json!(REDACTED),
                json!({"mode": 0o444})
            ]
        );
    }

    #[test]
    fn login_secrets_are_redacted() {
        let mut f = json!({"jsonrpc":"2.0","id":1,"method":"auth.login_ex","params":[
            {"mechanism":"API_KEY_PLAIN","username":"root","api_key":"1-abc"}]});
        redact_request_frame(&mut f);
        assert_eq!(f["params"][0]["api_key"], REDACTED);
        assert_eq!(f["params"][0]["username"], "root");

        let mut p = vec![json!("root"), json!("pw"), Value::Null];
        redact_params("auth.login", &mut p);
        assert_eq!(p, vec![json!("root"), json!(REDACTED), Value::Null]);

        let mut k = vec![json!("1-abc")];
        redact_params("auth.login_with_api_key", &mut k);
        assert_eq!(k, vec![json!(REDACTED)]);
    }

    #[test]
    fn secret_looking_keys_and_url_passwords_are_redacted() {
        let mut env = json!({"environment": {
            "POSTGRES_PASSWORD": "s3cr3t", "SESSION_SECRET": "x", "GITHUB_TOKEN": "t",
            "DATABASE_URL": "postgres://inventory:s3cr3t@db:5432/inventory",
            "REDIS_URL": "redis://cache:6379/0", "TZ": "UTC"},
            "list": ["DB_PASSWORD=s3cr3t", "MODE=prod"],
            "two_factor_config": {"secret_configured": true}, "password_disabled": false});
        redact_keys(&mut env);
        assert_eq!(
            env,
            json!({"environment": {
            "POSTGRES_PASSWORD": REDACTED, "SESSION_SECRET": REDACTED, "GITHUB_TOKEN": REDACTED,
            "DATABASE_URL": "postgres://inventory:********@db:5432/inventory",
            "REDIS_URL": "redis://cache:6379/0", "TZ": "UTC"},
            "list": ["DB_PASSWORD=********", "MODE=prod"],
            "two_factor_config": {"secret_configured": true}, "password_disabled": false})
        );
        assert_eq!(
            redact_url_passwords("see https://a:b@h/x and ftp://u@h"),
            Some("see https://a:********@h/x and ftp://u@h".into())
        );
        assert_eq!(redact_url_passwords("no url here"), None);
    }

    #[test]
    fn remembered_values_are_scrubbed_from_any_text() {
        remember_secret_values(&[
            "hunter2-db".to_owned(),
            "on".to_owned(),
            "a\"b\\c".to_owned(),
        ]);
        assert_eq!(
            scrub_known_values(r#"{"CMD":"--db-password=hunter2-db","MODE":"on"}"#),
            r#"{"CMD":"--db-password=********","MODE":"on"}"#
        );
        assert_eq!(scrub_known_values(r#"x "a\"b\\c" y"#), r#"x "********" y"#);
    }

    #[test]
    fn one_name_rule() {
        for secret in [
            "DB_PASS",
            "JWT_KEY",
            "POSTGRES_PASSWORD",
            "rootpassword",
            "apiKey",
            "MYSQL_PWD",
            "SESSION_SECRET",
            "GITHUB_TOKEN",
            "ssh-key",
            "PASSWORD_SALT",
            "private_key",
            "clientSecret",
            "db.pass",
        ] {
            assert!(looks_secret(secret), "{secret}");
        }
        for plain in [
            "TAG",
            "IMAGE",
            "KEYCLOAK_URL",
            "BYPASS_CACHE",
            "monkey",
            "TZ",
            "passthrough",
            "compass",
            "username",
            "keyboard_layout",
            "keys",
        ] {
            assert!(!looks_secret(plain), "{plain}");
        }
    }

    #[test]
    fn issued_secrets_are_redacted() {
        let mut r = json!({"id": 3, "name": "ci", "key": "3-xyz"});
        redact_result("api_key.create", &mut r);
        assert_eq!(r["key"], REDACTED);
        let mut t = json!("tok");
        redact_result("auth.generate_token", &mut t);
        assert_eq!(t, json!(REDACTED));
        let mut nested = json!({"user": {"Password": "x", "name": "n"}});
        redact_result("user.query", &mut nested);
        assert_eq!(nested, json!({"user": {"Password": REDACTED, "name": "n"}}));
    }
}
