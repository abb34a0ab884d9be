//! Shared pieces of the stable-toolchain fuzz harnesses (`engine/tests/fuzz_parsers.rs`,
//! `app/tests/fuzz_settings.rs`, which includes this file by path): proptest strategies that
//! mutate real sample files the way coverage-guided fuzzers do (bit flips, interesting bytes,
//! truncations, splices, insertions, deletions, length-field edits aimed at the offsets where a
//! format keeps its lengths), a JSON-aware mutator for the text formats, a watchdog that turns
//! a hang into a test failure, and tallies for the figures a long run prints.
//!
//! Why proptest and not cargo-fuzz: libFuzzer needs a nightly toolchain, which cannot be
//! installed on our build machines. proptest runs on stable, shrinks a failing input to a small
//! one, and the same test runs briefly in `cargo test` and for as long as asked by command:
//! `LUMOS_FUZZ_CASES=200000 cargo test -p lumos-engine --test fuzz_parsers -- --nocapture`.

#![allow(dead_code, reason = "each harness file uses a different subset")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per harness in a plain `cargo test` (a few seconds in all).
pub const DEFAULT_CASES: u32 = 256;

/// Longest a single parse may take before the harness calls it a hang. Generous: a debug
/// build on a busy 2-core machine; a real hang runs forever.
pub const HANG_LIMIT: Duration = Duration::from_secs(20);

/// Cases per harness: `$LUMOS_FUZZ_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("LUMOS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The seed of the random mutations: `$LUMOS_FUZZ_SEED`; else a fixed one for the short run
/// (so `cargo test` is reproducible) and one from the clock for a longer run (so that every long
/// run explores new inputs). Printed with the figures, so a failure can be replayed.
pub fn seed() -> u64 {
    if let Some(seed) = std::env::var("LUMOS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return seed;
    }
    if cases() == DEFAULT_CASES {
        return 0x5EED_1F0F_0017;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// The proptest configuration of every harness: no failure files written into the source tree
/// (a failure prints its minimal input; it then becomes a named regression test).
pub fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// How many inputs a harness tried and how they ended.
#[derive(Default)]
struct Tally {
    tried: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

/// Runs one harness: `cases()` inputs drawn from `strategy`, each handed to `case`, which
/// returns how the parser answered (`Ok` or a clean `Err`). A panic or a hang inside `case`
/// fails the harness with the shrunk input that caused it. Prints the figures (shown with
/// `--nocapture`).
pub fn run<S>(harness: &str, strategy: S, case: impl Fn(S::Value) -> Result<(), String>)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let tally = Tally::default();
    let seed = seed();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = proptest::test_runner::TestRng::from_seed(
        proptest::test_runner::RngAlgorithm::ChaCha,
        &seed_bytes,
    );
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(config(), rng);
    let started = std::time::Instant::now();
    let result = runner.run(&strategy, |value| {
        let outcome = case(value);
        tally.tried.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => tally.accepted.fetch_add(1, Ordering::Relaxed),
            Err(_) => tally.refused.fetch_add(1, Ordering::Relaxed),
        };
        Ok(())
    });
    let tried = tally.tried.load(Ordering::Relaxed);
    let summary = format!(
        "fuzz {harness} (seed {seed}): {tried} inputs tried in {:.1} s, {} accepted, {} refused \
         with an error",
        started.elapsed().as_secs_f64(),
        tally.accepted.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
    );
    match result {
        Ok(()) => println!("{summary}, 0 crashes, 0 timeouts"),
        Err(failure) => panic!("{summary}; FAILED (crash or hang): {failure}"),
    }
}

/// Runs `f` on a helper thread and fails the test if it takes longer than [`HANG_LIMIT`]. A
/// panic inside `f` is re-raised here, so proptest sees it and shrinks the input.
pub fn within_time_limit<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a fuzz thread");
    match rx.recv_timeout(HANG_LIMIT) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what}: the parser thread ended without an answer"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no answer within {HANG_LIMIT:?} (a hang)")
        }
    }
}

/// Values that trip length and count checks.
const INTERESTING_U32: [u32; 10] = [
    0,
    1,
    0x7F,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
];

/// One edit of a byte string. Positions are taken modulo the length at the time of the edit,
/// so the same strategy serves files of any size.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit.
    FlipBit { at: usize, bit: u8 },
    /// Set one byte.
    SetByte { at: usize, value: u8 },
    /// Keep only the first `keep` bytes (modulo the length).
    Truncate { keep: usize },
    /// Copy `len` bytes from `from` over `to` (a splice of the file with itself).
    Splice { from: usize, to: usize, len: usize },
    /// Insert bytes.
    Insert { at: usize, bytes: Vec<u8> },
    /// Delete `len` bytes.
    Delete { at: usize, len: usize },
    /// Overwrite a little-endian u32 at one of the format's length fields with an interesting
    /// value, or nudge it by a small amount.
    LengthField {
        field: usize,
        value: LengthValue,
        big_endian: bool,
    },
}

/// What a length field is set to.
#[derive(Clone, Debug)]
pub enum LengthValue {
    /// One of [`INTERESTING_U32`].
    Interesting(usize),
    /// The current value plus a small signed delta.
    Nudge(i32),
}

/// A strategy for one mutation; `fields` is how many length-field offsets the format offers.
pub fn mutation(fields: usize) -> BoxedStrategy<Mutation> {
    let any_pos = any::<usize>();
    let generic = prop_oneof![
        (any_pos, 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (
            any_pos,
            prop_oneof![Just(0u8), Just(0xFF), Just(0x7F), Just(0x80), any::<u8>()]
        )
            .prop_map(|(at, value)| Mutation::SetByte { at, value }),
        any_pos.prop_map(|keep| Mutation::Truncate { keep }),
        (any_pos, any_pos, 1usize..64).prop_map(|(from, to, len)| Mutation::Splice {
            from,
            to,
            len
        }),
        (any_pos, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any_pos, 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ];
    if fields == 0 {
        return generic.boxed();
    }
    let length = (
        0..fields,
        prop_oneof![
            (0..INTERESTING_U32.len()).prop_map(LengthValue::Interesting),
            (-4i32..=4).prop_map(LengthValue::Nudge),
        ],
        any::<bool>(),
    )
        .prop_map(|(field, value, big_endian)| Mutation::LengthField {
            field,
            value,
            big_endian,
        });
    prop_oneof![3 => generic, 2 => length].boxed()
}

/// One to four mutations.
pub fn mutations(fields: usize) -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(fields), 1..=4)
}

/// Applies `edits` in order; `fields` are the byte offsets of the format's u32 length fields in
/// the unmutated input.
pub fn apply(input: &[u8], edits: &[Mutation], fields: &[usize]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for edit in edits {
        let len = bytes.len();
        match edit {
            Mutation::FlipBit { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
            Mutation::SetByte { at, value } if len > 0 => bytes[at % len] = *value,
            Mutation::Truncate { keep } => bytes.truncate(keep % (len + 1)),
            Mutation::Splice { from, to, len: n } if len > 0 => {
                let from = from % len;
                let to = to % len;
                let n = (*n).min(len - from).min(len - to);
                bytes.copy_within(from..from + n, to);
            }
            Mutation::Insert { at, bytes: new } => {
                let at = at % (len + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Delete { at, len: n } if len > 0 => {
                let at = at % len;
                let end = (at + n).min(len);
                bytes.drain(at..end);
            }
            Mutation::LengthField {
                field,
                value,
                big_endian,
            } => {
                let Some(&at) = fields.get(field % fields.len().max(1)) else {
                    continue;
                };
                if at + 4 > len {
                    continue;
                }
                let raw: [u8; 4] = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
                let current = if *big_endian {
                    u32::from_be_bytes(raw)
                } else {
                    u32::from_le_bytes(raw)
                };
                let new = match value {
                    LengthValue::Interesting(i) => INTERESTING_U32[i % INTERESTING_U32.len()],
                    LengthValue::Nudge(delta) => current.wrapping_add_signed(*delta),
                };
                let new = if *big_endian {
                    new.to_be_bytes()
                } else {
                    new.to_le_bytes()
                };
                bytes[at..at + 4].copy_from_slice(&new);
            }
            _ => {}
        }
    }
    bytes
}

/// One edit of a JSON document: replace the value at a path (chosen by index among all the
/// document's values) with a hostile one, or remove it.
#[derive(Clone, Debug)]
pub enum JsonEdit {
    /// Replace the `target`-th value (pre-order, modulo the count) with `value`.
    Replace { target: usize, value: HostileValue },
    /// Remove the `target`-th value from its object or array.
    Remove { target: usize },
}

/// Values that break assumptions: wrong types, extremes, deep nesting, odd strings.
#[derive(Clone, Debug)]
pub enum HostileValue {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer at an extreme.
    Int(i64),
    /// An unsigned extreme.
    UInt(u64),
    /// A float, including huge, tiny and negative zero.
    Float(f64),
    /// A string (empty, long, odd characters, path-like).
    Text(String),
    /// Arrays nested `depth` deep.
    Nested(usize),
    /// An empty object.
    EmptyObject,
    /// An array of small integers.
    Array(Vec<i64>),
}

impl HostileValue {
    fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => json!(b),
            Self::Int(i) => json!(i),
            Self::UInt(u) => json!(u),
            Self::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Text(s) => json!(s),
            Self::Nested(depth) => {
                let mut value = json!([]);
                for _ in 0..*depth {
                    value = json!([value]);
                }
                value
            }
            Self::EmptyObject => json!({}),
            Self::Array(items) => json!(items),
        }
    }
}

/// A strategy for a hostile JSON value.
pub fn hostile_value() -> impl Strategy<Value = HostileValue> {
    prop_oneof![
        Just(HostileValue::Null),
        any::<bool>().prop_map(HostileValue::Bool),
        prop_oneof![
            Just(i64::MIN),
            Just(-1i64),
            Just(0i64),
            Just(1i64),
            Just(i64::MAX),
            Just(1i64 << 40),
            any::<i64>()
        ]
        .prop_map(HostileValue::Int),
        prop_oneof![Just(u64::MAX), Just(1u64 << 53), any::<u64>()].prop_map(HostileValue::UInt),
        prop_oneof![
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            Just(-0.0),
            Just(1e300),
            Just(-1e300),
            any::<f64>()
        ]
        .prop_map(HostileValue::Float),
        prop_oneof![
            Just(String::new()),
            Just("x".repeat(10_000)),
            Just("../../../etc/passwd".to_string()),
            Just("embedded:nope".to_string()),
            Just("\u{0}\u{feff}é😀".to_string()),
            ".{0,40}",
        ]
        .prop_map(HostileValue::Text),
        prop_oneof![Just(64usize), Just(200), Just(1_000)].prop_map(HostileValue::Nested),
        Just(HostileValue::EmptyObject),
        proptest::collection::vec(-3i64..1_000_000, 0..6).prop_map(HostileValue::Array),
    ]
}

/// One to four JSON edits.
pub fn json_edits() -> impl Strategy<Value = Vec<JsonEdit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), hostile_value())
            .prop_map(|(target, value)| JsonEdit::Replace { target, value }),
        1 => any::<usize>().prop_map(|target| JsonEdit::Remove { target }),
    ];
    proptest::collection::vec(edit, 1..=4)
}

/// Applies JSON edits to a document and serialises it again.
pub fn apply_json(document: &serde_json::Value, edits: &[JsonEdit]) -> String {
    let mut doc = document.clone();
    for edit in edits {
        let count = count_values(&doc);
        match edit {
            JsonEdit::Replace { target, value } => {
                let mut index = target % count;
                replace_nth(&mut doc, &mut index, &value.to_json());
            }
            JsonEdit::Remove { target } => {
                // Never the root (index 0).
                if count > 1 {
                    let mut index = 1 + target % (count - 1);
                    remove_nth(&mut doc, &mut index);
                }
            }
        }
    }
    // serde_json refuses to nest deeper than 128 when parsing, but writes any depth.
    serde_json::to_string(&doc).unwrap_or_default()
}

fn count_values(value: &serde_json::Value) -> usize {
    1 + match value {
        serde_json::Value::Array(items) => items.iter().map(count_values).sum(),
        serde_json::Value::Object(map) => map.values().map(count_values).sum(),
        _ => 0,
    }
}

/// Replaces the value whose pre-order index is `*index`; returns true once done.
fn replace_nth(value: &mut serde_json::Value, index: &mut usize, new: &serde_json::Value) -> bool {
    if *index == 0 {
        *value = new.clone();
        return true;
    }
    *index -= 1;
    match value {
        serde_json::Value::Array(items) => items.iter_mut().any(|v| replace_nth(v, index, new)),
        serde_json::Value::Object(map) => map.values_mut().any(|v| replace_nth(v, index, new)),
        _ => false,
    }
}

/// Removes the child whose pre-order index is `*index` (never called with the root).
fn remove_nth(value: &mut serde_json::Value, index: &mut usize) -> bool {
    match value {
        serde_json::Value::Array(items) => {
            for i in 0..items.len() {
                *index -= 1;
                if *index == 0 {
                    items.remove(i);
                    return true;
                }
                if remove_nth(&mut items[i], index) {
                    return true;
                }
            }
            false
        }
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                *index -= 1;
                if *index == 0 {
                    map.remove(&key);
                    return true;
                }
                if map.get_mut(&key).is_some_and(|v| remove_nth(v, index)) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}
