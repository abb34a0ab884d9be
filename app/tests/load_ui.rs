//! Load through the app: many runs queued from the UI, nine in ten cancelled in the next frame,
//! while frames keep being drawn. Every run must end (finished or cancelled, never pending,
//! never failed), every run nobody cancelled must finish, the job queue must empty, and the
//! frame work is reported (p50, p99, max of the time to process input, drain engine events and
//! lay out one frame; figures, not assertions: speed lives in benchmarks).
//!
//! `cargo test` queues 40 runs; the full trial by command:
//!
//! ```sh
//! LUMOS_LOAD_JOBS=1000 cargo test -p lumos-studio --test load_ui -- --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

use common::{drop_file, fixture_ref, harness};
use lumos_studio::commands::AppCommand;
use lumos_studio::gallery::RunStatus;

fn mean_millis(micros: &[u128]) -> f64 {
    micros.iter().sum::<u128>() as f64 / micros.len().max(1) as f64 / 1000.0
}

#[test]
fn many_runs_queued_and_cancelled_from_the_ui_all_end() {
    let runs: usize = std::env::var("LUMOS_LOAD_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.count = 1;
    }
    let mut frame_micros: Vec<u128> = Vec::new();
    let mut frame = |harness: &mut common::AppHarness| {
        let start = Instant::now();
        harness.step();
        frame_micros.push(start.elapsed().as_micros());
    };
    let started = Instant::now();
    for i in 0..runs {
        harness.state_mut().push_command(AppCommand::Generate);
        frame(&mut harness);
        // Nine in ten are cancelled as soon as they are queued.
        if i % 10 != 0
            && let Some(job) = harness.state().jobs().jobs().last().map(|j| j.job)
        {
            harness.state_mut().push_command(AppCommand::Cancel(job));
            frame(&mut harness);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while !harness.state().jobs().is_empty() {
        assert!(Instant::now() < deadline, "jobs never ended");
        frame(&mut harness);
        std::thread::sleep(Duration::from_millis(2));
    }
    frame(&mut harness);
    let elapsed = started.elapsed();

    let gallery = harness.state().gallery();
    assert_eq!(gallery.runs().len(), runs);
    let count = |wanted: &RunStatus| {
        gallery
            .runs()
            .iter()
            .filter(|r| &r.status == wanted)
            .count()
    };
    let finished = count(&RunStatus::Finished);
    let cancelled = count(&RunStatus::Cancelled);
    assert_eq!(finished + cancelled, runs, "a run is pending or failed");
    // A cancel sent a frame after Generate can arrive when the engine (fast on the tiny model)
    // has already finished the job: such runs count as finished, never as lost or pending.
    let never_cancelled_finished = gallery
        .runs()
        .iter()
        .step_by(10)
        .all(|r| r.status == RunStatus::Finished);
    assert!(
        never_cancelled_finished,
        "a run nobody cancelled did not finish"
    );
    let errors: Vec<_> = harness
        .state()
        .notifications()
        .items()
        .iter()
        .filter(|n| n.level == lumos_studio::panels::notifications::Level::Error)
        .map(|n| n.text.clone())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let first_hundred = mean_millis(&frame_micros[..frame_micros.len().min(100)]);
    let last_hundred = mean_millis(&frame_micros[frame_micros.len().saturating_sub(100)..]);
    frame_micros.sort_unstable();
    let at = |q: f64| frame_micros[((frame_micros.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "load (UI): {runs} runs in {:.1} s, {finished} finished, {cancelled} cancelled; \
         {} frames: work p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; mean of the first 100 \
         frames {first_hundred:.1} ms, of the last 100 {last_hundred:.1} ms",
        elapsed.as_secs_f64(),
        frame_micros.len(),
        at(0.5),
        at(0.99),
        at(1.0),
    );
}
