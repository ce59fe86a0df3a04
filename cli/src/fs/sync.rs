//! `mpfr sync`: make a device folder match a local one, copying only what changed. The device
//! hashes its files (sha256, else size + crc32); the host compares with its own files, plans,
//! and then applies the plan in a few `exec`s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DeviceFs, Entry, FsError, HashKind, Kind, PART_SUFFIX, Progress, RemotePath, Upload};

/// Names never synced (nor deleted on the device): tool state, not the program.
pub const EXCLUDED: &[&str] = &[".git", ".hg", ".svn", "__pycache__", ".DS_Store"];

fn excluded(name: &str) -> bool {
    EXCLUDED.contains(&name) || name.ends_with(PART_SUFFIX)
}

/// Sync options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Remove device files and folders under the target that are not in the local tree.
    pub delete: bool,
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// Compile `.py` files to `.mpy` with this compiler before they travel.
    pub mpy: Option<super::mpy::Compiler>,
}

/// A local file to consider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Path relative to the local root, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
}

/// The local tree: folders (parents before children) and files, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalTree {
    pub dirs: Vec<String>,
    pub files: Vec<LocalFile>,
}

/// Why a file is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    New,
    Changed,
}

/// One step of a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Make a folder on the device.
    Mkdir { path: String },
    /// Copy a file to the device.
    Copy {
        path: String,
        size: u64,
        reason: Reason,
    },
    /// Remove a device file or folder (with everything in it).
    Delete { path: String, kind: Kind },
    /// Remove a temporary file left by an interrupted copy.
    Clean { path: String },
}

/// What a sync will do (or did).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Files already identical on the device.
    pub unchanged: usize,
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub hash: Option<HashKind>,
    /// Bytes copied.
    pub bytes: u64,
    /// Local files that vanished or became unreadable during the sync (not copied).
    pub skipped: Vec<(String, String)>,
}

/// Reads the local tree under `root` (which must be a folder).
pub fn scan(root: &Path) -> Result<LocalTree, FsError> {
    let meta = std::fs::metadata(root).map_err(|e| FsError::Local {
        op: "sync",
        path: root.display().to_string(),
        source: e,
    })?;
    if !meta.is_dir() {
        return Err(FsError::Unsupported {
            what: format!("{} is a file; sync works on folders", root.display()),
            help: format!("copy one file with `mpfr fs cp {} :`", root.display()),
        });
    }
    let mut tree = LocalTree::default();
    walk_local(root, "", &mut tree)?;
    tree.dirs.sort();
    tree.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(tree)
}

fn walk_local(dir: &Path, rel: &str, tree: &mut LocalTree) -> Result<(), FsError> {
    let local = |e| FsError::Local {
        op: "read",
        path: dir.display().to_string(),
        source: e,
    };
    for ent in std::fs::read_dir(dir).map_err(local)? {
        let ent = ent.map_err(local)?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else {
            return Err(FsError::BadPath {
                path: ent.path().display().to_string(),
                why: "the name is not valid UTF-8, which MicroPython cannot name".into(),
            });
        };
        if excluded(name) {
            continue;
        }
        let sub = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        // Follows symlinks: the device has none, it gets what they point at.
        let Ok(meta) = std::fs::metadata(ent.path()) else {
            continue; // a dangling link or a file that just vanished
        };
        if meta.is_dir() {
            tree.dirs.push(sub.clone());
            walk_local(&ent.path(), &sub, tree)?;
        } else if meta.is_file() {
            tree.files.push(LocalFile {
                rel: sub,
                path: ent.path(),
                size: meta.len(),
            });
        }
    }
    Ok(())
}

/// Compares the local tree with the device's listing (`None`: the target does not exist) and
/// plans the steps. `local_hash` gives a local file's hash in the device's kind (only asked for
/// files whose size matches). A file on one side that is a folder on the other is replaced only
/// with `delete` (it removes device data).
pub fn plan(
    local: &LocalTree,
    remote: Option<&[Entry]>,
    delete: bool,
    local_hash: &mut dyn FnMut(&LocalFile) -> Option<String>,
) -> Result<Plan, FsError> {
    let mut plan = Plan::default();
    let remote: BTreeMap<&str, &Entry> = remote
        .unwrap_or_default()
        .iter()
        .filter(|e| !e.rel.is_empty())
        .map(|e| (e.rel.as_str(), e))
        .collect();
    let local_dirs: BTreeSet<&str> = local.dirs.iter().map(String::as_str).collect();
    let local_files: BTreeSet<&str> = local.files.iter().map(|f| f.rel.as_str()).collect();
    let conflict = |rel: &str, here: &str, there: &str| FsError::Unsupported {
        what: format!("`:{rel}` is a {there} on the device but a {here} here"),
        help: "pass --delete to replace it (this removes the device's copy)".into(),
    };
    // Leftovers of interrupted copies go first; they are ours.
    for (rel, e) in &remote {
        if e.kind == Kind::File && rel.ends_with(PART_SUFFIX) {
            plan.actions.push(Action::Clean {
                path: rel.to_string(),
            });
        }
    }
    // Type conflicts must be cleared before the folders and files are made.
    let mut removed: Vec<String> = Vec::new();
    for d in &local.dirs {
        if let Some(e) = remote.get(d.as_str())
            && e.kind == Kind::File
        {
            if !delete {
                return Err(conflict(d, "folder", "file"));
            }
            plan.actions.push(Action::Delete {
                path: d.clone(),
                kind: Kind::File,
            });
            removed.push(d.clone());
        }
    }
    for f in &local.files {
        if let Some(e) = remote.get(f.rel.as_str())
            && e.kind == Kind::Dir
        {
            if !delete {
                return Err(conflict(&f.rel, "file", "folder"));
            }
            plan.actions.push(Action::Delete {
                path: f.rel.clone(),
                kind: Kind::Dir,
            });
            removed.push(f.rel.clone());
        }
    }
    let gone = |rel: &str| {
        removed
            .iter()
            .any(|r| rel == r || rel.starts_with(&format!("{r}/")))
    };
    for d in &local.dirs {
        let exists = remote.get(d.as_str()).is_some_and(|e| e.kind == Kind::Dir) && !gone(d);
        if !exists {
            plan.actions.push(Action::Mkdir { path: d.clone() });
        }
    }
    for f in &local.files {
        let reason = match remote.get(f.rel.as_str()) {
            Some(e) if e.kind == Kind::File && !gone(&f.rel) => {
                let same = e.size == f.size
                    && e.hash.is_some()
                    && local_hash(f).as_deref() == e.hash.as_deref();
                if same {
                    plan.unchanged += 1;
                    continue;
                }
                Reason::Changed
            }
            _ => Reason::New,
        };
        plan.actions.push(Action::Copy {
            path: f.rel.clone(),
            size: f.size,
            reason,
        });
    }
    if delete {
        // Only the topmost extra entry of a removed subtree.
        let mut deleted: Vec<&str> = Vec::new();
        for (rel, e) in &remote {
            let keep = match e.kind {
                Kind::Dir => local_dirs.contains(rel),
                Kind::File => local_files.contains(rel),
            };
            let skip = keep
                || rel.ends_with(PART_SUFFIX)
                || rel.split('/').any(excluded)
                || deleted.iter().any(|d| rel.starts_with(&format!("{d}/")));
            if !skip {
                plan.actions.push(Action::Delete {
                    path: rel.to_string(),
                    kind: e.kind,
                });
                deleted.push(rel);
            }
        }
    }
    Ok(plan)
}

/// Syncs `local` to `remote` on the device.
pub fn run(
    fs: &mut DeviceFs<'_>,
    local: &Path,
    remote: &RemotePath,
    opts: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, FsError> {
    let mut tree = scan(local)?;
    // Kept until the uploads are read from it.
    let mut stage = None;
    let mut replaced = Vec::new();
    if let Some(compiler) = &opts.mpy {
        compiler.check_device(fs.mpy_abi()?)?;
        let dir = tempfile::Builder::new()
            .prefix("mpfr-mpy-")
            .tempdir()
            .map_err(|e| FsError::Local {
                op: "stage",
                path: std::env::temp_dir().display().to_string(),
                source: e,
            })?;
        (tree, replaced) = super::mpy::compile_tree(&tree, compiler, dir.path())?;
        stage = Some(dir);
    }
    let hash = fs.hash_kind()?;
    let listing = fs.walk(remote, true, hash != HashKind::None)?;
    if let Some(l) = &listing
        && l.iter().any(|e| e.rel.is_empty())
    {
        return Err(FsError::Unsupported {
            what: format!("{remote} is a file on the device; sync needs a folder"),
            help: format!("remove it (`mpfr fs rm {remote}`) or choose another target"),
        });
    }
    // A file unreadable here gets no hash, so it counts as changed; copying it then reports it.
    let mut plan = plan(&tree, listing.as_deref(), opts.delete, &mut |f| {
        std::fs::read(&f.path).ok().and_then(|d| hash.of(&d))
    })?;
    remove_shadowing_sources(&mut plan, listing.as_deref(), &replaced);
    let mut report = Report {
        plan,
        hash: Some(hash),
        ..Report::default()
    };
    if opts.dry_run {
        return Ok(report);
    }
    if listing.is_none() {
        fs.mkdir_p(remote)?;
    }
    let at = |rel: &str| remote.join_rel(rel);
    let mut first_deletes = Vec::new();
    let mut mkdirs = Vec::new();
    let mut copies = Vec::new();
    let mut last_deletes = Vec::new();
    let mut seen_copy = false;
    for a in &report.plan.actions {
        match a {
            Action::Clean { path } => first_deletes.push(at(path)),
            Action::Delete { path, .. } if !seen_copy && mkdirs.is_empty() => {
                first_deletes.push(at(path));
            }
            Action::Delete { path, .. } => last_deletes.push(at(path)),
            Action::Mkdir { path } => mkdirs.push(at(path)),
            Action::Copy { path, .. } => {
                seen_copy = true;
                copies.push(path.clone());
            }
        }
    }
    fs.remove_many(&first_deletes)?;
    fs.mkdirs(&mkdirs)?;
    let by_rel: BTreeMap<&str, &LocalFile> =
        tree.files.iter().map(|f| (f.rel.as_str(), f)).collect();
    let mut uploads = Vec::new();
    for rel in &copies {
        let f = by_rel[rel.as_str()];
        match std::fs::read(&f.path) {
            Ok(data) => {
                report.bytes += data.len() as u64;
                uploads.push(Upload { data, to: at(rel) });
            }
            Err(e) => report.skipped.push((rel.clone(), e.to_string())),
        }
    }
    report.plan.actions.retain(|a| match a {
        Action::Copy { path, .. } => !report.skipped.iter().any(|(r, _)| r == path),
        _ => true,
    });
    fs.write(&uploads, progress)?;
    fs.remove_many(&last_deletes)?;
    drop(stage);
    Ok(report)
}

/// MicroPython imports `x.py` before `x.mpy`: a device source of a module now sent compiled
/// would shadow it, so it goes (after the copy).
fn remove_shadowing_sources(plan: &mut Plan, remote: Option<&[Entry]>, replaced: &[String]) {
    for rel in replaced {
        let on_device = remote
            .unwrap_or_default()
            .iter()
            .any(|e| e.kind == Kind::File && &e.rel == rel);
        let planned = plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Delete { path, .. } if path == rel));
        if on_device && !planned {
            plan.actions.push(Action::Delete {
                path: rel.clone(),
                kind: Kind::File,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lf(rel: &str, size: u64) -> LocalFile {
        LocalFile {
            rel: rel.into(),
            path: PathBuf::from(rel),
            size,
        }
    }

    fn rf(rel: &str, size: u64, hash: &str) -> Entry {
        Entry {
            rel: rel.into(),
            kind: Kind::File,
            size,
            hash: Some(hash.into()),
        }
    }

    fn rd(rel: &str) -> Entry {
        Entry {
            rel: rel.into(),
            kind: Kind::Dir,
            size: 0,
            hash: None,
        }
    }

    fn hash_is_name(f: &LocalFile) -> Option<String> {
        Some(format!("h-{}", f.rel))
    }

    #[test]
    fn empty_device_gets_everything() {
        let local = LocalTree {
            dirs: vec!["lib".into()],
            files: vec![lf("lib/a.py", 3), lf("main.py", 5)],
        };
        let p = plan(&local, None, false, &mut hash_is_name).unwrap();
        assert_eq!(
            p.actions,
            vec![
                Action::Mkdir { path: "lib".into() },
                Action::Copy {
                    path: "lib/a.py".into(),
                    size: 3,
                    reason: Reason::New
                },
                Action::Copy {
                    path: "main.py".into(),
                    size: 5,
                    reason: Reason::New
                },
            ]
        );
    }

    #[test]
    fn only_changed_files_are_copied() {
        let local = LocalTree {
            dirs: vec!["lib".into()],
            files: vec![lf("lib/a.py", 3), lf("main.py", 5), lf("b.py", 7)],
        };
        let remote = vec![
            rd("lib"),
            rf("lib/a.py", 3, "h-lib/a.py"),
            rf("main.py", 5, "old"),
            rf("b.py", 6, "h-b.py"),
        ];
        let mut asked = Vec::new();
        let p = plan(&local, Some(&remote), false, &mut |f| {
            asked.push(f.rel.clone());
            hash_is_name(f)
        })
        .unwrap();
        assert_eq!(p.unchanged, 1);
        let copied: Vec<_> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Copy { path, reason, .. } => Some((path.as_str(), *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            copied,
            [("main.py", Reason::Changed), ("b.py", Reason::Changed)]
        );
        // A size difference needs no hash.
        assert!(!asked.contains(&"b.py".to_string()), "{asked:?}");
    }

    #[test]
    fn delete_removes_only_the_top_of_extra_trees_and_leaves_excluded_names() {
        let local = LocalTree {
            dirs: vec![],
            files: vec![lf("main.py", 1)],
        };
        let remote = vec![
            rf("main.py", 1, "h-main.py"),
            rd("old"),
            rf("old/x.py", 1, "x"),
            rd("old/deep"),
            rf("stale.py", 2, "s"),
            rd("__pycache__"),
            rf("main.py.mpfr-part", 1, "p"),
        ];
        let without = plan(&local, Some(&remote), false, &mut hash_is_name).unwrap();
        assert_eq!(
            without.actions,
            vec![Action::Clean {
                path: "main.py.mpfr-part".into()
            }]
        );
        let with = plan(&local, Some(&remote), true, &mut hash_is_name).unwrap();
        let deleted: Vec<_> = with
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["old", "stale.py"]);
    }

    #[test]
    fn a_file_where_a_folder_is_needs_delete() {
        let local = LocalTree {
            dirs: vec!["lib".into()],
            files: vec![lf("lib/a.py", 1)],
        };
        let remote = vec![rf("lib", 4, "x")];
        let e = plan(&local, Some(&remote), false, &mut hash_is_name).unwrap_err();
        assert!(e.to_string().contains("`:lib` is a file"), "{e}");
        let p = plan(&local, Some(&remote), true, &mut hash_is_name).unwrap();
        assert_eq!(
            p.actions[..2],
            [
                Action::Delete {
                    path: "lib".into(),
                    kind: Kind::File
                },
                Action::Mkdir { path: "lib".into() }
            ]
        );
    }

    #[test]
    fn a_device_without_hashes_gets_every_file() {
        let local = LocalTree {
            dirs: vec![],
            files: vec![lf("a.py", 1)],
        };
        let remote = vec![Entry {
            hash: None,
            ..rf("a.py", 1, "")
        }];
        let p = plan(&local, Some(&remote), false, &mut |_| None).unwrap();
        assert_eq!(p.unchanged, 0);
        assert_eq!(p.actions.len(), 1);
    }

    #[test]
    fn a_device_source_shadowing_a_compiled_module_is_removed_once() {
        let mut p = Plan::default();
        let remote = vec![rf("lib/a.py", 1, "x"), rf("b.py", 1, "y")];
        let replaced = vec![
            "lib/a.py".to_string(),
            "c.py".to_string(),
            "b.py".to_string(),
        ];
        p.actions.push(Action::Delete {
            path: "b.py".into(),
            kind: Kind::File,
        });
        remove_shadowing_sources(&mut p, Some(&remote), &replaced);
        assert_eq!(
            p.actions,
            vec![
                Action::Delete {
                    path: "b.py".into(),
                    kind: Kind::File
                },
                Action::Delete {
                    path: "lib/a.py".into(),
                    kind: Kind::File
                },
            ]
        );
    }

    #[test]
    fn scan_skips_tool_state_and_sorts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("lib/__pycache__")).unwrap();
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        std::fs::write(d.path().join("lib/b.py"), "b").unwrap();
        std::fs::write(d.path().join("lib/__pycache__/b.mpy"), "x").unwrap();
        std::fs::write(d.path().join("main.py"), "mm").unwrap();
        std::fs::write(d.path().join(".git/HEAD"), "x").unwrap();
        let t = scan(d.path()).unwrap();
        assert_eq!(t.dirs, ["lib"]);
        let files: Vec<_> = t.files.iter().map(|f| (f.rel.as_str(), f.size)).collect();
        assert_eq!(files, [("lib/b.py", 1), ("main.py", 2)]);
        assert!(scan(&d.path().join("main.py")).is_err());
        assert!(scan(&d.path().join("missing")).is_err());
    }
}
