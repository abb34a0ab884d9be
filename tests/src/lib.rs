//! Helpers shared by the integration tests: where the fixtures are, and how to report parity.

use std::path::PathBuf;

use candle_core::DType;
use lumos_engine::selftest::Check;

/// The fixture root (`$LUMOS_FIXTURES`, `../shared/fixtures`, or the vendored copy).
pub fn fixtures_root() -> PathBuf {
    lumos_engine::checkpoints::fixtures_root()
}

/// Whether a missing fixture folder must fail the run (it must on CI).
pub fn fixtures_required() -> bool {
    std::env::var_os("CI").is_some()
}

/// Runs the parity checks of one fixture folder and fails with a table of every tensor that
/// is out of tolerance. A missing folder fails on CI and is reported as skipped elsewhere.
pub fn assert_fixture_parity(name: &str) {
    assert_fixture_parity_in(name, DType::F32);
}

/// As [`assert_fixture_parity`], with the fixture's networks run in `dtype` (half precision
/// is held to `selftest::network_tolerance`).
pub fn assert_fixture_parity_in(name: &str, dtype: DType) {
    let root = fixtures_root();
    if !root.join(name).is_dir() {
        assert!(
            !fixtures_required(),
            "fixture folder {name} is missing under {} (CI requires every fixture)",
            root.display()
        );
        eprintln!(
            "SKIPPED: fixture folder {name} not found under {}",
            root.display()
        );
        return;
    }
    let checks =
        lumos_engine::selftest::check_fixture(&root, name, &candle_core::Device::Cpu, dtype)
            .unwrap_or_else(|e| panic!("fixture {name} could not be checked: {e:#}"));
    assert!(!checks.is_empty(), "fixture {name} produced no checks");
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
    for check in &checks {
        eprintln!(
            "{:<40} {:<40} max err {:.3e} (max|ref| {:.3e}) {}",
            check.group,
            check.name,
            check.max_abs_err,
            check.max_abs_ref,
            if check.passed { "ok" } else { "FAILED" }
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {} tensors out of tolerance in {name}: {}",
        failed.len(),
        checks.len(),
        failed
            .iter()
            .map(|c| format!(
                "{} {} (err {:.3e}, tol {})",
                c.group, c.name, c.max_abs_err, c.tolerance
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
