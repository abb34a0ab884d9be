//! Every WGSL file in `shaders/` parses and validates with naga, and is embedded by the crate.

use std::path::Path;

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
    for entry in ["vs_main", "fs_main"] {
        assert!(
            module.entry_points.iter().any(|e| e.name == entry),
            "{name} lacks entry point {entry}"
        );
    }
}

#[test]
fn every_wgsl_file_validates_with_naga() {
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
            let source = std::fs::read_to_string(&path).expect("read wgsl");
            validate(&name, &source);
            found.push(name);
        }
    }
    found.sort();
    let mut embedded: Vec<_> = lumos_shaders::ALL_WGSL
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    embedded.sort();
    assert_eq!(found, embedded, "every WGSL file is embedded in ALL_WGSL");
}

#[test]
fn uniform_structs_match_wgsl_sizes() {
    // The WGSL structs are 4, 3 and 2 vec4s; the Rust mirrors must have the same size.
    assert_eq!(std::mem::size_of::<lumos_shaders::PreviewUniforms>(), 64);
    assert_eq!(std::mem::size_of::<lumos_shaders::WipeUniforms>(), 48);
    assert_eq!(
        std::mem::size_of::<lumos_shaders::MaskOverlayUniforms>(),
        32
    );
}
