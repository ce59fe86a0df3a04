//! Command-line definition: one file per subcommand, each with a `Cmd` that `run`s.

mod boards;
mod build;
mod completions;
mod config;
mod crash;
mod devices;
mod exec;
mod flash;
mod fs;
mod repl;
mod reset;
mod run;
mod stop;
mod stress;
mod sync;
mod threads;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::ui::{ColorChoice, Printer, Verbosity};
use clap::{Args, Parser, Subcommand};
use mpfr::board::{Board, Catalog, CatalogSource};
use mpfr::repl::Session;

/// Developer CLI and board manager for MicroPython on FreeRTOS (SMP).
#[derive(Debug, Parser)]
#[command(
    name = "mpfr",
    version,
    propagate_version = true,
    max_term_width = 100,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Boards file to add to (or replace) the built-in catalog [default: nearest boards.toml]
    #[arg(long, global = true, env = "MPFR_BOARDS", value_name = "FILE")]
    pub boards: Option<PathBuf>,
    /// Print machine-readable JSON Lines on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Say less (errors only)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to use color
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

impl GlobalArgs {
    pub fn printer(&self) -> Printer {
        let v = if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Printer::new(v, self.json, self.color)
    }

    /// The board catalog: built-in plus the user file, if any.
    pub fn catalog(&self) -> mpfr::Result<Catalog> {
        let source = CatalogSource {
            explicit: self.boards.clone(),
            search_from: std::env::current_dir().ok(),
        };
        Ok(Catalog::load(&source)?)
    }
}

/// `--board` and friends, shared by every command that talks to a board.
#[derive(Debug, Args, Clone)]
pub struct BoardArgs {
    /// Board name from `mpfr boards` [default: a generic MicroPython board when --port is given]
    #[arg(long, short = 'b', env = "MPFR_BOARD", value_name = "NAME")]
    pub board: Option<String>,
    /// Serial port (a path such as /dev/ttyACM0 or a pty, or a USB serial number to choose
    /// among several boards) [default: found by the board's USB VID:PID, the host process,
    /// or the running virtual board's UART]
    #[arg(long, short = 'p', env = "MPFR_PORT", value_name = "PORT")]
    pub port: Option<String>,
    /// Debug probe to use, as VID:PID[:SERIAL] [default: the only one connected]
    #[arg(long, env = "MPFR_PROBE", value_name = "VID:PID[:SERIAL]")]
    pub probe: Option<String>,
}

impl BoardArgs {
    /// `--probe`, parsed.
    pub fn probe_selector(&self) -> mpfr::Result<Option<mpfr::flash::ProbeSelector>> {
        self.probe
            .as_deref()
            .map(|s| {
                s.parse().map_err(
                    |e: <mpfr::flash::ProbeSelector as std::str::FromStr>::Err| {
                        mpfr::Error::usage(
                            e.to_string(),
                            "write --probe as VID:PID or VID:PID:SERIAL, e.g. --probe 2e8a:000c",
                        )
                    },
                )
            })
            .transpose()
    }

    /// The catalog board named by `--board`; commands that need one (build, flash, threads)
    /// refuse to guess.
    pub fn name(&self) -> mpfr::Result<&str> {
        self.board.as_deref().ok_or_else(|| {
            mpfr::Error::usage(
                "no board given",
                "pass --board NAME (see `mpfr boards`) or set $MPFR_BOARD",
            )
        })
    }

    /// The catalog board named by `--board` (see [`BoardArgs::name`]).
    pub fn named(&self, g: &GlobalArgs) -> mpfr::Result<Board> {
        Ok(g.catalog()?.get(self.name()?)?.clone())
    }

    /// The board to talk to: `--board`, else with `--port` alone the generic MicroPython
    /// profile (REPL and files, like `mpremote connect PORT`).
    pub fn board(&self, g: &GlobalArgs) -> mpfr::Result<Board> {
        let cat = g.catalog()?;
        match (&self.board, &self.port) {
            (Some(b), _) => Ok(cat.get(b)?.clone()),
            (None, Some(_)) => Ok(mpfr::board::generic::micropython()),
            (None, None) => Err(mpfr::Error::usage(
                "no board given",
                "pass --board NAME (see `mpfr boards`), or --port PORT for any MicroPython board (`mpfr devices` lists them)",
            )),
        }
    }

    /// The board to talk to and a REPL session on it (said with -v).
    pub fn session(&self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<(Board, Session)> {
        let board = self.board(g)?;
        let session = self.open(&board, p)?;
        Ok((board, session))
    }

    /// A REPL session on `board`, already resolved (through `--port` when given; said with -v).
    pub fn open(&self, board: &Board, p: &Printer) -> mpfr::Result<Session> {
        let session = Session::open(board, self.port.as_deref())?;
        p.verbose(format!("board {} via {}", board.name, session.describe()));
        Ok(session)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the boards mpfr knows, or show one
    Boards(boards::Cmd),
    /// Resolve a board's configuration and write mpfr_config.h, the manifest and build fragments
    Config(config::Cmd),
    /// Build the reference firmware (FreeRTOS + telemetry agent) for a board with its config
    Build(build::Cmd),
    /// Write an image to a board (probe-rs, espflash) or boot it on the QEMU virtual board
    Flash(flash::Cmd),
    /// Stop a running virtual board
    Stop(stop::Cmd),
    /// Run Python code on a board (raw REPL) and print what it prints
    Exec(exec::Cmd),
    /// Run a Python file on a board
    Run(run::Cmd),
    /// Open an interactive REPL on a board (Ctrl-] leaves)
    Repl(repl::Cmd),
    /// What every thread of a board is doing: live view (`top`) or one table (`ls`)
    Threads(threads::Cmd),
    /// Reset a board: --soft (default), --hard, --bootloader
    Reset(reset::Cmd),
    /// List connected MicroPython boards, ESP serial bridges, debug probes and virtual boards
    Devices(devices::Cmd),
    /// Files on a board: ls, cat, cp, rm, mkdir, rmdir, tree, df, sha256sum, touch
    Fs(fs::Cmd),
    /// Make a device folder match a local one, copying only what changed
    Sync(sync::Cmd),
    /// Sync a folder on every change, soft-reset, run its main.py and stream the output
    Watch(watch::Cmd),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) or the man page
    Completions(completions::Cmd),
    /// Run thread stress and soak tests on a board; JSON Lines and JUnit reports
    Stress(stress::Cmd),
    /// Crash capture: halt a board into a bundle file (`capture`), explain one (`show`)
    Crash(crash::Cmd),
}

impl Cli {
    pub fn run(self, p: &Printer) -> mpfr::Result<ExitCode> {
        match self.command {
            Command::Boards(c) => c.run(&self.global, p),
            Command::Config(c) => c.run(&self.global, p),
            Command::Stress(c) => c.run(&self.global, p),
            Command::Crash(c) => c.run(&self.global, p),
            Command::Build(c) => c.run(&self.global, p),
            Command::Flash(c) => c.run(&self.global, p),
            Command::Stop(c) => c.run(&self.global, p),
            Command::Exec(c) => c.run(&self.global, p),
            Command::Run(c) => c.run(&self.global, p),
            Command::Repl(c) => c.run(&self.global, p),
            Command::Threads(c) => c.run(&self.global, p),
            Command::Fs(c) => c.run(&self.global, p),
            Command::Devices(c) => c.run(&self.global, p),
            Command::Reset(c) => c.run(&self.global, p),
            Command::Watch(c) => c.run(&self.global, p),
            Command::Completions(c) => c.run(&self.global, p),
            Command::Sync(c) => c.run(&self.global, p),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
