//! Frame-time measurement while a generation runs (`lumos-studio --bench-frames`).
//!
//! Records, for every frame: the interval since the previous frame and the CPU time the app's
//! own frame work took (eframe's `cpu_usage`: `logic` + `ui` + tessellation). The bench asks
//! for continuous repaints, so intervals show whether the UI keeps its frame rate while the
//! engine thread computes.

use std::time::{Duration, Instant};

/// What the app was doing during a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramePhase {
    /// Not measured (start-up, loading).
    Ignored,
    /// Nothing running: the UI's own cost.
    Idle,
    /// A generation runs on the engine thread.
    Generating,
}

#[derive(Debug, Default)]
struct Samples {
    intervals: Vec<Duration>,
    frame_work: Vec<Duration>,
}

/// Collected frame timings.
#[derive(Debug)]
pub struct FrameBench {
    launched_at: Instant,
    first_frame_after: Option<Duration>,
    last_frame_at: Option<Instant>,
    last_phase: FramePhase,
    idle: Samples,
    generating: Samples,
}

/// Percentiles of a set of durations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` without samples.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Some(Self {
            count: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
        })
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
            self.count,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

impl FrameBench {
    /// Starts measuring; `launched_at` is when the process started.
    pub fn new(launched_at: Instant) -> Self {
        Self {
            launched_at,
            first_frame_after: None,
            last_frame_at: None,
            last_phase: FramePhase::Ignored,
            idle: Samples::default(),
            generating: Samples::default(),
        }
    }

    /// Records a frame; `frame_work` is the previous frame's CPU time if known. A frame counts
    /// only when the previous one was in the same phase (so that intervals never span two).
    pub fn frame(&mut self, now: Instant, frame_work: Option<Duration>, phase: FramePhase) {
        if self.first_frame_after.is_none() {
            self.first_frame_after = Some(now.duration_since(self.launched_at));
        }
        let samples = match phase {
            FramePhase::Idle => Some(&mut self.idle),
            FramePhase::Generating => Some(&mut self.generating),
            FramePhase::Ignored => None,
        };
        if let Some(samples) = samples
            && self.last_phase == phase
        {
            if let Some(last) = self.last_frame_at {
                samples.intervals.push(now.duration_since(last));
            }
            if let Some(work) = frame_work {
                samples.frame_work.push(work);
            }
        }
        self.last_phase = phase;
        self.last_frame_at = Some(now);
    }

    /// Number of idle frames recorded.
    pub fn idle_frames(&self) -> usize {
        self.idle.intervals.len()
    }

    /// Time from launch to the first frame.
    pub fn first_frame_after(&self) -> Option<Duration> {
        self.first_frame_after
    }

    /// Frame intervals during generation.
    pub fn intervals(&self) -> Option<Percentiles> {
        Percentiles::of(&self.generating.intervals)
    }

    /// Frame CPU work during generation.
    pub fn frame_work(&self) -> Option<Percentiles> {
        Percentiles::of(&self.generating.frame_work)
    }

    /// A human-readable report.
    pub fn report(&self) -> String {
        let show =
            |p: Option<Percentiles>| p.map_or_else(|| "no samples".into(), |p| p.to_string());
        let first = self.first_frame_after.map_or_else(
            || "-".into(),
            |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
        );
        [
            format!("launch to first frame: {first}"),
            format!(
                "frame interval, idle: {}",
                show(Percentiles::of(&self.idle.intervals))
            ),
            format!(
                "frame work, idle: {}",
                show(Percentiles::of(&self.idle.frame_work))
            ),
            format!(
                "frame interval during generation: {}",
                show(self.intervals())
            ),
            format!("frame work during generation: {}", show(self.frame_work())),
        ]
        .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples).expect("samples");
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(Percentiles::of(&[]), None);
    }

    #[test]
    fn only_frames_during_generation_count() {
        let t0 = Instant::now();
        let mut bench = FrameBench::new(t0);
        let ms = Duration::from_millis;
        bench.frame(t0 + ms(100), None, FramePhase::Ignored);
        bench.frame(t0 + ms(105), Some(ms(1)), FramePhase::Idle);
        bench.frame(t0 + ms(111), Some(ms(1)), FramePhase::Idle);
        bench.frame(t0 + ms(120), Some(ms(2)), FramePhase::Generating);
        bench.frame(t0 + ms(136), Some(ms(3)), FramePhase::Generating);
        bench.frame(t0 + ms(300), Some(ms(3)), FramePhase::Ignored);
        assert_eq!(bench.first_frame_after(), Some(ms(100)));
        assert_eq!(bench.idle_frames(), 1);
        let intervals = bench.intervals().expect("intervals");
        assert_eq!((intervals.count, intervals.max), (1, ms(16)));
        assert_eq!(bench.frame_work().expect("work").count, 1);
    }
}
