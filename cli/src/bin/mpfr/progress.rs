//! Progress bars for the long operations (build, flash and QEMU boot, stress). The library
//! reports progress as events; this is the one place that draws them, with indicatif, and only
//! when stderr is a terminal in normal or verbose mode. Otherwise every method does nothing
//! and the commands' status lines stand alone.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::{Printer, Verbosity};

/// What a bar counts.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Bytes,
    Items,
}

/// The bars of one command, by key.
pub struct Bars {
    enabled: bool,
    active: HashMap<String, ProgressBar>,
}

impl Bars {
    pub fn new(p: &Printer) -> Bars {
        Bars {
            enabled: !p.json && p.verbosity >= Verbosity::Normal && std::io::stderr().is_terminal(),
            active: HashMap::new(),
        }
    }

    /// True when bars are drawn (else callers print status lines).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A bar with a known total.
    pub fn start(&mut self, key: &str, label: &str, total: u64, unit: Unit) {
        if !self.enabled {
            return;
        }
        let template = match unit {
            Unit::Bytes => {
                "{prefix:>12.green.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
            }
            Unit::Items => "{prefix:>12.green.bold} [{bar:30}] {pos}/{len} {msg}",
        };
        let bar = ProgressBar::new(total).with_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        self.add(key, label, bar);
    }

    /// A spinner for work of unknown length.
    pub fn spin(&mut self, key: &str, label: &str, message: &str) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix:>12.green.bold} {spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        self.add(key, label, bar);
    }

    fn add(&mut self, key: &str, label: &str, bar: ProgressBar) {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_prefix(label.to_string());
        if let Some(old) = self.active.insert(key.to_string(), bar) {
            old.finish_and_clear();
        }
    }

    pub fn is_active(&self, key: &str) -> bool {
        self.active.contains_key(key)
    }

    pub fn inc(&self, key: &str, n: u64) {
        if let Some(b) = self.active.get(key) {
            b.inc(n);
        }
    }

    pub fn set(&self, key: &str, pos: u64, message: &str) {
        if let Some(b) = self.active.get(key) {
            b.set_position(pos);
            b.set_message(message.to_string());
        }
    }

    pub fn finish(&mut self, key: &str) {
        if let Some(b) = self.active.remove(key) {
            b.finish_and_clear();
        }
    }

    /// Runs `print` with the bars hidden, so lines are not torn by a redraw.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match self.active.values().next() {
            Some(b) => b.suspend(print),
            None => print(),
        }
    }

    pub fn finish_all(&mut self) {
        for (_, b) in self.active.drain() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish_all();
    }
}
