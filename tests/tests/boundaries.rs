//! The engine must not depend on UI or windowing crates (STYLE: the engine never knows about
//! the UI). Checked on the resolved dependency graph, so transitive dependencies count too.

use std::process::Command;

#[test]
fn engine_depends_on_no_ui_crate() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "lumos-engine",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        tree.contains("candle-core"),
        "unexpected cargo tree output: {tree}"
    );
    for forbidden in ["egui", "eframe", "wgpu", "winit", "rfd"] {
        let hit = tree.lines().find(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|name| name == forbidden || name.starts_with(&format!("{forbidden}-")))
        });
        assert!(
            hit.is_none(),
            "lumos-engine depends on {forbidden}: {hit:?}"
        );
    }
}
