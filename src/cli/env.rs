//! The environment variables that stand in for connection flags (flag > environment >
//! profile), read in one place as a layer of [`Settings`].

use super::settings::Settings;

/// Environment variables naming the server, in order of preference.
const URL_VARS: &[&str] = &["MIDSCRIPT_URL", "TRUENAS_URL"];
/// Environment variables holding an API key, in order of preference.
const KEY_VARS: &[&str] = &["MIDSCRIPT_API_KEY", "TRUENAS_API_KEY"];
/// Environment variables holding the password of a password login (with -U).
const PASSWORD_VARS: &[&str] = &["MIDSCRIPT_PASSWORD"];
/// Environment variables pinning the certificate of the server the environment names.
const FINGERPRINT_VARS: &[&str] = &["MIDSCRIPT_FINGERPRINT"];
/// The environment variable that names a profile.
const PROFILE_VAR: &str = "MIDSCRIPT_PROFILE";

/// The settings the environment gives: a server and its certificate's fingerprint, an API
/// key, a password, a profile.
pub(super) fn settings() -> Settings {
    from(|name| std::env::var(name).ok())
}

/// [`settings`], reading variables through `var`.
fn from(var: impl Fn(&str) -> Option<String>) -> Settings {
    let any = |names: &[&str]| names.iter().find_map(|n| var(n).filter(|v| !v.is_empty()));
    Settings {
        url: any(URL_VARS),
        api_key: any(KEY_VARS),
        password: any(PASSWORD_VARS),
        fingerprint: any(FINGERPRINT_VARS),
        profile: any(&[PROFILE_VAR]),
        ..Settings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_empty_variable_of_each_list_counts() {
        let env = from(|n| match n {
            "MIDSCRIPT_URL" => Some(String::new()),
            "TRUENAS_URL" => Some("wss://a/api/current".into()),
            "TRUENAS_API_KEY" => Some("2-b".into()),
            "MIDSCRIPT_API_KEY" => Some("1-a".into()),
            _ => None,
        });
        assert_eq!(env.url.as_deref(), Some("wss://a/api/current"));
        assert_eq!(env.api_key.as_deref(), Some("1-a"));
        assert_eq!(env.profile, None);
        assert_eq!(env.fingerprint, None);
        let env = from(|n| (n == "MIDSCRIPT_FINGERPRINT").then(|| "AB:CD".to_owned()));
        assert_eq!(env.fingerprint.as_deref(), Some("AB:CD"));
    }
}
