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
//!
//! Error messages quote what a device or file said, so there the same characters are shown
//! escaped rather than removed (`\x1b[2J`, `\u{202e}`): the reader must see what arrived.
//! [`quote_bytes`] and [`escape_text`] build such quotes where errors are made, and
//! [`safe_report`] passes every error through [`escape_text`] once more on its way to the
//! terminal, so a quote that was missed still cannot drive the terminal.

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

/// Whether `c` must not reach a terminal as it is inside quoted text: controls but newline and
/// tab (C0, DEL, C1), bidi overrides and isolates, line and paragraph separators.
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || invisible_trouble(c)
}

/// `s` for an error message: every character that could drive or deceive a terminal shown as
/// an escape (`\x1b`, `\r`, `\u{202e}`), newlines and tabs kept, at most `max` characters
/// kept (the cut says how much was left out).
pub fn escape_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 16);
    for (i, c) in s.chars().enumerate() {
        if i >= max {
            let rest = s.chars().count() - i;
            out.push_str(&format!("… ({rest} more characters)"));
            break;
        }
        match c {
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Bytes from a device or a file, quoted for an error message: printable ASCII as it is,
/// everything else escaped (`\x1b`, `\r`, `\xe2\x80\xae`), at most `max` bytes shown (the
/// cut says how many were left out). Empty input reads `(nothing)`.
pub fn quote_bytes(b: &[u8], max: usize) -> String {
    if b.is_empty() {
        return "(nothing)".into();
    }
    let shown = &b[..b.len().min(max)];
    let mut out = format!("\"{}\"", shown.escape_ascii());
    if b.len() > shown.len() {
        out.push_str(&format!("… ({} more bytes)", b.len() - shown.len()));
    }
    out
}

/// Like [`quote_bytes`], keeping the *last* `max` bytes: what a device said just before it
/// failed matters more than what it said first.
pub fn quote_tail(b: &[u8], max: usize) -> String {
    if b.len() <= max {
        return quote_bytes(b, max);
    }
    let cut = b.len() - max;
    format!("({cut} bytes before) …{}", quote_bytes(&b[cut..], max))
}

/// `s` with every character [`escape_text`] would escape replaced by as many `?` or U+FFFD as
/// it had bytes, so byte offsets into it (a diagnostic's source spans) stay right.
pub fn defang_same_len(s: &str) -> String {
    s.chars()
        .map(|c| {
            if !needs_escape(c) || c == '\r' {
                return c.to_string();
            }
            match c.len_utf8() {
                3 => "\u{fffd}".to_string(),
                n => "?".repeat(n),
            }
        })
        .collect()
}

/// Longest message, help or cause text [`safe_report`] lets through.
const MAX_REPORT_TEXT: usize = 4000;

/// The error `report` as it should reach a terminal or a log: its message, code, help, labels
/// and causes passed through [`escape_text`] (and cut), its source snippet with unsafe
/// characters replaced in place. The CLI prints every error through this.
pub fn safe_report(report: miette::Report) -> miette::Report {
    miette::Report::new(SafeDiagnostic::new(report))
}

/// One cause in an escaped chain (owned, so the chain can outlive the original error).
#[derive(Debug)]
struct Cause {
    text: String,
    next: Option<Box<Cause>>,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next.as_deref().map(|c| c as _)
    }
}

struct SafeDiagnostic {
    message: String,
    code: Option<String>,
    help: Option<String>,
    url: Option<String>,
    severity: Option<miette::Severity>,
    labels: Vec<miette::LabeledSpan>,
    source: Option<miette::NamedSource<String>>,
    cause: Option<Box<Cause>>,
}

impl SafeDiagnostic {
    fn new(report: miette::Report) -> SafeDiagnostic {
        let esc = |s: &str| escape_text(s, MAX_REPORT_TEXT);
        let causes: Vec<String> = report
            .chain()
            .skip(1)
            .map(|c| esc(&c.to_string()))
            .collect();
        let cause = causes
            .into_iter()
            .rev()
            .fold(None, |next, text| Some(Box::new(Cause { text, next })));
        let labels: Vec<miette::LabeledSpan> = report
            .labels()
            .map(|ls| {
                ls.map(|l| miette::LabeledSpan::new_with_span(l.label().map(esc), *l.inner()))
                    .collect()
            })
            .unwrap_or_default();
        // The snippet around the labels, read once and made safe in place (same offsets).
        let source = report.source_code().and_then(|src| {
            let all = miette::SourceSpan::from(0..0);
            let whole = src.read_span(&all, usize::MAX, usize::MAX).ok()?;
            let text = String::from_utf8_lossy(whole.data());
            let name = whole.name().unwrap_or("").to_string();
            Some(miette::NamedSource::new(name, defang_same_len(&text)))
        });
        SafeDiagnostic {
            message: esc(&report.to_string()),
            code: report.code().map(|c| esc(&c.to_string())),
            help: report.help().map(|h| esc(&h.to_string())),
            url: report.url().map(|u| esc(&u.to_string())),
            severity: report.severity(),
            labels,
            source,
            cause,
        }
    }
}

impl std::fmt::Debug for SafeDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::fmt::Display for SafeDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SafeDiagnostic {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

impl miette::Diagnostic for SafeDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.code.as_ref().map(|c| Box::new(c) as _)
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.severity
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as _)
    }
    fn url<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.url.as_ref().map(|u| Box::new(u) as _)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as _)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        (!self.labels.is_empty()).then(|| Box::new(self.labels.iter().cloned()) as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What no error text may carry to a terminal.
    fn assert_inert(s: &str) {
        assert!(
            !s.chars().any(|c| needs_escape(c) && c != '\r'),
            "a control or bidi character got through: {s:?}"
        );
        assert!(!s.contains('\r'), "{s:?}");
    }

    #[test]
    fn escape_text_shows_controls_and_bidi_as_escapes() {
        let evil = "a\x1b[2Jb\u{9b}31mc\rd\u{202e}e\x07f\ng\th\u{2066}";
        let e = escape_text(evil, 100);
        assert_eq!(e, "a\\x1b[2Jb\\x9b31mc\\rd\\u{202e}e\\x07f\ng\th\\u{2066}");
        assert_inert(&e);
        let long = "x".repeat(50);
        assert_eq!(
            escape_text(&long, 10),
            format!("{}… (40 more characters)", "x".repeat(10))
        );
    }

    #[test]
    fn quoted_bytes_are_escaped_and_cut() {
        let q = quote_bytes(b"ok\x1b]0;pwned\x07\xe2\x80\xae\r\n", 100);
        assert_eq!(q, "\"ok\\x1b]0;pwned\\x07\\xe2\\x80\\xae\\r\\n\"");
        assert_inert(&q);
        assert_eq!(quote_bytes(b"", 10), "(nothing)");
        assert_eq!(quote_bytes(&[b'a'; 30], 4), "\"aaaa\"… (26 more bytes)");
        assert_eq!(quote_tail(b"0123456789", 3), "(7 bytes before) …\"789\"");
    }

    #[test]
    fn defanging_keeps_byte_offsets() {
        let s = "k = \"\x1b[2J\u{202e}\u{85}\"\n";
        let d = defang_same_len(s);
        assert_eq!(d.len(), s.len());
        assert_eq!(d, "k = \"?[2J\u{fffd}??\"\n");
        assert_inert(&d);
    }

    /// Any error, however it was built, reaches the terminal escaped: message, help, labels,
    /// causes and the source snippet (a boards file with an escape sequence in it).
    #[test]
    fn safe_report_escapes_every_part_of_an_error() {
        #[derive(Debug, thiserror::Error, miette::Diagnostic)]
        #[error("device said \x1b[2J{0}\u{202e}")]
        #[diagnostic(code(mpfr::test), help("try \x1b]0;title\x07 again"))]
        struct Evil(
            String,
            #[source_code] miette::NamedSource<String>,
            #[label("here \x1b[31m")] miette::SourceSpan,
            #[source] std::io::Error,
        );
        let e = Evil(
            "\u{9b}1m".into(),
            miette::NamedSource::new("boards.toml", "name = \"a\x1b[2Jb\u{202e}\"\n".to_string()),
            (8..12).into(),
            std::io::Error::other("cause \x1b[5m"),
        );
        let r = safe_report(miette::Report::new(e));
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, r.as_ref())
            .expect("render");
        assert_inert(&out);
        for want in [
            "\\x1b[2J",
            "\\x9b1m",
            "\\u{202e}",
            "\\x1b]0;title\\x07",
            "here \\x1b[31m",
            "cause \\x1b[5m",
            "name = \"a?[2Jb",
        ] {
            assert!(out.contains(want), "{want} missing in\n{out}");
        }
    }

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
