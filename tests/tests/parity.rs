//! Fixture parity: every network, the preprocessing, the sampler and the whole pipeline
//! against tensors made with the original PyTorch code (tolerances from the fixtures' README).

use lumos_tests::assert_fixture_parity;

#[test]
fn lumos_i2i_forward_matches_original() {
    assert_fixture_parity("lumos_i2i_tiny");
}

#[test]
fn dino_vit_and_preprocessing_match_original() {
    assert_fixture_parity("dino_vit_tiny");
}

#[test]
fn vae_encode_decode_matches_original() {
    assert_fixture_parity("vae_tiny");
}

#[test]
fn dpm_solver_traces_match_original() {
    assert_fixture_parity("dpm_solver");
}

#[test]
fn pipeline_matches_original() {
    assert_fixture_parity("pipeline_tiny");
}
