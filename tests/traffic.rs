//! The client against the in-process mock: behaviour asserted directly, and the exact traffic
//! (every frame, in order, secrets redacted) checked with insta snapshots. Ids are kept: the
//! pairing of requests and replies is part of what is under test.
//!
//! The scenarios both wire dialects share are written once and run on each ([`Wire`]):
//! `NAME::jsonrpc` against 25.10 on `/api/current`, `NAME::legacy` against 24.10 on
//! `/websocket`, each with its own snapshot (`legacy_` in front). What only one dialect has
//! follows them here (JSON-RPC) and in `tests/legacy.rs`.

use std::time::Duration;

use midscript::client::{
    AuthError, Client, ConnectOptions, Credentials, Error, JobProgress, Mechanism, Secret, Trust,
};
use midscript::mock::{MockServer, ServerVersion};
use serde_json::json;

use crate::support::in_process::{
    Wire, api_key, assert_no_secrets, connect, mock, password, settings, transcript, whoami,
};

// ---------------------------------------------------------------------------------------------
// Scenarios run on both dialects

crate::per_wire!(
    password_login_and_a_call,
    job_success,
    job_failures,
    job_aborted,
    app_events_follow_the_lifecycle_and_unsubscribe_ends_them,
    many_concurrent_calls_never_exceed_the_servers_limit,
    an_oversized_message_is_refused_before_sending,
    a_transient_job_without_events_is_polled_to_its_end,
);

async fn password_login_and_a_call(wire: Wire) {
    let server = wire.mock(|_| {}).await;
    assert_eq!(
        server.url() == server.legacy_url(),
        wire == Wire::Legacy,
        "only 24.10 lacks /api/current"
    );
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    assert_eq!(client.dialect(), wire.dialect());
    assert_eq!(client.login_info().unwrap().mechanism, Mechanism::Password);
    let info = client.call("system.info", vec![]).await.unwrap();
    let version = server.config().version.to_string();
    assert!(
        info["version"].as_str().unwrap().contains(&version),
        "{info}"
    );
    client.close().await;
    assert_no_secrets(&server);
    let name = wire.snapshot("password_login_and_a_call");
    settings().bind(|| insta::assert_snapshot!(name, transcript(&server)));
}

async fn job_success(wire: Wire) {
    let server = wire.mock(|_| {}).await;
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    let mut seen: Vec<JobProgress> = Vec::new();
    let app = client
        .job("app.create", vec![whoami()], |p| seen.push(p.clone()))
        .await
        .unwrap();
    assert_eq!(app["name"], "whoami");
    let descriptions: Vec<_> = seen.iter().filter_map(|p| p.description.clone()).collect();
    assert!(
        descriptions
            .iter()
            .any(|d| d.contains("installed successfully")),
        "{descriptions:?}"
    );
    assert_eq!(seen.last().unwrap().state, "SUCCESS");
    assert!(
        seen.windows(2).all(|w| w[0].percent <= w[1].percent),
        "progress went backwards: {seen:?}"
    );
    client.close().await;
    let t = transcript(&server);
    assert_eq!(
        t.contains("message_ids"),
        wire == Wire::JsonRpc,
        "jobs have message_ids from 25.10 on, none on 24.10"
    );
    let name = wire.snapshot("job_success");
    settings().bind(|| insta::assert_snapshot!(name, t));
}

async fn job_failures(wire: Wire) {
    let server = wire.mock(|_| {}).await;
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    client
        .job("app.create", vec![whoami()], |_| {})
        .await
        .unwrap();
    server.clear_transcript();
    let err = client
        .job("app.create", vec![whoami()], |_| {})
        .await
        .unwrap_err();
    let s = err.server().expect("server error");
    assert_eq!(s.errname.as_deref(), Some("EEXIST"), "{s:?}");
    assert!(s.job_id.is_some());
    let bad = json!({"app_name": "Bad_Name", "custom_app": true, "custom_compose_config": {"services": {}}});
    let err = client
        .job("app.create", vec![bad], |_| {})
        .await
        .unwrap_err();
    let v = err.server().unwrap().validation();
    assert_eq!(
        v[0].attribute.as_deref(),
        Some("app_create.app_name"),
        "{err}"
    );
    client.close().await;
    let name = wire.snapshot("job_failures");
    settings().bind(|| insta::assert_snapshot!(name, transcript(&server)));
}

async fn job_aborted(wire: Wire) {
    let server = wire.mock(|c| c.job_step = Duration::from_millis(200)).await;
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    let handle = client
        .start_job("app.create", vec![whoami()])
        .await
        .unwrap();
    // Abort once the job is known to be running (each later step is 200 ms away).
    let (started, running) = tokio::sync::oneshot::channel();
    let mut started = Some(started);
    let waiter = handle.clone();
    let outcome = tokio::spawn(async move {
        waiter
            .wait(move |p| {
                if p.percent.unwrap_or(0.0) > 0.0
                    && let Some(tx) = started.take()
                {
                    let _ = tx.send(());
                }
            })
            .await
    });
    running.await.unwrap();
    handle.abort().await.unwrap();
    let err = outcome.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::JobAborted { .. }), "{err:?}");
    client.close().await;
    let name = wire.snapshot("job_aborted");
    settings().bind(|| insta::assert_snapshot!(name, transcript(&server)));
}

/// Collect `app.query` states for `app` until one of them is `last`.
async fn states_until(
    sub: &mut midscript::client::Subscription,
    app: &str,
    last: &str,
) -> Vec<String> {
    let mut states: Vec<String> = Vec::new();
    while states.last().map(String::as_str) != Some(last) {
        let ev = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("an event in time")
            .expect("open")
            .expect("no error");
        assert_eq!(ev.id, Some(json!(app)));
        states.push(
            ev.fields.expect("fields")["state"]
                .as_str()
                .expect("a state")
                .to_owned(),
        );
    }
    states
}

async fn app_events_follow_the_lifecycle_and_unsubscribe_ends_them(wire: Wire) {
    let server = wire.mock(|_| {}).await;
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    let mut sub = client.subscribe("app.query").await.unwrap();
    client
        .job("app.create", vec![whoami()], |_| {})
        .await
        .unwrap();
    assert_eq!(
        states_until(&mut sub, "whoami", "RUNNING").await,
        ["DEPLOYING", "RUNNING"]
    );
    client
        .job("app.stop", vec![json!("whoami")], |_| {})
        .await
        .unwrap();
    assert_eq!(
        states_until(&mut sub, "whoami", "STOPPED").await,
        ["STOPPING", "STOPPED"]
    );
    sub.unsubscribe().await.unwrap();
    assert!(client.subscriptions().iter().all(|s| s != "app.query"));
    // The connection still works after the unsubscription (a legacy `unsub` gets no reply).
    assert_eq!(client.call("core.ping", vec![]).await.unwrap(), "pong");
    client.close().await;
    let t = transcript(&server);
    let (sub, unsub) = match wire {
        Wire::JsonRpc => (
            r#""method":"core.subscribe","params":["app.query"]"#,
            r#""method":"core.unsubscribe""#,
        ),
        Wire::Legacy => (
            r#"{"msg":"sub","id":"2","name":"app.query"}"#,
            r#"{"msg":"unsub","id":"2"}"#,
        ),
    };
    assert!(t.contains(sub) && t.contains(unsub), "{t}");
}

async fn many_concurrent_calls_never_exceed_the_servers_limit(wire: Wire) {
    let server = wire.mock(|_| {}).await;
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    let calls: Vec<_> = (0..60)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("system.info", vec![]).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().expect("no call refused");
    }
    assert!(!transcript(&server).contains("-32000"));
    client.close().await;
}

async fn an_oversized_message_is_refused_before_sending(wire: Wire) {
    let server = wire.mock(|_| {}).await;
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    let big = "x".repeat(70_000);
    let err = client
        .call("core.ping", vec![json!(big)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MessageTooBig { limit: 65536, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("65536"));
    // The connection is still usable: nothing was sent.
    assert_eq!(client.call("core.ping", vec![]).await.unwrap(), "pong");
    assert!(!transcript(&server).contains("xxxxxxxx"));
}

async fn a_transient_job_without_events_is_polled_to_its_end(wire: Wire) {
    // pool.scrub.scrub is transient on the server: it sends no core.get_jobs events.
    let server = wire.mock(|_| {}).await;
    let client = wire
        .connect(&server, Some(password(&server)))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        client.job("pool.scrub.scrub", vec![json!("tank")], |_| {}),
    )
    .await
    .expect("a transient job must not hang");
    outcome.unwrap();
    let t = transcript(&server);
    assert!(
        t.contains(
            r#""method":"core.get_jobs","params":[[["id","=",1]],{"extra":{"raw_result":true}}]"#
        ),
        "{t}"
    );
    assert!(
        !t.contains(r#""collection":"core.get_jobs""#),
        "a transient job sends no events:\n{t}"
    );
    client.close().await;
}

/// Follow the last three log lines of a whoami app whose container crashed: as with
/// `docker logs -f`, the stream of a container that exited ends with its log (that of a
/// running one stays open: `tests/firsthour.rs`).
pub(crate) async fn log_follow_ends_with_an_exited_container(server: &MockServer, client: &Client) {
    let mut app = whoami();
    app["custom_compose_config"]["services"]["web"]["image"] = json!("traefik/whoami:crash");
    let _ = client.job("app.create", vec![app], |_| {}).await;
    let ids = client
        .call("app.container_ids", vec![json!("whoami")])
        .await
        .unwrap();
    let container = ids.as_object().unwrap().keys().next().unwrap().clone();
    server.clear_transcript();
    let name = format!(
        r#"app.container_log_follow:{{"app_name":"whoami","container_id":"{container}","tail_lines":3}}"#
    );
    let mut sub = client.subscribe(&name).await.unwrap();
    let mut lines = Vec::new();
    while let Some(ev) = sub.recv().await {
        let ev = ev.unwrap();
        assert_eq!(ev.collection, name);
        lines.push(ev.fields.unwrap()["data"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        lines,
        [
            "Starting web (traefik/whoami:crash)",
            "listening on port 80/tcp",
            "fatal error (simulated crash), exiting with code 1"
        ]
    );
}

/// Bad event source arguments end the subscription with the validation error, before any
/// event: EINVAL on JSON-RPC, EAGAIN (a list of validation errors) on 24.10's legacy dialect.
pub(crate) async fn bad_source_arguments_end_the_subscription(client: &Client, wire: Wire) {
    let mut sub = client
        .subscribe(r#"reporting.realtime:{"interval":1}"#)
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .expect("an item")
        .unwrap_err();
    let Error::SubscriptionEnded { error, .. } = &err else {
        panic!("{err:?}")
    };
    let errno = match wire {
        Wire::JsonRpc => 22,
        Wire::Legacy => 11,
    };
    assert_eq!(error.error, Some(errno), "{err:?}");
    assert!(sub.recv().await.is_none());
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC only (the legacy dialect's own are in tests/legacy.rs)

#[tokio::test]
async fn a_subscription_delivers_events_until_its_source_ends() {
    let server = mock(|_| {}).await;
    let client = connect(&server, Some(password(&server))).await.unwrap();
    log_follow_ends_with_an_exited_container(&server, &client).await;
    client.close().await;
    settings().bind(|| insta::assert_snapshot!("subscription_log_follow", transcript(&server)));
}

#[tokio::test]
async fn bad_event_source_arguments_end_the_subscription_with_an_error() {
    let server = mock(|_| {}).await;
    let client = connect(&server, Some(password(&server))).await.unwrap();
    bad_source_arguments_end_the_subscription(&client, Wire::JsonRpc).await;
    client.close().await;
    settings().bind(|| insta::assert_snapshot!("subscription_bad_arguments", transcript(&server)));
}

#[tokio::test]
async fn password_login_with_otp() {
    let server = mock(|c| c.users[0].otp_code = Some("246810".into())).await;
    let mut creds = password(&server);
    let Credentials::Password { otp_prompt, .. } = &mut creds else {
        unreachable!()
    };
    *otp_prompt = Some(std::sync::Arc::new(|| Some("246810".to_owned())));
    let client = connect(&server, Some(creds.clone())).await.unwrap();
    assert!(client.is_authenticated());
    client.close().await;
    assert_no_secrets(&server);
    assert!(!transcript(&server).contains("246810"), "OTP leaked");
    settings().bind(|| insta::assert_snapshot!("password_login_with_otp", transcript(&server)));

    // Without an OTP source the login fails clearly, and a wrong OTP is refused.
    let Credentials::Password { otp_prompt, .. } = &mut creds else {
        unreachable!()
    };
    *otp_prompt = None;
    let err = connect(&server, Some(creds.clone())).await.unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::OtpRequired)),
        "{err:?}"
    );
    let Credentials::Password { otp, .. } = &mut creds else {
        unreachable!()
    };
    *otp = Some(Secret::new("000000"));
    let err = connect(&server, Some(creds)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth(AuthError::OtpRejected | AuthError::Rejected)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let server = mock(|_| {}).await;
    let u = &server.config().users[0];
    let creds = Credentials::Password {
        username: u.username.clone(),
        password: Secret::new("wrong"),
        otp: None,
        otp_prompt: None,
    };
    let err = connect(&server, Some(creds)).await.unwrap_err();
    assert!(matches!(err, Error::Auth(AuthError::Rejected)), "{err:?}");
    assert!(err.to_string().contains("AUTH_ERR"));
}

#[tokio::test]
async fn api_key_plain_login_over_a_secure_transport() {
    let server = mock(|c| c.plain_is_secure = true).await;
    let client = connect(&server, Some(api_key(&server, true)))
        .await
        .unwrap();
    assert_eq!(
        client.login_info().unwrap().mechanism,
        Mechanism::ApiKeyPlain
    );
    client.call("core.ping", vec![]).await.unwrap();
    client.close().await;
    assert_no_secrets(&server);
    settings().bind(|| insta::assert_snapshot!("api_key_plain_login", transcript(&server)));
}

#[tokio::test]
async fn api_key_without_owner_uses_login_with_api_key() {
    let server = mock(|c| c.plain_is_secure = true).await;
    let client = connect(&server, Some(api_key(&server, false)))
        .await
        .unwrap();
    assert_eq!(
        client.login_info().unwrap().mechanism,
        Mechanism::ApiKeyPlain
    );
    client.close().await;
    assert_no_secrets(&server);
    settings().bind(|| insta::assert_snapshot!("api_key_login_with_api_key", transcript(&server)));
}

#[tokio::test]
async fn api_key_scram_login_on_26() {
    let server = mock(|c| c.version = ServerVersion::V26_0).await;
    let client = connect(&server, Some(api_key(&server, true)))
        .await
        .unwrap();
    assert_eq!(client.login_info().unwrap().mechanism, Mechanism::Scram);
    client.call("core.ping", vec![]).await.unwrap();
    client.close().await;
    assert_no_secrets(&server);
    // The key material itself never crossed the wire.
    let material = server.config().api_keys[0]
        .key
        .split_once('-')
        .unwrap()
        .1
        .to_owned();
    assert!(!transcript(&server).contains(&material));
    settings().bind(|| insta::assert_snapshot!("api_key_scram_login", transcript(&server)));
}

#[tokio::test]
async fn plain_api_key_over_an_insecure_transport_is_revoked_by_the_server() {
    // The mock treats plain ws as a remote, insecure peer (the client allows it: loopback).
    let server = mock(|_| {}).await;
    let err = connect(&server, Some(api_key(&server, true)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth(AuthError::RevokedOverPlainWs { now: true })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("revoked this API key because it was sent over plain ws://"),
        "{err}"
    );
    // The key is now dead everywhere: AUTH_ERR, said with the likely reason; also without the
    // owner (auth.login_with_api_key answers a bare false).
    for with_owner in [true, false] {
        let err = connect(&server, Some(api_key(&server, with_owner)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Auth(AuthError::RevokedOverPlainWs { now: false })
            ),
            "with owner: {with_owner}: {err:?}"
        );
    }
    assert_no_secrets(&server);
}

#[tokio::test]
async fn an_api_key_is_never_sent_over_plain_ws_to_another_host() {
    let mut options = ConnectOptions::new("ws://nas.example.invalid/api/current");
    options.credentials = Some(Credentials::ApiKey {
        username: None,
        key: Secret::new("1-abc"),
    });
    let err = Client::connect(options).await.unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::InsecureApiKey { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("revokes"), "{err}");
}

#[tokio::test]
async fn token_login() {
    let server = mock(|_| {}).await;
    let admin = connect(&server, Some(password(&server))).await.unwrap();
    let token = admin.call("auth.generate_token", vec![]).await.unwrap();
    let token = token.as_str().unwrap().to_owned();
    admin.close().await;
    server.clear_transcript();
    let client = connect(
        &server,
        Some(Credentials::Token(Secret::new(token.clone()))),
    )
    .await
    .unwrap();
    assert_eq!(client.login_info().unwrap().mechanism, Mechanism::Token);
    client.close().await;
    assert!(!transcript(&server).contains(&token), "token leaked");
    settings().bind(|| insta::assert_snapshot!("token_login", transcript(&server)));
}

#[tokio::test]
async fn calls_before_login_fail_with_not_authenticated() {
    let server = mock(|_| {}).await;
    let client = connect(&server, None).await.unwrap();
    let err = client.call("system.info", vec![]).await.unwrap_err();
    let s = err.server().expect("a server error");
    assert!(s.is_not_authenticated(), "{s:?}");
    assert_eq!(
        err.to_string(),
        "system.info: [ENOTAUTHENTICATED] Not authenticated"
    );
}

#[tokio::test]
async fn validation_errors_carry_their_fields() {
    let server = mock(|_| {}).await;
    let client = connect(&server, Some(password(&server))).await.unwrap();
    let err = client
        .call("user.update", vec![json!(999), json!({"full_name": "X"})])
        .await
        .unwrap_err();
    let s = err.server().unwrap();
    assert_eq!(s.code, Some(-32602));
    assert_eq!(s.validation()[0].errno, 2, "{s:?}");
    let err = client
        .call("user.update", vec![json!(1), json!({"bogus": 1})])
        .await
        .unwrap_err();
    let v = err.server().unwrap().validation();
    assert_eq!(v[0].attribute.as_deref(), Some("user_update.bogus"));
    assert_eq!(v[0].message, "Extra inputs are not permitted");
    let err = client.call("no.such_method", vec![]).await.unwrap_err();
    assert_eq!(err.server().unwrap().code, Some(-32601));
    client.close().await;
    settings().bind(|| insta::assert_snapshot!("validation_errors", transcript(&server)));
}

#[tokio::test]
async fn rate_limited_anonymous_calls_get_ebusy_and_a_call_timeout_fires() {
    let server = mock(|c| {
        c.rate_limit.max_calls = 2;
        c.rate_limit.delay_min = Duration::ZERO;
        c.rate_limit.delay_max = Duration::ZERO;
    })
    .await;
    let client = connect(&server, None).await.unwrap();
    for _ in 0..2 {
        client.call("auth.mechanism_choices", vec![]).await.unwrap();
    }
    let err = client
        .call("auth.mechanism_choices", vec![])
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().errname.as_deref(),
        Some("EBUSY"),
        "{err:?}"
    );
    client.close().await;

    let slow = mock(|c| {
        c.rate_limit.max_calls = 0;
        c.rate_limit.delay_min = Duration::from_secs(3);
        c.rate_limit.delay_max = Duration::from_secs(3);
    })
    .await;
    let client = connect(&slow, None).await.unwrap();
    let err = client
        .call_with_timeout("auth.mechanism_choices", vec![], Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn tls_trust_modes() {
    let server = mock(|c| c.tls = true).await;
    let fp = server.fingerprint().expect("wss has a fingerprint");
    assert!(server.url().starts_with("wss://"));
    // Pinned to the right certificate: connects.
    let client = connect(&server, Some(password(&server))).await.unwrap();
    assert_eq!(client.fingerprint().unwrap().to_string(), fp);
    client.close().await;
    // Pinned to another certificate: refused, showing both.
    let mut options = ConnectOptions::new(server.url());
    options.trust = Trust::Pinned(["AB"; 32].join(":").parse().unwrap());
    let err = Client::connect(options).await.unwrap_err();
    assert!(matches!(&err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&fp), "{err}");
    // System roots do not know a self-signed certificate: the error offers the fingerprint.
    let err = Client::connect(ConnectOptions::new(server.url()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("--fingerprint {fp}")),
        "{err}"
    );
    // Insecure: connects.
    let mut options = ConnectOptions::new(server.url());
    options.trust = Trust::Insecure;
    Client::connect(options).await.unwrap().close().await;
}

#[tokio::test]
async fn unknown_paths_get_http_404() {
    let server = mock(|_| {}).await;
    let url = server.url().replace("/api/current", "/api/nowhere");
    let err = Client::connect(ConnectOptions::new(url)).await.unwrap_err();
    assert!(
        matches!(err, Error::Handshake { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn keepalive_detects_a_peer_that_stopped_answering() {
    use tokio::net::TcpListener;
    // A server that completes the handshake and then never reads again (so never answers pings).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(ws);
    });
    let mut options = ConnectOptions::new(format!("ws://{addr}/api/current"));
    options.rpc.keepalive = Some(Duration::from_millis(100));
    options.rpc.call_timeout = Duration::from_secs(20);
    let client = Client::connect(options).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), client.call("core.ping", vec![]))
        .await
        .expect("the dead peer is detected well before the call timeout")
        .unwrap_err();
    assert!(matches!(err, Error::Closed { code: None, .. }), "{err:?}");
    assert!(err.to_string().contains("keepalive"), "{err}");
    assert!(!client.is_open());
    silent.abort();
}

/// A URL pinned to an API version the server does not serve (HTTP 404, as 26.0.0-BETA.1–3 do
/// for `/api/v25.10.5`) falls back to `/api/current`; one it serves is kept.
#[tokio::test]
async fn a_pinned_api_version_that_answers_404_falls_back_to_current() {
    let server = mock(|c| c.version = ServerVersion::V26_0).await;
    let base = server.url().replace("/api/current", "");
    let client = crate::support::in_process::connect_to(
        format!("{base}/api/v99.0.0"),
        &server,
        Some(password(&server)),
    )
    .await
    .unwrap();
    assert!(client.url().ends_with("/api/current"), "{}", client.url());
    client.call("core.ping", vec![]).await.unwrap();
    client.close().await;
    let client = crate::support::in_process::connect_to(
        format!("{base}/api/v25.10.5"),
        &server,
        Some(password(&server)),
    )
    .await
    .unwrap();
    assert!(client.url().ends_with("/api/v25.10.5"), "{}", client.url());
    client.close().await;
}

/// The server locks app jobs per operation (`app_stop_<name>`, `app_start_<name>`), so a stop and
/// a start of one app could overlap; the client runs its own app jobs one at a time per app.
#[tokio::test]
async fn the_client_runs_its_app_jobs_one_at_a_time_per_app() {
    let server = mock(|c| c.job_step = Duration::from_millis(20)).await;
    let client = connect(&server, Some(password(&server))).await.unwrap();
    client
        .job(
            "app.create",
            vec![json!({"app_name": "web1", "custom_app": true,
                "custom_compose_config": {"services": {"web": {"image": "nginx:1.27"}}}})],
            |_| {},
        )
        .await
        .unwrap();
    let (a, b) = (client.clone(), client.clone());
    let (stop, start) = tokio::join!(
        async move {
            let mut id = 0;
            a.job_with_id("app.stop", vec![json!("web1")], |i| id = i, |_| {})
                .await
                .unwrap();
            id
        },
        async move {
            // Asked for while the stop is still running.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let mut id = 0;
            b.job_with_id("app.start", vec![json!("web1")], |i| id = i, |_| {})
                .await
                .unwrap();
            id
        }
    );
    let jobs = client
        .call(
            "core.get_jobs",
            vec![
                json!([["id", "in", [stop, start]]]),
                json!({"order_by": ["id"]}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(jobs[0]["method"], "app.stop");
    let stopped = jobs[0]["time_finished"]["$date"].as_i64().unwrap();
    let started = jobs[1]["time_started"]["$date"].as_i64().unwrap();
    assert!(
        started >= stopped,
        "start {started} began before stop {stopped} ended"
    );
    client.close().await;
}

// ---------------------------------------------------------------------------------------------
// Results as text

#[tokio::test]
async fn call_text_gives_the_result_as_the_json_the_server_sent() {
    for wire in [Wire::JsonRpc, Wire::Legacy] {
        let server = wire.mock(|c| c.alert_backlog_bytes = 200_000).await;
        let c = wire
            .connect(&server, Some(password(&server)))
            .await
            .expect("login");
        let text = c.call_text("alert.list", vec![]).await.expect("alert.list");
        let value = c.call("alert.list", vec![]).await.expect("alert.list");
        assert!(text.len() >= 200_000, "{wire:?}: {} bytes", text.len());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).expect("JSON"),
            value,
            "{wire:?}"
        );
        assert_eq!(
            text,
            value.to_string(),
            "{wire:?}: the mock writes compact JSON"
        );
        assert_eq!(
            c.call_text("core.ping", vec![]).await.expect("ping"),
            "\"pong\""
        );
        // A server error is an error, as with call.
        let err = c.call_text("no.such_method", vec![]).await.unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{wire:?}: {err}");
        c.close().await;
    }
}
