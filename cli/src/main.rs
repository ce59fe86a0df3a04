//! The `mpfr` binary: parses arguments, calls the library, renders results, owns exit codes.

mod cmd;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match cmd::Cli::try_parse() {
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
            opts = opts.width(100).terminal_links(false);
        }
        Box::new(opts.build())
    }));
}
