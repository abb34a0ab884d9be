//! The real binary in a real window: `lumos-studio --bench-frames` opens the window, adds the
//! fixture reference, generates on the real engine, reports frame times and quits.
//! Needs an X server (`Xvfb :99 &` and `DISPLAY=:99` in CI); without `DISPLAY` it prints
//! SKIPPED and passes, unless `REQUIRE_DISPLAY=1`.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_binary_opens_a_window_generates_and_quits() {
    if std::env::var_os("DISPLAY").is_none() {
        assert!(
            std::env::var("REQUIRE_DISPLAY").as_deref() != Ok("1"),
            "REQUIRE_DISPLAY=1 but DISPLAY is not set"
        );
        println!("SKIPPED: no DISPLAY");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_lumos-studio"))
        .arg("--bench-frames")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lumos-studio");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lumos-studio did not quit within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).expect("stderr");
    }
    println!("{stdout}");
    assert!(
        status.success(),
        "exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("bench run: 8 images, finished"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("launch to first frame:"), "{stdout}");
}
