//! The dashboard of `midscript top`, drawn with ratatui from a [`Model`]: a header with the
//! connection, the system pane (CPU and memory trends, per-CPU usage, network, disk I/O), then
//! pools, alerts, apps and jobs. Colours follow severity; the focused pane has a bold border and
//! scrolls with the arrow keys. Every pane's title counts the updates it took, so a live screen
//! is visibly live. Drawing adapts to any size (nothing is drawn outside the frame).

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Sparkline, Wrap};

use super::model::{Link, Model, Pane, PaneState};

/// What the viewer chose: the focused pane and how far each pane is scrolled.
#[derive(Debug, Clone, Default)]
pub struct ViewState {
    /// The pane the arrow keys scroll (Tab moves on).
    pub focus: usize,
    /// Lines scrolled, per pane in [`Pane::ALL`] order.
    pub scroll: [usize; 5],
}

impl ViewState {
    /// Focus the next pane.
    pub fn next(&mut self) {
        self.focus = (self.focus + 1) % Pane::ALL.len();
    }

    /// Focus the previous pane.
    pub fn previous(&mut self) {
        self.focus = (self.focus + Pane::ALL.len() - 1) % Pane::ALL.len();
    }

    /// Scroll the focused pane by `delta` lines.
    pub fn scroll_by(&mut self, delta: isize) {
        let s = &mut self.scroll[self.focus];
        *s = s.saturating_add_signed(delta);
    }

    fn focused(&self, pane: Pane) -> bool {
        Pane::ALL[self.focus] == pane
    }

    fn offset(&self, pane: Pane) -> usize {
        let i = Pane::ALL.iter().position(|p| *p == pane).unwrap_or(0);
        self.scroll[i]
    }
}

/// Human bytes: `1.5 GiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n.max(0.0);
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn level_colour(level: &str) -> Color {
    match level {
        "INFO" | "NOTICE" => Color::Cyan,
        "WARNING" => Color::Yellow,
        _ => Color::Red,
    }
}

fn app_colour(state: &str) -> Color {
    match state {
        "RUNNING" => Color::Green,
        "DEPLOYING" | "STOPPING" => Color::Yellow,
        "STOPPED" => Color::DarkGray,
        _ => Color::Red,
    }
}

fn usage_colour(pct: f64) -> Color {
    if pct >= 90.0 {
        Color::Red
    } else if pct >= 75.0 {
        Color::Yellow
    } else {
        Color::Green
    }
}

fn block<'a>(model: &Model, view: &ViewState, pane: Pane, extra: String) -> Block<'a> {
    let updates = model.updates.get(&pane).copied().unwrap_or(0);
    let title = format!(" {}{extra} · {updates} updates ", pane.title());
    let mut b = Block::default().borders(Borders::ALL).title(title);
    if view.focused(pane) {
        b = b
            .border_type(BorderType::Thick)
            .border_style(Style::default().add_modifier(Modifier::BOLD));
    }
    b
}

/// The lines shown instead of data while a pane waits or cannot be fed.
fn placeholder(model: &Model, pane: Pane) -> Option<Vec<Line<'static>>> {
    match model.panes.get(&pane) {
        Some(PaneState::Unavailable(note)) => Some(vec![Line::from(Span::styled(
            format!("not available: {note}"),
            Style::default().fg(Color::DarkGray),
        ))]),
        Some(PaneState::Waiting) | None => Some(vec![Line::from(Span::styled(
            "waiting for data…",
            Style::default().fg(Color::DarkGray),
        ))]),
        Some(PaneState::Live) => None,
    }
}

fn bar(pct: f64, width: usize) -> String {
    let filled = ((pct.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    format!(
        "{}{}",
        "█".repeat(filled),
        "░".repeat(width - filled.min(width))
    )
}

/// Draw the whole dashboard.
pub fn draw(frame: &mut Frame, model: &Model, view: &ViewState, server: &str) {
    let area = frame.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Percentage(38),
            Constraint::Percentage(31),
            Constraint::Min(3),
        ])
        .split(area);
    header(frame, rows[0], model, server);
    metrics(frame, rows[1], model, view);
    let mid = halves(rows[2]);
    pools(frame, mid[0], model, view);
    alerts(frame, mid[1], model, view);
    let low = halves(rows[3]);
    apps(frame, low[0], model, view);
    jobs(frame, low[1], model, view);
}

fn halves(r: Rect) -> std::rc::Rc<[Rect]> {
    Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(r)
}

fn header(frame: &mut Frame, area: Rect, model: &Model, server: &str) {
    let (text, colour) = match &model.link {
        Link::Connecting => ("connecting…".to_owned(), Color::Yellow),
        Link::Up => ("connected".to_owned(), Color::Green),
        Link::Down(why) => (why.clone(), Color::Red),
    };
    let line = Line::from(vec![
        Span::styled(
            "midscript top ",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("{server}  ")),
        Span::styled(text, Style::default().fg(colour)),
        Span::styled(
            "   q quit · Tab pane · ↑↓ scroll · r redraw",
            Style::default().fg(Color::DarkGray),
        ),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn metrics(frame: &mut Frame, area: Rect, model: &Model, view: &ViewState) {
    let b = block(model, view, Pane::Metrics, String::new());
    let inner = b.inner(area);
    frame.render_widget(b, area);
    if let Some(lines) = placeholder(model, Pane::Metrics) {
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    let m = &model.metrics;
    let cols = halves(inner);
    // Left: CPU and memory, each a figure line above a sparkline.
    let left = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Percentage(50),
            Constraint::Length(1),
            Constraint::Min(1),
        ])
        .split(cols[0]);
    let cpu = m.cpu.unwrap_or(0.0);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw("CPU "),
            Span::styled(
                format!("{cpu:5.1}%"),
                Style::default().fg(usage_colour(cpu)),
            ),
        ])),
        left[0],
    );
    let cpu_hist: Vec<u64> = m.cpu_history.iter().copied().collect();
    frame.render_widget(
        Sparkline::default()
            .data(&cpu_hist)
            .max(100)
            .style(Style::default().fg(usage_colour(cpu))),
        left[1],
    );
    let mem_line = match &m.memory {
        Some(mem) => {
            let used = mem.used_percent();
            Line::from(vec![
                Span::raw("Memory "),
                Span::styled(
                    format!("{used:5.1}%"),
                    Style::default().fg(usage_colour(used)),
                ),
                Span::raw(format!(
                    " of {}  ARC {}",
                    bytes(mem.total as f64),
                    bytes(mem.arc as f64)
                )),
            ])
        }
        None => Line::from("Memory –"),
    };
    frame.render_widget(Paragraph::new(mem_line), left[2]);
    let mem_hist: Vec<u64> = m.memory_history.iter().copied().collect();
    frame.render_widget(
        Sparkline::default()
            .data(&mem_hist)
            .max(100)
            .style(Style::default().fg(Color::Magenta)),
        left[3],
    );
    // Right: per CPU, network, disks.
    let mut lines: Vec<Line> = Vec::new();
    for c in &m.cores {
        lines.push(Line::from(vec![
            Span::raw(format!("{:<6}", c.name)),
            Span::styled(bar(c.usage, 12), Style::default().fg(usage_colour(c.usage))),
            Span::raw(format!(" {:5.1}%", c.usage)),
        ]));
    }
    for (name, i) in &m.interfaces {
        lines.push(Line::from(format!(
            "{name:<8} ↓ {:>10}/s  ↑ {:>10}/s",
            bytes(i.rx),
            bytes(i.tx)
        )));
    }
    if let Some(d) = &m.disk {
        lines.push(Line::from(format!(
            "disks    r {:>10}/s  w {:>10}/s  busy {:.0}%",
            bytes(d.read),
            bytes(d.write),
            d.busy
        )));
    }
    let skip = view
        .offset(Pane::Metrics)
        .min(lines.len().saturating_sub(1));
    frame.render_widget(
        Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()),
        cols[1],
    );
}

fn list(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    view: &ViewState,
    pane: Pane,
    extra: String,
    lines: Vec<Line<'static>>,
) {
    let b = block(model, view, pane, extra);
    let lines = placeholder(model, pane).unwrap_or(lines);
    let skip = view.offset(pane).min(lines.len().saturating_sub(1));
    let shown: Vec<Line> = lines.into_iter().skip(skip).collect();
    frame.render_widget(
        Paragraph::new(shown).block(b).wrap(Wrap { trim: true }),
        area,
    );
}

fn pools(frame: &mut Frame, area: Rect, model: &Model, view: &ViewState) {
    let mut lines = Vec::new();
    for p in model.pools.values() {
        let used = p.used_percent();
        let health = if p.healthy && p.status == "ONLINE" {
            Color::Green
        } else {
            Color::Red
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<10} ", p.name),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::styled(format!("{:<9}", p.status), Style::default().fg(health)),
            Span::styled(bar(used, 10), Style::default().fg(usage_colour(used))),
            Span::raw(format!(
                " {used:5.1}%  {} / {}",
                bytes(p.allocated as f64),
                bytes(p.size as f64)
            )),
        ]));
        if let Some(d) = &p.detail {
            lines.push(Line::from(Span::styled(
                format!("  {d}"),
                Style::default().fg(Color::Red),
            )));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from("no pools"));
    }
    let extra = format!(" ({})", model.pools.len());
    list(frame, area, model, view, Pane::Pools, extra, lines);
}

fn alerts(frame: &mut Frame, area: Rect, model: &Model, view: &ViewState) {
    let active = model.active_alerts();
    let mut lines = Vec::new();
    for a in &active {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<9}", a.level),
                Style::default()
                    .fg(level_colour(&a.level))
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{}: {}", a.klass, a.text)),
        ]));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no alerts",
            Style::default().fg(Color::Green),
        )));
    }
    let extra = format!(" ({})", active.len());
    list(frame, area, model, view, Pane::Alerts, extra, lines);
}

fn apps(frame: &mut Frame, area: Rect, model: &Model, view: &ViewState) {
    let mut lines = Vec::new();
    for a in model.apps.values() {
        let cpu = a.cpu.map_or("    –".to_owned(), |c| format!("{c:4.0}%"));
        let mem = a.memory.map_or("–".to_owned(), |m| bytes(m as f64));
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<16}", a.name),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                format!("{:<10}", a.state),
                Style::default().fg(app_colour(&a.state)),
            ),
            Span::raw(format!("cpu {cpu}  mem {mem:>10}")),
        ]));
    }
    if lines.is_empty() {
        lines.push(Line::from("no apps"));
    }
    let extra = format!(" ({})", model.apps.len());
    list(frame, area, model, view, Pane::Apps, extra, lines);
}

fn jobs(frame: &mut Frame, area: Rect, model: &Model, view: &ViewState) {
    let mut lines = Vec::new();
    // Newest first.
    for j in model.jobs.values().rev() {
        let colour = match j.state.as_str() {
            "SUCCESS" => Color::Green,
            "FAILED" => Color::Red,
            "ABORTED" => Color::DarkGray,
            _ => Color::Yellow,
        };
        let mut spans = vec![
            Span::raw(format!("{:>5} ", j.id)),
            Span::styled(format!("{:<8}", j.state), Style::default().fg(colour)),
            Span::raw(format!("{} ", j.method)),
        ];
        if j.running() {
            spans.push(Span::styled(
                bar(j.percent, 10),
                Style::default().fg(Color::Cyan),
            ));
            spans.push(Span::raw(format!(" {:3.0}% {}", j.percent, j.description)));
        } else if let Some(e) = &j.error {
            spans.push(Span::styled(e.clone(), Style::default().fg(Color::Red)));
        }
        lines.push(Line::from(spans));
    }
    if lines.is_empty() {
        lines.push(Line::from("no jobs"));
    }
    let running = model.jobs.values().filter(|j| j.running()).count();
    list(
        frame,
        area,
        model,
        view,
        Pane::Jobs,
        format!(" ({running} running)"),
        lines,
    );
}
