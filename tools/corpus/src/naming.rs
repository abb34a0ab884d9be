//! Output file names: `<source>-<sanitised-name>.png`, portable and unique.
//!
//! Source names are icon ids (`waving-hand`), code points (`1f44b-1f3fd`) or clip-art paths
//! (`animals/fish/giraffe_cichlid_01`); file names keep only lowercase ASCII letters, digits and
//! single dashes so the corpus unpacks the same on every file system.

use std::collections::HashSet;

/// Longest sanitised name kept (the source prefix and `.png` come on top).
const MAX_NAME_CHARS: usize = 96;

/// Lowercase ASCII letters and digits; every other run of characters becomes one `-`; no dash
/// at either end; at most [`MAX_NAME_CHARS`]; `unnamed` when nothing is left.
pub fn sanitise_name(name: &str) -> String {
    let mut sanitised = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            sanitised.push(c.to_ascii_lowercase());
        } else if !sanitised.is_empty() && !sanitised.ends_with('-') {
            sanitised.push('-');
        }
    }
    sanitised.truncate(MAX_NAME_CHARS);
    let trimmed = sanitised.trim_end_matches('-');
    if trimmed.is_empty() {
        "unnamed".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Hands out `<source>-<sanitised-name>.png`, adding `-2`, `-3`… when a name was already given,
/// so the first comer (in the deterministic job order) keeps the plain name.
#[derive(Default)]
pub struct FileNames {
    taken: HashSet<String>,
}

impl FileNames {
    pub fn assign(&mut self, source: &str, name: &str) -> String {
        let stem = format!("{source}-{}", sanitise_name(name));
        let mut candidate = format!("{stem}.png");
        let mut counter = 2;
        while self.taken.contains(&candidate) {
            candidate = format!("{stem}-{counter}.png");
            counter += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_keeps_lowercase_letters_digits_and_single_dashes() {
        assert_eq!(sanitise_name("waving-hand"), "waving-hand");
        assert_eq!(
            sanitise_name("animals/fish/Giraffe_Cichlid_01"),
            "animals-fish-giraffe-cichlid-01"
        );
        assert_eq!(sanitise_name("--a  b__c--"), "a-b-c");
        assert_eq!(sanitise_name("émoji ✨"), "moji");
        assert_eq!(sanitise_name("✨"), "unnamed");
        assert_eq!(sanitise_name(&"x".repeat(300)).len(), MAX_NAME_CHARS);
    }

    #[test]
    fn clashing_names_get_numbered_in_order() {
        let mut names = FileNames::default();
        assert_eq!(names.assign("openclipart", "a/b"), "openclipart-a-b.png");
        assert_eq!(names.assign("openclipart", "a_b"), "openclipart-a-b-2.png");
        assert_eq!(names.assign("openclipart", "a b"), "openclipart-a-b-3.png");
        assert_eq!(names.assign("noto", "a-b"), "noto-a-b.png");
    }
}
