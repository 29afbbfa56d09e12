//! What changed for apps in TrueNAS 26 and 27, through the client against the mock's profiles:
//! `latest_app_version` / `action_required` (26+), the `ERROR` state with `error_reason` and
//! null versions (27), abortable pulling jobs and per-byte pull progress (27).

use midscript::client::Client;
use midscript::mock::{MockServer, ServerVersion};
use serde_json::{Value, json};

use crate::support::in_process::{connect, mock, password};

fn create_params(name: &str) -> Vec<Value> {
    vec![json!({
        "app_name": name,
        "custom_app": true,
        "custom_compose_config": {"services": {"web": {"image": "nginx:1.27"}}},
    })]
}

async fn with_app(version: ServerVersion) -> (MockServer, Client) {
    let server = mock(|c| c.version = version).await;
    let client = connect(&server, Some(password(&server))).await.unwrap();
    let job = client
        .start_job("app.create", create_params("web1"))
        .await
        .unwrap();
    job.wait(|_| {}).await.unwrap();
    (server, client)
}

async fn entry(client: &Client, name: &str) -> Option<Value> {
    let list = client
        .call("app.query", vec![json!([["name", "=", name]])])
        .await
        .unwrap();
    list.as_array().unwrap().first().cloned()
}

#[tokio::test]
async fn app_entries_gain_fields_by_release() {
    for (version, latest, error_reason) in [
        (ServerVersion::V25_10, false, false),
        (ServerVersion::V26_0, true, false),
        (ServerVersion::V27_0, true, true),
    ] {
        let (server, client) = with_app(version).await;
        let e = entry(&client, "web1").await.unwrap();
        let o = e.as_object().unwrap();
        assert_eq!(o.contains_key("latest_app_version"), latest, "{version}");
        assert_eq!(o.contains_key("action_required"), latest, "{version}");
        assert_eq!(o.contains_key("error_reason"), error_reason, "{version}");
        if latest {
            assert_eq!(e["action_required"], false);
        }
        client.close().await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn unreadable_metadata_is_an_error_state_on_27_and_hidden_before() {
    let (server, client) = with_app(ServerVersion::V27_0).await;
    let mut sub = client.subscribe("app.query").await.unwrap();
    assert!(!server.set_app_metadata_error("web1", Some("NOT_A_REASON")));
    assert!(!server.set_app_metadata_error("nope", Some("METADATA_MISSING")));
    assert!(server.set_app_metadata_error("web1", Some("METADATA_UNREADABLE")));
    let ev = sub.recv().await.unwrap().unwrap();
    let fields = ev.fields.unwrap();
    assert_eq!(fields["state"], "ERROR");
    let e = entry(&client, "web1").await.unwrap();
    assert_eq!(e["state"], "ERROR");
    assert_eq!(e["error_reason"], "METADATA_UNREADABLE");
    assert!(e["version"].is_null() && e["human_version"].is_null());
    // The stdlib-facing filter still works on the new state.
    let errored = client
        .call("app.query", vec![json!([["state", "=", "ERROR"]])])
        .await
        .unwrap();
    assert_eq!(errored.as_array().unwrap().len(), 1);
    client.close().await;
    server.shutdown().await;

    let (server, client) = with_app(ServerVersion::V26_0).await;
    assert!(server.set_app_metadata_error("web1", Some("METADATA_MISSING")));
    assert!(entry(&client, "web1").await.is_none());
    assert!(server.set_app_metadata_error("web1", None));
    let mended = entry(&client, "web1").await.unwrap();
    assert!(
        matches!(mended["state"].as_str(), Some("DEPLOYING" | "RUNNING")),
        "{mended}"
    );
    client.close().await;
}

#[tokio::test]
async fn pulling_jobs_are_abortable_and_report_pull_bytes_on_27_only() {
    for version in [ServerVersion::V26_0, ServerVersion::V27_0] {
        let server = mock(|c| c.version = version).await;
        let client = connect(&server, Some(password(&server))).await.unwrap();
        let job = client
            .start_job("app.create", create_params("web2"))
            .await
            .unwrap();
        let mut descriptions = Vec::new();
        job.wait(|p| descriptions.extend(p.description.clone()))
            .await
            .unwrap();
        let jobs = client
            .call("core.get_jobs", vec![json!([["id", "=", job.id]])])
            .await
            .unwrap();
        let newer = version >= ServerVersion::V27_0;
        assert_eq!(jobs[0]["abortable"], newer, "{version}");
        let pulls = descriptions
            .iter()
            .filter(|d| d.starts_with("Pulling app images (") && d.ends_with(" MiB)"))
            .count();
        assert_eq!(pulls > 0, newer, "{version}: {descriptions:?}");
        // app.start never is.
        let start = client
            .start_job("app.stop", vec![json!("web2")])
            .await
            .unwrap();
        start.wait(|_| {}).await.unwrap();
        let jobs = client
            .call("core.get_jobs", vec![json!([["id", "=", start.id]])])
            .await
            .unwrap();
        assert_eq!(jobs[0]["abortable"], false, "{version}");
        client.close().await;
        server.shutdown().await;
    }
}
