//! The `mpfr` binary: parses arguments, calls the library, renders results, owns exit codes.

mod cmd;

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
            let report = miette::Report::new(e);
            printer.error(&report);
            ExitCode::from(code)
        }
    }
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
    let color = match g.color {
        mpfr::ui::ColorChoice::Always => true,
        mpfr::ui::ColorChoice::Never => false,
        mpfr::ui::ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none(),
    };
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
    use super::stress_report_alias;

    fn alias(s: &str) -> String {
        let v = stress_report_alias(s.split(' ').map(Into::into).collect());
        v.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
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
