//! The app's side of the engine thread: the handle, the waker, and restarting it after a crash.

use std::sync::Arc;

use lumos_engine::protocol::{Event, GenerateRequest, JobId, MultiviewJob, TextToImageJob};
use lumos_engine::worker::{EngineGone, EngineHandle};

type Waker = Arc<dyn Fn() + Send + Sync>;

/// What one call to [`EngineLink::poll`] found.
#[derive(Debug)]
pub enum Polled {
    /// An event from the engine.
    Event(Event),
    /// No event waiting.
    Idle,
    /// The engine thread is gone; every job it had is lost.
    Died,
}

/// Owns the engine handle. The handle is `None` only between a crash and the restart.
pub struct EngineLink {
    handle: Option<EngineHandle>,
    waker: Waker,
    restarts: usize,
}

impl EngineLink {
    /// Starts the engine thread; `waker` is called after every event (pass a closure that
    /// calls `ctx.request_repaint()`).
    pub fn spawn(waker: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let waker: Waker = Arc::new(waker);
        let callback = waker.clone();
        let handle = EngineHandle::spawn(move || callback())?;
        Ok(Self {
            handle: Some(handle),
            waker,
            restarts: 0,
        })
    }

    /// How many times the engine was restarted.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    /// Whether the engine thread is running.
    pub fn is_alive(&self) -> bool {
        self.handle.as_ref().is_some_and(EngineHandle::is_alive)
    }

    /// Queues a generation.
    pub fn generate(&self, request: GenerateRequest) -> Result<JobId, EngineGone> {
        self.handle.as_ref().ok_or(EngineGone)?.generate(request)
    }

    /// Queues a multi-view set.
    pub fn multiview(&self, request: MultiviewJob) -> Result<JobId, EngineGone> {
        self.handle.as_ref().ok_or(EngineGone)?.multiview(request)
    }

    /// Queues images from a prompt.
    pub fn text_to_image(&self, request: TextToImageJob) -> Result<JobId, EngineGone> {
        self.handle
            .as_ref()
            .ok_or(EngineGone)?
            .text_to_image(request)
    }

    /// Cancels a running or queued job.
    pub fn cancel(&self, job: JobId) {
        if let Some(handle) = &self.handle {
            handle.cancel(job);
        }
    }

    /// The next event without blocking.
    pub fn poll(&self) -> Polled {
        match self.handle.as_ref().map(EngineHandle::try_recv) {
            Some(Ok(Some(event))) => Polled::Event(event),
            Some(Ok(None)) => Polled::Idle,
            Some(Err(EngineGone)) | None => Polled::Died,
        }
    }

    /// Starts a fresh engine thread (job ids keep increasing when the old handle is still
    /// there to ask).
    pub fn restart(&mut self) -> std::io::Result<()> {
        let waker = self.waker.clone();
        let callback = move || waker();
        let fresh = match &self.handle {
            Some(old) => old.respawn(callback)?,
            None => EngineHandle::spawn(callback)?,
        };
        // Dropping the old handle joins a thread that has already ended.
        self.handle = Some(fresh);
        self.restarts += 1;
        Ok(())
    }

    /// Makes the engine thread die as a bug would (a panic outside any job), so that tests can
    /// watch the app notice, restart it and keep the canvas.
    pub fn crash_for_test(&mut self) {
        if let Some(handle) = &self.handle {
            handle.crash_for_test();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while handle.is_alive() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}
