//! Calls per second over one connection: the midscript client against a raw request/response
//! floor built from tokio-tungstenite alone, on the same in-process mock, in the same run.
//!
//! Run with `cargo bench --bench rpc` (add `-- --calls N` to change the count). It prints
//! calls/s for each case and the client's ratio to the floor (1.00 = as fast as a bare socket).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use midscript::client::{Client, ConnectOptions, Credentials, Secret, Trust};
use midscript::mock::{MockConfig, MockServer};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const IN_FLIGHT: usize = 10;

type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_login(url: &str, user: &str, password: &str) -> Raw {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("raw connect");
    let login = json!({"jsonrpc":"2.0","id":0,"method":"auth.login_ex","params":[{"mechanism":"PASSWORD_PLAIN","username":user,"password":password}]});
    ws.send(Message::text(login.to_string()))
        .await
        .expect("send login");
    let reply = next_reply(&mut ws).await;
    assert_eq!(
        reply["result"]["response_type"], "SUCCESS",
        "raw login failed: {reply}"
    );
    ws
}

async fn next_reply(ws: &mut Raw) -> Value {
    loop {
        match ws.next().await.expect("socket open").expect("frame") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v.get("id").is_some() {
                    return v;
                }
            }
            _ => continue,
        }
    }
}

fn ping(id: u64) -> Message {
    Message::text(json!({"jsonrpc":"2.0","id":id,"method":"core.ping","params":[]}).to_string())
}

/// Floor, sequential: send one request, read its reply, repeat.
async fn floor_sequential(ws: &mut Raw, calls: u64) -> Duration {
    let start = Instant::now();
    for id in 1..=calls {
        ws.send(ping(id)).await.expect("send");
        let r = next_reply(ws).await;
        debug_assert_eq!(r["result"], "pong");
    }
    start.elapsed()
}

/// Floor, pipelined: keep IN_FLIGHT requests outstanding on the one socket.
async fn floor_in_flight(ws: &mut Raw, calls: u64) -> Duration {
    let start = Instant::now();
    let mut sent = 0;
    let mut received = 0;
    while sent < calls.min(IN_FLIGHT as u64) {
        sent += 1;
        ws.send(ping(sent)).await.expect("send");
    }
    while received < calls {
        next_reply(ws).await;
        received += 1;
        if sent < calls {
            sent += 1;
            ws.send(ping(sent)).await.expect("send");
        }
    }
    start.elapsed()
}

async fn client_sequential(c: &Client, calls: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        c.call("core.ping", vec![]).await.expect("ping");
    }
    start.elapsed()
}

async fn client_in_flight(c: &Client, calls: u64) -> Duration {
    let start = Instant::now();
    let per_task = calls / IN_FLIGHT as u64;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    c.call("core.ping", vec![]).await.expect("ping");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed()
}

fn rate(calls: u64, d: Duration) -> f64 {
    calls as f64 / d.as_secs_f64()
}

fn main() {
    let mut calls: u64 = 20_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--calls" {
            calls = args.next().and_then(|n| n.parse().ok()).expect("--calls N");
        }
    }
    calls -= calls % IN_FLIGHT as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config = MockConfig::for_tests();
        config.record_transcript = false;
        let server = MockServer::start(config).await.expect("mock");
        let user = server.config().users[0].clone();
        let url = server.url();

        let mut raw = raw_login(&url, &user.username, &user.password).await;
        let mut options = ConnectOptions::new(url.clone());
        options.trust = Trust::Insecure;
        options.credentials = Some(Credentials::Password {
            username: user.username.clone(),
            password: Secret::new(user.password.clone()),
            otp: None,
            otp_prompt: None,
        });
        let client = Client::connect(options).await.expect("client connect");

        // Warm up both paths.
        floor_sequential(&mut raw, 500).await;
        client_sequential(&client, 500).await;

        let fs = rate(calls, floor_sequential(&mut raw, calls).await);
        let cs = rate(calls, client_sequential(&client, calls).await);
        let fp = rate(calls, floor_in_flight(&mut raw, calls).await);
        let cp = rate(calls, client_in_flight(&client, calls).await);

        println!("core.ping over one connection, {calls} calls per case, mock on 127.0.0.1");
        println!(
            "{:<28} {:>12} {:>12} {:>8}",
            "case", "floor c/s", "client c/s", "ratio"
        );
        println!(
            "{:<28} {:>12.0} {:>12.0} {:>8.2}",
            "sequential",
            fs,
            cs,
            cs / fs
        );
        println!(
            "{:<28} {:>12.0} {:>12.0} {:>8.2}",
            format!("{IN_FLIGHT} in flight"),
            fp,
            cp,
            cp / fp
        );
        client.close().await;
        server.shutdown().await;
    });
}
