//! The spec's grammar: named architectures, the tokenizer and the parser that turns text into
//! [`ArchSpec`] layers with byte spans for error carets.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::arch::{Activation, Init};

/// Named architectures a user can pass instead of a spec string.
pub const NAMED_ARCHS: &[(&str, &str, &str)] = &[
    (
        "ref-mnist",
        "conv 8 5x5 pad 2, pool 2, conv 16 5x5 pad 2, pool 2",
        "the reference net: two 5×5 convolutions with pooling, then the dense output layer",
    ),
    (
        "deep6",
        "conv 8 3x3, conv 8 3x3, pool 2, conv 16 3x3, conv 16 3x3, pool 2, conv 32 3x3, conv 32 3x3, pool 2",
        "six 3×3 convolutions: deep enough for gradients to vanish through sigmoid layers",
    ),
    (
        "wide",
        "conv 32 5x5 pad 2, pool 2, conv 64 5x5 pad 2, pool 2",
        "ref-mnist with 32 and 64 filters, so convolution dominates the cost",
    ),
    ("mlp", "dense 128", "no convolutions: one hidden dense layer of 128 units"),
];

/// Largest number of values one layer may produce per example: far beyond what this tool can show, small
/// enough that a typo cannot ask for gigabytes.
pub const MAX_LAYER_VALUES: usize = 1 << 24;
/// Largest number of weights in one layer, for the same reason.
pub const MAX_LAYER_WEIGHTS: usize = 1 << 26;
/// Most layers a spec may list (the reference nets have three to seven).
pub const MAX_LAYERS: usize = 64;

/// The default architecture.
pub const DEFAULT_ARCH: &str = "ref-mnist";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerKind {
    /// A 2-D convolution with square kernels.
    Conv {
        /// Output channels.
        filters: usize,
        /// Kernel side.
        kernel: usize,
        /// Zero padding on every side.
        padding: usize,
        /// Step between kernel positions.
        stride: usize,
    },
    /// Max pooling with a square window and the same stride.
    Pool {
        /// Window side and stride.
        size: usize,
    },
    /// A fully connected layer (the input is flattened first).
    Dense {
        /// Output units.
        units: usize,
    },
}

/// One layer as written in the spec, before shape inference.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// What the layer computes.
    pub kind: LayerKind,
    /// An activation written in the spec, overriding the run's default.
    pub activation: Option<Activation>,
    /// `bias` / `nobias` written in the spec.
    pub bias: Option<bool>,
    /// `bn` / `nobn` written in the spec.
    pub batch_norm: Option<bool>,
    /// `init=…` written in the spec.
    pub init: Option<Init>,
    /// Byte range of this layer in the spec text, for error carets.
    pub span: Range<usize>,
}

/// A parsed spec: the text it came from and its layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchSpec {
    /// The spec as written (a preset name is expanded to its spec).
    pub text: String,
    /// The layers, input to output, without the appended output layer.
    pub layers: Vec<LayerSpec>,
}

/// A spec that does not parse or does not fit the input, with the offending part of the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecError {
    /// The spec text the span points into.
    pub text: String,
    /// Byte range of the bad token or layer.
    pub span: Range<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "architecture spec: {}", self.message)?;
        // A long spec is shown around the error only, so the caret line stays on one screen line.
        let chars: Vec<char> = self.text.chars().collect();
        let start = self.text.get(..self.span.start).map_or(0, |s| s.chars().count());
        let width = self.text.get(self.span.clone()).map_or(1, |s| s.chars().count()).max(1);
        let from = start.saturating_sub(SHOWN_BEFORE);
        let to = (start + width.min(SHOWN_CHARS - SHOWN_BEFORE)).max(from + SHOWN_CHARS).min(chars.len());
        let before = if from > 0 { "…" } else { "" };
        let after = if to < chars.len() { "…" } else { "" };
        // Newlines and tabs become spaces, so the caret line below lines up with the text.
        let shown: String =
            chars.get(from..to).unwrap_or_default().iter().map(|&c| if c.is_control() { ' ' } else { c }).collect();
        writeln!(f, "  {before}{shown}{after}")?;
        let caret = width.min(to.saturating_sub(start)).max(1);
        write!(f, "  {}{}", " ".repeat(start - from + before.chars().count()), "^".repeat(caret))
    }
}

/// A spec error shows at most this many characters of the spec…
const SHOWN_CHARS: usize = 100;
/// …of which this many come before the error.
const SHOWN_BEFORE: usize = 40;

impl SpecError {
    pub(crate) fn new(text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        SpecError { text: text.to_string(), span, message: message.into() }
    }
}

/// Expands a preset name to its spec text; any other text is returned as it is.
pub fn resolve_arch(name_or_spec: &str) -> &str {
    let trimmed = name_or_spec.trim();
    NAMED_ARCHS.iter().find(|(name, _, _)| name.eq_ignore_ascii_case(trimmed)).map_or(name_or_spec, |(_, spec, _)| spec)
}

/// A word of the spec with its byte range.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    span: (usize, usize),
}

impl Token<'_> {
    fn range(&self) -> Range<usize> {
        self.span.0..self.span.1
    }
}

/// Splits `text` into layers (by `,` or `->`) and each layer into whitespace-separated words, keeping offsets.
fn tokenize(text: &str) -> Vec<(Range<usize>, Vec<Token<'_>>)> {
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            segments.push(start..i);
            start = i + 1;
        } else if bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'>') {
            segments.push(start..i);
            start = i + 2;
            i += 1;
        }
        i += 1;
    }
    segments.push(start..text.len());
    segments
        .into_iter()
        .map(|segment| {
            let mut words = Vec::new();
            let mut word_start = None;
            for (offset, ch) in text[segment.clone()].char_indices() {
                let at = segment.start + offset;
                if ch.is_whitespace() {
                    if let Some(ws) = word_start.take() {
                        words.push(Token { text: &text[ws..at], span: (ws, at) });
                    }
                } else if word_start.is_none() {
                    word_start = Some(at);
                }
            }
            if let Some(ws) = word_start {
                words.push(Token { text: &text[ws..segment.end], span: (ws, segment.end) });
            }
            let span = match (words.first(), words.last()) {
                (Some(first), Some(last)) => first.span.0..last.span.1,
                _ => segment,
            };
            (span, words)
        })
        .collect()
}

fn parse_count(text: &str, token: Token<'_>, what: &str) -> Result<usize, SpecError> {
    match token.text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(SpecError::new(
            text,
            token.range(),
            format!("expected {what} (a whole number ≥ 1), found `{}`", token.text),
        )),
    }
}

fn parse_kernel(text: &str, token: Token<'_>) -> Result<usize, SpecError> {
    let bad = || {
        SpecError::new(
            text,
            token.range(),
            format!("expected a square kernel size such as `5x5`, found `{}`", token.text),
        )
    };
    let lower = token.text.to_ascii_lowercase();
    let (a, b) = lower.split_once('x').ok_or_else(bad)?;
    match (a.parse::<usize>(), b.parse::<usize>()) {
        (Ok(a), Ok(b)) if a == b && a > 0 => Ok(a),
        (Ok(a), Ok(b)) if a > 0 && b > 0 => Err(SpecError::new(
            text,
            token.range(),
            format!("kernel `{}` is not square: only KxK kernels are supported", token.text),
        )),
        _ => Err(bad()),
    }
}

impl ArchSpec {
    /// Parses a spec string or a preset name ([`NAMED_ARCHS`]).
    pub fn parse(name_or_spec: &str) -> Result<ArchSpec, SpecError> {
        let text = resolve_arch(name_or_spec);
        let mut layers = Vec::new();
        for (span, words) in tokenize(text) {
            let Some((keyword, args)) = words.split_first() else {
                if text.trim().is_empty() {
                    return Err(SpecError::new(
                        text,
                        0..text.len(),
                        "the spec is empty: list at least one layer, e.g. `conv 8 5x5, pool 2`, or a preset name such as `ref-mnist`",
                    ));
                }
                return Err(SpecError::new(text, span, "empty layer between separators"));
            };
            let mut args = args.iter().copied();
            let kind = layer_kind(text, *keyword, &mut args)?;
            let mut layer = LayerSpec { kind, activation: None, bias: None, batch_norm: None, init: None, span };
            layer_options(text, &mut layer, args)?;
            if layers.len() == MAX_LAYERS {
                let message = format!(
                    "more than {MAX_LAYERS} layers: far more than this tool can show or train at a useful speed"
                );
                return Err(SpecError::new(text, layer.span, message));
            }
            layers.push(layer);
        }
        Ok(ArchSpec { text: text.to_string(), layers })
    }
}

/// The layer a keyword and its leading arguments (filters and kernel, window, units) ask for.
fn layer_kind<'a>(
    text: &str,
    keyword: Token<'a>,
    args: &mut impl Iterator<Item = Token<'a>>,
) -> Result<LayerKind, SpecError> {
    let missing = |what: &str| SpecError::new(text, keyword.range(), format!("`{}` needs {what}", keyword.text));
    match keyword.text.to_ascii_lowercase().as_str() {
        "conv" => {
            let filters = args.next().ok_or_else(|| missing("a filter count and a kernel, e.g. `conv 8 5x5`"))?;
            let filters = parse_count(text, filters, "a filter count")?;
            let kernel = args.next().ok_or_else(|| missing("a kernel size after the filter count, e.g. `5x5`"))?;
            let kernel = parse_kernel(text, kernel)?;
            Ok(LayerKind::Conv { filters, kernel, padding: kernel / 2, stride: 1 })
        }
        "pool" | "maxpool" => {
            let size = args.next().ok_or_else(|| missing("a window size, e.g. `pool 2`"))?;
            Ok(LayerKind::Pool { size: parse_count(text, size, "a window size")? })
        }
        "dense" | "fc" | "linear" => {
            let units = args.next().ok_or_else(|| missing("a unit count, e.g. `dense 64`"))?;
            Ok(LayerKind::Dense { units: parse_count(text, units, "a unit count")? })
        }
        other => {
            let hint = if NAMED_ARCHS.iter().any(|(n, _, _)| n.starts_with(other)) {
                format!(
                    " (did you mean the preset `{}`?)",
                    NAMED_ARCHS.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join("`, `")
                )
            } else {
                String::new()
            };
            Err(SpecError::new(
                text,
                keyword.range(),
                format!("unknown layer `{other}`: expected `conv`, `pool` or `dense`{hint}"),
            ))
        }
    }
}

/// Applies the words after a layer's leading arguments: `pad N`, `stride N`, an activation, bias, bn, init.
fn layer_options<'a>(
    text: &str,
    layer: &mut LayerSpec,
    mut args: impl Iterator<Item = Token<'a>>,
) -> Result<(), SpecError> {
    while let Some(word) = args.next() {
        let lower = word.text.to_ascii_lowercase();
        match lower.as_str() {
            "pad" | "stride" => {
                let LayerKind::Conv { ref mut padding, ref mut stride, .. } = layer.kind else {
                    return Err(SpecError::new(text, word.range(), format!("`{lower}` only applies to `conv` layers")));
                };
                let value = args.next().ok_or_else(|| {
                    SpecError::new(text, word.range(), format!("`{lower}` needs a number, e.g. `{lower} 1`"))
                })?;
                if lower == "pad" {
                    *padding = value.text.parse::<usize>().map_err(|_| {
                        let message = format!("expected a padding (a whole number ≥ 0), found `{}`", value.text);
                        SpecError::new(text, value.range(), message)
                    })?;
                } else {
                    *stride = parse_count(text, value, "a stride")?;
                }
            }
            _ if matches!(layer.kind, LayerKind::Pool { .. }) => {
                return Err(SpecError::new(
                    text,
                    word.range(),
                    format!("unexpected `{}`: a pool layer takes only its window size", word.text),
                ));
            }
            "bias" => layer.bias = Some(true),
            "nobias" => layer.bias = Some(false),
            "bn" | "batchnorm" => layer.batch_norm = Some(true),
            "nobn" => layer.batch_norm = Some(false),
            _ if lower.starts_with("init=") => {
                let value = &word.text["init=".len()..];
                layer.init = Some(Init::parse(value).ok_or_else(|| {
                    SpecError::new(
                        text,
                        word.range(),
                        format!(
                            "unknown init `{value}`: expected he, xavier, uniform or normal:SIGMA with 0 < SIGMA ≤ 100 (e.g. normal:0.1)"
                        ),
                    )
                })?);
            }
            _ => {
                layer.activation = Some(Activation::parse(&lower).ok_or_else(|| {
                    SpecError::new(
                        text,
                        word.range(),
                        format!(
                            "unexpected `{}`: expected pad N, stride N, an activation ({}), bias/nobias, bn/nobn or init=…",
                            word.text,
                            Activation::ALL.map(Activation::name).join(", ")
                        ),
                    )
                })?);
            }
        }
    }
    Ok(())
}
