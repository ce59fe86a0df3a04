//! The `threads top` view: a full-screen live table (ratatui + crossterm) and the plain-text
//! table of `--once` / `threads ls`. Every string that came from the device is sanitised here
//! before it reaches the terminal.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use crate::ui::table;
use mpfr::error::{Error, Result};
use mpfr::telemetry::model::{EventRow, EventType, Snapshot, TaskRow, Update};
use mpfr::telemetry::monitor::Monitor;
use mpfr::util::sanitize::Sanitizer;

/// A device string made fit for one table cell: escape sequences and controls removed (see
/// [`Sanitizer`]), line breaks made spaces, the length capped, so device strings cannot move
/// the cursor, recolour or retitle the terminal.
pub fn sanitize(s: &str) -> String {
    Sanitizer::one_line(s, 160)
}

/// Task table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Cpu,
    Name,
    Id,
    Stack,
    Priority,
    Core,
}

impl SortKey {
    fn label(self) -> &'static str {
        match self {
            SortKey::Cpu => "cpu",
            SortKey::Name => "name",
            SortKey::Id => "id",
            SortKey::Stack => "stack",
            SortKey::Priority => "prio",
            SortKey::Core => "core",
        }
    }
}

/// Interactive state of the view (sort, filter, event log).
#[derive(Debug, Default)]
pub struct ViewState {
    pub sort: SortKey,
    pub reverse: bool,
    pub filter: String,
    /// `Some` while the user types a filter after `/`.
    pub editing: Option<String>,
    pub events: VecDeque<EventRow>,
    pub snap: Option<Snapshot>,
    pub status: String,
    /// Why the view is detached (its figures are stale), while it tries to attach again.
    pub stale: Option<String>,
}

/// What a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    None,
    Redraw,
    Quit,
    Interrupt,
}

const EVENT_LOG: usize = 200;

impl ViewState {
    pub fn push_event(&mut self, e: EventRow) {
        if self.events.len() == EVENT_LOG {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    pub fn key(&mut self, k: KeyEvent) -> KeyAction {
        if k.kind == KeyEventKind::Release {
            return KeyAction::None;
        }
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return KeyAction::Interrupt;
        }
        if let Some(buf) = &mut self.editing {
            match k.code {
                KeyCode::Enter => {
                    self.filter = std::mem::take(buf);
                    self.editing = None;
                }
                KeyCode::Esc => self.editing = None,
                KeyCode::Backspace => {
                    buf.pop();
                }
                KeyCode::Char(c) if !c.is_control() && buf.len() < 40 => buf.push(c),
                _ => return KeyAction::None,
            }
            return KeyAction::Redraw;
        }
        let sort = |s: &mut ViewState, key: SortKey| {
            if s.sort == key {
                s.reverse = !s.reverse;
            } else {
                s.sort = key;
                s.reverse = false;
            }
        };
        match k.code {
            KeyCode::Char('q') | KeyCode::Char('Q') => return KeyAction::Quit,
            KeyCode::Esc => self.filter.clear(),
            KeyCode::Char('c') => sort(self, SortKey::Cpu),
            KeyCode::Char('n') => sort(self, SortKey::Name),
            KeyCode::Char('i') => sort(self, SortKey::Id),
            KeyCode::Char('s') => sort(self, SortKey::Stack),
            KeyCode::Char('p') => sort(self, SortKey::Priority),
            KeyCode::Char('o') => sort(self, SortKey::Core),
            KeyCode::Char('r') => self.reverse = !self.reverse,
            KeyCode::Char('/') => self.editing = Some(self.filter.clone()),
            _ => return KeyAction::None,
        }
        KeyAction::Redraw
    }
}

/// Tasks filtered (case-insensitive substring of the name) and sorted as the state says.
pub fn visible_rows<'a>(
    snap: &'a Snapshot,
    sort: SortKey,
    reverse: bool,
    filter: &str,
) -> Vec<&'a TaskRow> {
    let f = filter.to_lowercase();
    let mut v: Vec<&TaskRow> = snap
        .tasks
        .iter()
        .filter(|t| f.is_empty() || t.name.to_lowercase().contains(&f))
        .collect();
    let stack_frac = |t: &TaskRow| match (t.stack_high_water, t.stack_size) {
        (Some(h), Some(s)) if s > 0 => h as f64 / s as f64,
        _ => -1.0,
    };
    v.sort_by(|a, b| {
        let o = match sort {
            // Busy first by default.
            SortKey::Cpu => b
                .cpu_pct
                .unwrap_or(-1.0)
                .total_cmp(&a.cpu_pct.unwrap_or(-1.0)),
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::Stack => stack_frac(b).total_cmp(&stack_frac(a)),
            SortKey::Priority => b.priority.cmp(&a.priority),
            SortKey::Core => a.core.cmp(&b.core),
        };
        o.then(a.id.cmp(&b.id))
    });
    if reverse {
        v.reverse();
    }
    v
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

fn kib(b: u32) -> String {
    if b >= 10 * 1024 {
        format!("{}K", b / 1024)
    } else {
        b.to_string()
    }
}

pub const TASK_HEADER: [&str; 10] = [
    "NAME",
    "ID",
    "PYTHREAD",
    "STATE",
    "PRIO",
    "AFFINITY",
    "CORE",
    "CPU%",
    "STACK HW/SIZE",
    "FREE MIN",
];

fn task_cells(t: &TaskRow) -> Vec<String> {
    let prio = if t.priority == t.base_priority {
        t.priority.to_string()
    } else {
        format!("{}({})", t.priority, t.base_priority)
    };
    vec![
        sanitize(&t.name),
        t.id.to_string(),
        opt(t.py_thread),
        t.state.to_string(),
        prio,
        t.affinity.to_string(),
        opt(t.core),
        pct(t.cpu_pct),
        match (t.stack_high_water, t.stack_size) {
            (Some(h), Some(s)) => format!(
                "{}/{} ({}%)",
                kib(h),
                kib(s),
                (h as u64 * 100 / s.max(1) as u64)
            ),
            _ => "-".into(),
        },
        opt(t.stack_free_min),
    ]
}

fn heap_line(snap: &Snapshot) -> String {
    let mut v = Vec::new();
    match snap.heap {
        // Not "0 free": nothing ever allocated from it (heap_4 initialises itself then).
        Some(h) if h.unused() => v.push(format!("FreeRTOS heap unused ({} reserved)", h.total)),
        Some(h) => v.push(format!(
            "FreeRTOS heap {} free of {} (min ever free {})",
            h.free,
            h.total,
            opt(h.min_free)
        )),
        None => {}
    }
    match snap.gc_heap {
        Some(g) => v.push(format!("GC heap {} free of {}", g.free, g.total)),
        None if snap.source == "rtt" => v.push("GC heap unknown".into()),
        None => {}
    }
    if let Some(l) = snap.threads_live {
        v.push(format!("threads live {l}"));
    }
    if let Some(f) = snap.threads_finished {
        v.push(format!("finished {f}"));
    }
    v.join("  ")
}

fn cores_line(snap: &Snapshot) -> String {
    snap.cores
        .iter()
        .map(|c| {
            // On more than one core, the task each core runs right now.
            let now = snap
                .tasks
                .iter()
                .find(|t| snap.cores.len() > 1 && t.core == Some(c.core));
            match now {
                Some(t) => format!("core{} {}% {}", c.core, pct(c.load_pct), sanitize(&t.name)),
                None => format!("core{} {}%", c.core, pct(c.load_pct)),
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn header_line(snap: &Snapshot) -> String {
    let mut v = vec![format!("board {}", sanitize(&snap.board))];
    if let Some(f) = &snap.firmware {
        v.push(format!("firmware {}", sanitize(f)));
    }
    if let Some(f) = &snap.fingerprint {
        v.push(format!("fingerprint {f}"));
    }
    if let Some(g) = &snap.gil {
        v.push(format!("GIL {g}"));
    }
    if let Some(u) = snap.uptime_ms {
        v.push(format!("uptime {:.1}s", u as f64 / 1000.0));
    }
    let l = snap.losses;
    // Skipped bytes are damage too: garbage in the ring may hold no frame header to count.
    let skipped = if l.bad_bytes > 0 {
        format!(" ({} bytes skipped)", l.bad_bytes)
    } else {
        String::new()
    };
    v.push(format!(
        "dropped {} bad {}{skipped} overflows {}",
        l.dropped_frames, l.bad_frames, l.agent_overflows
    ));
    v.join("  ")
}

fn service_rows(snap: &Snapshot) -> Vec<Vec<String>> {
    snap.service
        .as_ref()
        .map(|s| {
            s.slots
                .iter()
                .map(|sl| {
                    vec![
                        sl.slot.to_string(),
                        sl.dispatches.to_string(),
                        sl.per_sec
                            .map(|v| format!("{v:.1}"))
                            .unwrap_or_else(|| "-".into()),
                        sl.pending.to_string(),
                        sl.latency_avg_us
                            .map(|v| format!("{v:.0}"))
                            .unwrap_or_else(|| "-".into()),
                        sl.latency_max_us
                            .map(|v| format!("{v:.0}"))
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

const SLOT_HEADER: [&str; 6] = [
    "SLOT",
    "DISPATCHES",
    "PER SEC",
    "PENDING",
    "LAT AVG us",
    "LAT MAX us",
];

fn service_summary(snap: &Snapshot) -> String {
    match &snap.service {
        Some(s) => format!(
            "service task: notifications {} wake-ups {} suspended skips {} schedules isr {} task {} suspend depth {}",
            s.notifications,
            s.wakeups,
            s.suspended_skips,
            s.isr_schedules,
            s.task_schedules,
            s.suspend_depth
        ),
        None => format!(
            "service task: {}",
            sanitize(snap.service_note.as_deref().unwrap_or("none"))
        ),
    }
}

fn event_line(e: &EventRow) -> String {
    let tick = e.tick.map(|t| format!(" tick {t}")).unwrap_or_default();
    format!(
        "{:>8.1}s{tick} {} {}",
        e.host_ms as f64 / 1000.0,
        e.kind,
        sanitize(&e.text)
    )
}

/// The `--once` / `threads ls` text: header, task table, cores, service, heaps, events.
pub fn render_text(snap: &Snapshot, events: &[EventRow]) -> String {
    let rows: Vec<Vec<String>> = visible_rows(snap, SortKey::Cpu, false, "")
        .into_iter()
        .map(task_cells)
        .collect();
    let mut out = String::new();
    out.push_str(&header_line(snap));
    out.push('\n');
    out.push_str(&table(&TASK_HEADER, &rows));
    out.push('\n');
    out.push_str(&format!("cores: {}\n", cores_line(snap)));
    out.push_str(&service_summary(snap));
    out.push('\n');
    let sr = service_rows(snap);
    if !sr.is_empty() {
        out.push_str(&table(&SLOT_HEADER, &sr));
        out.push('\n');
    }
    let h = heap_line(snap);
    if !h.is_empty() {
        out.push_str(&h);
        out.push('\n');
    }
    for e in events {
        out.push_str(&event_line(e));
        out.push('\n');
    }
    out.pop();
    out
}

fn draw(f: &mut ratatui::Frame, st: &ViewState, transport: &str) {
    let area = f.area();
    let n_slots = st
        .snap
        .as_ref()
        .and_then(|s| s.service.as_ref())
        .map(|s| s.slots.len())
        .unwrap_or(0) as u16;
    let [head, tasks, svc, log, foot] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(6),
        Constraint::Length(3 + n_slots.min(8)),
        Constraint::Length(8),
        Constraint::Length(1),
    ])
    .areas(area);
    let bold = Style::default().add_modifier(Modifier::BOLD);
    match &st.snap {
        None => {
            f.render_widget(
                Paragraph::new(vec![
                    Line::from(format!("attached to {}", sanitize(transport))),
                    Line::from(sanitize(&st.status)),
                ])
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(" mpfr threads top "),
                ),
                head,
            );
        }
        Some(snap) => {
            let title = match &st.stale {
                Some(why) => format!(
                    " mpfr threads top: STALE, attaching again ({}) ",
                    sanitize(why)
                ),
                None => " mpfr threads top ".to_string(),
            };
            f.render_widget(
                Paragraph::new(vec![
                    Line::from(header_line(snap)),
                    Line::from(format!("{}  {}", cores_line(snap), heap_line(snap))),
                ])
                .block(Block::default().borders(Borders::ALL).title(title)),
                head,
            );
            let rows: Vec<Row> = visible_rows(snap, st.sort, st.reverse, &st.filter)
                .into_iter()
                .map(|t| Row::new(task_cells(t)))
                .collect();
            let widths = [
                Constraint::Length(16),
                Constraint::Length(5),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Length(4),
                Constraint::Length(6),
                Constraint::Length(20),
                Constraint::Length(8),
            ];
            let title = format!(
                " tasks ({}) sort {}{}{} ",
                snap.tasks.len(),
                st.sort.label(),
                if st.reverse { " reversed" } else { "" },
                if st.filter.is_empty() {
                    String::new()
                } else {
                    format!(" filter \"{}\"", sanitize(&st.filter))
                }
            );
            f.render_widget(
                Table::new(rows, widths)
                    .header(Row::new(TASK_HEADER.to_vec()).style(bold))
                    .block(Block::default().borders(Borders::ALL).title(title)),
                tasks,
            );
            let srows: Vec<Row> = service_rows(snap).into_iter().map(Row::new).collect();
            f.render_widget(
                Table::new(srows, [Constraint::Length(11); 6])
                    .header(Row::new(SLOT_HEADER.to_vec()).style(bold))
                    .block(
                        Block::default()
                            .borders(Borders::ALL)
                            .title(format!(" {} ", service_summary(snap))),
                    ),
                svc,
            );
        }
    }
    let h = log.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = st
        .events
        .iter()
        .skip(st.events.len().saturating_sub(h))
        .map(|e| Line::from(event_line(e)))
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" events ")),
        log,
    );
    let help = match &st.editing {
        Some(b) => format!("filter: {}_  (Enter apply, Esc cancel)", sanitize(b)),
        None => {
            "q quit  c cpu  n name  i id  s stack  p prio  o core  r reverse  / filter  Esc clear"
                .into()
        }
    };
    f.render_widget(Paragraph::new(help), foot);
}

/// How the live view ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Quit,
    Interrupted,
}

/// Restores the terminal however the view is left (return, `?`, panic unwinding).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the full-screen view until `q` (or Ctrl-C). When a poll fails (a reflash replaced QEMU,
/// the probe went away) the view marks its figures stale, logs the error once, and calls
/// `reattach` every second until it gives a new monitor.
pub fn run(monitor: &mut Monitor, reattach: &mut dyn FnMut() -> Option<Monitor>) -> Result<Exit> {
    // try_init installs a panic hook that restores the terminal before the message prints.
    let mut term = ratatui::try_init().map_err(|e| Error::io("cannot set up the terminal", e))?;
    let _guard = TerminalGuard;
    let mut st = ViewState {
        status: "waiting for the first sample".into(),
        ..ViewState::default()
    };
    let mut next_poll = Instant::now();
    let mut dirty = true;
    loop {
        if mpfr::util::cancel::requested() {
            return Ok(Exit::Interrupted);
        }
        if st.stale.is_some() && Instant::now() >= next_poll {
            next_poll = Instant::now() + Duration::from_secs(1);
            if let Some(m) = reattach() {
                *monitor = m;
                st.stale = None;
                st.push_event(EventRow {
                    host_ms: 0,
                    tick: None,
                    kind: EventType::Reattached,
                    text: format!("attached to {}", monitor.transport),
                });
                next_poll = Instant::now();
                dirty = true;
            }
        } else if Instant::now() >= next_poll {
            match monitor.step() {
                Ok(updates) => {
                    for u in updates {
                        match u {
                            Update::Sample(s) => st.snap = Some(*s),
                            Update::Event(e) => st.push_event(e),
                        }
                        dirty = true;
                    }
                    if st.snap.is_none() {
                        st.status = match monitor.rtt_status() {
                            Some(s) => format!(
                                "waiting for the first sample; RTT: {}",
                                serde_json::to_string(s).unwrap_or_default()
                            ),
                            None => "waiting for the first sample".into(),
                        };
                        dirty = true;
                    }
                }
                Err(e) => {
                    // Once per detach, not once per poll: the view goes stale until re-attached.
                    st.status = format!("error: {e}; attaching again");
                    st.stale = Some(e.to_string());
                    st.push_event(EventRow {
                        host_ms: 0,
                        tick: None,
                        kind: EventType::Error,
                        text: e.to_string(),
                    });
                    dirty = true;
                }
            }
            next_poll = Instant::now() + monitor.wait();
        }
        if dirty {
            term.draw(|f| draw(f, &st, &monitor.transport))
                .map_err(|e| Error::io("cannot draw the view", e))?;
            dirty = false;
        }
        let timeout = next_poll
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        if event::poll(timeout).map_err(|e| Error::io("cannot read the keyboard", e))? {
            match event::read().map_err(|e| Error::io("cannot read the keyboard", e))? {
                Event::Key(k) => match st.key(k) {
                    KeyAction::Quit => return Ok(Exit::Quit),
                    KeyAction::Interrupt => return Ok(Exit::Interrupted),
                    KeyAction::Redraw => dirty = true,
                    KeyAction::None => {}
                },
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpfr::telemetry::model::{CoreLoad, CoreMask, Heap, Losses, TaskStatus};

    #[test]
    fn sanitize_removes_every_escape() {
        let evil = "a\x1b[2Jb\x1b]0;pwned\x07c\u{9b}31md\r\ne\u{202e}f\x7f";
        let s = sanitize(evil);
        assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
        assert!(!s.contains('\u{1b}') && !s.contains('\u{9b}') && !s.contains('\u{202e}'));
        // Not a `?` per control with the payload of an OSC or CSI left as text.
        assert_eq!(s, "abcd ef");
        assert_eq!(sanitize("worker-1 ✓"), "worker-1 ✓");
        assert!(sanitize(&"x".repeat(500)).chars().count() <= 161);
    }

    fn snap() -> Snapshot {
        let row = |name: &str, id, cpu, hw| TaskRow {
            name: name.into(),
            id,
            py_thread: None,
            state: TaskStatus::Ready,
            priority: id as i64,
            base_priority: id as i64,
            affinity: CoreMask::ANY,
            core: Some(0),
            cpu_pct: cpu,
            stack_size: Some(1000),
            stack_high_water: Some(hw),
            stack_free_min: Some(1000 - hw),
        };
        Snapshot {
            board: "b\x1b[31m".into(),
            source: "rtt",
            host_ms: 0,
            uptime_ms: Some(1500),
            firmware: None,
            fingerprint: None,
            gil: None,
            cores: vec![CoreLoad {
                core: 0,
                load_pct: Some(50.0),
                tasks_pct: Some(100.0),
            }],
            tasks: vec![
                row("idle", 1, Some(50.0), 100),
                row("worker\x1b[2J", 2, Some(30.0), 900),
                row("svc", 3, Some(20.0), 500),
            ],
            service: None,
            service_note: Some("none yet".into()),
            heap: None,
            gc_heap: None,
            threads_live: None,
            threads_finished: None,
            losses: Losses::default(),
        }
    }

    #[test]
    fn the_header_counts_skipped_bytes_as_bad() {
        let mut s = snap();
        assert!(
            header_line(&s).contains("bad 0 overflows"),
            "{}",
            header_line(&s)
        );
        s.losses.bad_bytes = 4000;
        s.losses.bad_frames = 2;
        let line = header_line(&s);
        assert!(line.contains("bad 2 (4000 bytes skipped)"), "{line}");
    }

    #[test]
    fn a_heap_never_allocated_from_is_unused_not_empty() {
        let mut s = snap();
        let heap = |free, allocations| Heap {
            total: 65536,
            free,
            min_free: Some(free),
            allocations,
        };
        s.heap = Some(heap(0, Some(0)));
        let line = heap_line(&s);
        assert!(
            line.contains("FreeRTOS heap unused (65536 reserved)"),
            "{line}"
        );
        assert!(!line.contains("0 free"), "{line}");
        // Exhausted after use, or a heap that cannot count: the figures as they are.
        s.heap = Some(heap(0, Some(12)));
        assert!(heap_line(&s).contains("FreeRTOS heap 0 free of 65536"));
        s.heap = Some(heap(0, None));
        assert!(heap_line(&s).contains("FreeRTOS heap 0 free of 65536"));
    }

    #[test]
    fn sorting_and_filtering() {
        let s = snap();
        let ids = |v: Vec<&TaskRow>| v.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(visible_rows(&s, SortKey::Cpu, false, "")),
            vec![1, 2, 3]
        );
        assert_eq!(
            ids(visible_rows(&s, SortKey::Stack, false, "")),
            vec![2, 3, 1]
        );
        assert_eq!(
            ids(visible_rows(&s, SortKey::Name, true, "")),
            vec![2, 3, 1]
        );
        assert_eq!(ids(visible_rows(&s, SortKey::Cpu, false, "WORK")), vec![2]);
    }

    #[test]
    fn keys_sort_filter_and_quit() {
        let k = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        let mut st = ViewState::default();
        assert_eq!(st.key(k('s')), KeyAction::Redraw);
        assert_eq!(st.sort, SortKey::Stack);
        st.key(k('s'));
        assert!(st.reverse);
        st.key(k('/'));
        st.key(k('w'));
        st.key(k('q')); // typed into the filter, not quit
        st.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        assert_eq!(st.filter, "wq");
        assert_eq!(st.key(k('q')), KeyAction::Quit);
        assert_eq!(
            st.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            KeyAction::Interrupt
        );
    }

    #[test]
    fn text_render_is_sanitised() {
        let t = render_text(
            &snap(),
            &[EventRow {
                host_ms: 1000,
                tick: Some(5),
                kind: EventType::Log,
                text: "\x1b]0;title\x07".into(),
            }],
        );
        assert!(!t.contains('\x1b'), "{t:?}");
        // The OSC payload is not printed as text either.
        assert!(!t.contains("title"), "{t:?}");
        assert!(t.contains("worker ") && !t.contains("[2J"), "{t:?}");
        assert!(t.contains("900/1000 (90%)"));
        assert!(t.contains("service task: none yet"));
    }

    #[test]
    fn view_draws_into_a_test_backend() {
        let backend = ratatui::backend::TestBackend::new(120, 40);
        let mut term = ratatui::Terminal::new(backend).expect("terminal");
        let st = ViewState {
            snap: Some(snap()),
            ..ViewState::default()
        };
        term.draw(|f| draw(f, &st, "fake")).expect("draw");
        let buf = term.backend().buffer().clone();
        let text: String = buf.content().iter().map(|c| c.symbol()).collect();
        assert!(text.contains("NAME"), "{text}");
        assert!(text.contains("svc"));
        assert!(!text.contains('\x1b'));
    }
}
