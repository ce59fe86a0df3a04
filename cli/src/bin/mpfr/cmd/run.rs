//! `mpfr run`: run a Python file on a board (raw-paste, output streamed).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::ui::Printer;
use clap::Args;
use mpfr::device::Target;
use mpfr::repl::{ReplError, Session};

use super::GlobalArgs;
use super::exec::{RunArgs, execute};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    on: RunArgs,
    /// Return once the board has the script, without waiting for it to finish
    #[arg(long)]
    no_follow: bool,
    /// Send the file exactly as it is (by default comments and trailing blanks are left out;
    /// line numbers stay the same)
    #[arg(long)]
    verbatim: bool,
    /// The Python file to run
    file: PathBuf,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let board = &self.on.board.board(g)?;
        let code = std::fs::read(&self.file).map_err(|source| ReplError::ReadFile {
            path: self.file.clone(),
            source,
        })?;
        let code = if self.verbatim {
            code
        } else {
            mpfr::repl::strip::strip_comments(&code).into_owned()
        };
        let session = Session::open(board, self.on.board.port.as_deref())?;
        let mut follow = !self.no_follow;
        if !follow && matches!(session.target(), Some(Target::Process { .. })) {
            // The host board's process ends with mpfr, so the script could not keep running.
            p.warn("the host board runs only while mpfr does: following the script anyway");
            follow = true;
        }
        execute(p, &board.name, session, &code, self.on.timeout, follow)
    }
}
