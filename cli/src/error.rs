//! The library's top-level error: every layer's typed diagnostic, plus how the binary should
//! exit for it.

use miette::Diagnostic;

use crate::board::BoardError;
use crate::builder::BuildError;
use crate::config::ConfigError;
use crate::device::link::LinkError;
use crate::device::memory::TargetError;
use crate::device::vboard::VboardError;
use crate::flash::FlashError;
use crate::fs::FsError;
use crate::image::ImageError;
use crate::repl::ReplError;
use crate::stress::StressError;
use crate::telemetry::rtt::RttError;
use crate::util::usage::Usage;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Board(#[from] BoardError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Stress(#[from] StressError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] BuildError),

    /// Flashing, images and the virtual board (boxed: these carry paths and probe lists).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Flash(Box<FlashError>),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Link(#[from] LinkError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Repl(#[from] ReplError),

    /// Files on a board (boxed: they carry paths and the REPL error).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(Box<FsError>),

    /// Target memory access (boxed like flash errors: they carry paths and addresses).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(Box<TargetError>),

    /// The RTT control block.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Rtt(Box<RttError>),

    /// Reading a board's telemetry.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Telemetry(Box<crate::telemetry::monitor::Error>),

    /// An operating-system error, with what mpfr was doing.
    #[error("{context}")]
    #[diagnostic(code(mpfr::io))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// Bad input the user can fix.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Usage(#[from] Usage),

    /// Capturing or reading a crash bundle.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Crash(Box<crate::crash::Error>),
}

impl From<crate::crash::Error> for Error {
    fn from(e: crate::crash::Error) -> Self {
        Error::Crash(Box::new(e))
    }
}

impl From<crate::telemetry::monitor::Error> for Error {
    fn from(e: crate::telemetry::monitor::Error) -> Self {
        Error::Telemetry(Box::new(e))
    }
}

impl From<TargetError> for Error {
    fn from(e: TargetError) -> Self {
        Error::Target(Box::new(e))
    }
}

impl From<FsError> for Error {
    fn from(e: FsError) -> Self {
        Error::Fs(Box::new(e))
    }
}

impl From<RttError> for Error {
    fn from(e: RttError) -> Self {
        Error::Rtt(Box::new(e))
    }
}

impl From<FlashError> for Error {
    fn from(e: FlashError) -> Self {
        Error::Flash(Box::new(e))
    }
}

impl From<ImageError> for Error {
    fn from(e: ImageError) -> Self {
        Error::Flash(Box::new(FlashError::Image(e)))
    }
}

impl From<VboardError> for Error {
    fn from(e: VboardError) -> Self {
        Error::Flash(Box::new(FlashError::Vboard(e)))
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn usage(what: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage(Usage::new(what, help))
    }

    /// 1 for problems the user can fix (input, configuration, environment), 2 for unexpected ones.
    pub fn exit_code(&self) -> u8 {
        use std::io::ErrorKind as K;
        match self {
            Error::Io { source, .. } => match source.kind() {
                K::NotFound
                | K::PermissionDenied
                | K::AlreadyExists
                | K::NotADirectory
                | K::IsADirectory
                | K::ReadOnlyFilesystem
                | K::InvalidInput
                | K::StorageFull => 1,
                _ => 2,
            },
            Error::Repl(e) => e.exit_code(),
            Error::Fs(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// True when the error is only that stdout's reader went away (`mpfr boards | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
