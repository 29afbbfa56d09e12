//! The environment variables that stand in for connection flags (flag > environment >
//! profile): read here, by both the flags' merge ([`super::connection`]) and the profile's
//! ([`super::profile`]), so neither module needs the other for them.

/// Environment variables naming the server, in order of preference.
pub(super) const URL_VARS: &[&str] = &["MIDSCRIPT_URL", "TRUENAS_URL"];
/// Environment variables holding an API key, in order of preference.
pub(super) const KEY_VARS: &[&str] = &["MIDSCRIPT_API_KEY", "TRUENAS_API_KEY"];

/// The first of `names` set to a non-empty value.
pub(super) fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}
