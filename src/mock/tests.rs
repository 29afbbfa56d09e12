//! End-to-end tests of the mock, driven with raw tokio-tungstenite (no midscript client).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// A raw JSON-RPC client for tests.
struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Frames read while waiting for something else.
    pending: Vec<Value>,
}

impl Raw {
    async fn connect(server: &MockServer) -> Raw {
        Self::connect_url(&server.url(), server.fingerprint()).await
    }

    async fn connect_url(url: &str, fingerprint: Option<String>) -> Raw {
        let connector = fingerprint
            .map(|fp| tokio_tungstenite::Connector::Rustls(Arc::new(pinned_client_config(fp))));
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector)
            .await
            .expect("connect");
        Raw {
            ws,
            next_id: 0,
            pending: Vec::new(),
        }
    }

    async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    async fn read(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")?;
            match msg {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Send a request and return the whole reply; other frames are kept.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_text(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await;
        self.reply_to(json!(id)).await
    }

    async fn reply_to(&mut self, id: Value) -> Value {
        if let Some(i) = self
            .pending
            .iter()
            .position(|f| f.get("id") == Some(&id) && f.get("method").is_none())
        {
            return self.pending.remove(i);
        }
        loop {
            let f = self.read().await.expect("connection closed");
            if f.get("id") == Some(&id) && f.get("method").is_none() {
                return f;
            }
            self.pending.push(f);
        }
    }

    /// The result of a call, panicking on an error reply.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }

    /// The error object of a call, panicking on success.
    async fn error(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        r.get("error")
            .cloned()
            .unwrap_or_else(|| panic!("{method} succeeded: {r}"))
    }

    /// The next notification matching `pred` (kept frames first).
    async fn notification(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self
            .pending
            .iter()
            .position(|f| f.get("method").is_some() && pred(f))
        {
            return self.pending.remove(i);
        }
        loop {
            let f = self.read().await.expect("connection closed");
            if f.get("method").is_some() && pred(&f) {
                return f;
            }
            self.pending.push(f);
        }
    }

    /// `core.get_jobs` events of job `id` until it ends.
    async fn job_events(&mut self, id: i64) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let n = self
                .notification(|f| {
                    f["params"]["collection"] == "core.get_jobs" && f["params"]["id"] == id
                })
                .await;
            let state = n["params"]["fields"]["state"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            out.push(n["params"].clone());
            if ["FAILED", "ABORTED"].contains(&state.as_str()) {
                return out;
            }
            if state == "SUCCESS"
                && out
                    .iter()
                    .filter(|e| e["fields"]["state"] == "SUCCESS")
                    .count()
                    == 2
            {
                return out;
            }
        }
    }

    async fn wait_app_state(&mut self, app: &str, state: &str) -> Value {
        self.notification(|f| {
            f["params"]["collection"] == "app.query"
                && f["params"]["id"] == app
                && f["params"]["fields"]["state"] == state
        })
        .await["params"]["fields"]
            .clone()
    }

    /// Wait for the server's close frame.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    }

    async fn login(&mut self) {
        let r = self
            .call(
                "auth.login_ex",
                json!([{"mechanism": "PASSWORD_PLAIN", "username": "truenas_admin", "password": TEST_PASSWORD}]),
            )
            .await;
        assert_eq!(r["response_type"], "SUCCESS", "{r}");
    }
}

/// A rustls client config that trusts exactly the certificate with this fingerprint.
fn pinned_client_config(fingerprint: String) -> rustls::ClientConfig {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct Pin(String, Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for Pin {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let d = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
            let fp: Vec<String> = d.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            if fp.join(":") == self.0 {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General("fingerprint mismatch".into()))
            }
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.1.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.1.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.1.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pin(fingerprint, provider)))
        .with_no_client_auth()
}

async fn server_with(f: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut c = MockConfig::for_tests();
    f(&mut c);
    MockServer::start(c).await.unwrap()
}

async fn server() -> MockServer {
    server_with(|_| {}).await
}

fn errno_of(e: &Value) -> i64 {
    e["data"]["error"].as_i64().unwrap()
}

const WHOAMI: &str =
    "services:\n  web:\n    image: traefik/whoami:v1.10\n    ports:\n      - \"8081:80\"\n";

#[tokio::test]
async fn login_gates_and_password_login() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    let e = c.error("system.info", json!([])).await;
    assert_eq!(e["code"], -32001);
    assert_eq!(e["message"], "Method call error");
    assert_eq!(errno_of(&e), 207);
    assert_eq!(e["data"]["errname"], "ENOTAUTHENTICATED");
    assert_eq!(e["data"]["reason"], "[ENOTAUTHENTICATED] Not authenticated");
    assert_eq!(e["data"]["trace"]["class"], "CallError");
    assert!(e["data"]["extra"].is_null());
    let bad = c
        .call(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "truenas_admin", "password": "nope"}]),
        )
        .await;
    assert_eq!(bad, json!({"response_type": "AUTH_ERR"}));
    c.login().await;
    let info = c.call("system.info", json!([])).await;
    assert_eq!(info["version"], "25.10.6");
    assert_eq!(
        c.call("auth.me", json!([])).await["pw_name"],
        "truenas_admin"
    );
    assert_eq!(c.call("core.ping", json!([])).await, "pong");
    assert_eq!(c.call("auth.logout", json!([])).await, true);
    assert_eq!(errno_of(&c.error("system.info", json!([])).await), 207);
    // Malformed login data is -32602.
    let e = c
        .error("auth.login_ex", json!([{"mechanism": "NOPE"}]))
        .await;
    assert_eq!(e["code"], -32602);
    s.shutdown().await;
}

#[tokio::test]
async fn ping_and_get_methods_auth_depend_on_version() {
    let s = server_with(|c| c.version = ServerVersion::V25_04).await;
    let mut c = Raw::connect(&s).await;
    assert_eq!(errno_of(&c.error("core.ping", json!([])).await), 207);
    let m = c.call("core.get_methods", json!([])).await;
    assert!(m.get("auth.login_ex").is_some());
    assert!(m.get("system.info").is_none());
    assert_eq!(
        c.call("core.set_options", json!([{"py_exceptions": false}]))
            .await,
        Value::Null
    );
    // mechanism_choices is broken when anonymous on 25.04 (§8.3).
    let e = c.error("auth.mechanism_choices", json!([])).await;
    assert_eq!(e["data"]["trace"]["class"], "AttributeError");
    s.shutdown().await;

    let s = server().await;
    let mut c = Raw::connect(&s).await;
    assert_eq!(c.call("core.ping", json!([])).await, "pong");
    assert_eq!(errno_of(&c.error("core.get_methods", json!([])).await), 207);
    assert_eq!(
        c.call("core.set_options", json!([{"legacy_jobs": true}]))
            .await,
        json!({"legacy_jobs": true, "private_methods": false, "py_exceptions": false})
    );
    c.login().await;
    let m = c.call("core.get_methods", json!([])).await;
    assert_eq!(m["app.create"]["job"], true);
    s.shutdown().await;
}

#[tokio::test]
async fn api_key_plain_over_insecure_ws_revokes_the_key() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    let login = json!([{"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": TEST_API_KEY}]);
    assert_eq!(
        c.call("auth.login_ex", login.clone()).await,
        json!({"response_type": "EXPIRED"})
    );
    assert_eq!(
        c.call("auth.login_ex", login.clone()).await,
        json!({"response_type": "AUTH_ERR"})
    );
    assert_eq!(
        c.call("auth.login_with_api_key", json!([TEST_API_KEY]))
            .await,
        false
    );
    c.login().await;
    let alerts = c.call("alert.list", json!([])).await;
    assert_eq!(alerts[0]["klass"], "ApiKeyRevoked");
    s.shutdown().await;

    // A secure transport logs in; a wrong owner is AUTH_ERR on 25.10 …
    let s = server_with(|c| c.plain_is_secure = true).await;
    let mut c = Raw::connect(&s).await;
    let wrong =
        json!([{"mechanism": "API_KEY_PLAIN", "username": "root", "api_key": TEST_API_KEY}]);
    assert_eq!(
        c.call("auth.login_ex", wrong.clone()).await["response_type"],
        "AUTH_ERR"
    );
    assert_eq!(
        c.call("auth.login_with_api_key", json!([TEST_API_KEY]))
            .await,
        true
    );
    assert_eq!(
        c.call("auth.me", json!([])).await["account_attributes"][1],
        "API_KEY"
    );
    s.shutdown().await;

    // … and the opaque authenticator error on 25.04 (§8.2).
    let s = server_with(|c| {
        c.plain_is_secure = true;
        c.version = ServerVersion::V25_04;
    })
    .await;
    let mut c = Raw::connect(&s).await;
    let e = c.error("auth.login_ex", wrong).await;
    assert!(
        e["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("unexpected authenticator run state")
    );
    s.shutdown().await;
}

#[tokio::test]
async fn otp_and_tokens() {
    let s = server_with(|c| {
        c.users.push(MockUser {
            id: 2,
            username: "otpuser".into(),
            password: "pw".into(),
            otp_code: Some("123456".into()),
            full_admin: false,
            api_access: true,
        })
    })
    .await;
    let mut c = Raw::connect(&s).await;
    let e = c
        .error(
            "auth.login_ex",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": "1"}]),
        )
        .await;
    assert_eq!(errno_of(&e), 22);
    let r = c
        .call(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "otpuser", "password": "pw"}]),
        )
        .await;
    assert_eq!(
        r,
        json!({"response_type": "OTP_REQUIRED", "username": "otpuser"})
    );
    let r = c
        .call(
            "auth.login_ex",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": "000000"}]),
        )
        .await;
    assert_eq!(r["response_type"], "OTP_REQUIRED");
    let r = c
        .call(
            "auth.login_ex_continue",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": "123456"}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS");
    assert_eq!(r["user_info"]["pw_name"], "otpuser");

    // Tokens minted on one connection log in another, single-use ones once.
    let token = c
        .call("auth.generate_token", json!([600, {}, false, true]))
        .await;
    let mut d = Raw::connect(&s).await;
    let login = json!([{"mechanism": "TOKEN_PLAIN", "token": token}]);
    assert_eq!(
        d.call("auth.login_ex", login.clone()).await["response_type"],
        "SUCCESS"
    );
    let mut e2 = Raw::connect(&s).await;
    assert_eq!(
        e2.call("auth.login_ex", login).await["response_type"],
        "AUTH_ERR"
    );
    let multi = c.call("auth.generate_token", json!([])).await;
    assert_eq!(e2.call("auth.login_with_token", json!([multi])).await, true);
    // The token never reaches the transcript.
    assert!(!s.transcript().contains(multi.as_str().unwrap()));
    s.shutdown().await;
}

async fn scram_login(c: &mut Raw, user: &str, key: &str, cb: Option<Vec<u8>>) -> Value {
    let (client, first) = scram::client::first(user, key, &[0x5a; 32], cb.is_some());
    let r = c
        .call(
            "auth.login_ex",
            json!([{"mechanism": "SCRAM", "scram_type": "CLIENT_FIRST_MESSAGE", "rfc_str": first}]),
        )
        .await;
    assert_eq!(r["scram_type"], "SERVER_FIRST_RESPONSE", "{r}");
    let (last, want_v) =
        scram::client::last(&client, r["rfc_str"].as_str().unwrap(), cb.as_deref());
    let r = c
        .call(
            "auth.login_ex",
            json!([{"mechanism": "SCRAM", "scram_type": "CLIENT_FINAL_MESSAGE", "rfc_str": last}]),
        )
        .await;
    if r["response_type"] == "SCRAM_RESPONSE" {
        assert_eq!(r["rfc_str"], want_v);
    }
    r
}

#[tokio::test]
async fn scram_on_26_with_and_without_channel_binding() {
    let s = server_with(|c| {
        c.version = ServerVersion::V26_0;
        c.users.push(MockUser {
            id: 2,
            username: "noapi".into(),
            password: "pw".into(),
            otp_code: None,
            full_admin: false,
            api_access: false,
        });
    })
    .await;
    let mut c = Raw::connect(&s).await;
    let mechs = c.call("auth.mechanism_choices", json!([])).await;
    assert!(mechs.as_array().unwrap().contains(&json!("SCRAM")));
    let r = scram_login(&mut c, "truenas_admin", TEST_API_KEY, None).await;
    assert_eq!(r["scram_type"], "SERVER_FINAL_RESPONSE");
    assert_eq!(r["user_info"]["pw_name"], "truenas_admin");
    assert_eq!(c.call("system.info", json!([])).await["version"], "26.0.0");
    // SCRAM never revokes, even over ws.
    let mut d = Raw::connect(&s).await;
    let r = scram_login(&mut d, "truenas_admin", "1-wrongmaterial", None).await;
    assert_eq!(r, json!({"response_type": "AUTH_ERR"}));
    // DENIED for an account without API access.
    let r = d
        .call(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "noapi", "password": "pw"}]),
        )
        .await;
    assert_eq!(r, json!({"response_type": "DENIED"}));
    // As on a real 26: a client nonce that is not 32 bytes, and binding asked for over plain
    // ws, are refused at the first message.
    for (nonce, binding) in [
        (vec![1u8; 24], false),
        (vec![1u8; 33], false),
        (vec![1u8; 32], true),
    ] {
        let (_, first) = scram::client::first("truenas_admin", TEST_API_KEY, &nonce, binding);
        let r = d
            .call(
                "auth.login_ex",
                json!([{"mechanism": "SCRAM", "scram_type": "CLIENT_FIRST_MESSAGE", "rfc_str": first}]),
            )
            .await;
        assert_eq!(r, json!({"response_type": "AUTH_ERR"}), "{first}");
    }
    s.shutdown().await;

    // Over wss with tls-server-end-point channel binding, pinned by fingerprint.
    let s = server_with(|c| {
        c.version = ServerVersion::V26_0;
        c.tls = true;
    })
    .await;
    assert!(s.url().starts_with("wss://"));
    let fp = s.fingerprint().unwrap();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert!(
        fp.chars()
            .all(|ch| ch == ':' || ch.is_ascii_hexdigit() && !ch.is_ascii_lowercase())
    );
    let mut c = Raw::connect(&s).await;
    // The mock's certificate is ECDSA with SHA-256, so the binding is its SHA-256.
    let cb = ring::digest::digest(&ring::digest::SHA256, &s.certificate_der().unwrap())
        .as_ref()
        .to_vec();
    let r = scram_login(&mut c, "truenas_admin", TEST_API_KEY, Some(cb)).await;
    assert_eq!(r["scram_type"], "SERVER_FINAL_RESPONSE");
    // API_KEY_PLAIN over wss does not revoke.
    let mut d = Raw::connect(&s).await;
    let r = d
        .call(
            "auth.login_ex",
            json!([{"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": TEST_API_KEY}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS");
    s.shutdown().await;
}

#[tokio::test]
async fn protocol_errors() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.send_text("not json".into()).await;
    let r = c.reply_to(Value::Null).await;
    assert_eq!(r["error"]["code"], -32700);
    assert!(r["error"].get("data").is_none());
    c.send_text("[1,2]".into()).await;
    let r = c.reply_to(Value::Null).await;
    assert_eq!(
        r["error"]["message"],
        "Batch messages are not supported at this time"
    );
    c.send_text(r#"{"id":"x","method":"core.ping"}"#.into())
        .await;
    let r = c.reply_to(json!("x")).await;
    assert_eq!(
        r["error"],
        json!({"code": -32600, "message": "Missing 'jsonrpc' member"})
    );
    // No id: executed, never answered (not even errors).
    c.send_text(r#"{"jsonrpc":"2.0","method":"nope.nope"}"#.into())
        .await;
    c.send_text(r#"{"jsonrpc":"2.0","method":"core.ping","params":{}}"#.into())
        .await;
    let e = c.error("nope.nope", json!([])).await;
    assert_eq!(
        e,
        json!({"code": -32601, "message": "Method does not exist"})
    );
    // id echoed verbatim, including null.
    c.send_text(r#"{"jsonrpc":"2.0","id":null,"method":"core.ping"}"#.into())
        .await;
    assert_eq!(c.reply_to(Value::Null).await["result"], "pong");
    c.send_text(r#"{"jsonrpc":"2.0","id":"abc","method":"core.ping","params":[]}"#.into())
        .await;
    assert_eq!(c.reply_to(json!("abc")).await["result"], "pong");
    // Too many arguments is -32602.
    let e = c.error("core.ping", json!([1])).await;
    assert_eq!(e["code"], -32602);
    assert_eq!(
        e["data"]["extra"][0][1],
        "Too many arguments (expected 0, found 1)"
    );
    assert!(c.pending.is_empty(), "unexpected frames: {:?}", c.pending);
    s.shutdown().await;
}

#[tokio::test]
async fn instance_not_found_and_password_change() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    let e = c
        .error("user.update", json!([999, {"full_name": "x"}]))
        .await;
    assert_eq!(
        e,
        json!({"code": -32602, "message": "Invalid params", "data": {
            "error": 22, "errname": "EINVAL", "reason": "[ENOENT] None: User 999 does not exist",
            "trace": e["data"]["trace"].clone(), "extra": [[null, "User 999 does not exist", 2]]}})
    );
    let u = c
        .call(
            "user.query",
            json!([[["username", "=", "truenas_admin"]], {"get": true}]),
        )
        .await;
    assert_eq!(u["id"], 1);
    c.call("user.update", json!([1, {"password": "new-secret-pw"}]))
        .await;
    let mut d = Raw::connect(&s).await;
    let r = d
        .call(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "truenas_admin", "password": "new-secret-pw"}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS");
    let e = c
        .error("user.query", json!([[["id", "=", 5]], {"get": true}]))
        .await;
    assert_eq!(e["code"], -32001);
    assert_eq!(e["data"]["reason"], "MatchNotFound()");
    assert_eq!(errno_of(&e), 22);
    s.shutdown().await;
}

#[tokio::test]
async fn close_codes() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        c.closed().await,
        (
            1003,
            "Invalid websocket message type: <WSMsgType.BINARY: 2>".into()
        )
    );
    let mut c = Raw::connect(&s).await;
    // 8192 characters pass (non-ASCII counts as one character each), 8193 close 1007.
    let ok = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"core.ping","params":["{}"]}}"#,
        "é".repeat(8100)
    );
    assert!(ok.chars().count() <= 8192 && ok.len() > 8192);
    c.send_text(ok).await;
    assert_eq!(c.reply_to(json!(1)).await["error"]["code"], -32602);
    c.send_text("x".repeat(8193)).await;
    assert_eq!(
        c.closed().await,
        (
            1007,
            "Anonymous connection max message length is 8 kB".into()
        )
    );
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.send_text("x".repeat(9000)).await;
    assert_eq!(c.reply_to(Value::Null).await["error"]["code"], -32700);
    c.send_text("x".repeat(65537)).await;
    assert_eq!(
        c.closed().await,
        (1009, "Max message length is 64 kB".into())
    );
    let t = s.transcript().to_string();
    assert!(
        t.contains("close by server 1009 \"Max message length is 64 kB\""),
        "{t}"
    );
    assert!(t.contains("binary 3 bytes"));
    s.shutdown().await;
}

#[tokio::test]
async fn unknown_path_is_404_and_versions_are_listed() {
    let s = server().await;
    let url = format!("ws://{}/api/nope", s.addr());
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 404),
        other => panic!("{other:?}"),
    }
    // A versioned endpoint maps to the current one.
    let mut c = Raw::connect_url(&format!("ws://{}/api/v25.04.2", s.addr()), None).await;
    assert_eq!(c.call("core.ping", json!([])).await, "pong");
    let mut tcp = TcpStream::connect(s.addr()).await.unwrap();
    tcp.write_all(b"GET /api/versions HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.ends_with(r#""v25.10.5"]"#), "{body}");
    s.shutdown().await;
}

#[tokio::test]
async fn rate_limit_counts_anonymous_no_auth_calls_server_wide() {
    let s = server_with(|c| c.rate_limit.max_calls = 3).await;
    let mut c = Raw::connect(&s).await;
    for _ in 0..3 {
        c.call("auth.mechanism_choices", json!([])).await;
    }
    let e = c.error("auth.mechanism_choices", json!([])).await;
    assert_eq!(errno_of(&e), 16);
    assert_eq!(e["data"]["reason"], "[EBUSY] Rate Limit Exceeded");
    // core.set_options is exempt; other methods have their own key.
    for _ in 0..5 {
        c.call("core.set_options", json!([{}])).await;
    }
    c.call("core.ping", json!([])).await;
    // The count is per (method, IP), shared by every connection.
    let mut d = Raw::connect(&s).await;
    assert_eq!(
        errno_of(&d.error("auth.mechanism_choices", json!([])).await),
        16
    );
    // Logged-in calls are not counted.
    d.login().await;
    d.call("auth.mechanism_choices", json!([])).await;
    s.shutdown().await;
}

/// `core.job_wait` on a job that ended before anyone waited for it ends at once with that
/// job's result (it used to wait forever: the end was signalled to no one and then lost).
#[tokio::test]
async fn job_wait_on_a_job_that_already_ended() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("core.subscribe", json!(["core.get_jobs"])).await;
    let first = c
        .call(
            "app.create",
            json!([{"app_name": "whoami", "custom_app": true, "custom_compose_config_string": WHOAMI}]),
        )
        .await;
    let events = c.job_events(first.as_i64().unwrap()).await;
    assert_eq!(events.last().unwrap()["fields"]["state"], "SUCCESS");
    let wait = c.call("core.job_wait", json!([first])).await;
    let ended = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        c.job_events(wait.as_i64().unwrap()),
    )
    .await
    .expect("core.job_wait ends");
    let last = &ended.last().unwrap()["fields"];
    assert_eq!(last["state"], "SUCCESS");
    assert_eq!(last["result"]["state"], "DEPLOYING");
}

#[tokio::test]
async fn app_create_job_events_and_running_app() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("core.subscribe", json!(["core.get_jobs"])).await;
    c.call("core.subscribe", json!(["app.query"])).await;
    let id = c
        .call(
            "app.create",
            json!([{"app_name": "whoami", "custom_app": true, "custom_compose_config_string": WHOAMI}]),
        )
        .await;
    assert_eq!(id, 1);
    let events = c.job_events(1).await;
    assert_eq!(events[0]["msg"], "added");
    assert_eq!(events[0]["fields"]["state"], "WAITING");
    assert_eq!(events[1]["fields"]["state"], "RUNNING");
    let descs: Vec<&str> = events
        .iter()
        .filter_map(|e| e["fields"]["progress"]["description"].as_str())
        .collect();
    assert!(descs.contains(&"Initial validation completed for custom app creation"));
    assert!(descs.contains(&"'whoami' installed successfully"));
    let last = &events[events.len() - 1]["fields"];
    assert_eq!(last["state"], "SUCCESS");
    assert_eq!(last["progress"]["percent"], 100);
    assert_eq!(last["result"]["state"], "DEPLOYING");
    assert_eq!(
        last["arguments"][0]["custom_compose_config_string"],
        "********"
    );
    assert!(last["time_started"]["$date"].is_i64());
    assert_eq!(last["message_ids"], json!([4]));
    let app = c.wait_app_state("whoami", "RUNNING").await;
    let details = &app["active_workloads"]["container_details"][0];
    assert_eq!(details["state"], "running");
    assert_eq!(details["id"].as_str().unwrap().len(), 64);
    assert_eq!(
        app["active_workloads"]["used_ports"][0]["host_ports"][0]["host_port"],
        8081
    );
    let q = c
        .call(
            "app.query",
            json!([[["name", "=", "whoami"]], {"extra": {"retrieve_config": true}}]),
        )
        .await;
    assert_eq!(
        q[0]["config"]["services"]["web"]["image"],
        "traefik/whoami:v1.10"
    );
    let cfg = c.call("app.config", json!(["whoami"])).await;
    assert_eq!(cfg["services"]["web"]["ports"][0], "8081:80");
    let ids = c.call("app.container_ids", json!(["whoami"])).await;
    assert_eq!(ids.as_object().unwrap().len(), 1);
    let jobs = c
        .call(
            "core.get_jobs",
            json!([[["method", "=", "app.create"]], {"get": true}]),
        )
        .await;
    assert_eq!(jobs["state"], "SUCCESS");

    // stop: STOPPING (empty workloads) then STOPPED.
    let stop = c
        .call("app.stop", json!(["whoami"]))
        .await
        .as_i64()
        .unwrap();
    let stopping = c.wait_app_state("whoami", "STOPPING").await;
    assert_eq!(stopping["active_workloads"]["containers"], 0);
    c.wait_app_state("whoami", "STOPPED").await;
    assert_eq!(
        c.job_events(stop).await.last().unwrap()["fields"]["state"],
        "SUCCESS"
    );
    // delete: removed event with only an id.
    c.call("app.delete", json!(["whoami"])).await;
    let removed = c
        .notification(|f| {
            f["params"]["collection"] == "app.query" && f["params"]["msg"] == "removed"
        })
        .await;
    assert!(removed["params"].get("fields").is_none());
    s.shutdown().await;
}

#[tokio::test]
async fn failing_jobs() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("core.subscribe", json!(["core.get_jobs"])).await;
    let id = c
        .call(
            "app.create",
            json!([{"app_name": "Bad_Name", "custom_app": true}]),
        )
        .await
        .as_i64()
        .unwrap();
    let last = c.job_events(id).await.pop().unwrap();
    let f = &last["fields"];
    assert_eq!(f["state"], "FAILED");
    assert_eq!(f["exc_info"]["type"], "VALIDATION");
    assert_eq!(f["exc_info"]["extra"][0][0], "app_create.app_name");
    assert_eq!(f["exc_info"]["extra"][0][2], 22);
    assert!(
        f["exception"]
            .as_str()
            .unwrap()
            .starts_with("Traceback (most recent call last):")
    );
    // Neither compose field.
    let id = c
        .call("app.create", json!([{"app_name": "x", "custom_app": true}]))
        .await
        .as_i64()
        .unwrap();
    let f = c.job_events(id).await.pop().unwrap()["fields"].clone();
    assert_eq!(
        f["exc_info"]["extra"],
        json!([[
            "app_create.custom_compose_config",
            "This field is required",
            22
        ]])
    );
    // Duplicate name: CallError EEXIST inside the job.
    for expect in ["SUCCESS", "FAILED"] {
        let id = c
            .call(
                "app.create",
                json!([{"app_name": "dup", "custom_app": true, "custom_compose_config": {"services": {"a": {"image": "nginx"}}}}]),
            )
            .await
            .as_i64()
            .unwrap();
        let f = c.job_events(id).await.pop().unwrap()["fields"].clone();
        assert_eq!(f["state"], expect);
        if expect == "FAILED" {
            assert_eq!(f["exc_info"]["type"], "CallError");
            assert_eq!(f["exc_info"]["errno"], 17);
            assert_eq!(
                f["error"],
                "[EEXIST] Application with name dup already exists"
            );
        }
    }
    // New-style jobs answer at the end with the job's error (-32602 for validation).
    c.call("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    let e = c
        .error(
            "app.create",
            json!([{"app_name": "Bad_Name", "custom_app": true}]),
        )
        .await;
    assert_eq!(e["code"], -32602);
    let r = c
        .call(
            "app.create",
            json!([{"app_name": "fresh", "custom_app": true, "custom_compose_config_string": WHOAMI}]),
        )
        .await;
    assert_eq!(r["name"], "fresh");
    s.shutdown().await;
}

#[tokio::test]
async fn abort_and_transient_jobs() {
    let s = server_with(|c| c.job_step = Duration::from_millis(100)).await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("core.subscribe", json!(["core.get_jobs"])).await;
    let id = c
        .call("app.create", json!([{"app_name": "slow", "custom_app": true, "custom_compose_config_string": WHOAMI}]))
        .await;
    c.notification(|f| f["params"]["fields"]["state"] == "RUNNING")
        .await;
    assert_eq!(c.call("core.job_abort", json!([id])).await, Value::Null);
    let last = c.job_events(id.as_i64().unwrap()).await.pop().unwrap();
    assert_eq!(last["fields"]["state"], "ABORTED");
    assert!(last["fields"]["error"].is_null());
    // A transient job sends no events but can be polled.
    let scrub = c.call("pool.scrub.scrub", json!(["tank"])).await;
    let mut state = Value::Null;
    for _ in 0..100 {
        state = c
            .call(
                "core.get_jobs",
                json!([[["id", "=", scrub]], {"get": true, "select": ["state", "transient"]}]),
            )
            .await;
        if state["state"] == "SUCCESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, json!({"state": "SUCCESS", "transient": true}));
    assert!(
        !c.pending
            .iter()
            .any(|f| f["params"]["id"] == scrub && f["params"]["collection"] == "core.get_jobs")
    );
    // New-style: an aborted job answers result null.
    c.call("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    c.send_text(
        json!({"jsonrpc": "2.0", "id": "ns", "method": "app.create", "params": [
            {"app_name": "slow2", "custom_app": true, "custom_compose_config_string": WHOAMI}]})
        .to_string(),
    )
    .await;
    let added = c
        .notification(|f| {
            f["params"]["msg"] == "added" && f["params"]["fields"]["message_ids"] == json!(["ns"])
        })
        .await;
    let job = added["params"]["id"].clone();
    let mut d = Raw::connect(&s).await;
    d.login().await;
    d.call("core.job_abort", json!([job])).await;
    let r = c.reply_to(json!("ns")).await;
    assert_eq!(r["result"], Value::Null);
    assert!(r.get("error").is_none());
    s.shutdown().await;
}

#[tokio::test]
async fn crashing_apps() {
    let s = server_with(|c| c.crash_apps = vec!["boom".into()]).await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("core.subscribe", json!(["app.query"])).await;
    c.call("core.subscribe", json!(["core.get_jobs"])).await;
    let id = c
        .call("app.create", json!([{"app_name": "boom", "custom_app": true, "custom_compose_config_string": WHOAMI}]))
        .await;
    let app = c.wait_app_state("boom", "CRASHED").await;
    assert_eq!(
        app["active_workloads"]["container_details"][0]["state"],
        "crashed"
    );
    let last = c.job_events(id.as_i64().unwrap()).await.pop().unwrap();
    assert_eq!(last["fields"]["state"], "SUCCESS");
    // An image tagged `crash` crashes only its own container.
    let compose =
        json!({"services": {"ok": {"image": "nginx:1"}, "bad": {"image": "busybox:crash"}}});
    c.call(
        "app.create",
        json!([{"app_name": "mixed", "custom_app": true, "custom_compose_config": compose}]),
    )
    .await;
    let app = c.wait_app_state("mixed", "CRASHED").await;
    let states: Vec<&str> = app["active_workloads"]["container_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["running", "crashed"]);
    // Switching crash off at runtime: the next deploy runs.
    s.set_crash("boom", false);
    c.call("app.redeploy", json!(["boom"])).await;
    c.wait_app_state("boom", "RUNNING").await;
    s.shutdown().await;
}

#[tokio::test]
async fn log_follow_and_periodic_sources() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("core.subscribe", json!(["app.query"])).await;
    c.call(
        "app.create",
        json!([{"app_name": "logs", "custom_app": true, "custom_compose_config_string": WHOAMI}]),
    )
    .await;
    let app = c.wait_app_state("logs", "RUNNING").await;
    let cid = app["active_workloads"]["container_details"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let name = format!(
        "app.container_log_follow:{}",
        json!({"app_name": "logs", "container_id": cid, "tail_lines": 2})
    );
    let sub = c.call("core.subscribe", json!([name])).await;
    let mut lines = Vec::new();
    // The last two lines, and the stream stays open while the container runs.
    while lines.len() < 2 {
        let n = c
            .notification(|f| f["params"]["collection"] == name.as_str())
            .await;
        assert_eq!(n["params"]["msg"], "added", "{n}");
        lines.push(n["params"]["fields"].clone());
    }
    assert_eq!(lines[1]["data"], "ready");
    assert!(lines[0]["timestamp"].as_str().unwrap().starts_with("20"));
    c.call("core.unsubscribe", json!([sub])).await;
    // Bad arguments: notify_unsubscribed with an error BEFORE the subscribe reply.
    let bad = r#"app.stats:{"interval":1}"#;
    c.send_text(
        json!({"jsonrpc": "2.0", "id": "sub", "method": "core.subscribe", "params": [bad]})
            .to_string(),
    )
    .await;
    let first = c.read().await.unwrap();
    assert_eq!(first["method"], "notify_unsubscribed");
    assert_eq!(first["params"]["collection"], bad);
    assert_eq!(first["params"]["error"]["error"], 22);
    assert!(c.read().await.unwrap()["result"].is_string());
    // A wrong container: runtime error after the reply.
    let wrong = format!(
        "app.container_log_follow:{}",
        json!({"app_name": "logs", "container_id": "nope"})
    );
    c.call("core.subscribe", json!([wrong])).await;
    let n = c
        .notification(|f| f["params"]["collection"] == wrong.as_str())
        .await;
    assert_eq!(n["params"]["error"]["errname"], "ENOENT");
    // Periodic sources tick (interval 2 = 2 job steps in deterministic mode).
    let rt = r#"reporting.realtime:{"interval":2}"#;
    let sub = c.call("core.subscribe", json!([rt])).await;
    let n = c.notification(|f| f["params"]["collection"] == rt).await;
    assert!(n["params"]["fields"]["cpu"]["cpu"]["usage"].is_number());
    let st = c.call("core.subscribe", json!(["app.stats"])).await;
    let n = c
        .notification(|f| f["params"]["collection"] == "app.stats")
        .await;
    assert_eq!(n["params"]["fields"][0]["app_name"], "logs");
    assert_eq!(c.call("core.unsubscribe", json!([sub])).await, Value::Null);
    c.notification(|f| f["method"] == "notify_unsubscribed" && f["params"]["collection"] == rt)
        .await;
    // Logout ends the remaining source.
    c.call("auth.logout", json!([])).await;
    c.notification(|f| {
        f["method"] == "notify_unsubscribed" && f["params"]["collection"] == "app.stats"
    })
    .await;
    let _ = st;
    s.shutdown().await;
}

#[tokio::test]
async fn concurrency_limit() {
    let s = server_with(|c| c.job_step = Duration::from_millis(200)).await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    // New-style jobs hold their slot until they end (§3.6); scrubs of one pool queue on a lock.
    for i in 0..20 {
        c.send_text(json!({"jsonrpc": "2.0", "id": 100 + i, "method": "pool.scrub.scrub", "params": ["tank"]}).to_string())
            .await;
    }
    let e = c.error("core.ping", json!([])).await;
    assert_eq!(
        e,
        json!({"code": -32000, "message": "Maximum number of concurrent calls (20) has exceeded"})
    );
    s.shutdown().await;
}

#[tokio::test]
async fn transcript_is_ordered_and_redacted() {
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    c.call("auth.login_with_api_key", json!([TEST_API_KEY]))
        .await;
    c.call("user.update", json!([1, {"password": "another-secret"}]))
        .await;
    c.send_text("{\"password\": \"broken".into()).await;
    c.reply_to(Value::Null).await;
    let t = s.transcript();
    let text = t.to_string();
    assert!(!text.contains(TEST_PASSWORD), "{text}");
    assert!(!text.contains(TEST_API_KEY), "{text}");
    assert!(!text.contains("another-secret"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "c1 open /api/current");
    assert!(
        lines[1].starts_with(r#"c1 -> {"jsonrpc":"2.0","id":1,"method":"auth.login_ex""#),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(r#""password":"********""#));
    assert!(
        lines[2]
            .starts_with(r#"c1 <- {"jsonrpc":"2.0","id":1,"result":{"response_type":"SUCCESS""#)
    );
    s.clear_transcript();
    assert!(s.transcript().lines.is_empty());
    drop(c);
    s.shutdown().await;
}

#[test]
fn versions_and_config() {
    assert_eq!(
        "25.04".parse::<ServerVersion>().unwrap(),
        ServerVersion::V25_04
    );
    assert_eq!(
        "26.0".parse::<ServerVersion>().unwrap(),
        ServerVersion::V26_0
    );
    assert_eq!(
        "24.10".parse::<ServerVersion>().unwrap(),
        ServerVersion::V24_10
    );
    assert_eq!(
        "v24.10.2.4".parse::<ServerVersion>().unwrap(),
        ServerVersion::V24_10
    );
    for v in ["27", "27.0", "v27.0.0"] {
        assert_eq!(v.parse::<ServerVersion>().unwrap(), ServerVersion::V27_0);
    }
    assert_eq!(ServerVersion::V27_0.to_string(), "27.0.0");
    assert!(ServerVersion::V27_0.api_versions().contains(&"v27.0.0"));
    assert!(!ServerVersion::V26_0.api_versions().contains(&"v27.0.0"));
    let err = "28.0".parse::<ServerVersion>().unwrap_err().to_string();
    assert!(err.contains("27.0"), "{err}");
    assert!("24.04".parse::<ServerVersion>().is_err());
    assert_eq!(ServerVersion::V24_10.to_string(), "24.10.2.4");
    assert!(ServerVersion::V24_10.api_versions().is_empty());
    assert_eq!(ServerVersion::V25_04.to_string(), "25.04.2.6");
    assert_eq!(TEST_API_KEY.len(), 66);
    assert!(TEST_API_KEY[2..].chars().all(|c| c.is_ascii_alphanumeric()));
    let d = MockConfig::default();
    assert!(d.tls);
    assert_eq!(d.users[0].password.len(), 20);
    assert_ne!(d.users[0].password, MockConfig::default().users[0].password);
    assert!(d.api_keys[0].key.starts_with("1-"));
}

#[tokio::test]
async fn catalog_backed_gates() {
    let s = server_with(|c| {
        c.users.push(MockUser {
            id: 2,
            username: "viewer".into(),
            password: "pw".into(),
            otp_code: None,
            full_admin: false,
            api_access: true,
        })
    })
    .await;
    let mut c = Raw::connect(&s).await;
    // A real method the mock lacks: login first, then ENOSYS after the schema check.
    assert_eq!(
        errno_of(&c.error("pool.snapshottask.query", json!([])).await),
        207
    );
    c.login().await;
    let e = c.error("pool.snapshottask.query", json!([])).await;
    assert_eq!(e["data"]["errname"], "ENOSYS");
    let e = c
        .error("pool.snapshottask.query", json!(["not-a-list"]))
        .await;
    assert_eq!(e["code"], -32602);
    // Schema errors of implemented non-job methods come from the catalog.
    let e = c.error("app.container_ids", json!([1])).await;
    assert_eq!(
        e["data"]["extra"],
        json!([["app_name", "Input should be a valid string", 22]])
    );
    let m = c.call("core.get_methods", json!([])).await;
    assert_eq!(m.as_object().unwrap().len(), 771);
    // Whole entries, as a server sends them: descriptions, schemas and roles included.
    assert!(m["app.create"]["description"].is_string() && m["app.create"]["accepts"].is_array());
    assert_eq!(m["app.create"]["roles"], json!(["APPS_WRITE"]));
    let apps = c.call("core.get_methods", json!(["app"])).await;
    assert!(apps.get("app.create").is_some() && apps.get("user.query").is_none());
    // A non-admin may read but not write.
    let mut v = Raw::connect(&s).await;
    let r = v
        .call(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "viewer", "password": "pw"}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS");
    v.call("app.query", json!([])).await;
    let e = v.error("app.create", json!([{"app_name": "x"}])).await;
    assert_eq!(e["data"]["reason"], "[EACCES] Not authorized");
    s.shutdown().await;
}

/// A raw legacy (DDP) client for tests: string ids, `msg`-typed frames.
struct RawDdp {
    raw: Raw,
    next_id: u64,
}

impl RawDdp {
    /// Open `/websocket` without the `connect` handshake.
    async fn open(server: &MockServer) -> RawDdp {
        RawDdp {
            raw: Raw::connect_url(&server.legacy_url(), server.fingerprint()).await,
            next_id: 0,
        }
    }

    /// Open `/websocket` and complete the handshake.
    async fn connect(server: &MockServer) -> RawDdp {
        let mut c = Self::open(server).await;
        c.send(json!({"msg": "connect", "version": "1", "support": ["1"]}))
            .await;
        let r = c.raw.read().await.expect("connected");
        assert_eq!(r["msg"], "connected", "{r}");
        assert!(r["session"].is_string(), "{r}");
        c
    }

    async fn send(&mut self, frame: Value) {
        self.raw.send_text(frame.to_string()).await;
    }

    /// The next frame matching `pred`; others are dropped.
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let f = self.raw.read().await.expect("connection closed");
            if pred(&f) {
                return f;
            }
        }
    }

    /// Call `method` and return the whole `result` frame.
    async fn method(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send(json!({"msg": "method", "id": id, "method": method, "params": params}))
            .await;
        self.until(|f| f["msg"] == "result" && f["id"] == id.as_str())
            .await
    }

    async fn login(&mut self) {
        let r = self
            .method("auth.login", json!(["truenas_admin", TEST_PASSWORD]))
            .await;
        assert_eq!(r["result"], true, "{r}");
    }
}

#[tokio::test]
async fn ddp_handshake_ping_and_malformed_frames() {
    for version in [ServerVersion::V24_10, ServerVersion::V25_10] {
        let s = server_with(|c| c.version = version).await;
        // Anything before `connect`, or another version, is answered with `failed`.
        let mut c = RawDdp::open(&s).await;
        c.send(json!({"msg": "method", "id": "1", "method": "core.ping"}))
            .await;
        assert_eq!(
            c.raw.read().await.unwrap(),
            json!({"msg": "failed", "version": "1"})
        );
        c.send(json!({"msg": "connect", "version": "2"})).await;
        assert_eq!(c.raw.read().await.unwrap()["msg"], "failed");

        // DDP ping: answered by 24.10 only (§1.4); an answered call shows the ping was ignored.
        let mut c = RawDdp::connect(&s).await;
        c.send(json!({"msg": "ping", "id": "p1"})).await;
        let r = c.method("auth.login", json!(["nobody", "x"])).await;
        assert_eq!(r["result"], false);
        let t = s.transcript().to_string();
        assert_eq!(
            t.contains(r#"{"msg":"pong","id":"p1"}"#),
            version == ServerVersion::V24_10,
            "{t}"
        );
        // A missing method name.
        c.send(json!({"msg": "method", "id": "m"})).await;
        let r = c.until(|f| f["id"] == "m").await;
        assert_eq!(
            r["error"]["reason"],
            "Message is malformed: 'method' is absent."
        );
        assert_eq!(r["error"]["error"], 22);

        // A JSON-RPC frame: 1011 'msg'. Bad JSON: 1007. Binary: 1003 (§3.4).
        c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "core.ping"}))
            .await;
        assert_eq!(c.raw.closed().await, (1011, "'msg'".into()));
        let mut c = RawDdp::connect(&s).await;
        c.raw.send_text("{".into()).await;
        let (code, reason) = c.raw.closed().await;
        assert_eq!(code, 1007);
        assert!(reason.starts_with("Expecting"), "{reason}");
        let mut c = RawDdp::connect(&s).await;
        c.raw.ws.send(Message::binary(vec![1u8])).await.unwrap();
        assert_eq!(c.raw.closed().await.0, 1003);
        s.shutdown().await;
    }
}

#[tokio::test]
async fn the_24_10_profile_has_only_websocket_and_its_own_methods() {
    let s = server_with(|c| c.version = ServerVersion::V24_10).await;
    for path in ["/api/current", "/api/v25.04.2", "/api/v24.10"] {
        let url = format!("ws://{}{path}", s.addr());
        match tokio_tungstenite::connect_async(url).await.unwrap_err() {
            tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 404),
            other => panic!("{path}: {other:?}"),
        }
    }
    let mut tcp = TcpStream::connect(s.addr()).await.unwrap();
    tcp.write_all(b"GET /api/versions HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 404"), "{body}");

    let mut c = RawDdp::connect(&s).await;
    // Anonymous: core.get_methods works (no-auth up to 25.04) and lists no auth.login_ex.
    let methods = c.method("core.get_methods", json!([])).await;
    let methods = methods["result"].as_object().expect("methods");
    assert!(methods.contains_key("auth.login"));
    assert!(!methods.contains_key("auth.login_ex"));
    // core.ping needs a login on 24.10 (`docs/middleware.md` §2.1), and the reason has no prefix (§1.4).
    let r = c.method("core.ping", json!([])).await;
    assert_eq!(r["error"]["error"], 207);
    assert_eq!(r["error"]["reason"], "Not authenticated");
    for missing in [
        "auth.login_ex",
        "auth.mechanism_choices",
        "core.set_options",
    ] {
        let r = c.method(missing, json!([])).await;
        assert_eq!(r["error"]["errname"], "ENOMETHOD", "{missing}: {r}");
    }
    c.login().await;
    let events = c.method("core.get_events", json!([])).await;
    assert!(events["result"]["core.get_jobs"].is_object(), "{events}");
    // Subscribing: `ready` with the client's id; `unsub` gets no reply.
    c.send(json!({"msg": "sub", "id": "s1", "name": "alert.list"}))
        .await;
    assert_eq!(
        c.until(|f| f["msg"] == "ready").await,
        json!({"msg": "ready", "subs": ["s1"]})
    );
    c.send(json!({"msg": "unsub", "id": "s1"})).await;
    assert_eq!(c.method("core.ping", json!([])).await["result"], "pong");
    s.shutdown().await;

    // core.get_events is gone from 25.04 on (`docs/middleware.md` §5.5).
    let s = server().await;
    let mut c = Raw::connect(&s).await;
    c.login().await;
    assert_eq!(c.error("core.get_events", json!([])).await["code"], -32601);
    s.shutdown().await;
}

#[tokio::test]
async fn on_24_10_the_rate_limit_counts_logged_in_calls_and_keys_are_not_revoked() {
    let s = server_with(|c| {
        c.version = ServerVersion::V24_10;
        c.rate_limit.max_calls = 2;
    })
    .await;
    // API_KEY_PLAIN over insecure plain ws: 24.10 lets it through (no revoking before 25.04).
    let mut c = RawDdp::connect(&s).await;
    let r = c
        .method("auth.login_with_api_key", json!([TEST_API_KEY]))
        .await;
    assert_eq!(r["result"], true, "{r}");
    assert!(!state::lock(&s.shared.keys)[0].revoked);
    // Logged in, the no-auth core.get_methods still counts (§2.5): the third is refused.
    for _ in 0..2 {
        assert!(c.method("core.get_methods", json!(["core"])).await["result"].is_object());
    }
    let r = c.method("core.get_methods", json!(["core"])).await;
    assert_eq!(r["error"]["errname"], "EBUSY", "{r}");
    s.shutdown().await;

    // From 25.04 on, logged-in calls are not counted, and the key is revoked over plain ws.
    let s = server_with(|c| {
        c.version = ServerVersion::V25_04;
        c.rate_limit.max_calls = 2;
    })
    .await;
    let mut c = RawDdp::connect(&s).await;
    c.login().await;
    for _ in 0..3 {
        assert!(c.method("core.get_methods", json!(["core"])).await["result"].is_object());
    }
    let r = c
        .method("auth.login_with_api_key", json!([TEST_API_KEY]))
        .await;
    assert_eq!(r["result"], false, "{r}");
    assert!(state::lock(&s.shared.keys)[0].revoked);
    s.shutdown().await;
}
