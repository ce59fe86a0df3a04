//! The `mpfr` binary: parses arguments, calls the library, renders results, owns exit codes.

mod cmd;
mod progress;
mod top;
mod ui;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    project_defaults();
    let cli = match cmd::Cli::try_parse_from(stress_report_alias(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors are user errors (exit 1); --help and --version succeed.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let printer = cli.global.printer();
    install_miette_hook(&cli.global);
    match cli.run(&printer) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            // Errors quote devices, files and tools: every byte of that reaches the terminal (and
            // the JSON line) escaped, however the error was built.
            let report = mpfr::util::sanitize::safe_report(miette::Report::new(e));
            if printer.json {
                // A JSON Lines reader sees the failure too, not only a person reading stderr.
                let _ = printer.json_line(&error_json(&report));
            }
            printer.error(&report);
            ExitCode::from(code)
        }
    }
}

/// `{"type":"error","message","code","help","causes"}` for `--json` runs.
fn error_json(report: &miette::Report) -> serde_json::Value {
    let causes: Vec<String> = report.chain().skip(1).map(|c| c.to_string()).collect();
    serde_json::json!({
        "type": "error",
        "message": report.to_string(),
        "code": report.code().map(|c| c.to_string()),
        "help": report.help().map(|h| h.to_string()),
        "causes": causes,
    })
}

/// A `[defaults]` table in the project's boards.toml stands in for `$MPFR_BOARD` and
/// `$MPFR_PORT` when those are unset (flags still win: clap reads the environment last).
fn project_defaults() {
    let explicit = std::env::var_os("MPFR_BOARDS").map(std::path::PathBuf::from);
    let Some((_, d)) = mpfr::project::load(explicit, std::env::current_dir().ok()) else {
        return;
    };
    for (var, value) in [("MPFR_BOARD", d.board), ("MPFR_PORT", d.port)] {
        if let Some(v) = value
            && std::env::var_os(var).is_none()
        {
            // SAFETY: first thing in main, before any thread exists.
            unsafe { std::env::set_var(var, v) };
        }
    }
}

/// `mpfr stress ... --json FILE` names the JSON Lines report (as `--jsonl FILE` does), the way
/// CI scripts write it; everywhere else, and after `stress` when no file follows, `--json` is the
/// global switch for JSON Lines on stdout.
fn stress_report_alias(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let takes_value = [
        "--boards", "--color", "--board", "-b", "--port", "-p", "--probe",
    ];
    let Some(sub) = (1..args.len())
        .find(|&i| args[i] == "stress" && !takes_value.iter().any(|f| args[i - 1] == *f))
    else {
        return args;
    };
    for i in sub + 1..args.len().saturating_sub(1) {
        let next = args[i + 1].to_string_lossy();
        if args[i] == "--json" && !next.starts_with('-') {
            args[i] = "--jsonl".into();
        }
    }
    args
}

fn install_miette_hook(g: &cmd::GlobalArgs) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let color = g.color.enabled(tty);
    let _ = miette::set_hook(Box::new(move |_| {
        let mut opts = miette::MietteHandlerOpts::new().color(color).unicode(tty);
        if !tty {
            // Logs and pipes get whole lines: a wrapped message cannot be grepped.
            opts = opts.width(usize::MAX / 4).terminal_links(false);
        }
        Box::new(opts.build())
    }));
}

#[cfg(test)]
mod tests {
    use super::{error_json, stress_report_alias};

    #[test]
    fn errors_have_a_json_line() {
        let e = mpfr::stress::StressError::NothingToRun {
            why: "--repeat 0".into(),
        };
        let v = error_json(&miette::Report::new(e));
        assert_eq!(v["type"], "error");
        assert_eq!(v["message"], "no test to run: --repeat 0");
        assert_eq!(v["code"], "mpfr::stress::nothing");
        assert!(v["help"].as_str().unwrap().contains("--list"));
    }

    fn alias(s: &str) -> String {
        let v = stress_report_alias(s.split(' ').map(Into::into).collect());
        v.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn every_duration_flag_reads_hours() {
        use clap::Parser as _;
        let parse = |s: &str| crate::cmd::Cli::try_parse_from(s.split(' ')).map(|_| ());
        // `run --timeout 1h` was refused while `stress --duration 1h` worked.
        parse("mpfr run -b host --timeout 1h x.py").expect("run --timeout 1h");
        parse("mpfr exec -b host --timeout 1h30m x").expect("exec --timeout 1h30m");
        parse("mpfr stress -b host --duration 1h").expect("stress --duration 1h");
        let e = parse("mpfr run -b host --timeout 0 x.py")
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than zero"), "{e}");
    }

    #[test]
    fn json_with_a_file_after_stress_is_the_report() {
        assert_eq!(
            alias("mpfr stress --board host --junit J --json R"),
            "mpfr stress --board host --junit J --jsonl R"
        );
        assert_eq!(
            alias("mpfr stress --board host --json"),
            "mpfr stress --board host --json"
        );
        assert_eq!(
            alias("mpfr stress --json --quiet"),
            "mpfr stress --json --quiet"
        );
        assert_eq!(
            alias("mpfr exec --board host --json x"),
            "mpfr exec --board host --json x"
        );
        assert_eq!(
            alias("mpfr --board stress exec --json x"),
            "mpfr --board stress exec --json x"
        );
    }
}
