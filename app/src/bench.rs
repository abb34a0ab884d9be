//! Frame-time measurement while a generation runs (`lumos-studio --bench-frames`).
//!
//! Records, for every frame: the interval since the previous frame and the CPU time the app's
//! own frame work took (eframe's `cpu_usage`: `logic` + `ui` + tessellation). The bench asks
//! for continuous repaints, so intervals show whether the UI keeps its frame rate while the
//! engine thread computes.

use std::time::{Duration, Instant};

/// Collected frame timings.
#[derive(Debug)]
pub struct FrameBench {
    launched_at: Instant,
    first_frame_after: Option<Duration>,
    last_frame_at: Option<Instant>,
    intervals: Vec<Duration>,
    frame_work: Vec<Duration>,
    recording: bool,
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
            intervals: Vec::new(),
            frame_work: Vec::new(),
            recording: false,
        }
    }

    /// Records a frame; `frame_work` is the previous frame's CPU time if known. Only frames
    /// while `recording` (a generation runs) count towards the percentiles.
    pub fn frame(&mut self, now: Instant, frame_work: Option<Duration>, recording: bool) {
        if self.first_frame_after.is_none() {
            self.first_frame_after = Some(now.duration_since(self.launched_at));
        }
        if recording && self.recording {
            if let Some(last) = self.last_frame_at {
                self.intervals.push(now.duration_since(last));
            }
            if let Some(work) = frame_work {
                self.frame_work.push(work);
            }
        }
        self.recording = recording;
        self.last_frame_at = Some(now);
    }

    /// Time from launch to the first frame.
    pub fn first_frame_after(&self) -> Option<Duration> {
        self.first_frame_after
    }

    /// Frame intervals during generation.
    pub fn intervals(&self) -> Option<Percentiles> {
        Percentiles::of(&self.intervals)
    }

    /// Frame CPU work during generation.
    pub fn frame_work(&self) -> Option<Percentiles> {
        Percentiles::of(&self.frame_work)
    }

    /// A human-readable report.
    pub fn report(&self) -> String {
        let show =
            |p: Option<Percentiles>| p.map_or_else(|| "no samples".into(), |p| p.to_string());
        format!(
            "launch to first frame: {}\nframe interval during generation: {}\nframe work during generation: {}",
            self.first_frame_after.map_or_else(
                || "-".into(),
                |d| format!("{:.1} ms", d.as_secs_f64() * 1e3)
            ),
            show(self.intervals()),
            show(self.frame_work()),
        )
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
        bench.frame(t0 + ms(100), None, false);
        bench.frame(t0 + ms(110), Some(ms(2)), true);
        bench.frame(t0 + ms(126), Some(ms(3)), true);
        bench.frame(t0 + ms(300), Some(ms(3)), false);
        assert_eq!(bench.first_frame_after(), Some(ms(100)));
        let intervals = bench.intervals().expect("intervals");
        assert_eq!((intervals.count, intervals.max), (1, ms(16)));
        assert_eq!(bench.frame_work().expect("work").count, 1);
    }
}
