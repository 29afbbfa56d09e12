//! The client on the legacy `/websocket` dialect against the mock's 24.10 profile, where it
//! differs from JSON-RPC (the scenarios both share run on both in `tests/traffic.rs`): its
//! logins, errors and subscriptions frame for frame (insta snapshots), the automatic choice of
//! dialect, the fallback from `/api/current`, and the errors of a client that speaks the wrong
//! dialect.

use midscript::client::{
    AuthError, Client, ConnectOptions, Credentials, Dialect, Error, Mechanism, Secret, Trust,
};
use midscript::mock::{MockConfig, MockServer, ServerVersion};
use serde_json::json;

use crate::support::in_process::{Wire, assert_no_secrets, password, settings, transcript, whoami};
use crate::traffic::{
    bad_source_arguments_end_the_subscription, log_follow_ends_with_an_exited_container,
};

/// A 24.10 mock (plain ws, deterministic), edited by `edit`.
async fn eel(edit: impl FnOnce(&mut MockConfig)) -> MockServer {
    Wire::Legacy.mock(edit).await
}

/// Connect on the server's legacy `/websocket` URL, whatever its version.
async fn connect(server: &MockServer, credentials: Option<Credentials>) -> Result<Client, Error> {
    Wire::Legacy.connect(server, credentials).await
}

#[tokio::test]
async fn legacy_logins_with_an_api_key_a_token_and_an_otp() {
    // 24.10 never revokes a key used over an insecure transport: plain ws works.
    let server = eel(|c| c.users[0].otp_code = Some("246810".into())).await;
    let key = &server.config().api_keys[0];
    let creds = Credentials::ApiKey {
        username: Some(key.owner.clone()),
        key: Secret::new(key.key.clone()),
    };
    let client = connect(&server, Some(creds)).await.unwrap();
    assert_eq!(
        client.login_info().unwrap().mechanism,
        Mechanism::ApiKeyPlain
    );
    let token = client.call("auth.generate_token", vec![]).await.unwrap();
    client.close().await;
    let client = connect(
        &server,
        Some(Credentials::Token(Secret::new(token.as_str().unwrap()))),
    )
    .await
    .unwrap();
    assert_eq!(client.login_info().unwrap().mechanism, Mechanism::Token);
    client.close().await;

    // A two-factor account: the OTP goes up front as auth.login's third argument; without it
    // 24.10 just answers false, like a wrong password.
    let mut creds = password(&server);
    let err = connect(&server, Some(creds.clone())).await.unwrap_err();
    assert!(matches!(err, Error::Auth(AuthError::Rejected)), "{err:?}");
    let Credentials::Password { otp, .. } = &mut creds else {
        unreachable!()
    };
    *otp = Some(Secret::new("246810"));
    let client = connect(&server, Some(creds)).await.unwrap();
    assert!(client.is_authenticated());
    client.close().await;
    assert_no_secrets(&server);
    let t = transcript(&server);
    assert!(
        !t.contains("246810") && !t.contains(token.as_str().unwrap()),
        "{t}"
    );
    assert!(!t.contains("login_ex"), "24.10 has no auth.login_ex: {t}");
    settings().bind(|| insta::assert_snapshot!("legacy_logins", t));
}

#[tokio::test]
async fn legacy_errors_carry_validation_fields_and_errnos() {
    let server = eel(|_| {}).await;
    let anonymous = connect(&server, None).await.unwrap();
    let err = anonymous.call("system.info", vec![]).await.unwrap_err();
    let s = err.server().expect("a server error");
    assert!(s.is_not_authenticated() && s.code.is_none(), "{s:?}");
    assert_eq!(s.reason.as_deref(), Some("Not authenticated"));
    anonymous.close().await;

    let client = connect(&server, Some(password(&server))).await.unwrap();
    // A single ValidationError (InstanceNotFound) keeps its errno.
    let err = client
        .call("user.update", vec![json!(999), json!({"full_name": "X"})])
        .await
        .unwrap_err();
    let s = err.server().unwrap();
    assert!(s.is_validation && s.code.is_none(), "{s:?}");
    assert_eq!(s.errno, Some(2));
    assert_eq!(s.validation()[0].message, "User 999 does not exist");
    // A list of them is EAGAIN.
    let err = client
        .call("user.update", vec![json!(1), json!({"bogus": 1})])
        .await
        .unwrap_err();
    let s = err.server().unwrap();
    assert_eq!((s.errno, s.errname.as_deref()), (Some(11), Some("EAGAIN")));
    let v = s.validation();
    assert_eq!(v[0].attribute.as_deref(), Some("user_update.bogus"));
    assert_eq!(v[0].message, "Extra inputs are not permitted");
    assert_eq!(
        err.to_string(),
        "user.update: invalid arguments\n  user_update.bogus: Extra inputs are not permitted [EINVAL]"
    );
    // What 24.10 lacks does not exist there.
    let err = client
        .call("auth.login_ex", vec![json!({})])
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().errname.as_deref(), Some("ENOMETHOD"));
    client.close().await;
    settings().bind(|| insta::assert_snapshot!("legacy_validation_errors", transcript(&server)));
}

#[tokio::test]
async fn legacy_subscription_delivers_events_until_nosub() {
    // The two subscription scenarios of `tests/traffic.rs`, on one connection: events until
    // the source ends, then `nosub` with an error, before `ready`, for bad source arguments.
    let server = eel(|_| {}).await;
    let client = connect(&server, Some(password(&server))).await.unwrap();
    log_follow_ends_with_an_exited_container(&server, &client).await;
    bad_source_arguments_end_the_subscription(&client, Wire::Legacy).await;
    client.close().await;
    settings().bind(|| insta::assert_snapshot!("legacy_subscription", transcript(&server)));
}

#[tokio::test]
async fn anonymous_sub_is_refused_with_eacces() {
    let server = eel(|_| {}).await;
    let client = connect(&server, None).await.unwrap();
    let err = client.subscribe("alert.list").await.unwrap_err();
    assert_eq!(
        err.server().unwrap().errname.as_deref(),
        Some("EACCES"),
        "{err:?}"
    );
    assert!(client.subscriptions().is_empty());
    client.close().await;
}

#[tokio::test]
async fn newer_servers_serve_the_legacy_dialect_too() {
    let server = eel(|c| c.version = ServerVersion::V25_10).await;
    let client = connect(&server, Some(password(&server))).await.unwrap();
    assert_eq!(client.dialect(), Dialect::Legacy);
    let app = client
        .job("app.create", vec![whoami()], |_| {})
        .await
        .unwrap();
    assert_eq!(app["name"], "whoami");
    // 25.04+ prefix the not-authenticated reason; 24.10 does not.
    let anonymous = connect(&server, None).await.unwrap();
    let err = anonymous.call("system.info", vec![]).await.unwrap_err();
    assert_eq!(
        err.server().unwrap().reason.as_deref(),
        Some("[ENOTAUTHENTICATED] Not authenticated")
    );
}

#[tokio::test]
async fn the_fallback_from_api_current_reaches_24_10_on_websocket() {
    for (version, expect) in [
        (ServerVersion::V24_10, Dialect::Legacy),
        (ServerVersion::V25_10, Dialect::JsonRpc),
    ] {
        let server = eel(|c| {
            c.version = version;
            c.tls = true;
        })
        .await;
        let host = server.addr().to_string();
        let mut options = ConnectOptions::for_host(&host);
        assert_eq!(options.url, format!("wss://{host}/api/current"));
        options.trust = Trust::Pinned(server.fingerprint().unwrap().parse().unwrap());
        options.credentials = Some(password(&server));
        let client = Client::connect(options).await.unwrap();
        assert_eq!(client.dialect(), expect, "{version}");
        let path = if expect == Dialect::Legacy {
            "/websocket"
        } else {
            "/api/current"
        };
        assert_eq!(client.url(), format!("wss://{host}{path}"));
        client.call("system.info", vec![]).await.unwrap();
        client.close().await;
    }
    // Without the fallback, 24.10's /api/current is an HTTP 404 that names the legacy endpoint.
    let server = eel(|_| {}).await;
    let url = server.legacy_url().replace("/websocket", "/api/current");
    let err = Client::connect(ConnectOptions::new(url)).await.unwrap_err();
    assert!(
        matches!(err, Error::Handshake { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/websocket"), "{err}");
}

#[tokio::test]
async fn a_jsonrpc_frame_on_websocket_closes_1011_msg_naming_the_endpoint() {
    // Forced to the wrong dialect, the client sends JSON-RPC to /websocket: the server closes
    // with 1011 'msg', and the error says where JSON-RPC lives.
    let server = eel(|c| c.version = ServerVersion::V25_10).await;
    let mut options = ConnectOptions::new(server.legacy_url());
    options.dialect = Some(Dialect::JsonRpc);
    let client = Client::connect(options).await.unwrap();
    let err = client.call("core.ping", vec![]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Closed { code: Some(1011), reason, .. } if reason == "'msg'"),
        "{err:?}"
    );
    let api = server.url();
    assert!(
        err.to_string().contains(&format!("use {api} instead")),
        "{err}"
    );
    assert!(transcript(&server).contains(r#"close by server 1011 "'msg'""#));
}

#[tokio::test]
async fn a_failed_handshake_is_an_unsupported_protocol_version() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // A server that answers every frame with `failed`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(Message::Text(_))) = ws.next().await {
            let _ = ws
                .send(Message::text(r#"{"msg":"failed","version":"2"}"#))
                .await;
        }
    });
    let err = Client::connect(ConnectOptions::new(format!("ws://{addr}/websocket")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(
        err.to_string().contains("unsupported protocol version"),
        "{err}"
    );
    server.abort();
}
