//! The boards file loader (`boards.toml` in a project, on top of the built-in catalog): any
//! text gives a catalog or an error whose diagnostic renders (source snippet, labels, help)
//! as the CLI shows it, never a panic.

use miette::{GraphicalReportHandler, GraphicalTheme};
use mpfr::fuzzing::load_boards_file;

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = load_boards_file(text) {
        let mut out = String::new();
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &e)
            .expect("a diagnostic renders");
        assert!(!out.is_empty());
    }
}
