//! Device output made safe for logs and JSON: terminal escape sequences and control characters
//! removed, `\r\n` turned into `\n`. Streaming, so a sequence split across reads is still removed.

/// A streaming sanitiser; feed it chunks in order.
#[derive(Debug, Default, Clone)]
pub struct Sanitizer {
    state: St,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum St {
    #[default]
    Text,
    Esc,
    Csi,
    /// ESC, intermediates (`(`, `#`, ...) and then one final byte: charset designations.
    EscInter,
    /// OSC, DCS and friends: a string ended by BEL or ESC `\`.
    Str,
    StrEsc,
}

impl Sanitizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cleans `input`, appending the kept bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            self.state = match self.state {
                St::Text => match c {
                    0x1b => St::Esc,
                    b'\n' | b'\t' => {
                        out.push(c);
                        St::Text
                    }
                    0x00..=0x1f | 0x7f => St::Text,
                    _ => {
                        out.push(c);
                        St::Text
                    }
                },
                St::Esc => match c {
                    b'[' => St::Csi,
                    b']' | b'P' | b'X' | b'^' | b'_' => St::Str,
                    0x20..=0x2f => St::EscInter,
                    _ => St::Text,
                },
                St::EscInter => match c {
                    0x20..=0x2f => St::EscInter,
                    _ => St::Text,
                },
                St::Csi => match c {
                    0x20..=0x3f => St::Csi,
                    _ => St::Text,
                },
                St::Str => match c {
                    0x07 => St::Text,
                    0x1b => St::StrEsc,
                    _ => St::Str,
                },
                St::StrEsc => match c {
                    b'\\' => St::Text,
                    _ => St::Str,
                },
            };
        }
    }

    /// Cleans one complete buffer.
    pub fn clean(input: &[u8]) -> String {
        let mut out = Vec::new();
        Sanitizer::new().feed(input, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &[u8] =
        b"a\x1b[1;31mred\x1b[0m\r\nb\x1b]0;title\x07c\x1b]8;;x\x1b\\d\x07\x08e\x1b(Bf\tg\x7f\n";
    const WANT: &str = "ared\nbcdef\tg\n";

    #[test]
    fn removes_sequences_and_controls() {
        assert_eq!(Sanitizer::clean(INPUT), WANT);
    }

    #[test]
    fn every_split_point_gives_the_same_text() {
        for i in 0..=INPUT.len() {
            let mut s = Sanitizer::new();
            let mut out = Vec::new();
            s.feed(&INPUT[..i], &mut out);
            s.feed(&INPUT[i..], &mut out);
            assert_eq!(String::from_utf8_lossy(&out), WANT, "split at {i}");
        }
    }

    #[test]
    fn keeps_utf8() {
        assert_eq!(Sanitizer::clean("µPython ✓\r\n".as_bytes()), "µPython ✓\n");
    }
}
