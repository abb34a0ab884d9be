//! Jobs the app has queued with the engine: waiting, running, and their progress (step, it/s,
//! ETA). Terminal events remove a job from here; the gallery keeps the results.

use std::time::{Duration, Instant};

use lumos_engine::protocol::JobId;

use crate::gallery::RunId;

/// Where a tracked job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Sent to the engine, not started yet.
    Waiting,
    /// Running.
    Running(Progress),
}

/// Progress of a running job.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Images the job makes.
    pub images: usize,
    /// Images received so far.
    pub images_done: usize,
    /// Last step reported (1-based; 0 before the first).
    pub step: usize,
    /// Steps of the current batch.
    pub steps: usize,
    /// Sampler steps finished over the whole job (batches included).
    pub steps_done: usize,
    /// When the job started.
    pub started_at: Instant,
    /// When the last step was reported.
    pub last_step_at: Option<Instant>,
    /// Smoothed steps per second.
    pub steps_per_sec: Option<f64>,
}

impl Progress {
    fn new(images: usize, steps: usize, now: Instant) -> Self {
        Self {
            images,
            images_done: 0,
            step: 0,
            steps,
            steps_done: 0,
            started_at: now,
            last_step_at: None,
            steps_per_sec: None,
        }
    }

    /// Records a finished sampler step. Progress events may be dropped by the engine, so the
    /// rate comes from step differences over time, and a lower step means a new batch.
    pub fn record_step(&mut self, step: usize, steps: usize, now: Instant) {
        let advanced = if step > self.step {
            step - self.step
        } else {
            step
        };
        let since = self.last_step_at.unwrap_or(self.started_at);
        let elapsed_secs = now.duration_since(since).as_secs_f64();
        // The first step includes model loading and encoding: do not let it set the rate.
        if self.last_step_at.is_some() && elapsed_secs > 0.0 && advanced > 0 {
            let rate = advanced as f64 / elapsed_secs;
            self.steps_per_sec = Some(match self.steps_per_sec {
                Some(old) => 0.7 * old + 0.3 * rate,
                None => rate,
            });
        }
        self.steps_done += advanced;
        self.step = step;
        self.steps = steps;
        self.last_step_at = Some(now);
    }

    /// Fraction of the current batch done, in [0, 1].
    pub fn fraction(&self) -> f32 {
        if self.steps == 0 {
            0.0
        } else {
            (self.step as f32 / self.steps as f32).clamp(0.0, 1.0)
        }
    }

    /// Time left in the current batch at the current rate.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.steps_per_sec?;
        let left = self.steps.saturating_sub(self.step) as f64;
        (rate > 0.0).then(|| Duration::from_secs_f64(left / rate))
    }
}

/// One job the app tracks.
#[derive(Clone, Debug)]
pub struct TrackedJob {
    /// Engine job id.
    pub job: JobId,
    /// The gallery run its results go to.
    pub run: RunId,
    /// Short description for the queue panel.
    pub summary: String,
    /// Waiting or running.
    pub state: JobState,
    /// Cancel was asked for and the engine has not answered yet.
    pub cancelling: bool,
}

/// The jobs the app tracks, in submission order.
#[derive(Default)]
pub struct JobQueue {
    jobs: Vec<TrackedJob>,
}

impl JobQueue {
    /// Starts tracking a job that was just sent.
    pub fn push(&mut self, job: JobId, run: RunId, summary: String) {
        self.jobs.push(TrackedJob {
            job,
            run,
            summary,
            state: JobState::Waiting,
            cancelling: false,
        });
    }

    /// The tracked jobs, oldest first.
    pub fn jobs(&self) -> &[TrackedJob] {
        &self.jobs
    }

    /// Whether nothing is waiting or running.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The job with this id.
    pub fn get(&self, job: JobId) -> Option<&TrackedJob> {
        self.jobs.iter().find(|j| j.job == job)
    }

    fn get_mut(&mut self, job: JobId) -> Option<&mut TrackedJob> {
        self.jobs.iter_mut().find(|j| j.job == job)
    }

    /// The running job, if any.
    pub fn running(&self) -> Option<&TrackedJob> {
        self.jobs
            .iter()
            .find(|j| matches!(j.state, JobState::Running(_)))
    }

    /// The job Esc cancels: the running one, else the oldest waiting one.
    pub fn current(&self) -> Option<JobId> {
        self.running().or_else(|| self.jobs.first()).map(|j| j.job)
    }

    /// The engine started `job`.
    pub fn started(&mut self, job: JobId, images: usize, steps: usize, now: Instant) {
        if let Some(tracked) = self.get_mut(job) {
            tracked.state = JobState::Running(Progress::new(images, steps, now));
        }
    }

    /// A step of `job` finished.
    pub fn step(&mut self, job: JobId, step: usize, steps: usize, now: Instant) {
        if let Some(TrackedJob {
            state: JobState::Running(progress),
            ..
        }) = self.get_mut(job)
        {
            progress.record_step(step, steps, now);
        }
    }

    /// An image of `job` arrived.
    pub fn image_done(&mut self, job: JobId) {
        if let Some(TrackedJob {
            state: JobState::Running(progress),
            ..
        }) = self.get_mut(job)
        {
            progress.images_done += 1;
        }
    }

    /// Cancel was asked for.
    pub fn mark_cancelling(&mut self, job: JobId) {
        if let Some(tracked) = self.get_mut(job) {
            tracked.cancelling = true;
        }
    }

    /// Stops tracking `job` (it ended); returns it.
    pub fn remove(&mut self, job: JobId) -> Option<TrackedJob> {
        let at = self.jobs.iter().position(|j| j.job == job)?;
        Some(self.jobs.remove(at))
    }

    /// Stops tracking everything (the engine died); returns what was lost.
    pub fn clear(&mut self) -> Vec<TrackedJob> {
        std::mem::take(&mut self.jobs)
    }
}

/// `1.2 s`, `3 min 04 s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = duration.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_follow_steps_even_when_some_are_dropped() {
        let t0 = Instant::now();
        let mut progress = Progress::new(1, 20, t0);
        progress.record_step(1, 20, t0 + Duration::from_secs(5)); // includes loading
        assert_eq!(progress.steps_per_sec, None);
        progress.record_step(3, 20, t0 + Duration::from_secs(6)); // step 2 was dropped
        let rate = progress.steps_per_sec.expect("rate");
        assert!((rate - 2.0).abs() < 1e-9);
        assert_eq!(progress.steps_done, 3);
        let eta = progress.eta().expect("eta");
        assert!((eta.as_secs_f64() - 8.5).abs() < 1e-9);
        // A new batch starts again at step 1.
        progress.record_step(1, 20, t0 + Duration::from_secs(7));
        assert_eq!(progress.steps_done, 4);
        assert_eq!(progress.step, 1);
    }

    #[test]
    fn queue_tracks_current_job() {
        let mut queue = JobQueue::default();
        queue.push(1, 10, "a".into());
        queue.push(2, 11, "b".into());
        assert_eq!(queue.current(), Some(1));
        queue.started(2, 4, 20, Instant::now());
        assert_eq!(queue.current(), Some(2));
        assert!(queue.remove(2).is_some());
        assert_eq!(queue.current(), Some(1));
        assert_eq!(queue.clear().len(), 1);
        assert!(queue.is_empty());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(format_duration(Duration::from_secs(184)), "3 min 04 s");
    }
}
