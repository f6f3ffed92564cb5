//! Text that a caller controls, made safe to store, log, answer and print: at most `MAX_BYTES` bytes (cut at
//! a character boundary, with the cut said), control characters (terminal escape codes included) escaped. A
//! flood of huge or hostile strings then grows the audit trail by a bounded amount per request and cannot
//! rewrite an operator's terminal.

/// The most bytes kept of one caller-controlled string.
pub const MAX_BYTES: usize = 256;

/// `text` bounded to `MAX_BYTES` and with control characters escaped.
pub fn bounded(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_BYTES) + 16);
    for (index, c) in text.char_indices() {
        if out.len() >= MAX_BYTES {
            out.push_str(&format!("… ({} bytes cut)", text.len() - index));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_control_characters_escaped() {
        let long = "é".repeat(100_000);
        let cut = bounded(&long);
        assert!(cut.len() < MAX_BYTES + 40, "{}", cut.len());
        assert!(cut.ends_with("bytes cut)"));
        assert_eq!(bounded("web\u{1b}[2Jelb\n"), "web\\u{1b}[2Jelb\\n");
        assert_eq!(bounded("plain text"), "plain text");
    }
}
