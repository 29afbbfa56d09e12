//! SCRAM-SHA-512 API-key logins (TrueNAS 26+) between the client and the mock, with and
//! without `tls-server-end-point` channel binding, and what reaches transcripts and traces.
//! The byte-exact known-answer tests against the official client's recorded exchanges are unit
//! tests (`client::scram`, `mock::scram`).

use midscript::client::{AuthError, ConnectOptions, Error, Mechanism, Trust};
use midscript::mock::{MockServer, ServerVersion};

use crate::support::in_process::{api_key, assert_no_secrets, mock, transcript};
use crate::support::standalone::{StandaloneMock, run, stderr, stdout};

async fn connect_with(
    server: &MockServer,
    channel_binding: bool,
) -> Result<midscript::client::Client, Error> {
    let mut options = ConnectOptions::new(server.url());
    options.credentials = Some(api_key(server, true));
    options.channel_binding = channel_binding;
    if let Some(fp) = server.fingerprint() {
        options.trust = Trust::Pinned(fp.parse().unwrap());
    }
    midscript::client::Client::connect(options).await
}

/// The `rfc_str` of the client-first message in the transcript.
fn client_first(server: &MockServer) -> String {
    let t = transcript(server);
    let at = t.find("CLIENT_FIRST_MESSAGE").expect("a SCRAM login");
    let rest = &t[at..];
    let start = rest.find("\"rfc_str\":\"").unwrap() + 11;
    rest[start..start + rest[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn over_wss_the_login_is_bound_to_the_certificate_by_default() {
    for version in [ServerVersion::V26_0, ServerVersion::V27_0] {
        let server = mock(|c| {
            c.version = version;
            c.tls = true;
        })
        .await;
        let client = connect_with(&server, true).await.unwrap();
        assert_eq!(client.login_info().unwrap().mechanism, Mechanism::Scram);
        client.call("core.ping", vec![]).await.unwrap();
        client.close().await;
        assert!(
            client_first(&server).starts_with("p=tls-server-end-point,,n=truenas_admin:1,r="),
            "{}",
            client_first(&server)
        );
        let t = transcript(&server);
        assert!(t.contains("p=********") && t.contains("v=********"), "{t}");
        assert_no_secrets(&server);
    }
}

#[tokio::test]
async fn without_binding_and_over_plain_ws_the_login_is_unbound() {
    let server = mock(|c| {
        c.version = ServerVersion::V26_0;
        c.tls = true;
    })
    .await;
    connect_with(&server, false).await.unwrap().close().await;
    assert!(client_first(&server).starts_with("n,,n=truenas_admin:1,r="));
    assert!(transcript(&server).contains("c=biws"));

    // Plain ws on loopback: never bound (the server refuses binding there).
    let server = mock(|c| c.version = ServerVersion::V26_0).await;
    connect_with(&server, true).await.unwrap().close().await;
    assert!(client_first(&server).starts_with("n,,"));
    assert_no_secrets(&server);
}

#[tokio::test]
async fn a_server_from_before_binding_refuses_a_bound_login_and_the_error_says_what_to_do() {
    let server = mock(|c| {
        c.version = ServerVersion::V26_0;
        c.tls = true;
        c.scram_channel_binding = false;
    })
    .await;
    let err = connect_with(&server, true).await.unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::RejectedWithBinding)),
        "{err:?}"
    );
    assert!(err.to_string().contains("--no-channel-binding"), "{err}");
    // The same key, unbound, gets in.
    let client = connect_with(&server, false).await.unwrap();
    assert_eq!(client.login_info().unwrap().mechanism, Mechanism::Scram);
    client.close().await;
}

#[tokio::test]
async fn a_wrong_key_over_ws_is_a_plain_auth_err() {
    let server = mock(|c| c.version = ServerVersion::V26_0).await;
    let mut options = ConnectOptions::new(server.url());
    options.credentials = Some(midscript::client::Credentials::ApiKey {
        username: Some("truenas_admin".into()),
        key: midscript::client::Secret::new("1-not-the-key"),
    });
    let err = midscript::client::Client::connect(options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth(AuthError::Rejected)), "{err:?}");
}

/// The binary against a standalone mock over wss: `-U -K` binds by default,
/// `--no-channel-binding` does not, and the trace holds neither key nor proof.
#[test]
fn the_cli_logs_in_by_scram_with_and_without_binding() {
    let mock = StandaloneMock::start(&["--server-version", "26.0"]);
    let url = mock.value("URL");
    assert!(url.starts_with("wss://"), "{url}");
    let key_line = mock.value("API_KEY");
    let (owner, key) = key_line.split_once(' ').unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (extra, header) in [
        (None, "p=tls-server-end-point,,"),
        (Some("--no-channel-binding"), "n,,"),
    ] {
        let trace = dir.path().join("trace.txt");
        let mut args = vec![
            "--url",
            &url,
            "-k",
            "-U",
            owner,
            "-K",
            key,
            "--trace",
            trace.to_str().unwrap(),
        ];
        args.extend(extra);
        args.extend(["call", "system.info"]);
        let out = run(&args);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("\"26.0.0\""), "{}", stdout(&out));
        let t = std::fs::read_to_string(&trace).unwrap();
        assert!(
            t.contains(&format!("\"rfc_str\":\"{header}n={owner}:")),
            "{t}"
        );
        let material = key.split_once('-').unwrap().1;
        assert!(!t.contains(material) && t.contains("p=********"), "{t}");
    }
}
