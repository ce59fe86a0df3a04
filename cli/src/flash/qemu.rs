//! The QEMU "flasher": flashing the virtual board means (re)starting QEMU with the image.

use super::{Event, FlashError, Flasher, Outcome, Phase, Progress};
use crate::board::Board;
use crate::device::vboard::{Instance, StartOptions};
use crate::image::Image;

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
        if let Ok(Some(old)) = Instance::read_record(&self.board.name) {
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
