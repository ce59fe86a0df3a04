//! The rules of MicroPython's `tests/run-tests.py` that decide how an external test is judged:
//! `.exp` files read as line patterns for the tests it lists, and the tests it skips for a
//! target (plus the user's own `--skip` entries). Written from its documented behaviour.

use super::BoardFacts;

/// Tests whose `.exp` run-tests reads as patterns, one per line (their output carries
/// addresses, sizes or help text that differ between builds). Matched on the file's last two
/// path components, as run-tests names them relative to its `tests/` folder.
pub const PATTERN_EXP_TESTS: &[&str] = &[
    "micropython/meminfo.py",
    "basics/bytes_compare3.py",
    "basics/builtin_help.py",
    "thread/thread_exc2.py",
    "ports/esp32/partition_ota.py",
];

/// A line of a pattern `.exp` that stands for any number of whole output lines (also none).
pub const ANY_LINES: &str = "########";

/// Whether the test at `path` has a pattern `.exp` (see [`PATTERN_EXP_TESTS`]).
pub fn has_pattern_exp(path: &std::path::Path) -> bool {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    PATTERN_EXP_TESTS.iter().any(|t| {
        let want: Vec<&str> = t.split('/').collect();
        parts.len() >= want.len()
            && parts[parts.len() - want.len()..]
                .iter()
                .zip(&want)
                .all(|(a, b)| a == b)
    })
}

/// One `.exp` line as a regular expression anchored at the line's start. In these files the
/// characters `( ) [ ] { } . * + ^ $` stand for themselves unless a backslash comes before
/// them (then they are regex syntax); a backslash takes the next character as it is; `\r`s
/// may come before the line end. A line that is no valid pattern matches only itself.
fn line_pattern(line: &str) -> Option<regex::Regex> {
    let mut re = String::from("^(?:");
    let mut chars = line.strip_suffix('\n').unwrap_or(line).chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    re.push(n);
                }
            }
            '(' | ')' | '[' | ']' | '{' | '}' | '.' | '*' | '+' | '^' | '$' => {
                re.push('\\');
                re.push(c);
            }
            _ => re.push(c),
        }
    }
    re.push(')');
    if line.ends_with('\n') {
        re.push_str("\r*\n");
    }
    regex::Regex::new(&re).ok()
}

fn line_matches(exp: &str, got: &str) -> bool {
    match line_pattern(exp) {
        Some(re) => re.is_match(got),
        None => exp == got,
    }
}

/// `actual` rewritten the way run-tests does before comparing with a pattern `.exp`: every
/// output line a pattern matches becomes that pattern's text, and the lines an `########`
/// line stands for become one `########` line (`######## FAIL` when the line after it never
/// comes). The result equals `expected` exactly when the output fits it.
pub fn apply_patterns(actual: &str, expected: &str) -> String {
    let exp: Vec<&str> = expected.split_inclusive('\n').collect();
    let mut got: Vec<String> = actual.split_inclusive('\n').map(str::to_string).collect();
    let mut at = 0;
    let mut i = 0;
    while i < exp.len() && at < got.len() {
        if exp[i].trim_end_matches('\n') == ANY_LINES {
            let skip = match exp.get(i + 1) {
                // Up to the first line the next pattern matches.
                Some(next) => got[at..].iter().position(|g| line_matches(next, g)),
                // At the end it takes every line left.
                None => Some(got.len() - at),
            };
            match skip {
                Some(n) => {
                    got.drain(at..at + n);
                    got.insert(at, exp[i].to_string());
                    at += 1;
                }
                None => {
                    got[at] = format!("{ANY_LINES} FAIL\n");
                    break;
                }
            }
        } else {
            if line_matches(exp[i], &got[at]) {
                got[at] = exp[i].to_string();
            }
            at += 1;
        }
        i += 1;
    }
    got.concat()
}

/// When a skip rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Always,
    /// The board runs with the GIL off (`sys.implementation._thread == "unsafe"`).
    GilOff,
}

/// A test not to run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipRule {
    /// A test name or glob (`mutate_*`), or a path ending (`thread/mutate_*`).
    pub pattern: String,
    pub reason: String,
    pub when: When,
}

/// The skip rules run-tests applies that hold for mpfr's boards: the `thread/mutate_*` tests
/// change shared objects from several threads without a lock, which only a GIL makes safe.
pub fn builtin_skips() -> Vec<SkipRule> {
    vec![SkipRule {
        pattern: "thread/mutate_*".into(),
        reason: "mutates shared objects without a lock, which needs the GIL (the board runs with \
                 the GIL off); run-tests skips it on such ports too"
            .into(),
        when: When::GilOff,
    }]
}

/// `--skip PATTERN[=REASON]`.
pub fn parse_skip(arg: &str) -> SkipRule {
    let (pattern, reason) = match arg.split_once('=') {
        Some((p, r)) if !r.trim().is_empty() => (p, r.trim().to_string()),
        Some((p, _)) => (p, "--skip".to_string()),
        None => (arg, "--skip".to_string()),
    };
    SkipRule {
        pattern: pattern.trim().to_string(),
        reason,
        when: When::Always,
    }
}

/// Why the test `name` from `origin` (its file, for external tests) is skipped, if it is.
pub fn skip_reason(
    rules: &[SkipRule],
    name: &str,
    origin: &str,
    facts: &BoardFacts,
) -> Option<String> {
    let file = std::path::Path::new(origin);
    let parent = file
        .parent()
        .and_then(|p| p.file_name())
        .map(|p| p.to_string_lossy().into_owned());
    rules.iter().find_map(|r| {
        let applies = match r.when {
            When::Always => true,
            When::GilOff => facts.gil.as_deref() == Some("unsafe"),
        };
        let hit = match r.pattern.rsplit_once('/') {
            Some((dir, pat)) => parent.as_deref() == Some(dir) && glob_or_equal(pat, name),
            None => glob_or_equal(&r.pattern, name),
        };
        (applies && hit).then(|| r.reason.clone())
    })
}

/// A glob over the whole name (`.py` optional), or the exact name.
fn glob_or_equal(pattern: &str, name: &str) -> bool {
    let pattern = pattern.strip_suffix(".py").unwrap_or(pattern);
    if pattern.contains(['*', '?']) {
        super::suite::matches_filter(name, &[pattern.into()])
    } else {
        pattern == name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(out: &str, exp: &str) -> bool {
        apply_patterns(out, exp) == exp
    }

    #[test]
    fn only_the_listed_tests_have_pattern_exp_files() {
        assert!(has_pattern_exp(
            "/src/mpy/tests/thread/thread_exc2.py".as_ref()
        ));
        assert!(has_pattern_exp("tests/micropython/meminfo.py".as_ref()));
        assert!(!has_pattern_exp("/x/thread_exc2.py".as_ref()));
        assert!(!has_pattern_exp("/t/thread/thread_exc1.py".as_ref()));
    }

    /// Rule: `( ) [ ] { } . * + ^ $` are literal unless escaped; escaped they are regex.
    #[test]
    fn special_characters_are_literal_unless_escaped() {
        let exp = "Unhandled exception in thread started by <function f at 0x\\[0-9a-f\\]\\+>\n\
                   ValueError: \n";
        assert!(fits(
            "Unhandled exception in thread started by <function f at 0x7f3a2c>\nValueError: \n",
            exp
        ));
        assert!(!fits(
            "Unhandled exception in thread started by <function f at 0x>\nValueError: \n",
            exp
        ));
        // An unescaped `.` is a dot, not any character; an escaped one is any character.
        assert!(fits("a.b\n", "a.b\n"));
        assert!(!fits("axb\n", "a.b\n"));
        assert!(fits("axb\n", "a\\.b\n"));
        // `(`, `+` and `$` stand for themselves.
        assert!(fits("f(x+1) costs $3\n", "f(x+1) costs $3\n"));
    }

    /// Rule: a pattern covers the whole line up to its end, and `\r`s before the line end are
    /// accepted.
    #[test]
    fn patterns_cover_the_whole_line_and_accept_cr() {
        assert!(fits(
            "  File \"t.py\", line 7, in f\n",
            "  File \\.\\+, line 7, in f\n"
        ));
        assert!(fits("mem: 1234\n", "mem: \\[0-9\\]\\+\n"));
        assert!(!fits("mem: 1234 bytes\n", "mem: \\[0-9\\]\\+\n"));
        assert_eq!(apply_patterns("x\r\n", "x\n"), "x\n");
        assert_ne!(apply_patterns("y\n", "x\n"), "x\n");
    }

    /// Rule: `########` stands for any number of whole lines, none included, up to the line
    /// the next pattern matches; when that line never comes the output does not fit.
    #[test]
    fn hash_line_matches_any_number_of_lines() {
        let exp = "start\n########\nend\n";
        assert!(fits("start\nend\n", exp), "none");
        assert!(fits("start\na\nb\nc\nend\n", exp), "three");
        assert!(!fits("start\na\nb\n", exp), "the line after never comes");
        assert!(apply_patterns("start\na\n", exp).contains("######## FAIL"));
        assert!(
            !fits("start\na\nend\nmore\n", exp),
            "lines after the end still count"
        );
        // The line after `########` is a pattern too.
        assert!(fits(
            "help\nx\ny\nsize 42\n",
            "help\n########\nsize \\[0-9\\]\\+\n"
        ));
        // At the end it takes everything left.
        assert!(fits("a\nb\nc\n", "a\n########\n"));
    }

    #[test]
    fn mutate_tests_are_skipped_only_with_the_gil_off() {
        let rules = builtin_skips();
        let off = BoardFacts {
            gil: Some("unsafe".into()),
            ..Default::default()
        };
        let on = BoardFacts {
            gil: Some("GIL".into()),
            ..Default::default()
        };
        let r = skip_reason(
            &rules,
            "mutate_list",
            "/m/tests/thread/mutate_list.py",
            &off,
        );
        assert!(r.unwrap().contains("GIL"));
        assert_eq!(
            skip_reason(&rules, "mutate_list", "/m/tests/thread/mutate_list.py", &on),
            None
        );
        assert_eq!(
            skip_reason(&rules, "mutate_list", "/m/other/mutate_list.py", &off),
            None
        );
        assert_eq!(
            skip_reason(
                &rules,
                "thread_lock1",
                "/m/tests/thread/thread_lock1.py",
                &off
            ),
            None
        );
    }

    #[test]
    fn user_skips_carry_their_reason() {
        let rules = vec![
            parse_skip("stress_heap=needs 5 threads, the port has 2"),
            parse_skip("thread/thread_lock*"),
        ];
        let f = BoardFacts::default();
        assert_eq!(
            skip_reason(&rules, "stress_heap", "/t/thread/stress_heap.py", &f).as_deref(),
            Some("needs 5 threads, the port has 2")
        );
        assert_eq!(
            skip_reason(&rules, "thread_lock3", "/t/thread/thread_lock3.py", &f).as_deref(),
            Some("--skip")
        );
        assert_eq!(
            skip_reason(&rules, "thread_lock3", "/t/x/thread_lock3.py", &f),
            None
        );
        assert_eq!(
            skip_reason(&rules, "stress_heap2", "/t/stress_heap2.py", &f),
            None
        );
    }
}
