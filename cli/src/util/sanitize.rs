//! Device text made safe for terminals, logs and JSON: the one sanitiser for everything mpfr
//! prints that came from a board (`exec`/`run` output in pipes, `repl` logs, stress reports, the
//! `threads top` table).
//!
//! Removed: escape sequences (CSI, OSC, DCS, SOS, PM, APC and charset designations, whether
//! introduced by ESC or by their C1 control), every other C0 and C1 control but newline and tab
//! (C1 both as the 8-bit bytes 0x80-0x9F and as their UTF-8 encodings U+0080-U+009F), the bidi
//! overrides and isolates (U+202A-U+202E, U+2066-U+2069) that reorder what a reader sees, and the
//! Unicode line and paragraph separators. `\r\n` becomes `\n`. Bytes that are not UTF-8 and not
//! C1 are passed through for the reader's lossy decoding to mark.
//!
//! Streaming: state (an open escape sequence, half a UTF-8 character) is kept between chunks,
//! so a sequence split across reads is removed all the same.

/// A streaming sanitiser; feed it chunks in order, then [`Sanitizer::finish`].
#[derive(Debug, Default, Clone)]
pub struct Sanitizer {
    state: St,
    /// A UTF-8 character begun in an earlier chunk: its bytes so far and how many it needs.
    partial: [u8; 4],
    have: u8,
    need: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum St {
    #[default]
    Text,
    Esc,
    Csi,
    /// ESC, intermediates (`(`, `#`, ...) and then one final byte: charset designations.
    EscInter,
    /// OSC, DCS and friends: a string ended by BEL, ESC `\` or ST.
    Str,
    StrEsc,
}

const ESC: char = '\x1b';
/// C1 controls that open a sequence (the 8-bit forms of ESC `[`, `]`, `P`, `X`, `^`, `_`).
const CSI: char = '\u{9b}';
const OSC: char = '\u{9d}';
const DCS: char = '\u{90}';
const SOS: char = '\u{98}';
const PM: char = '\u{9e}';
const APC: char = '\u{9f}';
/// String terminator.
const ST: char = '\u{9c}';

/// Characters dropped wherever they appear in text.
fn invisible_trouble(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

impl Sanitizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cleans `input`, appending the kept bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.byte(b, out);
        }
    }

    /// The stream ended: a character cut short is treated as the bytes it has.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush_partial(out);
    }

    /// Cleans one complete buffer.
    pub fn clean(input: &[u8]) -> String {
        let mut out = Vec::new();
        let mut s = Sanitizer::new();
        s.feed(input, &mut out);
        s.finish(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Cleans one string for a one-line field (a table cell): newlines and tabs become spaces,
    /// and at most `max` characters are kept (`…` marks a cut).
    pub fn one_line(s: &str, max: usize) -> String {
        let clean = Sanitizer::clean(s.as_bytes());
        let mut out = String::with_capacity(clean.len().min(max + 3));
        for (i, c) in clean.chars().enumerate() {
            if i >= max {
                out.push('…');
                break;
            }
            out.push(if c == '\n' || c == '\t' { ' ' } else { c });
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.need > 0 {
            if continues(self.partial[0], self.have, b) {
                self.partial[self.have as usize] = b;
                self.have += 1;
                if self.have == self.need {
                    let n = self.have as usize;
                    let bytes = self.partial;
                    self.have = 0;
                    self.need = 0;
                    // The lead and continuation bytes were checked, so this decodes.
                    if let Some(c) = std::str::from_utf8(&bytes[..n])
                        .ok()
                        .and_then(|s| s.chars().next())
                    {
                        self.char(c, &bytes[..n], out);
                    }
                }
                return;
            }
            self.flush_partial(out);
        }
        match b {
            0x00..=0x7f => self.char(b as char, &[b], out),
            0xc2..=0xdf => self.start(b, 2),
            0xe0..=0xef => self.start(b, 3),
            0xf0..=0xf4 => self.start(b, 4),
            _ => self.not_utf8(b, out),
        }
    }

    fn start(&mut self, lead: u8, need: u8) {
        self.partial[0] = lead;
        self.have = 1;
        self.need = need;
    }

    /// The pending bytes turned out not to be a character: each is handled on its own.
    fn flush_partial(&mut self, out: &mut Vec<u8>) {
        let (bytes, n) = (self.partial, self.have as usize);
        self.have = 0;
        self.need = 0;
        for &b in &bytes[..n] {
            self.not_utf8(b, out);
        }
    }

    /// A byte outside any UTF-8 character: 0x80-0x9F is an 8-bit C1 control; anything else is
    /// kept as it is in text (the reader's lossy decoding marks it) and swallowed in a sequence.
    fn not_utf8(&mut self, b: u8, out: &mut Vec<u8>) {
        if (0x80..=0x9f).contains(&b) {
            self.char(char::from(b), &[], out);
        } else {
            match self.state {
                St::Text => out.push(b),
                St::Str | St::StrEsc => self.state = St::Str,
                _ => self.state = St::Text,
            }
        }
    }

    /// One character, with the bytes that encoded it (kept if it is text).
    fn char(&mut self, c: char, raw: &[u8], out: &mut Vec<u8>) {
        self.state = match self.state {
            St::Text => match c {
                ESC => St::Esc,
                CSI => St::Csi,
                OSC | DCS | SOS | PM | APC => St::Str,
                '\n' | '\t' => {
                    out.push(c as u8);
                    St::Text
                }
                c if c.is_control() || invisible_trouble(c) => St::Text,
                _ => {
                    out.extend_from_slice(raw);
                    St::Text
                }
            },
            St::Esc => match c {
                '[' => St::Csi,
                ']' | 'P' | 'X' | '^' | '_' => St::Str,
                ' '..='/' => St::EscInter,
                _ => St::Text,
            },
            St::EscInter => match c {
                ' '..='/' => St::EscInter,
                _ => St::Text,
            },
            St::Csi => match c {
                ' '..='?' => St::Csi,
                // A new sequence aborts this one, as in terminals.
                ESC => St::Esc,
                _ => St::Text,
            },
            St::Str => match c {
                '\x07' | ST => St::Text,
                ESC => St::StrEsc,
                _ => St::Str,
            },
            St::StrEsc => match c {
                '\\' => St::Text,
                _ => St::Str,
            },
        };
    }
}

/// Whether `b` may follow `have` bytes of the character that `lead` starts (no overlong
/// forms, no surrogates, nothing past U+10FFFF).
fn continues(lead: u8, have: u8, b: u8) -> bool {
    let range = match (have, lead) {
        (1, 0xe0) => 0xa0..=0xbf,
        (1, 0xed) => 0x80..=0x9f,
        (1, 0xf0) => 0x90..=0xbf,
        (1, 0xf4) => 0x80..=0x8f,
        _ => 0x80..=0xbf,
    };
    range.contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every split of `input` into two chunks gives `want`.
    fn at_every_split(input: &[u8], want: &str) {
        assert_eq!(Sanitizer::clean(input), want, "whole");
        for i in 0..=input.len() {
            let mut s = Sanitizer::new();
            let mut out = Vec::new();
            s.feed(&input[..i], &mut out);
            s.feed(&input[i..], &mut out);
            s.finish(&mut out);
            assert_eq!(String::from_utf8_lossy(&out), want, "split at {i}");
        }
        // And byte by byte.
        let mut s = Sanitizer::new();
        let mut out = Vec::new();
        for b in input {
            s.feed(std::slice::from_ref(b), &mut out);
        }
        s.finish(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), want, "byte by byte");
    }

    #[test]
    fn removes_sequences_and_controls() {
        at_every_split(
            b"a\x1b[1;31mred\x1b[0m\r\nb\x1b]0;title\x07c\x1b]8;;x\x1b\\d\x07\x08e\x1b(Bf\tg\x7f\n",
            "ared\nbcdef\tg\n",
        );
    }

    #[test]
    fn removes_dcs_and_other_strings() {
        at_every_split(b"a\x1bPq#0;1\x1b\\b\x1b_apc\x07c\x1bXsos\x1b\\d", "abcd");
    }

    #[test]
    fn removes_8bit_c1_sequences() {
        // 0x9B is CSI, 0x9D OSC ended by 0x9C (ST), 0x90 DCS ended by BEL; 0x85 alone is NEL.
        at_every_split(b"a\x9b31mb\x9d0;pwned\x9cc\x90q\x07d\x85e", "abcde");
    }

    #[test]
    fn removes_utf8_encoded_c1_sequences() {
        at_every_split("a\u{9b}2Jb\u{9d}0;pwned\u{9c}c\u{85}d".as_bytes(), "abcd");
    }

    #[test]
    fn removes_bidi_overrides_and_isolates() {
        let evil = "user\u{202e}gpj.exe\u{202c} \u{2066}x\u{2069}\u{202a}\u{202b}\u{202d}\u{2067}\u{2068}.";
        at_every_split(evil.as_bytes(), "usergpj.exe x.");
    }

    #[test]
    fn keeps_utf8_whose_bytes_look_like_c1() {
        // ✓ is E2 9C 93 and é is C3 A9: continuation bytes in the C1 range are text here.
        at_every_split("µPython ✓ é 😀\r\n".as_bytes(), "µPython ✓ é 😀\n");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_for_lossy_decoding() {
        at_every_split(b"a\xffb\xc3(c\xe2\x9cd", "a\u{fffd}b\u{fffd}(c\u{fffd}d");
        // A character cut off by the end of the stream.
        assert_eq!(Sanitizer::clean(b"ok\xe2\x9c"), "ok\u{fffd}");
    }

    #[test]
    fn an_escape_inside_csi_starts_a_new_sequence() {
        at_every_split(b"a\x1b[1\x1b]0;t\x07b", "ab");
    }

    #[test]
    fn one_line_fields_have_no_breaks_and_a_cap() {
        assert_eq!(Sanitizer::one_line("a\nb\tc\x1b]0;t\x07", 10), "a b c");
        assert_eq!(Sanitizer::one_line(&"x".repeat(20), 5), "xxxxx…");
    }
}
