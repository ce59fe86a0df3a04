//! What a board's telemetry saw during one test: the lowest free heap, the most tasks, the
//! deepest stack use and the worst service latency, folded from samples taken while it ran.
//!
//! A sampler (RTT frames, `/proc` of the host process) turns each snapshot into a [`Sample`];
//! the runner's observer resets the window on `Started` and hands [`Window::summary`] back
//! through `Observer::telemetry` when the test ends.

use super::report::TelemetrySummary;

/// One telemetry snapshot, reduced to what a result records. `None`: not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub free_heap: Option<u64>,
    pub tasks: Option<u32>,
    /// Deepest stack use of any task (stack size minus its high-water mark).
    pub stack_used: Option<u64>,
    /// Worst schedule-to-dispatch latency of the service task.
    pub service_latency_us: Option<u64>,
}

/// Extremes over the samples of one test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    acc: TelemetrySummary,
    samples: u64,
}

fn keep(slot: &mut Option<u64>, v: Option<u64>, better: fn(u64, u64) -> u64) {
    if let Some(v) = v {
        *slot = Some(slot.map_or(v, |old| better(old, v)));
    }
}

impl Window {
    /// Starts over (a new test).
    pub fn reset(&mut self) {
        *self = Window::default();
    }

    pub fn observe(&mut self, s: &Sample) {
        self.samples += 1;
        keep(&mut self.acc.min_free_heap, s.free_heap, u64::min);
        keep(&mut self.acc.deepest_stack_use, s.stack_used, u64::max);
        keep(
            &mut self.acc.max_service_latency_us,
            s.service_latency_us,
            u64::max,
        );
        if let Some(t) = s.tasks {
            self.acc.peak_tasks = Some(self.acc.peak_tasks.map_or(t, |old| old.max(t)));
        }
    }

    /// The extremes seen, or `None` when no sample arrived.
    pub fn summary(&self) -> Option<TelemetrySummary> {
        (self.samples > 0).then(|| self.acc.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_extremes_of_what_was_reported() {
        let mut w = Window::default();
        assert_eq!(w.summary(), None);
        w.observe(&Sample {
            free_heap: Some(5000),
            tasks: Some(4),
            stack_used: None,
            service_latency_us: Some(30),
        });
        w.observe(&Sample {
            free_heap: Some(3000),
            tasks: Some(9),
            stack_used: Some(700),
            service_latency_us: Some(12),
        });
        w.observe(&Sample {
            free_heap: Some(4000),
            tasks: Some(2),
            stack_used: Some(500),
            service_latency_us: None,
        });
        let s = w.summary().unwrap();
        assert_eq!(s.min_free_heap, Some(3000));
        assert_eq!(s.peak_tasks, Some(9));
        assert_eq!(s.deepest_stack_use, Some(700));
        assert_eq!(s.max_service_latency_us, Some(30));
        w.reset();
        w.observe(&Sample::default());
        assert_eq!(w.summary(), Some(TelemetrySummary::default()));
    }
}
