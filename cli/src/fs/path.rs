//! Device paths: mpremote's `:` prefix, normalised on the host (`.`, `..`, doubled slashes) so
//! the device only ever sees plain paths, and rendered as Python string literals.

use super::FsError;

/// A normalised path on the device: `""` is the device's current directory, `"/"` its root,
/// otherwise `a/b` (relative to the current directory) or `/a/b`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePath(String);

impl RemotePath {
    /// The current directory of the device.
    pub fn cwd() -> RemotePath {
        RemotePath(String::new())
    }

    /// Parses `:path` (the `:` is optional here; the CLI decides what is remote). `..` is
    /// resolved lexically; above the root it stays at the root (as POSIX does), above the
    /// current directory of a relative path it is refused (what it names depends on the board).
    pub fn parse(arg: &str) -> Result<RemotePath, FsError> {
        let raw = arg.strip_prefix(':').unwrap_or(arg);
        if raw.contains('\0') {
            return Err(FsError::BadPath {
                path: arg.to_string(),
                why: "it contains a NUL character".into(),
            });
        }
        let absolute = raw.starts_with('/');
        let mut parts: Vec<&str> = Vec::new();
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() && !absolute {
                        return Err(FsError::BadPath {
                            path: arg.to_string(),
                            why: "`..` goes above the device's current directory".into(),
                        });
                    }
                }
                c => parts.push(c),
            }
        }
        let joined = parts.join("/");
        Ok(RemotePath(if absolute {
            format!("/{joined}")
        } else {
            joined
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/name` (name is one component, as listed by the device).
    pub fn join(&self, name: &str) -> RemotePath {
        let name = name.trim_matches('/');
        if self.0.is_empty() {
            RemotePath(name.to_string())
        } else if self.0.ends_with('/') {
            RemotePath(format!("{}{name}", self.0))
        } else {
            RemotePath(format!("{}/{name}", self.0))
        }
    }

    /// `self/rel` for a relative path of several components (`a/b/c`).
    pub fn join_rel(&self, rel: &str) -> RemotePath {
        rel.split('/')
            .filter(|c| !c.is_empty())
            .fold(self.clone(), |p, c| p.join(c))
    }

    /// The last component (empty for the current directory and the root).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory, or `None` for the current directory and the root.
    pub fn parent(&self) -> Option<RemotePath> {
        if self.0.is_empty() || self.0 == "/" {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(0) => RemotePath("/".into()),
            Some(i) => RemotePath(self.0[..i].to_string()),
            None => RemotePath::cwd(),
        })
    }

    /// Every ancestor from the top down, then the path itself (`a`, `a/b`, `a/b/c`); the root
    /// and the current directory are left out (they always exist).
    pub fn prefixes(&self) -> Vec<RemotePath> {
        let mut out = Vec::new();
        let mut cur = self.clone();
        while !cur.0.is_empty() && cur.0 != "/" {
            out.push(cur.clone());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        out.reverse();
        out
    }

    /// The path as a Python string literal.
    pub fn py(&self) -> String {
        py_str(&self.0)
    }

    /// How to show it to the user (`:a/b`, `:` for the current directory).
    pub fn display(&self) -> String {
        format!(":{}", self.0)
    }
}

impl std::fmt::Display for RemotePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, ":{}", self.0)
    }
}

/// A Python `str` literal. Non-ASCII text stays UTF-8 (MicroPython source is UTF-8); quotes,
/// backslashes and control characters are escaped.
pub fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A Python `bytes` literal of `data`, appended to `out`.
pub fn py_bytes(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"b'");
    for &b in data {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'\'');
}

/// The length [`py_bytes`] would produce, without building it.
pub fn py_bytes_len(data: &[u8]) -> usize {
    3 + data
        .iter()
        .map(|&b| match b {
            b'\\' | b'\'' | b'\n' | b'\t' | b'\r' => 2,
            0x20..=0x7e => 1,
            _ => 4,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        RemotePath::parse(s).expect("valid").as_str().to_string()
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(p(":"), "");
        assert_eq!(p(":."), "");
        assert_eq!(p(":./a//b/"), "a/b");
        assert_eq!(p(":a/../b"), "b");
        assert_eq!(p(":/"), "/");
        assert_eq!(p(":/../x"), "/x");
        assert_eq!(p(":/flash/lib/../main.py"), "/flash/main.py");
        assert_eq!(p(":dir with space/é.py"), "dir with space/é.py");
    }

    #[test]
    fn climbing_above_the_current_directory_is_refused() {
        let e = RemotePath::parse(":../x").unwrap_err();
        assert!(e.to_string().contains(":../x"), "{e}");
        assert!(RemotePath::parse(":a/../../x").is_err());
        assert!(RemotePath::parse(":a\0b").is_err());
    }

    #[test]
    fn join_parent_and_prefixes() {
        let r = RemotePath::parse(":/").unwrap();
        assert_eq!(r.join("a").as_str(), "/a");
        assert_eq!(RemotePath::cwd().join("a").as_str(), "a");
        assert_eq!(RemotePath::cwd().join_rel("a/b").as_str(), "a/b");
        let x = RemotePath::parse(":/a/b").unwrap();
        assert_eq!(x.parent().unwrap().as_str(), "/a");
        assert_eq!(x.parent().unwrap().parent().unwrap().as_str(), "/");
        assert_eq!(
            RemotePath::parse(":a").unwrap().parent(),
            Some(RemotePath::cwd())
        );
        let pre: Vec<String> = x
            .prefixes()
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        assert_eq!(pre, ["/a", "/a/b"]);
        assert_eq!(RemotePath::parse(":a/b").unwrap().file_name(), "b");
    }

    #[test]
    fn literals_escape_what_python_needs() {
        assert_eq!(py_str("a'b\\c\nd é"), "'a\\'b\\\\c\\x0ad é'");
        let mut v = Vec::new();
        py_bytes(b"a'\\\n\x00\xff~", &mut v);
        assert_eq!(v, b"b'a\\'\\\\\\n\\x00\\xff~'");
        assert_eq!(py_bytes_len(b"a'\\\n\x00\xff~"), v.len());
    }
}
