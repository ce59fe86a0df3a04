//! Durations written the way people type them: `500ms`, `30s`, `10m`, `1h30m`, `2.5s`. The one
//! parser behind every duration flag (`run`/`exec --timeout`, `stress --duration`, ...).

use std::time::Duration;

use miette::Diagnostic;

/// A duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Diagnostic)]
#[error("invalid duration {text:?}: {why}")]
#[diagnostic(
    code(mpfr::duration),
    help("write a number with a unit: 500ms, 30s, 10m, 1h30m")
)]
pub struct DurationError {
    pub text: String,
    pub why: String,
}

/// Parses a duration; a bare number means seconds. Zero is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = |why: &str| DurationError {
        text: text.to_string(),
        why: why.to_string(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| bad("it must be a finite, positive number"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(bad("expected a number before each unit"));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| bad("a number is malformed"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_end].trim();
        rest = rest[unit_end..].trim_start();
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "" => return Err(bad("a unit is missing after a number")),
            _ => return Err(bad(&format!("unknown unit {unit:?} (use ms, s, m or h)"))),
        };
        total += n * scale;
    }
    secs_to_duration(total).ok_or_else(|| bad("it is out of range"))
}

/// [`parse_duration`] for limits where zero makes no sense (a timeout).
pub fn parse_positive(text: &str) -> Result<Duration, DurationError> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(DurationError {
            text: text.to_string(),
            why: "it must be longer than zero".into(),
        });
    }
    Ok(d)
}

/// clap value parser for a duration flag: the reason and an example, no repeated value (clap
/// already names the flag and the value).
pub fn arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| format!("{}; write e.g. 500ms, 30s, 10m, 1h", e.why))
}

/// clap value parser for a timeout: as [`arg`], zero refused.
pub fn positive_arg(text: &str) -> Result<Duration, String> {
    parse_positive(text).map_err(|e| format!("{}; write e.g. 500ms, 30s, 10m, 1h", e.why))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// `1.234s`, `2m05s`, `1h02m` for people.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.2}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("10m"), Duration::from_secs(600));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("2.5s"), Duration::from_millis(2500));
        assert_eq!(d("7"), Duration::from_secs(7));
        assert_eq!(d("1.5"), Duration::from_millis(1500));
        assert_eq!(d(" 1m 5s "), Duration::from_secs(65));
        assert_eq!(d("0"), Duration::ZERO);
    }

    #[test]
    fn rejects_nonsense_with_a_reason() {
        for (s, why) in [
            ("", "empty"),
            ("s", "number"),
            ("abc", "number"),
            ("10x", "unknown unit"),
            ("10m5", "unit is missing"),
            ("1..2s", "malformed"),
            ("-3", "positive"),
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.why.contains(why), "{s:?}: {e}");
            assert_eq!(e.text, s);
        }
    }

    #[test]
    fn timeouts_take_hours_and_refuse_zero() {
        // `run --timeout 1h` used to be refused by a second, smaller parser.
        assert_eq!(positive_arg("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(positive_arg("2m"), Ok(Duration::from_secs(120)));
        let e = positive_arg("0").unwrap_err();
        assert!(e.contains("longer than zero"), "{e}");
        assert!(positive_arg("0ms").is_err());
        assert!(arg("0").is_ok());
        let e = arg("5x").unwrap_err();
        assert!(e.contains("unknown unit") && e.contains("500ms"), "{e}");
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.23s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
    }
}
