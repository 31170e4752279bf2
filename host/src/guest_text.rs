//! Text a plugin wrote (its answers and errors, its `describe` strings, its stdout
//! and stderr), made safe to put in the host's log and in error messages: control
//! and invisible formatting characters escaped, so a plugin cannot print a line
//! that looks like the host's own, and bounded in size, so it cannot flood the log.

/// Most bytes of one plugin-supplied field in a log line.
pub(crate) const LOG_FIELD_BYTES: usize = 1024;

/// `text` with control characters (newlines, escape sequences...) and bidi or
/// zero-width formatting characters escaped (`\n`, `\u{1b}`), cut to at most about
/// `max` bytes with a note of how much was left out.
pub(crate) fn escaped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 16);
    for (at, c) in text.char_indices() {
        let before = out.len();
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_format(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
        if out.len() > max {
            out.truncate(before);
            out.push_str(&format!("... ({} more bytes)", text.len() - at));
            break;
        }
    }
    out
}

/// Characters that change how the text around them is shown without showing
/// themselves: bidi overrides and isolates, zero-width characters.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escaped("a\nb\r\x1b[31m\u{202e}", 100),
            "a\\nb\\r\\u{1b}[31m\\u{202e}"
        );
        assert_eq!(escaped("plain é text", 100), "plain é text");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let cut = escaped(&"é".repeat(1000), 11);
        assert_eq!(cut, "ééééé... (1990 more bytes)");
        assert!(escaped(&"\n".repeat(100), 10).starts_with("\\n\\n\\n\\n\\n..."));
    }
}
