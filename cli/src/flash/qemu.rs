//! The QEMU "flasher": flashing the virtual board means (re)starting QEMU with the image.

use super::{Event, FlashError, Flasher, Outcome, Phase, Progress};
use crate::board::Board;
use crate::device::vboard::{Instance, StartOptions, VboardError};
use crate::image::Image;
use crate::util::lock::lock_board;

pub struct QemuFlasher {
    board: Board,
    pub options: StartOptions,
}

impl QemuFlasher {
    pub fn new(board: Board) -> Self {
        QemuFlasher {
            board,
            options: StartOptions::default(),
        }
    }
}

impl Flasher for QemuFlasher {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn flash(&mut self, image: &Image, progress: Progress<'_>) -> Result<Outcome, FlashError> {
        // Taken before looking at the record, so the note names the instance really replaced.
        let _lock = lock_board(&self.board.name, |holder| {
            progress(Event::Note {
                message: format!("waiting for {holder} to finish with {}", self.board.name),
            })
        })
        .map_err(|e| VboardError::Io {
            context: format!("cannot lock {}", self.board.name),
            source: e,
        })?;
        // Only a record whose QEMU still runs is "running": a stale record's pid may be any
        // unrelated process by now.
        if let Ok(Some(old)) = Instance::read_record(&self.board.name)
            && old.is_alive()
        {
            progress(Event::Note {
                message: format!("replacing the running instance (pid {})", old.pid),
            });
        }
        progress(Event::Start {
            phase: Phase::Boot,
            total: None,
        });
        let instance = Instance::start(&self.board, &image.path, &self.options)?;
        progress(Event::Finish { phase: Phase::Boot });
        Ok(Outcome::Booted { instance })
    }
}
