//! The text path of the text-to-image model: the demo's caption cleaning (`cleaning`), the T5
//! SentencePiece tokenizer (`tokenizer`), and the checks a prompt must pass before it is encoded.

pub mod cleaning;
pub mod tokenizer;

pub use cleaning::prepare_prompt;
pub use tokenizer::{LUMOS_MAX_TOKENS, T5Tokenizer, TokenizedCaption, Truncation};

use crate::error::{EngineError, Result};

/// A prompt cleaned and tokenized for the T5 encoder, with what the user should be told.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedPrompt {
    /// The prompt as typed.
    pub prompt: String,
    /// After the demo's cleaning (what the encoder reads).
    pub cleaned: String,
    /// Ids, mask, truncation and unknown characters.
    pub caption: TokenizedCaption,
}

impl PreparedPrompt {
    /// Warnings to show with the result (truncation, unknown characters).
    pub fn warnings(&self) -> Vec<String> {
        self.caption.warnings()
    }
}

/// Cleans and tokenizes a prompt for a caption of `max_tokens` tokens. An empty prompt, or
/// one the cleaning empties (only a URL, only punctuation...), is refused with the reason.
pub fn prepare(tokenizer: &T5Tokenizer, prompt: &str, max_tokens: usize) -> Result<PreparedPrompt> {
    if prompt.trim().is_empty() {
        return Err(EngineError::InvalidRequest(
            "the prompt is empty: describe the image you want".into(),
        ));
    }
    let cleaned = prepare_prompt(prompt);
    if cleaned.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "nothing is left of the prompt \u{201c}{prompt}\u{201d} after the caption cleaning the \
             model was trained with (it removes URLs, file names, codes and punctuation): \
             describe the image in words"
        )));
    }
    let caption = tokenizer.encode(&cleaned, max_tokens)?;
    Ok(PreparedPrompt {
        prompt: prompt.to_string(),
        cleaned,
        caption,
    })
}
