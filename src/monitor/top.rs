//! `midscript top`: the dashboard in a terminal ([`run_terminal`]), or one JSON snapshot for
//! a non-terminal ([`snapshot`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::backend::Backend as _;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use serde_json::Value;
use tokio::sync::mpsc;

use super::feed;
use super::model::{Model, Pane, Update};
use super::view::{self, ViewState};
use crate::client::{Client, Error};

/// How long [`snapshot`] waits for the first sample of an event source.
const FIRST_SAMPLE: Duration = Duration::from_secs(5);

/// One snapshot of everything `top` shows, as JSON: the four queries, then the first
/// `reporting.realtime` and `app.stats` samples (a source that sends nothing within 5 s, or
/// that the server lacks, leaves a note under `unavailable`).
pub async fn snapshot(client: &Client) -> Result<Value, Error> {
    let mut model = Model::default();
    feed::load(client, &mut model).await?;
    for (pane, name) in [
        (Pane::Metrics, feed::REALTIME),
        (Pane::Apps, feed::APP_STATS),
    ] {
        let mut sub = match client.subscribe(name).await {
            Ok(s) => s,
            Err(e) if e.is_connection() => return Err(e),
            Err(e) => {
                model.apply(Update::Unavailable(pane, format!("{name}: {e}")));
                continue;
            }
        };
        match tokio::time::timeout(FIRST_SAMPLE, sub.recv()).await {
            Ok(Some(Ok(ev))) => {
                let fields = ev.fields.unwrap_or(Value::Null);
                model.apply(if pane == Pane::Metrics {
                    Update::Realtime(fields)
                } else {
                    Update::AppStats(fields)
                });
            }
            Ok(Some(Err(e))) if e.is_connection() => return Err(e),
            Ok(Some(Err(e))) => model.apply(Update::Unavailable(pane, format!("{name}: {e}"))),
            Ok(None) => model.apply(Update::Unavailable(pane, format!("{name}: ended at once"))),
            Err(_) => {
                if pane == Pane::Metrics {
                    model.apply(Update::Unavailable(
                        pane,
                        format!("{name}: no sample within {} s", FIRST_SAMPLE.as_secs()),
                    ));
                }
            }
        }
        let _ = sub.unsubscribe().await;
    }
    Ok(model.to_json())
}

/// Keys read on a thread of their own (crossterm's reads block).
fn spawn_keys(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// What a key does.
enum Key {
    Quit,
    Redraw,
    /// Ctrl-L or `r`: draw the whole screen again (after something else wrote on it).
    Repaint,
    Ignore,
}

fn on_key(view: &mut ViewState, ev: &Event) -> Key {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => match k.code {
            KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
            KeyCode::Char('l') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Repaint,
            KeyCode::Char('r') => Key::Repaint,
            KeyCode::Tab | KeyCode::Right => {
                view.next();
                Key::Redraw
            }
            KeyCode::BackTab | KeyCode::Left => {
                view.previous();
                Key::Redraw
            }
            KeyCode::Down | KeyCode::Char('j') => {
                view.scroll_by(1);
                Key::Redraw
            }
            KeyCode::Up | KeyCode::Char('k') => {
                view.scroll_by(-1);
                Key::Redraw
            }
            KeyCode::PageDown => {
                view.scroll_by(10);
                Key::Redraw
            }
            KeyCode::PageUp => {
                view.scroll_by(-10);
                Key::Redraw
            }
            _ => Key::Ignore,
        },
        Event::Resize(..) => Key::Redraw,
        _ => Key::Ignore,
    }
}

/// Run the dashboard on the terminal until `q`, Esc or Ctrl-C: fed from `first`, and after a
/// drop from what `reconnect` opens. The terminal is restored on the way out (and on a panic).
pub async fn run_terminal<F, Fut>(first: Client, reconnect: F, server: &str) -> std::io::Result<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Client, String>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(256);
    let feeder = tokio::spawn(feed::run(first, reconnect, tx));
    let stop = Arc::new(AtomicBool::new(false));
    let mut keys = spawn_keys(stop.clone());
    let mut terminal = ratatui::try_init()?;
    let mut model = Model::default();
    let mut view = ViewState::default();
    let result = loop {
        if let Err(e) = terminal.draw(|f| view::draw(f, &model, &view, server)) {
            break Err(e);
        }
        tokio::select! {
            update = rx.recv() => match update {
                Some(u) => {
                    model.apply(u);
                    // Take whatever else is waiting before drawing again.
                    while let Ok(u) = rx.try_recv() {
                        model.apply(u);
                    }
                }
                None => break Ok(()),
            },
            key = keys.recv() => match key {
                Some(ev) => match on_key(&mut view, &ev) {
                    Key::Quit => break Ok(()),
                    Key::Repaint => {
                        // Blank the screen and forget what is on it, so the next draw sends
                        // every cell (`Terminal::clear` would also ask the terminal for the
                        // cursor position, which not every terminal answers).
                        if let Err(e) = terminal.backend_mut().clear() {
                            break Err(e);
                        }
                        terminal.swap_buffers();
                    }
                    Key::Redraw | Key::Ignore => {}
                },
                None => break Ok(()),
            },
        }
    };
    stop.store(true, Ordering::Relaxed);
    feeder.abort();
    ratatui::try_restore()?;
    result
}
