//! Failures of mock methods and how the server renders them (`docs/middleware.md` §3.2).
//!
//! One [`MockError`] value becomes a JSON-RPC error object, a legacy `/websocket` error
//! object, a job's `error`/`exception`/`exc_info`, or a `notify_unsubscribed` / `nosub` error,
//! so they all stay consistent.

use serde_json::{Value, json};

use super::ServerVersion;
use crate::protocol::ddp::LegacyError;
use crate::protocol::{ErrorData, ErrorObject, ValidationEntry, codes, errno};

/// A failure raised by a mock method (what the Python server would raise).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum MockError {
    /// -32601 "Method does not exist".
    #[error("Method does not exist")]
    MethodNotFound,
    /// `CallError(message, errno)`: -32001, reason `[ERRNAME] message`.
    #[error("[{}] {message}", errno::name(*errno))]
    Call {
        /// errno.
        errno: i64,
        /// The message without prefix.
        message: String,
    },
    /// `ValidationError(s)`: -32602 with `[attribute, message, errno]` triples.
    #[error("{}", validation_reason(.0))]
    Validation(Vec<ValidationEntry>),
    /// `MatchNotFound()` from a `get: true` query: -32001, errno 22, reason "MatchNotFound()".
    #[error("MatchNotFound()")]
    MatchNotFound,
    /// Any other Python exception (e.g. `AttributeError`): -32001 errno 22, reason = the text.
    /// Guess: the reason carries no `[ERRNAME]` prefix, as `str(exc)` has none.
    #[error("{message}")]
    Exception {
        /// Python class name.
        class: &'static str,
        /// `str(exc)`.
        message: String,
    },
}

impl MockError {
    /// `CallError(message, errno)`.
    pub fn call(errno: i64, message: impl Into<String>) -> Self {
        MockError::Call {
            errno,
            message: message.into(),
        }
    }

    /// One validation error.
    pub fn invalid(attribute: Option<&str>, message: impl Into<String>, errno: i64) -> Self {
        MockError::Validation(vec![ValidationEntry {
            attribute: attribute.map(str::to_owned),
            message: message.into(),
            errno,
        }])
    }

    /// `InstanceNotFound`: a ValidationError with attribute null and errno ENOENT.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::invalid(None, message, errno::ENOENT)
    }

    /// The errno the server reports in `data.error`.
    pub fn errno(&self) -> i64 {
        match self {
            MockError::Call { errno, .. } => *errno,
            _ => errno::EINVAL,
        }
    }

    /// Python class name, as in `trace.class` and `exc_info.type`.
    pub fn class(&self) -> &'static str {
        match self {
            MockError::MethodNotFound => "CallError",
            MockError::Call { .. } => "CallError",
            MockError::Validation(v) if v.len() == 1 && v[0].errno == errno::ENOENT => {
                "InstanceNotFound"
            }
            MockError::Validation(_) => "ValidationErrors",
            MockError::MatchNotFound => "MatchNotFound",
            MockError::Exception { class, .. } => class,
        }
    }

    /// Python `repr(exc)`.
    pub fn repr(&self) -> String {
        match self {
            MockError::MethodNotFound => "CallError('Method does not exist', 14, None)".into(),
            MockError::Call { errno, message } => {
                format!("CallError({}, {errno}, None)", py_str(message))
            }
            MockError::Validation(v) => {
                let items: Vec<String> = v
                    .iter()
                    .map(|e| {
                        format!(
                            "ValidationError({}, {}, {})",
                            e.attribute.as_deref().map_or("None".into(), py_str),
                            py_str(&e.message),
                            e.errno
                        )
                    })
                    .collect();
                format!("ValidationErrors([{}])", items.join(", "))
            }
            MockError::MatchNotFound => "MatchNotFound()".into(),
            MockError::Exception { class, message } => format!("{class}({})", py_str(message)),
        }
    }

    /// Module path of the exception class, for the last traceback line.
    fn qualified_class(&self) -> String {
        match self {
            MockError::Exception { class, .. } => (*class).to_owned(),
            _ => format!("middlewared.service_exception.{}", self.class()),
        }
    }

    /// A plausible Python traceback ending in this exception.
    pub fn traceback(&self, method: &str) -> String {
        let (file, func) = method_origin(method);
        format!(
            "Traceback (most recent call last):\n  \
             File \"/usr/lib/python3/dist-packages/middlewared/api/base/server/ws_handler/rpc.py\", line 360, in process_method_call\n    \
             result = await method.call(app, params)\n             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             File \"/usr/lib/python3/dist-packages/middlewared/api/base/server/method.py\", line 57, in call\n    \
             result = await self.middleware.call_with_audit(self.name, self.serviceobj, methodobj, params, app)\n  \
             File \"/usr/lib/python3/dist-packages/middlewared/main.py\", line 954, in call_with_audit\n    \
             result = await self._call(method, serviceobj, methodobj, params, app=app,\n  \
             File \"/usr/lib/python3/dist-packages/middlewared/{file}\", line 112, in {func}\n    \
             raise {repr}\n{qual}: {text}\n",
            repr = self.repr(),
            qual = self.qualified_class(),
            text = self,
        )
    }

    /// `error.data` as the JSON-RPC handler formats it.
    pub fn error_data(&self, method: &str, version: ServerVersion) -> ErrorData {
        let mut trace = json!({
            "class": self.class(),
            "formatted": self.traceback(method),
            "repr": self.repr(),
        });
        if version < ServerVersion::V26_0 {
            // 25.04 through 26.0.0-BETA.2 also send `frames` (`docs/middleware.md` §0.1).
            trace["frames"] = json!([{
                "filename": "/usr/lib/python3/dist-packages/middlewared/main.py",
                "lineno": 954,
                "method": "call_with_audit",
                "line": "        result = await self._call(method, serviceobj, methodobj, params, app=app,",
                "argspec": ["self", "method", "serviceobj", "methodobj", "params", "app"],
                "locals": {"method": py_str(method)},
            }]);
        }
        let extra = match self {
            MockError::Validation(v) => {
                Some(Value::Array(v.iter().map(|e| e.to_value()).collect()))
            }
            _ => None,
        };
        ErrorData {
            error: Some(self.errno()),
            errname: Some(errno::name(self.errno()).to_owned()),
            reason: Some(self.to_string()),
            trace: Some(trace),
            extra,
            other: Default::default(),
        }
    }

    /// The JSON-RPC error object (`docs/middleware.md` §3.2).
    pub fn to_error_object(&self, method: &str, version: ServerVersion) -> ErrorObject {
        match self {
            MockError::MethodNotFound => ErrorObject {
                code: codes::METHOD_NOT_FOUND,
                message: "Method does not exist".into(),
                data: None,
            },
            MockError::Validation(_) => ErrorObject {
                code: codes::INVALID_PARAMS,
                message: "Invalid params".into(),
                data: Some(self.error_data(method, version)),
            },
            _ => ErrorObject {
                code: codes::CALL_ERROR,
                message: "Method call error".into(),
                data: Some(self.error_data(method, version)),
            },
        }
    }

    /// The legacy `/websocket` error object (`docs/middleware.md` §1.4): no JSON-RPC code;
    /// `type: "VALIDATION"` for validation errors, whose errno is EAGAIN for a list
    /// (ValidationErrors) and the error's own for a single ValidationError (InstanceNotFound);
    /// `trace` without `frames`.
    ///
    /// Guesses, marked: an unknown method is `CallError` ENOMETHOD "Method 'x' not found in
    /// 'svc'" (the 24.10 method lookup; §3.2 quotes the same text for versioned endpoints), and
    /// 24.10 sends the not-authenticated reason bare, "Not authenticated" (§1.4), where later
    /// releases prefix `[ENOTAUTHENTICATED]`; being sent without an exception, it has no trace.
    pub fn to_legacy_error(&self, method: &str, version: ServerVersion) -> LegacyError {
        if let MockError::MethodNotFound = self {
            let (service, name) = method.rsplit_once('.').unwrap_or(("", method));
            return MockError::call(
                errno::ENOMETHOD,
                format!("Method {} not found in {}", py_str(name), py_str(service)),
            )
            .to_legacy_error(method, version);
        }
        let data = self.error_data(method, version);
        let (error, kind) = match self {
            MockError::Validation(v) if self.class() == "InstanceNotFound" => (
                v.first().map_or(errno::EINVAL, |e| e.errno),
                Some("VALIDATION"),
            ),
            MockError::Validation(_) => (errno::EAGAIN, Some("VALIDATION")),
            _ => (self.errno(), None),
        };
        // 24.10 sends "Not authenticated" itself, not from an exception: no prefix, no trace.
        let direct = matches!(self, MockError::Call { errno: n, .. } if *n == errno::ENOTAUTHENTICATED)
            && version == ServerVersion::V24_10;
        let (reason, trace) = match self {
            MockError::Call { message, .. } if direct => (message.clone(), None),
            _ => (
                self.to_string(),
                data.trace.map(|mut t| {
                    if let Some(m) = t.as_object_mut() {
                        m.remove("frames");
                    }
                    t
                }),
            ),
        };
        LegacyError {
            error: Some(error),
            errname: Some(errno::name(error).to_owned()),
            kind: kind.map(str::to_owned),
            reason: Some(reason),
            trace,
            extra: data.extra,
            other: Default::default(),
        }
    }

    /// `exc_info` of a failed job (`docs/middleware.md` §4.3).
    pub fn exc_info(&self) -> Value {
        match self {
            MockError::Validation(v) => json!({
                "repr": self.repr(),
                "type": "VALIDATION",
                "errno": errno::EINVAL,
                "extra": v.iter().map(|e| e.to_value()).collect::<Vec<_>>(),
            }),
            MockError::Call { errno, .. } => json!({
                "repr": self.repr(), "type": "CallError", "errno": errno, "extra": null,
            }),
            _ => json!({"repr": self.repr(), "type": self.class(), "errno": null, "extra": null}),
        }
    }
}

/// `str(ValidationErrors)`: one `[ERRNAME] attr: msg` line per error (attr `None` when null).
fn validation_reason(v: &[ValidationEntry]) -> String {
    v.iter()
        .map(|e| {
            format!(
                "[{}] {}: {}",
                errno::name(e.errno),
                e.attribute.as_deref().unwrap_or("None"),
                e.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A Python string literal (single quotes, like `repr`).
pub(crate) fn py_str(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Where a method lives in the middleware tree, for plausible tracebacks.
fn method_origin(method: &str) -> (String, String) {
    let mut parts = method.rsplitn(2, '.');
    let func = parts.next().unwrap_or(method).to_owned();
    let ns = parts.next().unwrap_or("core");
    let file = match ns {
        "core" => "service/core_service.py".to_owned(),
        "auth" => "plugins/auth.py".to_owned(),
        n if n.starts_with("app") => "plugins/apps/crud.py".to_owned(),
        n => format!("plugins/{}.py", n.replace('.', "/")),
    };
    (file, func)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_not_found_matches_the_reference_example() {
        let e = MockError::not_found("User 999 does not exist");
        let o = e.to_error_object("user.update", ServerVersion::V25_10);
        assert_eq!(o.code, codes::INVALID_PARAMS);
        let d = o.data.unwrap();
        assert_eq!(d.error, Some(22));
        assert_eq!(d.errname.as_deref(), Some("EINVAL"));
        assert_eq!(
            d.reason.as_deref(),
            Some("[ENOENT] None: User 999 does not exist")
        );
        assert_eq!(d.extra, Some(json!([[null, "User 999 does not exist", 2]])));
    }

    #[test]
    fn legacy_error_objects() {
        let single = MockError::not_found("User 999 does not exist");
        let e = single.to_legacy_error("user.update", ServerVersion::V24_10);
        assert_eq!((e.error, e.kind.as_deref()), (Some(2), Some("VALIDATION")));
        assert_eq!(e.extra, Some(json!([[null, "User 999 does not exist", 2]])));
        assert!(e.trace.as_ref().unwrap().get("frames").is_none());
        let list = MockError::invalid(Some("a.b"), "Field required", errno::EINVAL);
        let e = list.to_legacy_error("x.y", ServerVersion::V25_10);
        assert_eq!((e.error, e.errname.as_deref()), (Some(11), Some("EAGAIN")));
        let nauth = MockError::call(errno::ENOTAUTHENTICATED, "Not authenticated");
        assert_eq!(
            nauth
                .to_legacy_error("system.info", ServerVersion::V24_10)
                .reason
                .as_deref(),
            Some("Not authenticated")
        );
        assert_eq!(
            nauth
                .to_legacy_error("system.info", ServerVersion::V25_04)
                .reason
                .as_deref(),
            Some("[ENOTAUTHENTICATED] Not authenticated")
        );
        let missing =
            MockError::MethodNotFound.to_legacy_error("auth.login_ex", ServerVersion::V24_10);
        assert_eq!(missing.error, Some(errno::ENOMETHOD));
        assert_eq!(
            missing.reason.as_deref(),
            Some("[ENOMETHOD] Method 'login_ex' not found in 'auth'")
        );
    }

    #[test]
    fn call_error_reason_has_the_errname_prefix() {
        let e = MockError::call(errno::ENOTAUTHENTICATED, "Not authenticated");
        let d = e.error_data("core.ping", ServerVersion::V26_0);
        assert_eq!(
            d.reason.as_deref(),
            Some("[ENOTAUTHENTICATED] Not authenticated")
        );
        let trace = d.trace.unwrap();
        assert_eq!(trace["repr"], "CallError('Not authenticated', 207, None)");
        assert!(trace.get("frames").is_none());
        assert!(
            trace["formatted"]
                .as_str()
                .unwrap()
                .ends_with("CallError: [ENOTAUTHENTICATED] Not authenticated\n")
        );
    }
}
