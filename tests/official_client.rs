//! What the official TrueNAS client (`truenas/api_client` at a0c890a, `midclt` and its Python
//! `Client`) needs from a server, recorded as facts from running it against `midscript mock` on
//! every profile, and checked here against the mock so that it keeps agreeing. Each test names
//! the official-client behaviour it stands for.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use midscript::client::Client;
use midscript::mock::{MockConfig, MockServer, ServerVersion};
use serde_json::{Value, json};

use crate::support::in_process::{api_key, connect, mock, password};

async fn anonymous(version: ServerVersion) -> (MockServer, Client) {
    let server = mock(|c| c.version = version).await;
    let client = connect(&server, None).await.unwrap();
    (server, client)
}

/// The official SCRAM parser takes a server-first message of exactly three attributes `r`, `s`,
/// `i`; a nonce that decodes to 32 or 64 bytes (the client's 32 first, compared as bytes); a
/// salt of at most 1024 bytes; 50 000 to 5 000 000 iterations. `midscript mock` answered with a
/// nonce of 18 extra bytes appended as text until this was found: `midclt -K` failed with
/// "Failed to authenticate with API key".
#[tokio::test]
async fn server_first_has_the_shape_the_official_parser_accepts() {
    for version in [ServerVersion::V26_0, ServerVersion::V27_0] {
        let (_server, client) = anonymous(version).await;
        let ours = [0x42u8; 32];
        let first = format!("n,,n=truenas_admin:1,r={}", B64.encode(ours));
        let reply = client
            .call(
                "auth.login_ex",
                vec![json!({"mechanism": "SCRAM", "scram_type": "CLIENT_FIRST_MESSAGE", "rfc_str": first})],
            )
            .await
            .unwrap();
        assert_eq!(reply["response_type"], "SCRAM_RESPONSE");
        let text = reply["rfc_str"].as_str().unwrap();
        let parts: Vec<&str> = text.split(',').collect();
        assert_eq!(parts.len(), 3, "{text}");
        let nonce = B64.decode(parts[0].strip_prefix("r=").unwrap()).unwrap();
        assert_eq!(nonce.len(), 64);
        assert_eq!(nonce[..32], ours);
        let salt = B64.decode(parts[1].strip_prefix("s=").unwrap()).unwrap();
        assert!(!salt.is_empty() && salt.len() <= 1024);
        let iterations: u32 = parts[2].strip_prefix("i=").unwrap().parse().unwrap();
        assert!((50_000..=5_000_000).contains(&iterations));
        client.close().await;
    }
    // A real server's count, unless lowered for tests.
    assert_eq!(MockConfig::default().scram_iterations, 500_000);
}

/// Before a key login the official client calls `auth.mechanism_choices` anonymously. It takes
/// SCRAM only when listed (26+, else `midclt -K` needs `--plain`); on 25.04 it recognises the
/// server's bug by this exact text and treats it as "no SCRAM".
#[tokio::test]
async fn mechanism_choices_as_the_official_client_reads_them() {
    for (version, scram) in [
        (ServerVersion::V25_10, false),
        (ServerVersion::V26_0, true),
        (ServerVersion::V27_0, true),
    ] {
        let (_s, client) = anonymous(version).await;
        let choices = client.call("auth.mechanism_choices", vec![]).await.unwrap();
        let listed = choices.as_array().unwrap().contains(&json!("SCRAM"));
        assert_eq!(listed, scram, "{version}");
    }
    let (_s, client) = anonymous(ServerVersion::V25_04).await;
    let err = client
        .call("auth.mechanism_choices", vec![])
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("'NoneType' object has no attribute 'may_create_auth_token'"),
        "{text}"
    );
}

/// The official client treats a JSON-RPC "Method does not exist" as an old server. On 24.10's
/// legacy protocol a missing method is instead `[ENOMETHOD] Method 'x' not found in 'svc'`
/// (`CallError` in `utils/service/call.py`), which it does not recognise: `midclt -K --plain`
/// fails there on a real 24.10 exactly as on the mock.
#[tokio::test]
async fn missing_methods_read_as_the_official_client_sees_them() {
    let (_s, client) = anonymous(ServerVersion::V25_10).await;
    let err = client.call("auth.no_such_thing", vec![]).await.unwrap_err();
    let s = err.server().unwrap();
    assert_eq!(
        (s.code, s.message.as_str()),
        (Some(-32601), "Method does not exist")
    );

    let server = mock(|c| c.version = ServerVersion::V24_10).await;
    let client = crate::support::in_process::connect_to(server.legacy_url(), &server, None)
        .await
        .unwrap();
    let err = client
        .call("auth.mechanism_choices", vec![])
        .await
        .unwrap_err();
    let s = err.server().unwrap();
    assert_eq!(
        s.reason.as_deref(),
        Some("[ENOMETHOD] Method 'mechanism_choices' not found in 'auth'")
    );
}

/// `midclt ping` and `midclt subscribe` never log in, even with `-U`: `ping` fails with
/// ENOTAUTHENTICATED on 25.04 and works from 25.10; `subscribe` is refused on every JSON-RPC
/// release (it is meant for the local socket). Anonymous `core.get_methods` works up to 25.04
/// and is refused from 25.10.
#[tokio::test]
async fn what_midclt_gets_without_a_login() {
    for version in [
        ServerVersion::V25_04,
        ServerVersion::V25_10,
        ServerVersion::V26_0,
        ServerVersion::V27_0,
    ] {
        let (_s, client) = anonymous(version).await;
        let ping = client.call("core.ping", vec![]).await;
        assert_eq!(ping.is_ok(), version >= ServerVersion::V25_10, "{version}");
        let methods = client.call("core.get_methods", vec![]).await;
        assert_eq!(
            methods.is_ok(),
            version <= ServerVersion::V25_04,
            "{version}"
        );
        let sub = client
            .call("core.subscribe", vec![json!("core.get_jobs")])
            .await
            .unwrap_err();
        assert_eq!(
            sub.server().unwrap().errname.as_deref(),
            Some("ENOTAUTHENTICATED"),
            "{version}"
        );
        if let Err(e) = methods {
            assert_eq!(
                e.server().unwrap().errname.as_deref(),
                Some("ENOTAUTHENTICATED")
            );
        }
    }
}

/// `midclt call -j app.create …` and the Python `Client.call(..., job=True, callback=…)`
/// follow the job through `core.get_jobs` events: the job is ADDED, CHANGED with progress up to
/// 100, and its result is the app entry (state DEPLOYING at that moment) on every release. An
/// API-key login by SCRAM (26+) gets there too.
#[tokio::test]
async fn a_job_with_progress_as_the_official_client_follows_it() {
    for version in ServerVersion::ALL {
        let server = mock(|c| c.version = version).await;
        let url = if version == ServerVersion::V24_10 {
            server.legacy_url()
        } else {
            server.url()
        };
        let creds = if version >= ServerVersion::V26_0 {
            api_key(&server, true)
        } else {
            password(&server)
        };
        let client = crate::support::in_process::connect_to(url, &server, Some(creds))
            .await
            .unwrap();
        let mut jobs = client.subscribe("core.get_jobs").await.unwrap();
        let params = vec![json!({"app_name": "clij", "custom_app": true,
            "custom_compose_config": {"services": {"web": {"image": "nginx:1.27"}}}})];
        let mut last = None;
        let result: Value = client
            .job("app.create", params, |p| last = p.percent)
            .await
            .unwrap();
        assert_eq!(last, Some(100.0), "{version}");
        assert_eq!(result["name"], "clij", "{version}");
        assert_eq!(result["state"], "DEPLOYING", "{version}");
        let first = jobs.recv().await.unwrap().unwrap();
        assert_eq!(first.fields.unwrap()["method"], "app.create", "{version}");
        client.close().await;
    }
}
