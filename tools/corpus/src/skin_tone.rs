//! Which emoji are skin-tone variants, and which few of them to keep.
//!
//! Every person and hand emoji comes in five skin tones (plus mixed-tone pairs), so tone variants
//! are about half of the big emoji sets. Kept whole, the prior would see each hand gesture six
//! times for every other object once. We keep every base (toneless) emoji and a deterministic
//! share of the tone variants, picked by a hash of the name, so every tone still appears.
//!
//! The sets spell tones differently (checked against @iconify/json 2.2.535 and
//! @lobehub/fluent-emoji-3d 1.1.0):
//! - Noto, Twemoji, EmojiOne: `…-medium-dark-skin-tone`, also in the middle of mixed-tone names;
//! - old Noto names: `breast-feeding-tone3`;
//! - Fluent (flat and colour): a bare suffix `-light`, `-medium-light`, `-medium`, `-medium-dark`,
//!   `-dark`. Since `police-car-light` and `black-medium-square` also end that way, a name only
//!   counts as a tone variant when the set holds all five tones of its base name;
//! - Fluent 3D file names are code points, with the modifiers `1f3fb`…`1f3ff`.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// Fluent's tone suffixes, lightest first.
const FLUENT_TONE_SUFFIXES: [&str; 5] = ["light", "medium-light", "medium", "medium-dark", "dark"];

/// The Fitzpatrick modifiers U+1F3FB…U+1F3FF as they appear in code-point file names.
const TONE_MODIFIER_CODE_POINTS: [&str; 5] = ["1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"];

/// Whether `name` is a skin-tone variant of another emoji; `names_in_set` holds every icon name
/// of the same set (needed for Fluent's bare suffixes).
pub fn is_skin_tone_variant(name: &str, names_in_set: &HashSet<&str>) -> bool {
    if name.contains("skin-tone") {
        return true;
    }
    let has_tone_token = name.split(['-', '_']).any(|token| {
        TONE_MODIFIER_CODE_POINTS.contains(&token)
            || token
                .strip_prefix("tone")
                .is_some_and(|digit| matches!(digit, "1" | "2" | "3" | "4" | "5"))
    });
    if has_tone_token {
        return true;
    }
    FLUENT_TONE_SUFFIXES.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|rest| rest.strip_suffix('-'))
            .is_some_and(|base| {
                FLUENT_TONE_SUFFIXES
                    .iter()
                    .all(|tone| names_in_set.contains(format!("{base}-{tone}").as_str()))
            })
    })
}

/// Whether to keep a tone variant: true for about `keep_percent`% of names, decided by a hash
/// of `source/name` so the same inputs always keep the same variants.
pub fn keep_tone_variant(source: &str, name: &str, keep_percent: u8) -> bool {
    let digest = Sha256::digest(format!("{source}/{name}").as_bytes());
    let mut first_bytes = [0u8; 8];
    first_bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first_bytes) % 100 < u64::from(keep_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&'static str]) -> HashSet<&'static str> {
        names.iter().copied().collect()
    }

    #[test]
    fn spelled_out_skin_tones_are_variants() {
        let names = set(&[]);
        assert!(is_skin_tone_variant(
            "waving-hand-medium-dark-skin-tone",
            &names
        ));
        assert!(is_skin_tone_variant(
            "women-holding-hands-light-skin-tone-medium-dark-skin-tone",
            &names
        ));
        assert!(is_skin_tone_variant("breast-feeding-tone3", &names));
        assert!(is_skin_tone_variant("thumbs_up_tone5", &names));
        assert!(!is_skin_tone_variant("waving-hand", &names));
        assert!(!is_skin_tone_variant("milestone1", &names));
        assert!(!is_skin_tone_variant("tone", &names));
    }

    #[test]
    fn code_point_modifiers_are_variants() {
        let names = set(&[]);
        assert!(is_skin_tone_variant("1f44b-1f3fd", &names));
        assert!(is_skin_tone_variant("1f469-1f3ff-200d-1f52c", &names));
        assert!(!is_skin_tone_variant("1f44b", &names));
        assert!(!is_skin_tone_variant("1f3fa", &names));
    }

    #[test]
    fn fluent_suffixes_need_all_five_tones_of_the_base() {
        let names = set(&[
            "waving-hand",
            "waving-hand-light",
            "waving-hand-medium-light",
            "waving-hand-medium",
            "waving-hand-medium-dark",
            "waving-hand-dark",
            "police-car",
            "police-car-light",
            "black-medium-square",
        ]);
        for tone in FLUENT_TONE_SUFFIXES {
            assert!(
                is_skin_tone_variant(&format!("waving-hand-{tone}"), &names),
                "{tone}"
            );
        }
        assert!(!is_skin_tone_variant("waving-hand", &names));
        assert!(!is_skin_tone_variant("police-car-light", &names));
        assert!(!is_skin_tone_variant("black-medium-square", &names));
    }

    #[test]
    fn keeping_is_deterministic_and_near_the_asked_share() {
        let names: Vec<String> = (0..2000)
            .map(|i| format!("emoji-{i}-dark-skin-tone"))
            .collect();
        let kept = names
            .iter()
            .filter(|name| keep_tone_variant("noto", name, 20))
            .count();
        assert!((300..=500).contains(&kept), "kept {kept} of 2000 at 20%");
        let kept_again = names
            .iter()
            .filter(|name| keep_tone_variant("noto", name, 20))
            .count();
        assert_eq!(kept, kept_again);
        assert!(names.iter().all(|name| !keep_tone_variant("noto", name, 0)));
        assert!(
            names
                .iter()
                .all(|name| keep_tone_variant("noto", name, 100))
        );
    }
}
