//! Load: many jobs through one engine thread on the tiny fixture model — most cancelled while
//! queued, some cancelled while running, some finished — with the engine's resident memory
//! measured before and after. Every job must end in exactly one terminal event, and no event
//! may follow it; memory must come back to where it was (nothing kept per job).
//!
//! `cargo test` runs 300 jobs (after a warm-up round of 300); the full trial of 1,000 by command, with the figures printed:
//!
//! ```sh
//! LUMOS_LOAD_JOBS=1000 cargo test -p lumos-engine --test load -- --nocapture
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lumos_engine::checkpoints::{fixtures_root, pipeline_fixture_spec};
use lumos_engine::protocol::{
    DeviceChoice, Event, GenerateRequest, JobId, Mode, ReferenceImage, SamplerSettings,
};
use lumos_engine::worker::EngineHandle;

/// Jobs of a plain `cargo test`.
const DEFAULT_JOBS: usize = 300;
/// Most jobs queued and not yet ended at once (the request queue holds 256; the event queue
/// 64, so events are drained as jobs are queued).
const MAX_OPEN: usize = 200;

fn request(steps: usize, seed: u64) -> GenerateRequest {
    let image = lumos_engine::imageio::load_image(&fixtures_root().join("pipeline_tiny/ref_a.png"))
        .expect("fixture image");
    GenerateRequest {
        model: pipeline_fixture_spec(&fixtures_root()).expect("fixture model"),
        device: DeviceChoice::Cpu,
        references: vec![ReferenceImage {
            name: "ref_a.png".into(),
            image: Arc::new(image),
            weight: 1.0,
            crop: None,
        }],
        mode: Mode::Variations { count: 1 },
        settings: SamplerSettings {
            steps,
            seed,
            ..SamplerSettings::default()
        },
        init: None,
        mix: Default::default(),
    }
}

/// Resident memory of this process in bytes (Linux: `/proc/self/statm`, pages × 4 KiB).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What happened to each job.
#[derive(Default)]
struct Ledger {
    started: HashMap<JobId, usize>,
    terminal: HashMap<JobId, Vec<&'static str>>,
    after_terminal: Vec<String>,
    images: usize,
}

impl Ledger {
    fn record(&mut self, event: &Event) {
        let job = event.job();
        if self.terminal.contains_key(&job) {
            self.after_terminal.push(format!("{event:?}"));
        }
        match event {
            Event::Started { .. } => *self.started.entry(job).or_default() += 1,
            Event::Image { .. } => self.images += 1,
            Event::Finished { .. } => self.terminal.entry(job).or_default().push("finished"),
            Event::Cancelled { .. } => self.terminal.entry(job).or_default().push("cancelled"),
            Event::Failed { error, .. } => {
                panic!("job {job} failed: {error}");
            }
            _ => {}
        }
    }

    fn open(&self, queued: usize) -> usize {
        queued - self.terminal.len()
    }
}

/// The job mix: one in ten runs to the end, one in ten is long and cancelled once it has
/// started, the rest are cancelled as soon as they are queued.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Finish,
    CancelWhileRunning,
    CancelAtOnce,
}

fn kind_of(i: usize) -> Kind {
    match i % 10 {
        0 => Kind::Finish,
        5 => Kind::CancelWhileRunning,
        _ => Kind::CancelAtOnce,
    }
}

/// Figures of one round.
struct Round {
    elapsed: Duration,
    finished: usize,
    cancelled_queued: usize,
    cancelled_running: usize,
    images: usize,
}

/// Queues `jobs` jobs of the mix, cancels as planned, waits until every one has ended and
/// checks that each ended exactly once.
fn round(engine: &EngineHandle, jobs: usize) -> Round {
    let mut ledger = Ledger::default();
    // Records events; a long job is cancelled as soon as its start is seen.
    let drain = |ledger: &mut Ledger, kinds: &HashMap<JobId, Kind>, wait: Duration| {
        while let Some(event) = engine.recv_timeout(wait).expect("engine alive") {
            ledger.record(&event);
            if let Event::Started { job, .. } = event
                && kinds.get(&job) == Some(&Kind::CancelWhileRunning)
            {
                engine.cancel(job);
            }
            if wait > Duration::ZERO {
                break;
            }
        }
    };
    let started_at = Instant::now();
    let mut queued = 0;
    let mut kinds: HashMap<JobId, Kind> = HashMap::new();
    for i in 0..jobs {
        while ledger.open(queued) >= MAX_OPEN {
            drain(&mut ledger, &kinds, Duration::from_millis(20));
        }
        let kind = kind_of(i);
        let steps = match kind {
            Kind::Finish => 2,
            Kind::CancelWhileRunning => 400,
            Kind::CancelAtOnce => 3,
        };
        let job = engine.generate(request(steps, i as u64)).expect("queued");
        queued += 1;
        kinds.insert(job, kind);
        if kind == Kind::CancelAtOnce {
            engine.cancel(job);
        }
        drain(&mut ledger, &kinds, Duration::ZERO);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while ledger.terminal.len() < queued {
        assert!(
            Instant::now() < deadline,
            "{} jobs never ended",
            ledger.open(queued)
        );
        drain(&mut ledger, &kinds, Duration::from_millis(50));
    }
    // Late events (none expected) would arrive now.
    std::thread::sleep(Duration::from_millis(100));
    drain(&mut ledger, &kinds, Duration::ZERO);
    let elapsed = started_at.elapsed();

    let ended_twice: Vec<_> = ledger
        .terminal
        .iter()
        .filter(|(_, t)| t.len() != 1)
        .collect();
    assert!(
        ended_twice.is_empty(),
        "jobs with several terminal events: {ended_twice:?}"
    );
    assert!(
        ledger.after_terminal.is_empty(),
        "events after the end: {:?}",
        ledger.after_terminal
    );
    for (job, count) in &ledger.started {
        assert_eq!(*count, 1, "job {job} started {count} times");
        assert!(
            ledger.terminal.contains_key(job),
            "job {job} started and never ended"
        );
    }
    let finished = kinds
        .iter()
        .filter(|(job, k)| **k == Kind::Finish && ledger.terminal[*job][0] == "finished")
        .count();
    assert_eq!(
        finished,
        kinds.values().filter(|k| **k == Kind::Finish).count(),
        "every job that was not cancelled finishes"
    );
    let cancelled = |started: bool| {
        ledger
            .terminal
            .iter()
            .filter(|(job, t)| t[0] == "cancelled" && ledger.started.contains_key(*job) == started)
            .count()
    };
    assert_eq!(finished + cancelled(true) + cancelled(false), jobs);
    for (job, _) in kinds
        .iter()
        .filter(|(_, k)| **k == Kind::CancelWhileRunning)
    {
        assert!(
            ledger.started.contains_key(job) && ledger.terminal[job][0] == "cancelled",
            "job {job} was to be cancelled while running: {:?}",
            ledger.terminal[job]
        );
    }
    Round {
        elapsed,
        finished,
        cancelled_queued: cancelled(false),
        cancelled_running: cancelled(true),
        images: ledger.images,
    }
}

#[test]
fn many_queued_and_cancelled_jobs_each_end_once_and_leave_memory_flat() {
    let jobs: usize = std::env::var("LUMOS_LOAD_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_JOBS);
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let megabytes = |b: Option<u64>| b.unwrap_or(0) as f64 / (1 << 20) as f64;
    let at_start = resident_bytes();
    // A first round brings the process to its working size under load (model loaded, a full
    // request queue, the allocator's arenas); the measured round must then add nothing.
    let warm_up = round(&engine, MAX_OPEN + 100);
    let before = resident_bytes();
    let measured = round(&engine, jobs);
    let after = resident_bytes();
    println!(
        "load: warm-up of {} jobs took resident memory from {:.1} to {:.1} MiB",
        MAX_OPEN + 100,
        megabytes(at_start),
        megabytes(before)
    );
    println!(
        "load: {jobs} jobs in {:.1} s: {} finished, {} cancelled while queued, {} cancelled \
         while running; {} images; each ended exactly once; resident memory {:.1} MiB before, \
         {:.1} MiB after ({:+.1} MiB)",
        measured.elapsed.as_secs_f64(),
        measured.finished,
        measured.cancelled_queued,
        measured.cancelled_running,
        measured.images,
        megabytes(before),
        megabytes(after),
        megabytes(after) - megabytes(before),
    );
    let _ = warm_up.images;
    // Some slack for the allocator; a leak of even 10 kB per job would show at 1,000 jobs.
    if let (Some(before), Some(after)) = (before, after) {
        assert!(
            after < before + (8 << 20),
            "resident memory grew from {:.1} to {:.1} MiB",
            megabytes(Some(before)),
            megabytes(Some(after))
        );
    }
}
