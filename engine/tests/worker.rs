//! The engine thread and its protocol, driven with the tiny fixture model: events in order,
//! exactly one terminal event per job, cancellation within a step, errors as events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lumos_engine::checkpoints::{fixtures_root, pipeline_fixture_spec};
use lumos_engine::models::vae::LatentRgbFactors;
use lumos_engine::protocol::{
    DeviceChoice, Event, GenerateRequest, JobId, Mode, ReferenceImage, SamplerSettings,
};
use lumos_engine::worker::EngineHandle;
use proptest::prelude::*;

fn reference() -> ReferenceImage {
    let image = lumos_engine::imageio::load_image(&fixtures_root().join("pipeline_tiny/ref_a.png"))
        .expect("fixture image");
    ReferenceImage {
        name: "ref_a.png".into(),
        image: Arc::new(image),
        weight: 1.0,
        crop: None,
    }
}

fn request(count: usize, steps: usize, seed: u64) -> GenerateRequest {
    GenerateRequest {
        model: pipeline_fixture_spec(&fixtures_root()).expect("fixture model"),
        device: DeviceChoice::Cpu,
        references: vec![reference()],
        mode: Mode::Variations { count },
        settings: SamplerSettings {
            steps,
            seed,
            ..SamplerSettings::default()
        },
        init: None,
        mix: Default::default(),
    }
}

/// Collects events until every job in `jobs` has ended (or a generous timeout).
fn collect_until_done(engine: &EngineHandle, jobs: &[JobId]) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut events = Vec::new();
    let mut open: Vec<JobId> = jobs.to_vec();
    while !open.is_empty() && Instant::now() < deadline {
        if let Some(event) = engine
            .recv_timeout(Duration::from_millis(100))
            .expect("engine alive")
        {
            if event.is_terminal() {
                open.retain(|j| *j != event.job());
            }
            events.push(event);
        }
    }
    assert!(open.is_empty(), "jobs {open:?} never ended");
    events
}

fn terminal_count(events: &[Event], job: JobId) -> usize {
    events
        .iter()
        .filter(|e| e.job() == job && e.is_terminal())
        .count()
}

#[test]
fn a_generation_reports_start_progress_images_and_finish() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let job = engine.generate(request(2, 3, 5)).expect("queued");
    let events = collect_until_done(&engine, &[job]);
    assert!(matches!(
        events.first(),
        Some(Event::Started {
            images: 2,
            steps: 3,
            ..
        })
    ));
    assert!(matches!(events.last(), Some(Event::Finished { .. })));
    let previews: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress {
                preview: Some(p), ..
            } => Some(p),
            _ => None,
        })
        .collect();
    assert!(!previews.is_empty());
    assert_eq!(
        (previews[0].channels, previews[0].height, previews[0].width),
        (4, 8, 8)
    );
    assert_eq!(previews[0].data.len(), 4 * 8 * 8);
    let images: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Image {
                index, image, meta, ..
            } => Some((*index, image.clone(), meta.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].1.dimensions(), (64, 64));
    assert_eq!(
        (images[0].2.settings.seed, images[1].2.settings.seed),
        (5, 6)
    );
    assert_ne!(images[0].1, images[1].1);
}

#[test]
fn previews_carry_the_autoencoders_own_latent_colours() {
    let own = LatentRgbFactors {
        matrix: vec![[0.1, 0.2, 0.3]; 4],
        bias: [0.5, 0.0, -0.5],
    };
    let mut with_own = request(1, 2, 3);
    let vae = with_own
        .model
        .vae
        .as_mut()
        .expect("the fixture has an autoencoder");
    vae.config.latent_rgb = Some(own.clone());
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let plain = engine.generate(request(1, 2, 3)).expect("queued");
    let coloured = engine.generate(with_own).expect("queued");
    let events = collect_until_done(&engine, &[plain, coloured]);
    let preview_maps = |job| {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Progress {
                    preview: Some(p), ..
                } if e.job() == job => Some(p.rgb.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(preview_maps(plain).iter().all(Option::is_none));
    let coloured_maps = preview_maps(coloured);
    assert!(!coloured_maps.is_empty());
    assert!(coloured_maps.iter().all(|m| m.as_ref() == Some(&own)));
}

#[test]
fn the_same_seed_gives_the_same_image() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let a = engine.generate(request(1, 2, 42)).expect("queued");
    let b = engine.generate(request(1, 2, 42)).expect("queued");
    let events = collect_until_done(&engine, &[a, b]);
    let images: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Image { image, .. } => Some(image.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0], images[1]);
}

#[test]
fn cancelling_a_running_job_stops_it_within_a_step() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let job = engine.generate(request(8, 400, 1)).expect("queued");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut steps_seen = 0;
    while steps_seen == 0 && Instant::now() < deadline {
        if let Some(Event::Progress { step, .. }) = engine
            .recv_timeout(Duration::from_millis(50))
            .expect("alive")
        {
            steps_seen = step;
        }
    }
    assert!(steps_seen > 0, "no progress seen");
    engine.cancel(job);
    let events = collect_until_done(&engine, &[job]);
    assert!(
        matches!(events.last(), Some(Event::Cancelled { .. })),
        "{:?}",
        events.last()
    );
    assert_eq!(terminal_count(&events, job), 1);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Image { .. })),
        "cancelled before any image"
    );
    // The engine is still usable afterwards.
    let next = engine.generate(request(1, 1, 2)).expect("queued");
    let events = collect_until_done(&engine, &[next]);
    assert!(matches!(events.last(), Some(Event::Finished { .. })));
}

#[test]
fn a_queued_job_can_be_cancelled_before_it_starts() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let first = engine.generate(request(1, 2, 1)).expect("queued");
    let second = engine.generate(request(1, 2, 1)).expect("queued");
    engine.cancel(second);
    let events = collect_until_done(&engine, &[first, second]);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Finished { job } if *job == first))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Cancelled { job } if *job == second))
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Started { job, .. } if *job == second))
    );
}

#[test]
fn errors_come_back_as_events_and_the_engine_keeps_running() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let mut no_refs = request(1, 2, 1);
    no_refs.references.clear();
    let mut bad_model = request(1, 2, 1);
    bad_model.model.prior.path = "/nonexistent/Lumos_I2I.pth".into();
    let a = engine.generate(no_refs).expect("queued");
    let b = engine.generate(bad_model).expect("queued");
    let c = engine.generate(request(1, 1, 1)).expect("queued");
    let events = collect_until_done(&engine, &[a, b, c]);
    let failure = |job: JobId| {
        events.iter().find_map(|e| match e {
            Event::Failed { job: j, error } if *j == job => Some(error.clone()),
            _ => None,
        })
    };
    assert!(failure(a).expect("a failed").contains("reference"));
    assert!(
        failure(b)
            .expect("b failed")
            .contains("/nonexistent/Lumos_I2I.pth")
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Finished { job } if *job == c))
    );
}

#[test]
fn a_panic_mid_job_ends_it_as_failed_and_the_engine_serves_the_next_job() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let panicking = engine
        .generate_panicking_for_test(request(2, 4, 1), 2)
        .expect("queued");
    let next = engine.generate(request(1, 2, 3)).expect("queued");
    let events = collect_until_done(&engine, &[panicking, next]);
    assert!(engine.is_alive(), "the engine thread survives the panic");
    let of = |job: JobId| -> Vec<&Event> { events.iter().filter(|e| e.job() == job).collect() };
    let panicked = of(panicking);
    assert!(matches!(panicked.first(), Some(Event::Started { .. })));
    let steps: Vec<usize> = panicked
        .iter()
        .filter_map(|e| match e {
            Event::Progress { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert!(
        steps.iter().all(|&s| s < 2),
        "no step after the panic: {steps:?}"
    );
    assert_eq!(terminal_count(&events, panicking), 1);
    match panicked.last() {
        Some(Event::Failed { error, .. }) => assert!(
            error.contains("internal error") && error.contains("please report"),
            "{error}"
        ),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(terminal_count(&events, next), 1);
    assert!(
        of(next).iter().any(|e| matches!(e, Event::Image { .. })),
        "the next job makes its image"
    );
    assert!(matches!(of(next).last(), Some(Event::Finished { .. })));
}

#[test]
fn the_waker_is_called_for_events() {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    let engine = EngineHandle::spawn(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .expect("spawn");
    let job = engine.generate(request(1, 2, 1)).expect("queued");
    let events = collect_until_done(&engine, &[job]);
    // The waker runs right after each send, on the engine thread: allow it to catch up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count.load(std::sync::atomic::Ordering::SeqCst) < events.len()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) >= events.len());
}

#[test]
fn dropping_the_handle_with_queued_work_returns_promptly() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    for seed in 0..5 {
        engine.generate(request(4, 200, seed)).expect("queued");
    }
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    drop(engine);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        start.elapsed()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Any interleaving of generations and cancellations ends every job exactly once, and job
    /// ids only increase.
    #[test]
    fn every_job_ends_exactly_once(ops in proptest::collection::vec((any::<bool>(), 0usize..4), 1..6)) {
        let engine = EngineHandle::spawn(|| {}).expect("spawn");
        let mut jobs: Vec<JobId> = Vec::new();
        for (cancel, pick) in ops {
            if cancel && !jobs.is_empty() {
                engine.cancel(jobs[pick % jobs.len()]);
            } else {
                let job = engine.generate(request(1, 2, pick as u64)).expect("queued");
                if let Some(last) = jobs.last() {
                    prop_assert!(job > *last);
                }
                jobs.push(job);
            }
        }
        let events = collect_until_done(&engine, &jobs);
        for job in &jobs {
            prop_assert_eq!(terminal_count(&events, *job), 1);
        }
    }
}

#[test]
fn a_dead_engine_is_reported_and_a_respawned_one_continues_the_job_ids() {
    let engine = EngineHandle::spawn(|| {}).expect("spawn");
    let before = engine.generate(request(1, 1, 1)).expect("queued");
    collect_until_done(&engine, &[before]);
    engine.crash_for_test();
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.is_alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!engine.is_alive());
    assert!(engine.try_recv().is_err(), "a dead engine must be reported");
    let fresh = engine.respawn(|| {}).expect("respawn");
    let after = fresh.generate(request(1, 1, 1)).expect("queued");
    assert!(after > before, "job ids keep increasing across restarts");
    let events = collect_until_done(&fresh, &[after]);
    assert!(matches!(events.last(), Some(Event::Finished { .. })));
}
