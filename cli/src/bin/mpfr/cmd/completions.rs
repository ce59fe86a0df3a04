//! `mpfr completions SHELL`: shell completions, or the man page, generated from the CLI
//! definition itself (so they never drift from it).

use std::process::ExitCode;

use crate::ui::Printer;
use clap::{Args, CommandFactory, ValueEnum};

use super::{Cli, GlobalArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
    /// The man page (roff), e.g. `mpfr completions man > mpfr.1`
    Man,
}

#[derive(Debug, Args)]
pub struct Cmd {
    /// Shell to complete for, or `man` for the man page
    #[arg(value_enum)]
    shell: Target,
}

impl Cmd {
    pub fn run(self, _g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let mut cmd = Cli::command();
        let mut out: Vec<u8> = Vec::new();
        use clap_complete::Shell;
        let shell = match self.shell {
            Target::Bash => Shell::Bash,
            Target::Zsh => Shell::Zsh,
            Target::Fish => Shell::Fish,
            Target::Elvish => Shell::Elvish,
            Target::Powershell => Shell::PowerShell,
            Target::Man => {
                clap_mangen::Man::new(cmd)
                    .render(&mut out)
                    .map_err(|e| mpfr::Error::io("cannot render the man page", e))?;
                p.raw(&out)?;
                return Ok(ExitCode::SUCCESS);
            }
        };
        clap_complete::generate(shell, &mut cmd, "mpfr", &mut out);
        p.raw(&out)?;
        Ok(ExitCode::SUCCESS)
    }
}
