//! Files on a board, built only on the raw REPL's `exec` (as mpremote does): list, read, write
//! (to a temporary name, renamed when complete), remove, make directories, hash, and the
//! incremental [`sync`] of a local tree.
//!
//! A small helper library (`device.py`) is sent once per session; every operation after it is a
//! line or two of calls. Data goes to the device as `bytes` literals or base64, whichever is
//! shorter for each chunk, several files per `exec`; it comes back as base64 (hex on boards
//! without `b2a_base64`), so both directions are binary-safe over any terminal.

pub mod mpy;
pub mod path;
pub mod sync;

use std::time::Duration;

use base64::Engine as _;
use miette::Diagnostic;
use serde::Serialize;

use crate::repl::{DeviceException, Limits, ReplError, Session, Sink};

pub use path::RemotePath;

/// The helpers every operation calls, sent once per session.
const DEVICE_LIB: &str = include_str!("device.py");

/// Largest piece of file data in one `bytes` literal (the device holds it in RAM while the
/// `exec` compiles).
const CHUNK: usize = 2048;
/// Largest `exec` for writes: constants stay alive until the `exec` ends, so this bounds the
/// device RAM a copy needs.
const EXEC_BUDGET: usize = 8 * 1024;
/// Suffix of the temporary name a file is written under until it is complete.
pub const PART_SUFFIX: &str = ".mpfr-part";

/// Failures of file operations, with the device's `OSError` named and explained.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum FsError {
    #[error("bad device path `{path}`: {why}")]
    #[diagnostic(
        code(mpfr::fs::path),
        help("device paths start with `:` and use `/`, e.g. `:lib/util.py`")
    )]
    BadPath { path: String, why: String },

    #[error("{op} {path}: no such file or directory on the device")]
    #[diagnostic(
        code(mpfr::fs::not_found),
        help("list what is there with `mpfr fs ls {parent}`")
    )]
    NotFound {
        op: &'static str,
        path: String,
        parent: String,
    },

    #[error("{op} {path}: the device's filesystem is full (OSError ENOSPC){}", copied_note(*.copied))]
    #[diagnostic(
        code(mpfr::fs::full),
        help(
            "free space (`mpfr fs df`, `mpfr fs rm`) and run the command again; the file being written was removed, nothing half-written is left under its name"
        )
    )]
    NoSpace {
        op: &'static str,
        path: String,
        copied: usize,
    },

    #[error("{op} {path}: the device's filesystem is read-only (OSError EROFS)")]
    #[diagnostic(
        code(mpfr::fs::read_only),
        help(
            "the board mounted it read-only (often while it is shared as a USB drive); remount it writable in boot.py or eject the drive, then retry"
        )
    )]
    ReadOnly { op: &'static str, path: String },

    #[error("{op} {path}: {what} (OSError {name})")]
    #[diagnostic(code(mpfr::fs::os), help("{help}"))]
    Os {
        op: &'static str,
        path: String,
        what: String,
        name: String,
        help: String,
    },

    #[error("{op} {path}: the board went away{}", copied_note(*.copied))]
    #[diagnostic(
        code(mpfr::fs::disconnected),
        help(
            "the board reset or was unplugged; nothing half-written is left under a final name (a `{PART_SUFFIX}` file may remain, `mpfr sync` removes it). Run the command again: `mpfr sync` copies only what is still missing"
        )
    )]
    Disconnected {
        op: &'static str,
        path: String,
        copied: usize,
        #[source]
        source: Box<ReplError>,
    },

    #[error("{what}")]
    #[diagnostic(code(mpfr::fs::unsupported), help("{help}"))]
    Unsupported { what: String, help: String },

    #[error("{op} {path}: {source}")]
    #[diagnostic(code(mpfr::fs::local))]
    Local {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("unexpected answer from the device to {op}: {seen}")]
    #[diagnostic(
        code(mpfr::fs::protocol),
        help("is the board running MicroPython with `os` and `binascii`? Reset it and retry")
    )]
    Protocol { op: &'static str, seen: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Repl(ReplError),
}

fn copied_note(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" after {n} file(s) were copied completely")
    }
}

impl FsError {
    /// 130 after Ctrl-C, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            FsError::Repl(e) => e.exit_code(),
            FsError::Disconnected { source, .. } => source.exit_code(),
            _ => 1,
        }
    }

    /// The device's exception for `op` on `path`, named and explained.
    fn from_device(op: &'static str, path: &RemotePath, e: &DeviceException) -> FsError {
        let path_s = path.display();
        let Some(errno) = errno_of(e) else {
            return FsError::Repl(ReplError::Exception(e.clone()));
        };
        let os = |name: &str, what: &str, help: &str| FsError::Os {
            op,
            path: path_s.clone(),
            what: what.into(),
            name: name.into(),
            help: help.into(),
        };
        match errno {
            2 => FsError::NotFound {
                op,
                path: path_s,
                parent: path.parent().unwrap_or_else(RemotePath::cwd).display(),
            },
            28 => FsError::NoSpace {
                op,
                path: path_s,
                copied: 0,
            },
            30 => FsError::ReadOnly { op, path: path_s },
            17 => os(
                "EEXIST",
                "it already exists",
                "remove it first (`mpfr fs rm`), or choose another name",
            ),
            20 => os(
                "ENOTDIR",
                "a component of the path is a file, not a directory",
                "check the path with `mpfr fs tree`",
            ),
            21 => os(
                "EISDIR",
                "it is a directory",
                "use -r to act on a directory and everything in it",
            ),
            39 | 66 => os(
                "ENOTEMPTY",
                "the directory is not empty",
                "remove what is in it first, or use `mpfr fs rm -r`",
            ),
            13 | 1 => os(
                "EACCES",
                "permission denied",
                "the device refused access to it",
            ),
            12 => os(
                "ENOMEM",
                "the device ran out of memory",
                "free RAM on the board (soft reset it: `mpfr reset --soft`) and retry",
            ),
            n => os(
                &format!("errno {n}"),
                &e.message,
                "the device's message is above",
            ),
        }
    }
}

/// The errno of a device `OSError` (`[Errno 2] ENOENT`, or just `2`).
fn errno_of(e: &DeviceException) -> Option<i32> {
    if e.kind != "OSError" {
        return None;
    }
    let m = e.message.trim();
    if let Some(rest) = m.strip_prefix("[Errno ") {
        return rest.split(']').next()?.trim().parse().ok();
    }
    m.split_whitespace().next()?.parse().ok()
}

/// What a directory listing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

/// One entry of a listing or walk; `rel` is relative to the listed path (empty for the path
/// itself when it is a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub rel: String,
    pub kind: Kind,
    pub size: u64,
    /// The content hash the device computed (see [`HashKind`]), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// Which content hash the device can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    Sha256,
    /// `binascii.crc32` (with the size, good enough to detect a change).
    Crc32,
    /// Neither: every file counts as changed.
    None,
}

impl HashKind {
    /// The same hash of local data, as the device prints it.
    pub fn of(self, data: &[u8]) -> Option<String> {
        match self {
            HashKind::Sha256 => {
                use sha2::Digest as _;
                let d = sha2::Sha256::digest(data);
                Some(d.iter().map(|b| format!("{b:02x}")).collect())
            }
            HashKind::Crc32 => Some(format!("{:08x}", crc32fast::hash(data))),
            HashKind::None => None,
        }
    }
}

/// What the device's helper library found it can do.
#[derive(Debug, Clone, Copy)]
struct Caps {
    hash: HashKind,
    base64: bool,
    /// `deflate` (MicroPython 1.21+ with it enabled): chunks may travel compressed.
    deflate: bool,
}

/// Disk usage of the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub total: u64,
    pub free: u64,
    pub available: u64,
}

/// What file transfers report as they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A transfer of `total` bytes over `files` files begins.
    Begin { files: usize, total: u64 },
    /// `path` is complete on its destination.
    File { path: String, size: u64 },
    /// `bytes` more were transferred.
    Bytes(u64),
}

/// One file to write: its data and where it goes.
#[derive(Debug, Clone)]
pub struct Upload {
    pub data: Vec<u8>,
    pub to: RemotePath,
}

/// Files on one board, through its REPL session.
pub struct DeviceFs<'s> {
    session: &'s mut Session,
    caps: Option<Caps>,
    limits: Limits,
}

/// Keeps the stdout of an `exec` in full (the outcome caps what it keeps).
#[derive(Default)]
struct Collect(Vec<u8>);

impl Sink for Collect {
    fn stdout(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
}

impl<'s> DeviceFs<'s> {
    pub fn new(session: &'s mut Session) -> Self {
        DeviceFs {
            session,
            caps: None,
            limits: Limits {
                timeout: None,
                // A device that says nothing for this long while writing or hashing is stuck.
                idle: Some(Duration::from_secs(30)),
                cancel: None,
            },
        }
    }

    /// Ctrl-C (the flag) interrupts the device and ends the operation.
    pub fn with_cancel(mut self, cancel: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.limits.cancel = Some(cancel);
        self
    }

    /// The content hash this board computes (sha256, else size + crc32).
    pub fn hash_kind(&mut self) -> Result<HashKind, FsError> {
        Ok(self.caps("connect", &RemotePath::cwd())?.hash)
    }

    /// The board's `sys.implementation._mpy` (the `.mpy` version it loads), `None` when it has
    /// none.
    pub fn mpy_abi(&mut self) -> Result<Option<u32>, FsError> {
        let cwd = RemotePath::cwd();
        let out = self.call(
            "import sys\nprint('mpfr-mpy', getattr(sys.implementation, '_mpy', -1))",
            "sync",
            &cwd,
        )?;
        let text = String::from_utf8_lossy(&out);
        let n = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("mpfr-mpy "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| FsError::Protocol {
                op: "sync",
                seen: crate::repl::escape(&out),
            })?;
        Ok(u32::try_from(n).ok())
    }

    fn caps(&mut self, op: &'static str, path: &RemotePath) -> Result<Caps, FsError> {
        if let Some(c) = self.caps {
            return Ok(c);
        }
        // The library travels compressed to a board with `deflate` (less than half the
        // windows); one without it says so and gets the plain text.
        let mut out = self.raw(&packed_lib(), op, path)?;
        if String::from_utf8_lossy(&out).contains("mpfr-fs-plain") {
            out = self.raw(DEVICE_LIB.as_bytes(), op, path)?;
        }
        let text = String::from_utf8_lossy(&out);
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("mpfr-fs "))
            .ok_or_else(|| FsError::Protocol {
                op,
                seen: crate::repl::escape(&out),
            })?;
        let mut w = line.split_whitespace();
        let hash = match w.next() {
            Some("sha256") => HashKind::Sha256,
            Some("crc32") => HashKind::Crc32,
            _ => HashKind::None,
        };
        let base64 = w.next() == Some("1");
        let caps = Caps {
            hash,
            base64,
            deflate: base64 && w.next() == Some("1"),
        };
        self.caps = Some(caps);
        Ok(caps)
    }

    /// One `exec`; device `OSError`s become [`FsError`]s about `path`.
    fn raw(
        &mut self,
        code: &[u8],
        op: &'static str,
        path: &RemotePath,
    ) -> Result<Vec<u8>, FsError> {
        let mut sink = Collect::default();
        match self.session.exec(code, &self.limits, &mut sink) {
            Ok(o) => match o.exception {
                None => Ok(sink.0),
                Some(e) => Err(FsError::from_device(op, path, &e)),
            },
            Err(e) => Err(self.lost(e, op, path, 0)),
        }
    }

    fn lost(
        &mut self,
        e: ReplError,
        op: &'static str,
        path: &RemotePath,
        copied: usize,
    ) -> FsError {
        if matches!(
            e,
            ReplError::Disconnected { .. }
                | ReplError::Link(crate::device::link::LinkError::Disconnected { .. })
        ) {
            // A new connection needs the helpers again.
            self.caps = None;
            FsError::Disconnected {
                op,
                path: path.display(),
                copied,
                source: Box::new(e),
            }
        } else {
            FsError::Repl(e)
        }
    }

    fn call(
        &mut self,
        code: &str,
        op: &'static str,
        path: &RemotePath,
    ) -> Result<Vec<u8>, FsError> {
        self.caps(op, path)?;
        self.raw(code.as_bytes(), op, path)
    }

    /// The entry at `path` (`None` when nothing is there).
    pub fn stat(&mut self, path: &RemotePath) -> Result<Option<Kind>, FsError> {
        let out = self.call(
            &format!(
                "s=_ST({})\nprint('none' if s is None else ('d' if s[0]&0x4000 else 'f'))",
                path.py()
            ),
            "stat",
            path,
        )?;
        match String::from_utf8_lossy(&out).trim() {
            "none" => Ok(None),
            "d" => Ok(Some(Kind::Dir)),
            "f" => Ok(Some(Kind::File)),
            _ => Err(FsError::Protocol {
                op: "stat",
                seen: crate::repl::escape(&out),
            }),
        }
    }

    /// Lists `path`: a directory's entries (all levels with `recursive`), or the file itself
    /// (one entry with an empty `rel`). `None` when nothing is at `path`.
    pub fn walk(
        &mut self,
        path: &RemotePath,
        recursive: bool,
        hashes: bool,
    ) -> Result<Option<Vec<Entry>>, FsError> {
        let out = self.call(
            &format!(
                "_L({},{},{})",
                path.py(),
                u8::from(hashes),
                u8::from(recursive)
            ),
            "list",
            path,
        )?;
        parse_walk(&out, hashes).map_err(|seen| FsError::Protocol { op: "list", seen })
    }

    /// The content of a file.
    pub fn read(&mut self, path: &RemotePath) -> Result<Vec<u8>, FsError> {
        let caps = self.caps("read", path)?;
        let out = self.call(&format!("_R({})", path.py()), "read", path)?;
        let text: Vec<u8> = out
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let bad = |what: String| FsError::Protocol {
            op: "read",
            seen: what,
        };
        if caps.base64 {
            base64::engine::general_purpose::STANDARD
                .decode(&text)
                .map_err(|e| bad(e.to_string()))
        } else {
            unhex(&text).ok_or_else(|| bad("not hex".into()))
        }
    }

    /// Writes files, several per `exec`, each under a temporary name renamed when complete.
    /// Returns how many were written; on an error, that many (in order) are complete and the
    /// rest are not on the device under their names.
    pub fn write(
        &mut self,
        files: &[Upload],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<usize, FsError> {
        let Some(first) = files.first() else {
            return Ok(0);
        };
        let caps = self.caps("write", &first.to.clone())?;
        progress(Progress::Begin {
            files: files.len(),
            total: files.iter().map(|f| f.data.len() as u64).sum(),
        });
        let mut done = 0usize;
        let mut code: Vec<u8> = Vec::with_capacity(EXEC_BUDGET + CHUNK * 4);
        let mut bytes = 0u64;
        // The first file with data in the batch being built (it may have been opened by an
        // earlier `exec`): the one that failed when the batch completed none.
        let mut first = 0usize;
        for (i, f) in files.iter().enumerate() {
            code.extend_from_slice(format!("_O({})\n", f.to.py()).as_bytes());
            for chunk in f.data.chunks(CHUNK) {
                encode_write(chunk, caps, &mut code);
                bytes += chunk.len() as u64;
                if code.len() >= EXEC_BUDGET {
                    self.flush_writes(&mut code, files, first, &mut done, progress)?;
                    progress(Progress::Bytes(std::mem::take(&mut bytes)));
                    first = i;
                }
            }
            code.extend_from_slice(format!("_C({i})\n").as_bytes());
            if code.len() >= EXEC_BUDGET {
                self.flush_writes(&mut code, files, first, &mut done, progress)?;
                progress(Progress::Bytes(std::mem::take(&mut bytes)));
                first = i + 1;
            }
        }
        if !code.is_empty() {
            self.flush_writes(&mut code, files, first, &mut done, progress)?;
            progress(Progress::Bytes(bytes));
        }
        Ok(done)
    }

    fn flush_writes(
        &mut self,
        code: &mut Vec<u8>,
        files: &[Upload],
        first: usize,
        done: &mut usize,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), FsError> {
        let mut sink = Collect::default();
        let r = self.session.exec(code, &self.limits, &mut sink);
        code.clear();
        // Each completed file printed its index.
        let mut failing = first;
        for i in String::from_utf8_lossy(&sink.0)
            .split_whitespace()
            .filter_map(|w| w.parse::<usize>().ok())
        {
            if let Some(f) = files.get(i) {
                *done += 1;
                failing = i + 1;
                progress(Progress::File {
                    path: f.to.display(),
                    size: f.data.len() as u64,
                });
            }
        }
        let at = &files[failing.min(files.len() - 1)].to;
        match r {
            Ok(o) => match o.exception {
                None => Ok(()),
                Some(e) => Err(match FsError::from_device("write", at, &e) {
                    FsError::NoSpace { op, path, .. } => FsError::NoSpace {
                        op,
                        path,
                        copied: *done,
                    },
                    other => other,
                }),
            },
            Err(e) => Err(self.lost(e, "write", at, *done)),
        }
    }

    /// Makes a directory and its missing parents.
    pub fn mkdir_p(&mut self, path: &RemotePath) -> Result<(), FsError> {
        let pre = path.prefixes();
        if pre.is_empty() {
            return Ok(());
        }
        let code: String = pre.iter().map(|p| format!("_M({})\n", p.py())).collect();
        self.call(&code, "mkdir", path).map(drop)
    }

    /// Makes folders (each one's parent must exist or come earlier), in one `exec`.
    pub fn mkdirs(&mut self, paths: &[RemotePath]) -> Result<(), FsError> {
        let Some(first) = paths.first() else {
            return Ok(());
        };
        let code: String = paths.iter().map(|p| format!("_M({})\n", p.py())).collect();
        self.call(&code, "mkdir", first).map(drop)
    }

    /// Removes files and folders (with everything in them), in one `exec`.
    pub fn remove_many(&mut self, paths: &[RemotePath]) -> Result<(), FsError> {
        let Some(first) = paths.first() else {
            return Ok(());
        };
        let code: String = paths
            .iter()
            .map(|p| format!("_RM({},1)\n", p.py()))
            .collect();
        self.call(&code, "rm", first).map(drop)
    }

    /// Makes one directory (its parent must exist; an existing one is an error).
    pub fn mkdir(&mut self, path: &RemotePath) -> Result<(), FsError> {
        self.call(&format!("os.mkdir({})", path.py()), "mkdir", path)
            .map(drop)
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, path: &RemotePath) -> Result<(), FsError> {
        self.call(&format!("os.rmdir({})", path.py()), "rmdir", path)
            .map(drop)
    }

    /// Removes a file, or with `recursive` a directory and everything in it.
    pub fn remove(&mut self, path: &RemotePath, recursive: bool) -> Result<(), FsError> {
        if path.as_str().is_empty() || path.as_str() == "/" {
            return Err(FsError::BadPath {
                path: path.display(),
                why: "refusing to remove the device's current directory or root".into(),
            });
        }
        self.call(
            &format!("_RM({},{})", path.py(), u8::from(recursive)),
            "rm",
            path,
        )
        .map(drop)
    }

    /// Creates an empty file, or leaves an existing one as it is.
    pub fn touch(&mut self, path: &RemotePath) -> Result<(), FsError> {
        self.call(&format!("open({},'ab').close()", path.py()), "touch", path)
            .map(drop)
    }

    /// The sha256 of a file, computed on the device.
    pub fn sha256(&mut self, path: &RemotePath) -> Result<String, FsError> {
        if self.hash_kind()? != HashKind::Sha256 {
            return Err(FsError::Unsupported {
                what: "this board's MicroPython has no hashlib.sha256".into(),
                help: "compare files with `mpfr fs cat` and a local sha256sum instead".into(),
            });
        }
        let out = self.call(&format!("print(_S({}))", path.py()), "sha256sum", path)?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Size and free space of the filesystem holding `path`.
    pub fn usage(&mut self, path: &RemotePath) -> Result<Usage, FsError> {
        let out = self.call(&format!("_DF({})", path.py()), "df", path)?;
        let text = String::from_utf8_lossy(&out);
        let n: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match n[..] {
            [total, free, available] => Ok(Usage {
                total,
                free,
                available,
            }),
            _ => Err(FsError::Protocol {
                op: "df",
                seen: text.into_owned(),
            }),
        }
    }
}

/// The helper library as a bootstrap that inflates and runs it (`wbits` 12: the library is
/// under 4 KiB, so no back-reference reaches further).
fn packed_lib() -> Vec<u8> {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = z.write_all(DEVICE_LIB.as_bytes());
    let packed = z.finish().unwrap_or_default();
    format!(
        "try:\n import deflate,io\n from binascii import a2b_base64\nexcept ImportError:\n deflate=None\n print('mpfr-fs-plain')\nif deflate:\n exec(deflate.DeflateIO(io.BytesIO(a2b_base64('{}')),deflate.RAW,12).read())\n",
        base64::engine::general_purpose::STANDARD.encode(packed)
    )
    .into_bytes()
}

/// `_W(...)` for one chunk: a bytes literal, base64, or deflate + base64, whichever is
/// shortest. (Chunks are at most [`CHUNK`] bytes, so a raw deflate stream of one never refers
/// further back than the device's 2 KiB window, `wbits` 11.)
fn encode_write(chunk: &[u8], caps: Caps, code: &mut Vec<u8>) {
    use base64::engine::general_purpose::STANDARD;
    let lit = path::py_bytes_len(chunk);
    let b64 = chunk.len().div_ceil(3) * 4 + 5;
    let packed = if caps.deflate {
        use std::io::Write as _;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = z.write_all(chunk);
        z.finish().ok()
    } else {
        None
    };
    let zlen = packed
        .as_ref()
        .map_or(usize::MAX, |z| z.len().div_ceil(3) * 4 + 5);
    code.extend_from_slice(b"_W(");
    if zlen < lit && zlen < b64 {
        code.extend_from_slice(b"_Z('");
        code.extend_from_slice(STANDARD.encode(packed.unwrap_or_default()).as_bytes());
        code.extend_from_slice(b"')");
    } else if caps.base64 && b64 < lit {
        code.extend_from_slice(b"_B('");
        code.extend_from_slice(STANDARD.encode(chunk).as_bytes());
        code.extend_from_slice(b"')");
    } else {
        path::py_bytes(chunk, code);
    }
    code.extend_from_slice(b")\n");
}

fn unhex(t: &[u8]) -> Option<Vec<u8>> {
    if !t.len().is_multiple_of(2) {
        return None;
    }
    t.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// Parses `_L` output: `none`, or lines `kind size hash hexname`.
fn parse_walk(out: &[u8], hashes: bool) -> Result<Option<Vec<Entry>>, String> {
    let text = String::from_utf8_lossy(out);
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == "none" {
            return Ok(None);
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let (kind, size, hash) = match w[..] {
            [k, s, h, ..] => (k, s, h),
            _ => return Err(line.to_string()),
        };
        let kind = match kind {
            "d" => Kind::Dir,
            "f" => Kind::File,
            _ => return Err(line.to_string()),
        };
        let rel = match w.get(3) {
            Some(h) => {
                let bytes = unhex(h.as_bytes()).ok_or_else(|| line.to_string())?;
                String::from_utf8(bytes).map_err(|_| line.to_string())?
            }
            None => String::new(),
        };
        entries.push(Entry {
            rel,
            kind,
            size: size.parse().map_err(|_| line.to_string())?,
            hash: (hashes && kind == Kind::File && hash != "-").then(|| hash.to_string()),
        });
    }
    Ok(Some(entries))
}

#[cfg(test)]
mod tests;
