//! Fuzzing the engine's parsers of untrusted files on the stable toolchain: PyTorch `.pth`
//! checkpoints (the zip container and the pickle inside), the safetensors header, PNG metadata
//! (the A1111 `parameters` text and our `lumos` JSON chunk), `model.json` manifests and
//! project files (`.lumos`: the zip and its `project.json`).
//!
//! Each harness starts from a real sample (a fixture checkpoint, a file the engine wrote) and
//! mutates it the way a fuzzer would, with extra aim at the places where each format keeps its
//! lengths (zip headers, the safetensors header length, PNG chunk lengths) and at its
//! structure (the pickle re-zipped into a valid archive, PNG chunks with correct CRCs, JSON
//! values replaced by hostile ones). The invariant everywhere: the parser returns `Ok` or a
//! clean `Err`; it never panics and never hangs (a watchdog fails a case that runs too long).
//!
//! `cargo test` runs 256 cases per harness (a few seconds). A longer run, with the figures
//! printed per harness:
//!
//! ```sh
//! LUMOS_FUZZ_CASES=200000 cargo test -p lumos-engine --test fuzz_parsers -- --nocapture
//! ```
//!
//! A crash found this way prints its shrunk input; it becomes a named regression test at the
//! end of this file and gets fixed.

mod fuzz_support;

use std::io::{Read, Write};
use std::path::Path;

use fuzz_support::{apply, apply_json, json_edits, mutations, run, within_time_limit};
use lumos_engine::checkpoints::{self, fixtures_root};
use lumos_engine::imageio;
use lumos_engine::pipelines::LoadedModel;
use lumos_engine::protocol::{
    GenerationMeta, META_VERSION, MixSettings, Mode, ReferenceMeta, SamplerSettings,
};
use proptest::prelude::*;

/// Writes `bytes` to a fresh file named `name` and runs `parse` on it under the watchdog.
fn parse_file<T: Send + 'static>(
    name: &str,
    bytes: Vec<u8>,
    parse: impl FnOnce(&Path) -> T + Send + 'static,
) -> T {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write the input");
    let shown = path.display().to_string();
    within_time_limit(&shown, move || parse(&path))
}

// ---- .pth: the zip container and the pickle ---------------------------------------------

/// The smallest fixture checkpoint (the T5 encoder's, ~100 kB, 24 tensors).
fn pth_sample() -> Vec<u8> {
    std::fs::read(fixtures_root().join("t5_tiny/weights.pth")).expect("fixture checkpoint")
}

/// Offsets of the u32 size, length and offset fields of every zip record (local file headers,
/// central directory entries, the end-of-central-directory record).
fn zip_length_fields(bytes: &[u8]) -> Vec<usize> {
    let mut fields = Vec::new();
    for at in 0..bytes.len().saturating_sub(4) {
        match &bytes[at..at + 4] {
            b"PK\x03\x04" => fields.extend([18, 22, 26].map(|o| at + o)),
            b"PK\x01\x02" => fields.extend([20, 24, 28, 30, 42].map(|o| at + o)),
            b"PK\x05\x06" => fields.extend([8, 10, 12, 16].map(|o| at + o)),
            _ => {}
        }
    }
    fields
}

/// The archive's entries, in order, as (name, contents).
fn zip_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("fixture zip");
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).expect("entry");
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).expect("read entry");
            (entry.name().expect("entry name").into_owned(), contents)
        })
        .collect()
}

/// A valid zip (stored, as torch.save writes) of `entries`.
fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, contents) in entries {
            writer
                .start_file(name.as_str(), options)
                .expect("zip entry");
            writer.write_all(contents).expect("zip write");
        }
        writer.finish().expect("zip finish");
    }
    out.into_inner()
}

/// Offsets of pickle length and integer arguments (BINUNICODE, BININT, LONG_BINGET/PUT...),
/// found by their opcode bytes; false hits only make some mutations land elsewhere.
fn pickle_length_fields(pickle: &[u8]) -> Vec<usize> {
    pickle
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, b'X' | b'J' | b'j' | b'r' | b'B'))
        .map(|(at, _)| at + 1)
        .collect()
}

fn load_pth(bytes: Vec<u8>) -> Result<(), String> {
    parse_file("weights.pth", bytes, |path| {
        checkpoints::load_tensors(path)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    })
}

/// Raw mutations of the whole archive, aimed at the zip records' length fields.
#[test]
fn pth_archive_mutations_never_crash() {
    let sample = pth_sample();
    let fields = zip_length_fields(&sample);
    run("pth archive", mutations(32), |edits| {
        load_pth(apply(&sample, &edits, &fields))
    });
}

/// The pickle mutated, then re-zipped into a valid archive with the original storages (so
/// that the mutation reaches the pickle reader and the tensor checks, not just the zip
/// reader); sometimes a storage entry is cut short too.
#[test]
fn pth_pickle_mutations_never_crash() {
    let original = zip_entries(&pth_sample());
    let pickle = original
        .iter()
        .find(|(name, _)| name.ends_with("data.pkl"))
        .map(|(_, p)| p.clone())
        .expect("a data.pkl");
    let fields = pickle_length_fields(&pickle);
    let strategy = (
        mutations(16),
        proptest::option::of((any::<usize>(), any::<usize>())),
    );
    run("pth pickle", strategy, |(edits, cut_storage)| {
        let mut entries = original.clone();
        for (name, contents) in &mut entries {
            if name.ends_with("data.pkl") {
                *contents = apply(contents, &edits, &fields);
            }
        }
        if let Some((which, keep)) = cut_storage {
            let storages: Vec<usize> = (0..entries.len())
                .filter(|&i| entries[i].0.contains("/data/"))
                .collect();
            let i = storages[which % storages.len()];
            let len = entries[i].1.len();
            entries[i].1.truncate(keep % (len + 1));
        }
        load_pth(zip_of(&entries))
    });
}

// ---- safetensors --------------------------------------------------------------------------

/// A small safetensors file of several dtypes and ranks, written by candle.
fn safetensors_sample() -> Vec<u8> {
    use candle_core::{DType, Device, Tensor};
    let device = Device::Cpu;
    let tensors = [
        (
            "a.weight",
            Tensor::arange(0f32, 24.0, &device)
                .and_then(|t| t.reshape((2, 3, 4)))
                .expect("tensor"),
        ),
        (
            "b.bias",
            Tensor::ones(5, DType::F16, &device).expect("tensor"),
        ),
        (
            "c.index",
            Tensor::new(&[1i64, 2, 3], &device).expect("tensor"),
        ),
        ("d.scalar", Tensor::new(3.5f32, &device).expect("tensor")),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sample.safetensors");
    let map: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, &path).expect("save");
    std::fs::read(&path).expect("read back")
}

/// The header JSON of a safetensors file and the data after it.
fn split_safetensors(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + len]).expect("header json");
    (header, bytes[8 + len..].to_vec())
}

/// Both readers: the eager one, and the lazy one (header checked on open, each tensor read
/// from its byte range) that streams the T5 encoder.
fn load_safetensors(bytes: Vec<u8>) -> Result<(), String> {
    parse_file("weights.safetensors", bytes, |path| {
        let eager = checkpoints::load_tensors(path).map(|_| ());
        let lazy = checkpoints::LazyWeights::open(&[path.to_path_buf()]).and_then(|weights| {
            let names: Vec<String> = weights.names().map(str::to_string).collect();
            let vb = weights.into_var_builder(candle_core::DType::F32, &candle_core::Device::Cpu);
            for name in names {
                vb.get_unchecked(&name)
                    .map_err(|e| lumos_engine::error::EngineError::InvalidRequest(e.to_string()))?;
            }
            Ok(())
        });
        eager.and(lazy).map_err(|e| format!("{e:#}"))
    })
}

/// Raw mutations, aimed at the 8-byte header length.
#[test]
fn safetensors_mutations_never_crash() {
    let sample = safetensors_sample();
    run("safetensors raw", mutations(2), |edits| {
        load_safetensors(apply(&sample, &edits, &[0, 4]))
    });
}

/// The header's JSON edited (dtypes, shapes, offsets replaced by hostile values) and written
/// back with a correct length prefix, so that it reaches the header checks.
#[test]
fn safetensors_header_edits_never_crash() {
    let (original, data) = split_safetensors(&safetensors_sample());
    let dims = proptest::collection::vec(
        prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(1 << 32), 0u64..64],
        0..5,
    );
    let strategy = (
        prop_oneof![Just(Vec::new()), json_edits()],
        proptest::option::of((any::<usize>(), dims)),
        proptest::option::of((any::<usize>(), any::<u64>(), any::<u64>())),
    );
    run("safetensors header", strategy, |(edits, shape, offsets)| {
        let mut header = original.clone();
        let names: Vec<String> = header
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "__metadata__").cloned().collect())
            .unwrap_or_default();
        if let Some((which, dims)) = shape {
            let name = &names[which % names.len()];
            header[name]["shape"] = serde_json::json!(dims);
        }
        if let Some((which, start, end)) = offsets {
            let name = &names[which % names.len()];
            let len = data.len() as u64;
            header[name]["data_offsets"] = serde_json::json!([start % (len + 8), end % (len + 8)]);
        }
        let text = apply_json(&header, &edits);
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(&data);
        load_safetensors(bytes)
    });
}

// ---- PNG metadata -------------------------------------------------------------------------

/// Settings as a real run records them.
fn sample_meta() -> GenerationMeta {
    GenerationMeta {
        version: META_VERSION,
        model: "Lumos small".into(),
        mode: Mode::Variations { count: 4 },
        settings: SamplerSettings::default(),
        index: 2,
        mix: Some(0.25),
        references: vec![ReferenceMeta {
            name: "cat.png".into(),
            sha256: "ab".repeat(32),
            weight: 0.8,
            crop: Some([0.5, 0.3]),
        }],
        size: [8, 8],
        parent: Some("parent.png".into()),
        mix_settings: MixSettings::default(),
        strength: Some(0.6),
        init_sha256: None,
        mask_sha256: None,
        prompt: None,
    }
}

/// A PNG the engine writes: 8×8 pixels with both metadata chunks.
fn png_sample() -> Vec<u8> {
    let image = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 7]));
    imageio::encode_png(&image, Some(&sample_meta())).expect("encode")
}

/// CRC-32 (ISO-HDLC, as PNG uses).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG's chunks as (type, data), after the 8-byte signature.
fn png_chunks(bytes: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().expect("4 bytes");
        chunks.push((kind, bytes[at + 8..at + 8 + len].to_vec()));
        at += 12 + len;
    }
    chunks
}

/// A PNG from chunks, with correct lengths and CRCs.
fn png_of(chunks: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in chunks {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        out.extend_from_slice(&typed);
        out.extend_from_slice(&crc32(&typed).to_be_bytes());
    }
    out
}

/// Offsets of every chunk's length field.
fn png_length_fields(bytes: &[u8]) -> Vec<usize> {
    let mut fields = Vec::new();
    let mut at = 8;
    while at + 12 <= bytes.len() {
        fields.push(at);
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 12 + len;
    }
    fields
}

/// What the app does with a dropped PNG and a history file: decode the pixels and read the
/// settings back.
fn read_png(bytes: Vec<u8>) -> Result<(), String> {
    parse_file("result.png", bytes, |path| {
        let meta = imageio::read_png_meta(path).map_err(|e| format!("{e:#}"));
        let image = imageio::load_image(path).map_err(|e| format!("{e:#}"));
        meta.and(image).map(|_| ())
    })
}

/// Which text chunk a structured PNG edit goes to.
#[derive(Clone, Debug)]
enum PngEdit {
    /// Our JSON in the `lumos` iTXt chunk: values replaced by hostile ones.
    MetaJson(Vec<fuzz_support::JsonEdit>),
    /// The bytes of a text chunk (`parameters` tEXt or `lumos` iTXt), CRC fixed afterwards.
    TextBytes {
        chunk: usize,
        edits: Vec<fuzz_support::Mutation>,
    },
    /// A chunk duplicated or moved (e.g. the metadata after the image data, twice).
    Reorder {
        from: usize,
        to: usize,
        keep_original: bool,
    },
}

fn png_edit() -> impl Strategy<Value = PngEdit> {
    prop_oneof![
        json_edits().prop_map(PngEdit::MetaJson),
        (any::<usize>(), mutations(0))
            .prop_map(|(chunk, edits)| PngEdit::TextBytes { chunk, edits }),
        (any::<usize>(), any::<usize>(), any::<bool>()).prop_map(|(from, to, keep_original)| {
            PngEdit::Reorder {
                from,
                to,
                keep_original,
            }
        }),
    ]
}

/// Raw mutations of a result PNG, aimed at its chunk lengths (most are caught by the CRCs:
/// this checks the decoder's early exits).
#[test]
fn png_mutations_never_crash() {
    let sample = png_sample();
    let fields = png_length_fields(&sample);
    run("png raw", mutations(8), |edits| {
        read_png(apply(&sample, &edits, &fields))
    });
}

/// Structured edits of the metadata chunks with valid CRCs, so that they reach the text and
/// JSON parsers.
#[test]
fn png_metadata_edits_never_crash() {
    let original = png_chunks(&png_sample());
    let strategy = proptest::collection::vec(png_edit(), 1..=3);
    run("png metadata", strategy, |edits| {
        let mut chunks = original.clone();
        let text_chunks = |chunks: &[([u8; 4], Vec<u8>)]| -> Vec<usize> {
            (0..chunks.len())
                .filter(|&i| &chunks[i].0 == b"tEXt" || &chunks[i].0 == b"iTXt")
                .collect()
        };
        for edit in edits {
            match edit {
                PngEdit::MetaJson(json) => {
                    for i in text_chunks(&chunks) {
                        let data = &chunks[i].1;
                        // iTXt: keyword NUL flag method NUL NUL text (our writer: no language).
                        let prefix = format!("{}\0\0\0\0\0", imageio::META_KEYWORD);
                        if let Some(text) = data.strip_prefix(prefix.as_bytes())
                            && let Ok(doc) = serde_json::from_slice::<serde_json::Value>(text)
                        {
                            let mut new = prefix.into_bytes();
                            new.extend_from_slice(apply_json(&doc, &json).as_bytes());
                            chunks[i].1 = new;
                        }
                    }
                }
                PngEdit::TextBytes { chunk, edits } => {
                    let texts = text_chunks(&chunks);
                    if let Some(&i) = texts.get(chunk % texts.len().max(1)) {
                        chunks[i].1 = apply(&chunks[i].1, &edits, &[]);
                    }
                }
                PngEdit::Reorder {
                    from,
                    to,
                    keep_original,
                } => {
                    let from = from % chunks.len();
                    let chunk = chunks[from].clone();
                    if !keep_original {
                        chunks.remove(from);
                    }
                    let to = to % (chunks.len() + 1);
                    chunks.insert(to, chunk);
                }
            }
        }
        read_png(png_of(&chunks))
    });
}

// ---- model.json (ModelSpec) ---------------------------------------------------------------

/// Manifests as the trainers write them: the embedded default's, the fixture model's and the
/// built-in multi-view model's.
fn manifest_samples() -> Vec<serde_json::Value> {
    let asset = |name: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../assets/{name}/model.json")),
            )
            .expect("a built-in manifest"),
        )
        .expect("json")
    };
    let fixture = serde_json::to_value(
        checkpoints::pipeline_fixture_spec(&fixtures_root()).expect("fixture spec"),
    )
    .expect("json");
    vec![asset("default"), fixture, asset("multiview")]
}

/// Reads a manifest as `lumos generate --model FILE.json` does, and loads the model it
/// describes (hostile sizes must be refused before anything is allocated).
fn read_manifest(text: Vec<u8>) -> Result<(), String> {
    parse_file("model.json", text, |path| {
        let resolved = checkpoints::resolve_model(&checkpoints::ModelChoice::Path(path.to_owned()))
            .map_err(|e| format!("{e:#}"))?;
        LoadedModel::load(&resolved.spec, &candle_core::Device::Cpu)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    })
}

/// Byte-level mutations of the manifest text.
#[test]
fn manifest_text_mutations_never_crash() {
    let samples: Vec<Vec<u8>> = manifest_samples()
        .iter()
        .map(|v| serde_json::to_vec_pretty(v).expect("json"))
        .collect();
    run(
        "model.json text",
        (0usize..2, mutations(0)),
        |(which, edits)| read_manifest(apply(&samples[which], &edits, &[])),
    );
}

/// Values of the manifest (sizes, depths, head counts, paths) replaced by hostile ones.
#[test]
fn manifest_value_edits_never_crash() {
    let samples = manifest_samples();
    run(
        "model.json values",
        (0usize..2, json_edits()),
        |(which, edits)| read_manifest(apply_json(&samples[which], &edits).into_bytes()),
    );
}

// ---- project files (.lumos) ----------------------------------------------------------------

/// A project with two references (one with alpha), a start image with a mask, and settings.
fn project_sample() -> Vec<u8> {
    use lumos_engine::project::{Project, ProjectRecipe, ProjectReference, ProjectStartImage};
    use std::sync::Arc;
    let image = |w: u32, h: u32, seed: u8| {
        Arc::new(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x as u8).wrapping_mul(seed), y as u8, seed])
        }))
    };
    let gray = |w: u32, h: u32| {
        Arc::new(image::GrayImage::from_fn(w, h, |x, _| {
            image::Luma([(x * 20) as u8])
        }))
    };
    let project = Project {
        references: vec![
            ProjectReference {
                name: "a.png".into(),
                source: Some("/pictures/a.png".into()),
                image: image(12, 8, 3),
                alpha: Some(gray(12, 8)),
                weight: 1.5,
                crop: [0.2, 0.5],
            },
            ProjectReference {
                name: "pasted".into(),
                source: None,
                image: image(5, 5, 7),
                alpha: None,
                weight: -0.5,
                crop: [0.5, 0.5],
            },
        ],
        start_image: Some(ProjectStartImage {
            name: "start".into(),
            image: image(9, 9, 11),
            mask: Some(gray(9, 9)),
            alpha: None,
        }),
        prompt: Some("a fox".into()),
        recipe: ProjectRecipe {
            mode: Some(Mode::Variations { count: 4 }),
            sampler: SamplerSettings::default(),
            mix: MixSettings::default(),
            strength: 0.6,
            feather_px: 2,
            model: Some("Lumos small".into()),
        },
        app_settings: Some(serde_json::json!({"count": 4, "brush_px": 12.0})),
        history: vec!["/history/run_1_1".into()],
    };
    lumos_engine::project::encode(&project).expect("encode the sample project")
}

fn load_project(bytes: Vec<u8>) -> Result<(), String> {
    parse_file("scene.lumos", bytes, |path| {
        lumos_engine::project::load(path)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    })
}

/// Raw mutations of a whole project archive, aimed at the zip records' length fields.
#[test]
fn project_archive_mutations_never_crash() {
    let sample = project_sample();
    let fields = zip_length_fields(&sample);
    run("project archive", mutations(32), |edits| {
        load_project(apply(&sample, &edits, &fields))
    });
}

/// `project.json` values replaced by hostile ones inside a valid archive (the images intact),
/// and sometimes an image entry cut short.
#[test]
fn project_manifest_edits_never_crash() {
    let original = zip_entries(&project_sample());
    let manifest: serde_json::Value = original
        .iter()
        .find(|(name, _)| name == "project.json")
        .map(|(_, bytes)| serde_json::from_slice(bytes).expect("json"))
        .expect("a project.json");
    let strategy = (
        json_edits(),
        proptest::option::of((any::<usize>(), any::<usize>())),
    );
    run("project manifest", strategy, |(edits, cut)| {
        let mut entries = original.clone();
        for (name, contents) in &mut entries {
            if name == "project.json" {
                *contents = apply_json(&manifest, &edits).into_bytes();
            }
        }
        if let Some((which, keep)) = cut {
            let i = which % entries.len();
            let len = entries[i].1.len();
            entries[i].1.truncate(keep % (len + 1));
        }
        load_project(zip_of(&entries))
    });
}

// ---- regression tests: crashes the harnesses found ----------------------------------------

/// A hand-made `torch.save` pickle (protocol 2) of `{"w": FloatTensor of shape (2, 2)}`, as
/// Python writes it.
const MINIMAL_PICKLE: &[u8] =
    b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02\
ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05\
X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x04tq\x08QK\x00K\x02K\x02\x86q\tK\x02K\x01\x86q\n\
\x89h\x00)Rq\x0btq\x0cRq\rs.";

/// The same, with `_rebuild_tensor_v2` given three arguments (storage, size, requires_grad)
/// instead of six: candle's reader indexed past the end of the argument tuple and panicked
/// (found by `pth_pickle_mutations_never_crash`, which deleted the offset and size bytes).
const PICKLE_WITH_TOO_FEW_REBUILD_ARGUMENTS: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01\
X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03(X\x07\x00\x00\x00storageq\x04ctorch\n\
FloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x04tq\x08QK\x02K\x02\x86q\t\x89\x87q\n\
Rq\x0bs.";

/// A `.pth` archive holding `pickle` and one storage of four f32 values.
fn pth_with_pickle(pickle: &[u8]) -> Vec<u8> {
    let storage: Vec<u8> = [1f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    zip_of(&[
        ("archive/data.pkl".into(), pickle.to_vec()),
        ("archive/byteorder".into(), b"little".to_vec()),
        ("archive/data/0".into(), storage),
        ("archive/version".into(), b"3\n".to_vec()),
    ])
}

#[test]
fn a_minimal_handmade_checkpoint_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("minimal.pth");
    std::fs::write(&path, pth_with_pickle(MINIMAL_PICKLE)).expect("write");
    let tensors = checkpoints::load_tensors(&path).expect("a well-formed checkpoint loads");
    let w = &tensors["w"];
    assert_eq!(w.dims(), [2, 2]);
    assert_eq!(
        w.to_vec2::<f32>().expect("values"),
        [[1.0, 2.0], [3.0, 4.0]]
    );
}

#[test]
fn a_tensor_rebuilt_from_too_few_arguments_is_refused_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("short_args.pth");
    std::fs::write(
        &path,
        pth_with_pickle(PICKLE_WITH_TOO_FEW_REBUILD_ARGUMENTS),
    )
    .expect("write");
    let error = checkpoints::load_tensors(&path).expect_err("a malformed pickle must not load");
    let text = format!("{error:#}");
    assert!(
        text.contains("short_args.pth") && text.contains("malformed"),
        "{text}"
    );
}

/// The fixture's manifest with the DINO encoder's `num_heads` set to 0: building the encoder
/// divided by zero (found by `manifest_value_edits_never_crash`).
#[test]
fn a_manifest_with_zero_attention_heads_is_refused_not_a_crash() {
    let mut manifest = manifest_samples().remove(1);
    manifest["encoder"]["config"]["num_heads"] = serde_json::json!(0);
    let error = read_manifest(serde_json::to_vec(&manifest).expect("json"))
        .expect_err("zero heads must be refused");
    assert!(
        error.contains("encoder.num_heads") && error.contains("model.json"),
        "{error}"
    );
}

/// A novel-view manifest whose `object_fill` (the framing references are brought to) is not a
/// share of the view is refused when read, before any reference is framed with it.
#[test]
fn a_manifest_with_an_impossible_object_fill_is_refused() {
    for fill in [0.0, -0.5, 1.5] {
        let mut manifest = manifest_samples().remove(2);
        manifest["object_fill"] = serde_json::json!(fill);
        let error = read_manifest(serde_json::to_vec(&manifest).expect("json"))
            .expect_err("an impossible fill must be refused");
        assert!(error.contains("object_fill"), "{error}");
    }
}

/// The minimal pickle with the storage record cut to four fields (the element count dropped):
/// candle's reader indexed the fifth and panicked (47 of 200,000 inputs of a long
/// `pth_pickle_mutations_never_crash` run, caught then by the catch-all).
#[test]
fn a_storage_record_with_too_few_fields_is_refused_not_a_crash() {
    let needle: &[u8] = b"cpuq\x07K\x04t";
    let at = MINIMAL_PICKLE
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the storage record");
    let mut pickle = MINIMAL_PICKLE[..at].to_vec();
    pickle.extend_from_slice(b"cpuq\x07t");
    pickle.extend_from_slice(&MINIMAL_PICKLE[at + needle.len()..]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("short_storage.pth");
    std::fs::write(&path, pth_with_pickle(&pickle)).expect("write");
    let error = checkpoints::load_tensors(&path).expect_err("a malformed pickle must not load");
    let text = format!("{error:#}");
    assert!(
        text.contains("short_storage.pth") && text.contains("storage record has too few fields"),
        "{text}"
    );
}
