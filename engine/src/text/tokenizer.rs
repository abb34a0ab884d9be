//! The T5 tokenizer as transformers 4.39 builds it from `spiece.model` (`T5TokenizerFast`
//! converted by `convert_slow_tokenizer.T5Converter`), on the `tokenizers` crate.
//!
//! `spiece.model` is a SentencePiece `ModelProto` (protobuf). The few fields the converter reads
//! are parsed here by hand (a protobuf crate would be a build-time code generator for five
//! fields): the pieces with their scores and types, `trainer_spec.unk_id`,
//! `trainer_spec.model_type` (must be unigram) and `normalizer_spec.precompiled_charsmap`. The
//! tokenizer is then assembled exactly as the converter does:
//! - model: `Unigram(pieces + <extra_id_99> … <extra_id_0>, unk_id)` (Viterbi over piece scores;
//!   consecutive unknown characters fuse into one `<unk>`, as SentencePiece does);
//! - normalizer: `Precompiled(charsmap)` (the model's `nmt_nfkc` table), strip on the right,
//!   runs of two or more spaces → `▁`;
//! - pre-tokenizer: `Metaspace("▁", prepend_scheme=always)` (the dummy prefix);
//! - special tokens: the control pieces (`<pad>`, `</s>`) and the 100 sentinels, matched in
//!   the raw text before normalisation;
//! - then, as the demo calls it (`max_length=120, padding='max_length', truncation=True`): at
//!   most `max_length - 1` pieces, `</s>`, right-padded with `<pad>`.
//!
//! Truncation and unknown characters are reported in the result ([`TokenizedCaption`]), so
//! that a front end can show them; nothing is only logged.

use std::path::Path;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{EngineError, Result};

/// Sentinel tokens T5 appends after the model's pieces (`extra_ids=100`).
pub const T5_EXTRA_IDS: usize = 100;

/// The caption length of the Lumos text-to-image model (tokens, `</s>` included).
pub const LUMOS_MAX_TOKENS: usize = 120;

/// SentencePiece piece types (`ModelProto.SentencePiece.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Other,
}

#[derive(Clone, Debug)]
struct Piece {
    piece: String,
    score: f32,
    kind: PieceType,
}

/// What the converter reads from `spiece.model`.
#[derive(Clone, Debug, Default)]
struct SentencePieceModel {
    pieces: Vec<Piece>,
    unk_id: Option<u64>,
    model_type: Option<u64>,
    precompiled_charsmap: Vec<u8>,
}

/// A minimal protobuf reader: varints, fixed32/64 and length-delimited fields.
struct ProtoReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

enum ProtoValue<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8]),
}

impl<'a> ProtoReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or("truncated varint (the file is cut short)")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("field runs past the end (the file is cut short)")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next `(field number, value)`, or `None` at the end.
    fn next_field(&mut self) -> std::result::Result<Option<(u64, ProtoValue<'a>)>, String> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => ProtoValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                ProtoValue::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length overflows")?;
                ProtoValue::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                ProtoValue::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn parse_piece(bytes: &[u8]) -> std::result::Result<Piece, String> {
    let mut reader = ProtoReader::new(bytes);
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, ProtoValue::Bytes(b)) => {
                piece.piece = String::from_utf8(b.to_vec()).map_err(|_| "a piece is not UTF-8")?;
            }
            (2, ProtoValue::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, ProtoValue::Varint(t)) => {
                piece.kind = match t {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    _ => PieceType::Other,
                }
            }
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_model(bytes: &[u8]) -> std::result::Result<SentencePieceModel, String> {
    let mut model = SentencePieceModel::default();
    let mut reader = ProtoReader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, ProtoValue::Bytes(b)) => model.pieces.push(parse_piece(b)?),
            (2, ProtoValue::Bytes(b)) => {
                let mut trainer = ProtoReader::new(b);
                while let Some((field, value)) = trainer.next_field()? {
                    match (field, value) {
                        (3, ProtoValue::Varint(v)) => model.model_type = Some(v),
                        (40, ProtoValue::Varint(v)) => model.unk_id = Some(v),
                        _ => {}
                    }
                }
            }
            (3, ProtoValue::Bytes(b)) => {
                let mut normalizer = ProtoReader::new(b);
                while let Some((field, value)) = normalizer.next_field()? {
                    if let (2, ProtoValue::Bytes(map)) = (field, value) {
                        model.precompiled_charsmap = map.to_vec();
                    }
                }
            }
            _ => {}
        }
    }
    if model.pieces.is_empty() {
        return Err("no pieces: not a SentencePiece model".into());
    }
    Ok(model)
}

/// Why a caption was cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Pieces of the caption (without `</s>`).
    pub total_pieces: usize,
    /// Pieces kept (`max_length - 1`).
    pub kept_pieces: usize,
    /// The text that was cut off (from the first dropped piece on).
    pub dropped_text: String,
}

/// A tokenized caption, padded to `max_length`, with what a user should be told about it.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizedCaption {
    /// `max_length` ids: pieces, `</s>`, then `<pad>`.
    pub input_ids: Vec<u32>,
    /// 1 for pieces and `</s>`, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// The kept tokens as strings (with `</s>`).
    pub pieces: Vec<String>,
    /// Set when the caption was longer than the model reads.
    pub truncation: Option<Truncation>,
    /// Text the vocabulary cannot represent (each became `<unk>`), in order of appearance.
    pub unknown: Vec<String>,
}

impl TokenizedCaption {
    /// Tokens the model attends to (pieces and `</s>`).
    pub fn token_count(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }

    /// Warnings to show with the result: truncation and unknown characters.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.truncation {
            out.push(format!(
                "the prompt is {} tokens long but the model reads {} (plus the end marker): \
                 this part was ignored: \u{201c}{}\u{201d}",
                t.total_pieces, t.kept_pieces, t.dropped_text
            ));
        }
        if !self.unknown.is_empty() {
            out.push(format!(
                "the text encoder does not know {}: replaced by <unk>",
                self.unknown
                    .iter()
                    .map(|u| format!("\u{201c}{u}\u{201d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }
}

/// The T5 SentencePiece tokenizer.
#[derive(Clone)]
pub struct T5Tokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
    eos_id: u32,
    unk_id: u32,
}

impl std::fmt::Debug for T5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T5Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn tokenizer_error(path: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a usable SentencePiece tokenizer: {reason}"),
    }
}

impl T5Tokenizer {
    /// Reads `spiece.model` (T5: 100 sentinel tokens).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EngineError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_bytes(&bytes, T5_EXTRA_IDS).map_err(|e| tokenizer_error(path, e))
    }

    /// Builds the tokenizer from the bytes of a `spiece.model` and the number of sentinels.
    pub fn from_bytes(bytes: &[u8], extra_ids: usize) -> std::result::Result<Self, String> {
        let model = parse_model(bytes)?;
        if model.model_type.unwrap_or(1) != 1 {
            return Err("the model is not a unigram model (T5 uses unigram)".into());
        }
        let id_of = |name: &str| -> std::result::Result<u32, String> {
            model
                .pieces
                .iter()
                .position(|p| p.piece == name)
                .map(|i| i as u32)
                .ok_or_else(|| format!("no `{name}` piece"))
        };
        let unk_id = match model.unk_id {
            Some(id) => u32::try_from(id).map_err(|_| "bad unk_id")?,
            None => id_of("<unk>")?,
        };
        let mut vocab: Vec<(String, f64)> = model
            .pieces
            .iter()
            .map(|p| (p.piece.clone(), f64::from(p.score)))
            .collect();
        let sentinels: Vec<String> = (0..extra_ids)
            .rev()
            .map(|i| format!("<extra_id_{i}>"))
            .collect();
        vocab.extend(sentinels.iter().map(|s| (s.clone(), 0.0)));
        let unigram =
            Unigram::from(vocab, Some(unk_id as usize), false).map_err(|e| e.to_string())?;
        let mut tokenizer = Tokenizer::new(unigram);
        let mut normalizers = Vec::new();
        if !model.precompiled_charsmap.is_empty() {
            let precompiled =
                Precompiled::from(&model.precompiled_charsmap).map_err(|e| e.to_string())?;
            normalizers.push(precompiled.into());
        }
        normalizers.push(Strip::new(false, true).into());
        normalizers.push(
            Replace::new(
                tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()),
                "\u{2581}",
            )
            .map_err(|e| e.to_string())?
            .into(),
        );
        tokenizer
            .with_normalizer(Some(Sequence::new(normalizers)))
            .map_err(|e| e.to_string())?;
        tokenizer.with_pre_tokenizer(Some(Metaspace::new(
            '\u{2581}',
            PrependScheme::Always,
            true,
        )));
        let specials: Vec<AddedToken> = model
            .pieces
            .iter()
            .filter(|p| matches!(p.kind, PieceType::Control | PieceType::UserDefined))
            .map(|p| {
                AddedToken::from(p.piece.clone(), p.kind == PieceType::Control).normalized(false)
            })
            .chain(
                sentinels
                    .iter()
                    .map(|s| AddedToken::from(s.clone(), true).normalized(false)),
            )
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            pad_id: id_of("<pad>")?,
            eos_id: id_of("</s>")?,
            unk_id,
            tokenizer,
        })
    }

    /// Pieces plus sentinels.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The id of `<unk>`.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Tokenizes `text` as the T2I demo does: at most `max_length - 1` pieces, `</s>`, padding
    /// to `max_length`.
    pub fn encode(&self, text: &str, max_length: usize) -> Result<TokenizedCaption> {
        if max_length < 1 {
            return Err(EngineError::InvalidRequest(
                "a caption needs room for at least the end marker".into(),
            ));
        }
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EngineError::InvalidRequest(format!("cannot tokenize the prompt: {e}")))?;
        let ids = encoding.get_ids();
        let offsets = encoding.get_offsets();
        let keep = ids.len().min(max_length - 1);
        let truncation = (ids.len() > keep).then(|| Truncation {
            total_pieces: ids.len(),
            kept_pieces: keep,
            dropped_text: text
                .get(offsets[keep].0..)
                .unwrap_or_default()
                .trim()
                .to_string(),
        });
        let mut unknown: Vec<String> = Vec::new();
        for (id, &(start, end)) in ids[..keep].iter().zip(offsets) {
            if *id == self.unk_id {
                let what = text.get(start..end).unwrap_or("?").trim().to_string();
                if !what.is_empty() && !unknown.contains(&what) {
                    unknown.push(what);
                }
            }
        }
        let mut input_ids: Vec<u32> = ids[..keep].to_vec();
        input_ids.push(self.eos_id);
        // The vocabulary's spelling (`<unk>` for unknown text, as transformers shows it).
        let pieces: Vec<String> = input_ids
            .iter()
            .map(|&id| self.tokenizer.id_to_token(id).unwrap_or_default())
            .collect();
        let mut attention_mask = vec![1u32; input_ids.len()];
        input_ids.resize(max_length, self.pad_id);
        attention_mask.resize(max_length, 0);
        Ok(TokenizedCaption {
            input_ids,
            attention_mask,
            pieces,
            truncation,
            unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_or_foreign_model_file_is_refused() {
        assert!(T5Tokenizer::from_bytes(&[], T5_EXTRA_IDS).is_err());
        // A length-delimited field that claims more bytes than the file holds.
        let err = T5Tokenizer::from_bytes(&[0x0a, 0x40, 0x0a], T5_EXTRA_IDS).expect_err("cut");
        assert!(err.contains("cut short"), "{err}");
        // A varint that never ends.
        assert!(T5Tokenizer::from_bytes(&[0x08, 0xff], T5_EXTRA_IDS).is_err());
    }
}
