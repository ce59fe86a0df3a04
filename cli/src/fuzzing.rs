//! The parsers of outside input, gathered for the fuzz targets in `cli/fuzz` (and the tests
//! that replay their regression inputs). Not an API: names here follow wherever the parsers
//! live, so the targets need no edit when a module moves.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::board::Catalog;

pub use crate::device::link::fake::{Action, FakeConfig, FakeDevice, PasteSupport};
pub use crate::device::link::{Link, LinkError};
pub use crate::device::memory::gdb::{Event as GdbEvent, PacketParser, decode_body, encode_packet};
pub use crate::device::memory::{Memory, TargetError};
pub use crate::flash::uf2::{FAMILY_RP2040, encode as uf2_encode, pages as uf2_pages};
pub use crate::image::{Format as ImageFormat, detect_format, parse as parse_image};
pub use crate::repl::strip::strip_comments;
pub use crate::repl::{Limits, Session, SessionOptions};
pub use crate::telemetry::rtt::{ElfInfo, Locator, Rtt, Verdict, validate as validate_rtt_block};
pub use crate::util::duration::{format_duration, parse_duration};
pub use crate::util::sanitize::Sanitizer;
pub use crate::util::size::Size;

/// Loads a user boards file given as text, on top of the built-in catalog, as `mpfr` loads
/// `boards.toml`; returns how many boards the catalog then has. The built-in catalog is parsed
/// once per process (it is the same every time) so that each input costs only its own parsing.
pub fn load_boards_file(text: &str) -> Result<usize, crate::board::BoardError> {
    static BUILTIN: OnceLock<Catalog> = OnceLock::new();
    let mut cat = BUILTIN
        .get_or_init(|| Catalog::builtin().expect("the built-in catalog loads"))
        .clone();
    cat.add_user_text(text, PathBuf::from("boards.toml"))?;
    Ok(cat.len())
}
