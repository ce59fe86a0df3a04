//! `mpfr fs`: files on a board (ls, cat, cp, rm, mkdir, rmdir, tree, df, sha256sum, touch),
//! with mpremote's `:` prefix for device paths.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::ui::{Printer, Verbosity};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mpfr::fs::{DeviceFs, FsError, Kind, Progress, RemotePath, Upload};

use super::exec::ctrl_c_flag;
use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// List device folders (default: the current one); `-r` lists everything below
    Ls {
        #[command(flatten)]
        board: BoardArgs,
        /// List folders recursively
        #[arg(short, long)]
        recursive: bool,
        /// Device paths (`:lib`; the `:` is optional here)
        paths: Vec<String>,
    },
    /// Print device files on stdout, byte for byte
    Cat {
        #[command(flatten)]
        board: BoardArgs,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copy files between here and the device: `cp main.py :`, `cp -r src :app`, `cp :log.txt .`
    Cp {
        #[command(flatten)]
        board: BoardArgs,
        /// Copy folders and everything in them
        #[arg(short, long)]
        recursive: bool,
        /// Sources, then the destination; device paths start with `:`
        #[arg(required = true, num_args = 2.., value_name = "PATH")]
        paths: Vec<String>,
    },
    /// Remove device files (`-r`: folders and everything in them)
    Rm {
        #[command(flatten)]
        board: BoardArgs,
        /// Remove folders and everything in them
        #[arg(short, long)]
        recursive: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Make device folders
    Mkdir {
        #[command(flatten)]
        board: BoardArgs,
        /// Make missing parents too, and accept folders that exist
        #[arg(long)]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove empty device folders
    Rmdir {
        #[command(flatten)]
        board: BoardArgs,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Show a device folder as a tree
    Tree {
        #[command(flatten)]
        board: BoardArgs,
        path: Option<String>,
    },
    /// Size and free space of the device's filesystem
    Df {
        #[command(flatten)]
        board: BoardArgs,
        path: Option<String>,
    },
    /// sha256 of device files, computed on the device
    Sha256sum {
        #[command(flatten)]
        board: BoardArgs,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create empty device files (existing files are left as they are)
    Touch {
        #[command(flatten)]
        board: BoardArgs,
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

impl Op {
    fn board(&self) -> &BoardArgs {
        match self {
            Op::Ls { board, .. }
            | Op::Cat { board, .. }
            | Op::Cp { board, .. }
            | Op::Rm { board, .. }
            | Op::Mkdir { board, .. }
            | Op::Rmdir { board, .. }
            | Op::Tree { board, .. }
            | Op::Df { board, .. }
            | Op::Sha256sum { board, .. }
            | Op::Touch { board, .. } => board,
        }
    }
}

fn remote(arg: &str) -> mpfr::Result<RemotePath> {
    Ok(RemotePath::parse(arg)?)
}

fn remotes(args: &[String]) -> mpfr::Result<Vec<RemotePath>> {
    args.iter().map(|a| remote(a)).collect()
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let (_, mut session) = self.op.board().session(g, p)?;
        let mut fs = DeviceFs::new(&mut session).with_cancel(ctrl_c_flag());
        let r = run_op(self.op, &mut fs, p);
        drop(fs);
        session.close();
        r
    }
}

fn run_op(op: Op, fs: &mut DeviceFs<'_>, p: &Printer) -> mpfr::Result<ExitCode> {
    match op {
        Op::Ls {
            recursive, paths, ..
        } => {
            let paths = if paths.is_empty() {
                vec![RemotePath::cwd()]
            } else {
                remotes(&paths)?
            };
            let several = paths.len() > 1;
            for path in &paths {
                let entries = fs
                    .walk(path, recursive, false)?
                    .ok_or_else(|| not_found("ls", path))?;
                if several && !p.json {
                    p.line(format!("{path}:"))?;
                }
                for e in entries {
                    let name = if e.rel.is_empty() {
                        path.file_name().to_string()
                    } else {
                        e.rel.clone()
                    };
                    if p.json {
                        p.json_line(&serde_json::json!({
                            "type": "entry", "path": path.join_rel(&e.rel).display(),
                            "name": name, "kind": e.kind, "size": e.size,
                        }))?;
                    } else {
                        let slash = if e.kind == Kind::Dir { "/" } else { "" };
                        p.line(format!("{:>9} {name}{slash}", e.size))?;
                    }
                }
            }
        }
        Op::Cat { paths, .. } => {
            for path in remotes(&paths)? {
                let data = fs.read(&path)?;
                if p.json {
                    use base64::Engine as _;
                    p.json_line(&serde_json::json!({
                        "type": "file", "path": path.display(), "size": data.len(),
                        "base64": base64::engine::general_purpose::STANDARD.encode(&data),
                    }))?;
                } else {
                    p.raw(&data)?;
                }
            }
        }
        Op::Cp {
            recursive, paths, ..
        } => copy(fs, p, recursive, &paths)?,
        Op::Rm {
            recursive, paths, ..
        } => {
            for path in remotes(&paths)? {
                fs.remove(&path, recursive)?;
                done(p, "removed", &path)?;
            }
        }
        Op::Mkdir { parents, paths, .. } => {
            for path in remotes(&paths)? {
                if parents {
                    fs.mkdir_p(&path)?;
                } else {
                    fs.mkdir(&path)?;
                }
                done(p, "made", &path)?;
            }
        }
        Op::Rmdir { paths, .. } => {
            for path in remotes(&paths)? {
                fs.rmdir(&path)?;
                done(p, "removed", &path)?;
            }
        }
        Op::Touch { paths, .. } => {
            for path in remotes(&paths)? {
                fs.touch(&path)?;
                done(p, "touched", &path)?;
            }
        }
        Op::Tree { path, .. } => {
            let path = remote(path.as_deref().unwrap_or(":"))?;
            let entries = fs
                .walk(&path, true, false)?
                .ok_or_else(|| not_found("tree", &path))?;
            if p.json {
                for e in &entries {
                    p.json_line(&serde_json::json!({
                        "type": "entry", "path": path.join_rel(&e.rel).display(),
                        "kind": e.kind, "size": e.size,
                    }))?;
                }
            } else {
                p.line(path.display())?;
                for line in tree_lines(&entries) {
                    p.line(line)?;
                }
            }
        }
        Op::Df { path, .. } => {
            let path = remote(path.as_deref().unwrap_or(":"))?;
            let u = fs.usage(&path)?;
            if p.json {
                p.json_line(&serde_json::json!({
                    "type": "df", "path": path.display(), "total": u.total,
                    "used": u.total.saturating_sub(u.free), "free": u.available,
                }))?;
            } else {
                p.line(
                    mpfr::text::table(
                        &["path", "size", "used", "free", "use%"],
                        &[vec![
                            path.display(),
                            u.total.to_string(),
                            u.total.saturating_sub(u.free).to_string(),
                            u.available.to_string(),
                            format!(
                                "{}%",
                                (u.total.saturating_sub(u.free) * 100)
                                    .checked_div(u.total)
                                    .unwrap_or(0)
                            ),
                        ]],
                    )
                    .trim_end(),
                )?;
            }
        }
        Op::Sha256sum { paths, .. } => {
            for path in remotes(&paths)? {
                let h = fs.sha256(&path)?;
                if p.json {
                    p.json_line(&serde_json::json!({
                        "type": "sha256", "path": path.display(), "sha256": h,
                    }))?;
                } else {
                    p.line(format!("{h}  {path}"))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found(op: &'static str, path: &RemotePath) -> FsError {
    FsError::NotFound {
        op,
        path: path.display(),
        parent: path.parent().unwrap_or_else(RemotePath::cwd).display(),
    }
}

/// A change the user asked for: silent on stdout unless `--json`, a line with `-v`.
fn done(p: &Printer, what: &str, path: &RemotePath) -> mpfr::Result<()> {
    if p.json {
        p.json_line(&serde_json::json!({"type": what, "path": path.display()}))?;
    }
    p.verbose(format!("{what} {path}"));
    Ok(())
}

/// `├── name` lines for a recursive listing (entries sorted, parents before children).
fn tree_lines(entries: &[mpfr::fs::Entry]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let depth = e.rel.matches('/').count();
        let parent = e.rel.rsplit_once('/').map_or("", |(d, _)| d);
        let last = !entries[i + 1..].iter().any(|o| {
            o.rel.rsplit_once('/').map_or("", |(d, _)| d) == parent
                && o.rel.matches('/').count() == depth
        });
        let mut prefix = String::new();
        // For each ancestor level: a bar when that ancestor has later siblings.
        let parts: Vec<&str> = e.rel.split('/').collect();
        for lvl in 0..depth {
            let anc = parts[..=lvl].join("/");
            let anc_parent = parts[..lvl].join("/");
            let more = entries.iter().any(|o| {
                o.rel > anc
                    && !o.rel.starts_with(&format!("{anc}/"))
                    && o.rel.rsplit_once('/').map_or("", |(d, _)| d) == anc_parent
            });
            prefix.push_str(if more { "│   " } else { "    " });
        }
        let name = parts.last().copied().unwrap_or("");
        let slash = if e.kind == Kind::Dir { "/" } else { "" };
        out.push(format!(
            "{prefix}{}{name}{slash}",
            if last { "└── " } else { "├── " }
        ));
    }
    out
}

/// Progress of a copy: a bar on a terminal for transfers over 16 KiB, nothing otherwise;
/// every file with `-v`.
pub(super) struct CopyProgress<'a> {
    p: &'a Printer,
    bar: Option<ProgressBar>,
    pub files: usize,
    pub bytes: u64,
}

impl<'a> CopyProgress<'a> {
    pub(super) fn new(p: &'a Printer) -> Self {
        CopyProgress {
            p,
            bar: None,
            files: 0,
            bytes: 0,
        }
    }

    pub(super) fn event(&mut self, e: Progress) {
        match e {
            Progress::Begin { total, .. } => {
                let show = !self.p.json
                    && self.p.verbosity >= Verbosity::Normal
                    && std::io::stderr().is_terminal()
                    && total > 16 * 1024;
                if show {
                    let bar =
                        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                            .with_style(
                                ProgressStyle::with_template(
                                    "{spinner} {bytes}/{total_bytes} {wide_bar} {bytes_per_sec}",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                            );
                    self.bar = Some(bar);
                }
            }
            Progress::Bytes(n) => {
                self.bytes += n;
                if let Some(b) = &self.bar {
                    b.inc(n);
                }
            }
            Progress::File { path, size } => {
                self.files += 1;
                if self.p.verbosity >= Verbosity::Verbose {
                    let line = format!("copied {path} ({size} bytes)");
                    match &self.bar {
                        Some(b) => b.println(line),
                        None => self.p.verbose(line),
                    }
                }
            }
        }
    }

    pub(super) fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn copy(fs: &mut DeviceFs<'_>, p: &Printer, recursive: bool, args: &[String]) -> mpfr::Result<()> {
    let (srcs, dst) = args.split_at(args.len() - 1);
    let dst = &dst[0];
    let is_remote = |s: &str| s.starts_with(':');
    let start = Instant::now();
    let mut prog = CopyProgress::new(p);
    if is_remote(dst) && srcs.iter().all(|s| !is_remote(s)) {
        let dst = remote(dst)?;
        let into = dst.as_str().is_empty()
            || dst.as_str().ends_with('/')
            || srcs.len() > 1
            || fs.stat(&dst)? == Some(Kind::Dir);
        let mut dirs: Vec<RemotePath> = Vec::new();
        let mut uploads: Vec<Upload> = Vec::new();
        for s in srcs {
            let src = Path::new(s);
            let name = file_name(src)?;
            let to = if into { dst.join(&name) } else { dst.clone() };
            let meta = std::fs::metadata(src).map_err(|e| FsError::Local {
                op: "cp",
                path: s.clone(),
                source: e,
            })?;
            if meta.is_dir() {
                if !recursive {
                    return Err(mpfr::Error::usage(
                        format!("{s} is a folder"),
                        "use `mpfr fs cp -r` to copy a folder and everything in it",
                    ));
                }
                let tree = mpfr::fs::sync::scan(src)?;
                dirs.push(to.clone());
                dirs.extend(tree.dirs.iter().map(|d| to.join_rel(d)));
                for f in &tree.files {
                    uploads.push(Upload {
                        data: read_local(&f.path)?,
                        to: to.join_rel(&f.rel),
                    });
                }
            } else {
                uploads.push(Upload {
                    data: read_local(src)?,
                    to,
                });
            }
        }
        if let Some(first) = dirs.first() {
            if let Some(parent) = first.parent() {
                fs.mkdir_p(&parent)?;
            }
            fs.mkdirs(&dirs)?;
        }
        let r = fs.write(&uploads, &mut |e| prog.event(e));
        prog.finish();
        r?;
        if p.json {
            for u in &uploads {
                p.json_line(&serde_json::json!({
                    "type": "copied", "to": u.to.display(), "size": u.data.len(),
                }))?;
            }
        }
    } else if !is_remote(dst) && srcs.iter().all(|s| is_remote(s)) {
        let dst = PathBuf::from(dst);
        let into = srcs.len() > 1 || dst.is_dir();
        let mut total = 0u64;
        for s in srcs {
            let src = remote(s)?;
            let name = match src.file_name() {
                "" => "device".to_string(),
                n => n.to_string(),
            };
            let to = if into { dst.join(&name) } else { dst.clone() };
            match fs.stat(&src)? {
                None => return Err(not_found("cp", &src).into()),
                Some(Kind::File) => {
                    let data = fs.read(&src)?;
                    total += data.len() as u64;
                    write_local(&to, &data)?;
                    prog.event(Progress::File {
                        path: to.display().to_string(),
                        size: data.len() as u64,
                    });
                }
                Some(Kind::Dir) => {
                    if !recursive {
                        return Err(mpfr::Error::usage(
                            format!("{src} is a folder on the device"),
                            "use `mpfr fs cp -r` to copy a folder and everything in it",
                        ));
                    }
                    mk_local_dir(&to)?;
                    for e in fs.walk(&src, true, false)?.unwrap_or_default() {
                        let local = to.join(&e.rel);
                        match e.kind {
                            Kind::Dir => mk_local_dir(&local)?,
                            Kind::File => {
                                let data = fs.read(&src.join_rel(&e.rel))?;
                                total += data.len() as u64;
                                write_local(&local, &data)?;
                                prog.event(Progress::File {
                                    path: local.display().to_string(),
                                    size: data.len() as u64,
                                });
                            }
                        }
                        if p.json && e.kind == Kind::File {
                            p.json_line(&serde_json::json!({
                                "type": "copied", "to": local.display().to_string(), "size": e.size,
                            }))?;
                        }
                    }
                }
            }
        }
        prog.bytes = total;
    } else {
        return Err(mpfr::Error::usage(
            "cp copies between here and the device, one direction at a time",
            "mark device paths with `:`: `mpfr fs cp main.py :` (to the device) or `mpfr fs cp :main.py .` (from it)",
        ));
    }
    p.status(
        "Copied",
        format!(
            "{} file(s), {} bytes in {:.1?}",
            prog.files,
            prog.bytes,
            start.elapsed()
        ),
    );
    Ok(())
}

fn file_name(p: &Path) -> mpfr::Result<String> {
    let name = std::fs::canonicalize(p)
        .ok()
        .and_then(|c| c.file_name().map(|n| n.to_os_string()))
        .or_else(|| p.file_name().map(|n| n.to_os_string()))
        .ok_or_else(|| {
            mpfr::Error::usage(
                format!("{} has no name", p.display()),
                "name the destination",
            )
        })?;
    name.into_string().map_err(|n| {
        FsError::BadPath {
            path: n.to_string_lossy().into_owned(),
            why: "the name is not valid UTF-8, which MicroPython cannot name".into(),
        }
        .into()
    })
}

fn read_local(p: &Path) -> mpfr::Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| {
        FsError::Local {
            op: "read",
            path: p.display().to_string(),
            source: e,
        }
        .into()
    })
}

fn mk_local_dir(p: &Path) -> mpfr::Result<()> {
    std::fs::create_dir_all(p)
        .map_err(|e| mpfr::Error::io(format!("cannot make {}", p.display()), e))
}

/// Writes under a temporary name and renames, so an interrupted copy leaves no partial file.
fn write_local(to: &Path, data: &[u8]) -> mpfr::Result<()> {
    let dir = to
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let err = |e: std::io::Error| mpfr::Error::io(format!("cannot write {}", to.display()), e);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, data).map_err(err)?;
    tmp.persist(to).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpfr::fs::Entry;

    fn e(rel: &str, kind: Kind) -> Entry {
        Entry {
            rel: rel.into(),
            kind,
            size: 0,
            hash: None,
        }
    }

    #[test]
    fn tree_draws_branches() {
        let entries = [
            e("a", Kind::Dir),
            e("a/x.py", Kind::File),
            e("a/y.py", Kind::File),
            e("b.py", Kind::File),
        ];
        assert_eq!(
            tree_lines(&entries),
            ["├── a/", "│   ├── x.py", "│   └── y.py", "└── b.py"]
        );
    }
}
