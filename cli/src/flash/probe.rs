//! The probe-rs flasher for the ARM boards: pick one debug probe, attach to the board's chip,
//! program through probe-rs's flash algorithms, read back and compare, reset and run.

use probe_rs::flashing::{
    DownloadOptions, FlashLoader, FlashProgress, ProgressEvent, ProgressOperation,
};
use probe_rs::probe::list::Lister;
use probe_rs::{MemoryInterface, Permissions, Session};

use super::{Event, FlashError, Flasher, Outcome, Phase, Progress};
use crate::image::Image;
use crate::util::probe::{
    ProbeChoiceError, ProbeEntry, ProbeSelector, is_permission_denied, list_probes, select_probe,
};

/// Said by `--dry-run` and the docs: what can be tested without a board.
pub const FAKE_PROBE_NOTE: &str = "probe-rs 0.32 ships a FakeProbe (mocked core) usable without hardware; mpfr's tests use it for probe listing, selection, opening, attaching and planning the erase/program passes, but it cannot run flash algorithms, so erasing and programming themselves are only exercised with a real probe";

/// How the probe will be chosen, in words (for the plan).
pub fn selection_rule(sel: Option<&ProbeSelector>) -> String {
    match sel {
        Some(s) => format!("the debug probe matching --probe {s}"),
        None => "the only connected debug probe (several: choose with --probe VID:PID[:SERIAL])"
            .to_string(),
    }
}

pub fn steps(chip: &str, verify: bool) -> Vec<String> {
    let mut v = vec![
        "list debug probes and select one".to_string(),
        format!("attach to {chip} over SWD (probe-rs target `{chip}`)"),
        "erase and program the flash sectors the image covers".to_string(),
    ];
    if verify {
        v.push("read every byte back and compare (a mismatch names the address)".into());
    }
    v.push("reset and run".into());
    v
}

/// Writes through probe-rs.
pub struct ProbeRsFlasher {
    board: String,
    chip: String,
    selector: Option<ProbeSelector>,
    verify: bool,
    lister: Lister,
}

impl ProbeRsFlasher {
    pub fn new(board: String, chip: String, selector: Option<ProbeSelector>, verify: bool) -> Self {
        Self::with_lister(board, chip, selector, verify, Lister::new())
    }

    /// With a custom probe lister (tests use one that hands out probe-rs's `FakeProbe`).
    pub fn with_lister(
        board: String,
        chip: String,
        selector: Option<ProbeSelector>,
        verify: bool,
        lister: Lister,
    ) -> Self {
        ProbeRsFlasher {
            board,
            chip,
            selector,
            verify,
            lister,
        }
    }

    /// Selects, opens and attaches: the part every probe-rs operation starts with.
    pub fn attach(&self, progress: Progress<'_>) -> Result<(Session, ProbeEntry), FlashError> {
        progress(Event::Start {
            phase: Phase::Connect,
            total: None,
        });
        let entry = select_probe(
            &self.board,
            &list_probes(&self.lister),
            self.selector.as_ref(),
        )?;
        let probe = self
            .lister
            .open(entry.selector().to_probe_rs())
            .map_err(|e| open_error(&entry, &e))?;
        progress(Event::Note {
            message: format!("probe {entry}"),
        });
        let session = probe
            .attach(self.chip.as_str(), Permissions::default())
            .map_err(|e| FlashError::Attach {
                chip: self.chip.clone(),
                probe: entry.to_string(),
                reason: super::tool_text(e),
            })?;
        progress(Event::Finish {
            phase: Phase::Connect,
        });
        Ok((session, entry))
    }
}

impl ProbeRsFlasher {
    /// Hard reset through the probe (`mpfr reset --hard`): attach, reset the core (on Cortex-M a
    /// system reset through AIRCR), detach so the target runs. Returns what was reset.
    pub fn reset(&self, progress: Progress<'_>) -> Result<String, FlashError> {
        let (mut session, entry) = self.attach(progress)?;
        reset_core(&mut session, &self.chip, progress)?;
        Ok(format!("{} via {entry}", self.chip))
    }
}

/// Resets core 0, reported to `progress` as the reset phase.
fn reset_core(session: &mut Session, chip: &str, progress: Progress<'_>) -> Result<(), FlashError> {
    progress(Event::Start {
        phase: Phase::Reset,
        total: None,
    });
    session
        .core(0)
        .and_then(|mut c| c.reset())
        .map_err(|e| FlashError::Reset {
            chip: chip.to_string(),
            reason: super::tool_text(e),
        })?;
    progress(Event::Finish {
        phase: Phase::Reset,
    });
    Ok(())
}

fn open_error(entry: &ProbeEntry, e: &probe_rs::probe::DebugProbeError) -> FlashError {
    if is_permission_denied(e) {
        return ProbeChoiceError::Permission {
            probe: entry.to_string(),
        }
        .into();
    }
    FlashError::ProbeOpen {
        probe: entry.to_string(),
        reason: super::tool_text(e),
    }
}

/// The first byte where `read` differs from `expected`, as an absolute address.
pub fn first_mismatch(base: u64, expected: &[u8], read: &[u8]) -> Option<(u64, u8, u8)> {
    expected
        .iter()
        .zip(read)
        .position(|(a, b)| a != b)
        .map(|i| (base + i as u64, expected[i], read[i]))
}

impl Flasher for ProbeRsFlasher {
    fn name(&self) -> &'static str {
        "probe-rs"
    }

    fn flash(&mut self, image: &Image, progress: Progress<'_>) -> Result<Outcome, FlashError> {
        let (mut session, entry) = self.attach(progress)?;
        let program_err = |reason: String| FlashError::Program {
            chip: self.chip.clone(),
            reason: super::tool_text(reason),
        };
        let mut loader: FlashLoader = session.target().flash_loader();
        for s in &image.segments {
            loader
                .add_data(s.addr, &s.data)
                .map_err(|e| program_err(e.to_string()))?;
        }
        {
            // probe-rs reports fill/erase/program progress; translate it to our events.
            let mut on_event = |e: ProgressEvent| {
                let phase = |op: ProgressOperation| match op {
                    ProgressOperation::Erase | ProgressOperation::Fill => Phase::Erase,
                    ProgressOperation::Program => Phase::Program,
                    ProgressOperation::Verify => Phase::Verify,
                };
                match e {
                    ProgressEvent::AddProgressBar { operation, total } => progress(Event::Start {
                        phase: phase(operation),
                        total,
                    }),
                    ProgressEvent::Progress {
                        operation, size, ..
                    } => progress(Event::Progress {
                        phase: phase(operation),
                        bytes: size,
                    }),
                    ProgressEvent::Finished(op) | ProgressEvent::Failed(op) => {
                        progress(Event::Finish { phase: phase(op) })
                    }
                    _ => {}
                }
            };
            let mut opts = DownloadOptions::default();
            opts.progress = FlashProgress::new(&mut on_event);
            opts.verify = false;
            loader
                .commit(&mut session, opts)
                .map_err(|e| program_err(e.to_string()))?;
        }
        if self.verify {
            progress(Event::Start {
                phase: Phase::Verify,
                total: Some(image.total_bytes()),
            });
            let mut core = session.core(0).map_err(|e| program_err(e.to_string()))?;
            for s in &image.segments {
                let mut buf = vec![0u8; s.data.len()];
                core.read(s.addr, &mut buf)
                    .map_err(|e| program_err(format!("reading back {:#010x}: {e}", s.addr)))?;
                if let Some((addr, expected, found)) = first_mismatch(s.addr, &s.data, &buf) {
                    return Err(FlashError::VerifyMismatch {
                        addr,
                        expected,
                        found,
                    });
                }
                progress(Event::Progress {
                    phase: Phase::Verify,
                    bytes: s.data.len() as u64,
                });
            }
            progress(Event::Finish {
                phase: Phase::Verify,
            });
        }
        reset_core(&mut session, &self.chip, progress)?;
        Ok(Outcome::Flashed {
            target: format!("{} via {entry}", self.chip),
            bytes: image.total_bytes(),
            verified: self.verify,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_rs::integration::FakeProbe;
    use probe_rs::probe::list::{ProbeListItem, ProbeLister};
    use probe_rs::probe::{DebugProbeError, DebugProbeInfo, DebugProbeSelector, Probe};

    #[test]
    fn mismatch_names_the_address() {
        assert_eq!(first_mismatch(0x1000_0000, &[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(
            first_mismatch(0x1000_0000, &[1, 2, 3], &[1, 9, 3]),
            Some((0x1000_0001, 2, 9))
        );
    }

    /// A lister that offers one probe and opens it as probe-rs's FakeProbe.
    #[derive(Debug)]
    struct FakeLister;

    #[derive(Debug)]
    struct FakeFactory;
    impl std::fmt::Display for FakeFactory {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fake")
        }
    }
    impl probe_rs::probe::ProbeFactory for FakeFactory {
        fn open(
            &self,
            _selector: &DebugProbeSelector,
        ) -> Result<Box<dyn probe_rs::probe::DebugProbe>, DebugProbeError> {
            Ok(Box::new(FakeProbe::with_mocked_core()))
        }
        fn list_probes(&self) -> Vec<ProbeListItem> {
            Vec::new()
        }
    }
    static FACTORY: FakeFactory = FakeFactory;

    impl ProbeLister for FakeLister {
        fn open(&self, _selector: &DebugProbeSelector) -> Result<Probe, DebugProbeError> {
            Ok(FakeProbe::with_mocked_core().into_probe())
        }
        fn list_with_access(&self, _selector: Option<&DebugProbeSelector>) -> Vec<ProbeListItem> {
            vec![ProbeListItem::accessible(DebugProbeInfo::new(
                "Fake probe",
                0x2e8a,
                0x000c,
                Some("FAKE1".into()),
                &FACTORY,
                None,
                false,
            ))]
        }
    }

    /// A flasher for `chip` that finds its probes through the fake lister.
    fn fake_flasher(board: &str, chip: &str, probe: Option<&str>) -> ProbeRsFlasher {
        ProbeRsFlasher::with_lister(
            board.into(),
            chip.into(),
            probe.map(|p| p.parse().unwrap()),
            true,
            Lister::with_lister(Box::new(FakeLister)),
        )
    }

    #[test]
    fn fake_probe_is_listed_selected_opened_and_attached() {
        // nRF51 is the chip probe-rs's own fake-probe test attaches to; the mocked core has no
        // flash algorithm runtime, so this covers list -> select -> open -> attach only.
        let f = fake_flasher("test", "nrf51822_xxAC", Some("2e8a:000c"));
        let mut events = Vec::new();
        let (mut session, entry) = f.attach(&mut |e| events.push(e)).unwrap();
        assert_eq!(entry.serial.as_deref(), Some("FAKE1"));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Note { message } if message.contains("FAKE1")))
        );
        assert!(matches!(
            events.last(),
            Some(Event::Finish {
                phase: Phase::Connect
            })
        ));
        assert!(session.target().name.eq_ignore_ascii_case("nrf51822_xxAC"));
        assert!(session.core(0).is_ok());
        drop(session);
        // A hard reset through the probe attaches and resets the core.
        let mut events = Vec::new();
        let what = f.reset(&mut |e| events.push(e)).unwrap();
        assert!(what.contains("FAKE1"), "{what}");
        assert!(events.contains(&Event::Finish {
            phase: Phase::Reset
        }));
        // The board catalog's STM32 chip attaches through the fake probe too.
        let f = fake_flasher("nucleo-f429zi", "STM32F429ZITx", None);
        let (session, _) = f.attach(&mut |_| {}).unwrap();
        assert_eq!(session.target().name, "STM32F429ZITx");
        drop(session);
        let img = crate::image::parse(
            std::path::Path::new("f.elf"),
            crate::image::tests::elf32(40, 0, &[(0x0800_0000, &[1; 64])]),
            None,
            None,
        )
        .unwrap();
        // Flashing through the fake probe gets as far as planning the erase and program passes
        // for the chip's flash algorithm, then fails cleanly where the mocked core would have
        // to run the algorithm.
        let mut f = f;
        let mut events = Vec::new();
        let e = f.flash(&img, &mut |e| events.push(e)).unwrap_err();
        assert!(matches!(e, FlashError::Program { .. }), "{e:?}");
        assert!(
            events.contains(&Event::Start {
                phase: Phase::Erase,
                total: Some(16 * 1024)
            }),
            "{events:?}"
        );
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Start {
                phase: Phase::Program,
                ..
            }
        )));
        // A selector that matches nothing on the fake lister is "no probe", with what was seen.
        let f = fake_flasher("test", "nrf51822_xxAC", Some("0483:374b"));
        let e = f.attach(&mut |_| {}).unwrap_err();
        assert!(
            matches!(e, FlashError::Probe(ProbeChoiceError::NoProbe { ref seen, .. }) if seen[0].contains("2e8a:000c:FAKE1")),
            "{e:?}"
        );
    }
}
