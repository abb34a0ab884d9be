//! Every WGSL file in `shaders/` parses and validates with naga: `common.wgsl` on its own, and
//! each shader as the crate embeds it (`common.wgsl` prepended). The clamped bilinear filter
//! is written once, in `common.wgsl`, and every shader uses it.

use std::path::Path;

fn parse(name: &str, source: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
    module
}

fn validate_shader(name: &str, source: &str) {
    let module = parse(name, source);
    for entry in ["vs_main", "fs_main"] {
        assert!(
            module.entry_points.iter().any(|e| e.name == entry),
            "{name} lacks entry point {entry}"
        );
    }
}

/// The `.wgsl` files next to the crate's manifest, by name, with their text.
fn wgsl_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read shaders/") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name")
                .to_owned();
            found.push((name, std::fs::read_to_string(&path).expect("read wgsl")));
        }
    }
    found.sort();
    found
}

#[test]
fn every_wgsl_file_validates_with_naga() {
    parse("common.wgsl", lumos_shaders::COMMON_WGSL);
    for (name, source) in lumos_shaders::ALL_WGSL {
        validate_shader(name, source);
    }
    let found: Vec<String> = wgsl_files().into_iter().map(|(name, _)| name).collect();
    let mut embedded: Vec<String> = lumos_shaders::ALL_WGSL
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(["common.wgsl".to_owned()])
        .collect();
    embedded.sort();
    assert_eq!(found, embedded, "every WGSL file is embedded in ALL_WGSL");
}

#[test]
fn the_bilinear_filter_is_written_once_and_every_shader_uses_it() {
    for (name, text) in wgsl_files() {
        let defines = text.contains("fn sample_bilinear_clamped");
        let filters_by_hand = text.contains("floor(");
        if name == "common.wgsl" {
            assert!(defines, "common.wgsl defines the filter");
            continue;
        }
        assert!(!defines, "{name} defines its own copy of the filter");
        assert!(
            text.contains("sample_bilinear_clamped("),
            "{name} does not use the shared filter"
        );
        assert!(
            !text.contains("textureSample("),
            "{name} filters with a sampler, not the shared filter"
        );
        // The mask overlay floors once for its nearest-sampled mask; nobody else floors.
        assert!(
            !filters_by_hand || name == "mask_overlay.wgsl",
            "{name} computes texel positions itself"
        );
        let (_, embedded) = lumos_shaders::ALL_WGSL
            .iter()
            .find(|(n, _)| *n == name)
            .expect("embedded");
        assert!(
            embedded.starts_with(lumos_shaders::COMMON_WGSL) && embedded.ends_with(&text),
            "{name} is embedded as common.wgsl followed by the file"
        );
    }
}

#[test]
fn uniform_structs_match_wgsl_sizes() {
    // The WGSL structs are 4, 3, 2 and 1 vec4s; the Rust mirrors must have the same size.
    assert_eq!(std::mem::size_of::<lumos_shaders::PreviewUniforms>(), 64);
    assert_eq!(std::mem::size_of::<lumos_shaders::WipeUniforms>(), 48);
    assert_eq!(
        std::mem::size_of::<lumos_shaders::MaskOverlayUniforms>(),
        32
    );
    assert_eq!(std::mem::size_of::<lumos_shaders::TurntableUniforms>(), 16);
}
