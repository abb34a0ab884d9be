//! The caption cleaning the Lumos T2I model was trained with (`T5Embedder.clean_caption` in
//! `lumos_diffusion/model/t5.py`, DeepFloyd IF's), applied twice, after the demo's own
//! `prompt.strip() if prompt.endswith('.')`.
//!
//! Prompts must be cleaned the same way at inference, or the encoder sees text unlike its
//! training captions (upper case, URLs, `snake_case`, codes like `jc6640`...). The regular
//! expressions are the original ones, in the original order; `fancy_regex` runs the one with a
//! look-ahead. Three library calls are approximated, and the differences only show on input
//! none of the worked examples contain:
//! - `BeautifulSoup(caption, 'html.parser').text`: tags and comments are removed and character
//!   references decoded (named ones from a table of the common entities);
//! - `ftfy.fix_text`: curly quotes, Latin ligatures, full-width ASCII, line breaks and control
//!   characters are fixed; mojibake repair and NFC normalisation are not attempted;
//! - `html.unescape`: as for BeautifulSoup.

use std::sync::OnceLock;

use fancy_regex::Regex;

/// The demo's full prompt treatment: strip if it ends with a period, then clean twice.
pub fn prepare_prompt(prompt: &str) -> String {
    let prompt = if prompt.ends_with('.') {
        prompt.trim()
    } else {
        prompt
    };
    text_preprocessing(prompt)
}

/// `T5Embedder.text_preprocessing` with `use_text_preprocessing=True`: `clean_caption` twice.
pub fn text_preprocessing(text: &str) -> String {
    clean_caption(&clean_caption(text))
}

/// The patterns of `clean_caption`, compiled once (replacements use `$1` for `\1`).
struct Rules {
    person: Regex,
    urls: [Regex; 2],
    nickname: Regex,
    cjk: Regex,
    dashes: Regex,
    double_quotes: Regex,
    single_quotes: Regex,
    quot: Regex,
    amp: Regex,
    ip: Regex,
    article_id: Regex,
    backslash_n: Regex,
    hash_short: Regex,
    hash_long: Regex,
    long_number: Regex,
    file_name: Regex,
    repeated_quotes: Regex,
    repeated_dots: Regex,
    bad_punct: Regex,
    lone_dot: Regex,
    dash_or_underscore: Regex,
    after_basic_clean: Vec<(Regex, &'static str)>,
    leading_quote: Regex,
    leading_punct: Regex,
    trailing_punct: Regex,
    dot_word: Regex,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        // The patterns are literals of this file, compiled by the tests: a failure here is a
        // programming error, caught before release.
        #[expect(clippy::expect_used, reason = "literal patterns, compiled by every test")]
        let re = |p: &str| Regex::new(p).expect("clean_caption pattern");
        let url = |scheme: &str| {
            re(&format!(
                r"\b((?:{scheme}:(?:\/{{1,3}}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))"
            ))
        };
        Rules {
            person: re("<person>"),
            urls: [url("https?"), url("www")],
            nickname: re(r"@[\w\d]+\b"),
            cjk: re(r"[\x{31c0}-\x{31ef}\x{31f0}-\x{31ff}\x{3200}-\x{32ff}\x{3300}-\x{33ff}\x{3400}-\x{4dbf}\x{4dc0}-\x{4dff}\x{4e00}-\x{9fff}]+"),
            dashes: re(r"[\x{002D}\x{058A}\x{05BE}\x{1400}\x{1806}\x{2010}-\x{2015}\x{2E17}\x{2E1A}\x{2E3A}\x{2E3B}\x{2E40}\x{301C}\x{3030}\x{30A0}\x{FE31}\x{FE32}\x{FE58}\x{FE63}\x{FF0D}]+"),
            double_quotes: re("[`´«»“”¨]"),
            single_quotes: re("[‘’]"),
            quot: re("&quot;?"),
            amp: re("&amp"),
            ip: re(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"),
            article_id: re(r"\d:\d\d\s+$"),
            backslash_n: re(r"\\n"),
            hash_short: re(r"#\d{1,3}\b"),
            hash_long: re(r"#\d{5,}\b"),
            long_number: re(r"\b\d{6,}\b"),
            file_name: re(r"[\S]+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)"),
            repeated_quotes: re(r#"["']{2,}"#),
            repeated_dots: re(r"[\.]{2,}"),
            bad_punct: re(r"[#®•©™&@·º½¾¿¡§~\)\(\]\[\}\{\|\\/\*]{1,}"),
            lone_dot: re(r"\s+\.\s+"),
            dash_or_underscore: re(r"(?:\-|\_)"),
            after_basic_clean: vec![
                (re(r"\b[a-zA-Z]{1,3}\d{3,15}\b"), ""),
                (re(r"\b[a-zA-Z]+\d+[a-zA-Z]+\b"), ""),
                (re(r"\b\d+[a-zA-Z]+\d+\b"), ""),
                (re(r"(worldwide\s+)?(free\s+)?shipping"), ""),
                (re(r"(free\s)?download(\sfree)?"), ""),
                (re(r"\bclick\b\s(?:for|on)\s\w+"), ""),
                (re(r"\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\simage[s]?)?"), ""),
                (re(r"\bpage\s+\d+\b"), ""),
                (re(r"\b\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*\b"), " "),
                (re(r"\b\d+\.?\d*[xх×]\d+\.?\d*\b"), ""),
                (re(r"\b\s+\:\s+"), ": "),
                (re(r"(\D[,\./])\b"), "$1 "),
                (re(r"\s+"), " "),
            ],
            leading_quote: re(r#"^["']([\w\W]+)["']$"#),
            leading_punct: re(r"^['\_,\-\:;]"),
            trailing_punct: re(r"['\_,\-\:\-\+]$"),
            dot_word: re(r"^\.\S+$"),
        }
    })
}

/// `re.sub(pattern, replacement, text)`. A pattern that gives up (fancy-regex's backtrack
/// limit, unreachable for these patterns on prompt-sized text) leaves the text unchanged.
fn sub(re: &Regex, replacement: &str, text: &str) -> String {
    re.try_replacen(text, 0, replacement)
        .map(|s| s.into_owned())
        .unwrap_or_else(|_| text.to_string())
}

/// `clean_caption` (one pass).
pub fn clean_caption(caption: &str) -> String {
    let r = rules();
    let mut c = unquote_plus(caption).trim().to_lowercase();
    c = sub(&r.person, "person", &c);
    for url in &r.urls {
        c = sub(url, "", &c);
    }
    c = html_parser_text(&c);
    c = sub(&r.nickname, "", &c);
    c = sub(&r.cjk, "", &c);
    c = sub(&r.dashes, "-", &c);
    c = sub(&r.double_quotes, "\"", &c);
    c = sub(&r.single_quotes, "'", &c);
    c = sub(&r.quot, "", &c);
    c = sub(&r.amp, "", &c);
    c = sub(&r.ip, " ", &c);
    c = sub(&r.article_id, "", &c);
    c = sub(&r.backslash_n, " ", &c);
    c = sub(&r.hash_short, "", &c);
    c = sub(&r.hash_long, "", &c);
    c = sub(&r.long_number, "", &c);
    c = sub(&r.file_name, "", &c);
    c = sub(&r.repeated_quotes, "\"", &c);
    c = sub(&r.repeated_dots, " ", &c);
    c = sub(&r.bad_punct, " ", &c);
    c = sub(&r.lone_dot, " ", &c);
    if r.dash_or_underscore.find_iter(&c).count() > 3 {
        c = sub(&r.dash_or_underscore, " ", &c);
    }
    c = basic_clean(&c);
    for (re, replacement) in &r.after_basic_clean {
        c = sub(re, replacement, &c);
    }
    // (`caption.strip()` here in the original discards its result.)
    c = sub(&r.leading_quote, "$1", &c);
    c = sub(&r.leading_punct, "", &c);
    c = sub(&r.trailing_punct, "", &c);
    c = sub(&r.dot_word, "", &c);
    c.trim().to_string()
}

/// `basic_clean`: `ftfy.fix_text`, `html.unescape` twice, strip.
fn basic_clean(text: &str) -> String {
    let fixed = fix_text(text);
    unescape_html(&unescape_html(&fixed)).trim().to_string()
}

/// `urllib.parse.unquote_plus`: `+` → space, `%XX` → byte, decoded as UTF-8 with
/// replacement characters.
fn unquote_plus(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `BeautifulSoup(text, 'html.parser').text`: markup removed, character references decoded.
fn html_parser_text(text: &str) -> String {
    static MARKUP: OnceLock<Option<Regex>> = OnceLock::new();
    let markup =
        MARKUP.get_or_init(|| Regex::new(r"(?s)<!--.*?-->|<![^>]*>|</?[a-zA-Z][^>]*>").ok());
    let stripped = match markup {
        Some(re) => sub(re, "", text),
        None => text.to_string(),
    };
    unescape_html(&stripped)
}

/// Named character references decoded here (the common ones; Python knows all of HTML5's).
const ENTITIES: [(&str, &str); 32] = [
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("nbsp", "\u{a0}"),
    ("copy", "©"),
    ("reg", "®"),
    ("trade", "™"),
    ("hellip", "…"),
    ("mdash", "—"),
    ("ndash", "–"),
    ("lsquo", "‘"),
    ("rsquo", "’"),
    ("ldquo", "“"),
    ("rdquo", "”"),
    ("laquo", "«"),
    ("raquo", "»"),
    ("deg", "°"),
    ("times", "×"),
    ("middot", "·"),
    ("bull", "•"),
    ("euro", "€"),
    ("pound", "£"),
    ("yen", "¥"),
    ("cent", "¢"),
    ("sect", "§"),
    ("frac12", "½"),
    ("frac14", "¼"),
    ("frac34", "¾"),
    ("eacute", "é"),
    ("egrave", "è"),
];

/// Entities Python also decodes without the trailing semicolon (HTML5's legacy ones).
const LEGACY_ENTITIES: [&str; 7] = ["amp", "lt", "gt", "quot", "nbsp", "copy", "reg"];

/// `html.unescape`: `&name;`, `&#123;`, `&#x1F;` (and the legacy names without `;`).
fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some((decoded, used)) = decode_reference(after) {
            out.push_str(&decoded);
            rest = &after[used..];
        } else {
            out.push('&');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The reference at the start of `after` (the text after `&`): its value and length.
fn decode_reference(after: &str) -> Option<(String, usize)> {
    if let Some(num) = after.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits
            .find(|c: char| !c.is_digit(radix))
            .unwrap_or(digits.len());
        if len == 0 {
            return None;
        }
        let code = u32::from_str_radix(&digits[..len], radix).ok()?;
        let ch = char::from_u32(code).unwrap_or('\u{fffd}');
        let semicolon = usize::from(digits[len..].starts_with(';'));
        return Some((ch.to_string(), skip + len + semicolon));
    }
    let len = after
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(after.len());
    let name = &after[..len];
    let (_, value) = ENTITIES.iter().find(|(n, _)| *n == name)?;
    if after[len..].starts_with(';') {
        Some((value.to_string(), len + 1))
    } else if LEGACY_ENTITIES.contains(&name) {
        Some((value.to_string(), len))
    } else {
        None
    }
}

/// The parts of `ftfy.fix_text` that apply to typed prompts.
fn fix_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    text.chars()
        .filter_map(|c| match c {
            // fix_line_breaks
            '\r' | '\u{2028}' | '\u{2029}' | '\u{85}' => Some("\n".to_string()),
            // uncurl_quotes
            '\u{2bc}' | '\u{2018}'..='\u{201b}' => Some("'".to_string()),
            '\u{201c}'..='\u{201f}' => Some("\"".to_string()),
            // fix_latin_ligatures
            'ﬀ' => Some("ff".into()),
            'ﬁ' => Some("fi".into()),
            'ﬂ' => Some("fl".into()),
            'ﬃ' => Some("ffi".into()),
            'ﬄ' => Some("ffl".into()),
            'ﬅ' | 'ﬆ' => Some("st".into()),
            // fix_character_width
            '\u{3000}' => Some(" ".into()),
            '\u{ff01}'..='\u{ff5e}' => {
                char::from_u32(c as u32 - 0xff01 + 0x21).map(|h| h.to_string())
            }
            // remove_control_chars (tab, newline, form feed stay)
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{e}'..='\u{1f}' | '\u{7f}' | '\u{feff}' => None,
            '\u{206a}'..='\u{206f}' | '\u{fff9}'..='\u{fffc}' => None,
            other => Some(other.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        let _ = rules();
    }

    #[test]
    fn helpers_follow_python() {
        assert_eq!(unquote_plus("a+b%20c%zz%"), "a b c%zz%");
        assert_eq!(
            unescape_html("&amp;&amp&lt;x&#65;&#x42;&bogus;"),
            "&&<xAB&bogus;"
        );
        assert_eq!(
            html_parser_text("<b>bold</b> a < b <!-- c -->"),
            "bold a < b "
        );
    }
}
