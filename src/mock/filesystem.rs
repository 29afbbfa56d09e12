//! A minimal, in-memory NAS file tree for `filesystem.stat` and `filesystem.mkdir`, as the
//! middleware implements them (`plugins/filesystem.py`): enough for the compose deployer to
//! create bind-mount directories on a dataset.
//!
//! The tree starts with `/`, `/mnt`, the pool `/mnt/tank` and `/mnt/.ix-apps` (mountpoints),
//! and `/var/log/app_lifecycle.log`. Entries are owned by root, directories 0755.
//!
//! - `filesystem.stat [path]`: relative → EINVAL "`{path}`: path must be absolute"; missing →
//!   ENOENT "Path {path} not found"; else the stat dict of the 25.04 schema.
//! - `filesystem.mkdir [{path, options: {mode="755", raise_chmod_error=true}}]`: one level, like
//!   `os.mkdir`: relative → EINVAL "…: not an absolute path."; existing → EEXIST "…: path
//!   already exists."; outside `/mnt/` → EPERM "…: path not permitted"; missing parent → the
//!   `OSError` the server passes on (ENOENT "[Errno 2] No such file or directory: '…'"); else
//!   the new entry (name, path, realpath, type, size, mode, …, `zfs_attrs: ["ARCHIVE"]`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::dispatch::{Ctx, MethodDef, args, handler};
use super::error::MockError;
use super::state::lock;
use crate::protocol::errno;

/// Not a directory.
const ENOTDIR: i64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// Permission bits.
    perm: u32,
    inode: u64,
    mountpoint: bool,
    /// Seconds since the epoch.
    time: f64,
}

/// The mock's file tree.
#[derive(Debug)]
pub(crate) struct FsStore {
    inner: Mutex<FsInner>,
}

#[derive(Debug)]
struct FsInner {
    nodes: BTreeMap<String, Node>,
    next_inode: u64,
}

impl FsStore {
    pub fn new(now_ms: i64) -> Self {
        let time = now_ms as f64 / 1000.0;
        let mut inner = FsInner {
            nodes: BTreeMap::new(),
            next_inode: 2,
        };
        for (path, kind, mountpoint) in [
            ("/", Kind::Directory, true),
            ("/mnt", Kind::Directory, false),
            ("/mnt/tank", Kind::Directory, true),
            ("/mnt/.ix-apps", Kind::Directory, true),
            ("/var", Kind::Directory, false),
            ("/var/log", Kind::Directory, false),
            ("/var/log/app_lifecycle.log", Kind::File, false),
        ] {
            inner.add(
                path,
                kind,
                if kind == Kind::File { 0o644 } else { 0o755 },
                mountpoint,
                time,
            );
        }
        FsStore {
            inner: Mutex::new(inner),
        }
    }

    /// Create a file (and its parent directories) — for tests that need one on the NAS.
    pub fn add_file(&self, path: &str) {
        let mut i = lock(&self.inner);
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for (n, part) in parts.iter().enumerate() {
            cur.push('/');
            cur.push_str(part);
            if !i.nodes.contains_key(&cur) {
                let kind = if n + 1 == parts.len() {
                    Kind::File
                } else {
                    Kind::Directory
                };
                i.add(
                    &cur,
                    kind,
                    if kind == Kind::File { 0o644 } else { 0o755 },
                    false,
                    1.0,
                );
            }
        }
    }

    /// Every path with its type (`DIRECTORY` / `FILE`), sorted.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        lock(&self.inner)
            .nodes
            .iter()
            .map(|(p, n)| (p.clone(), type_name(n.kind)))
            .collect()
    }
}

impl FsInner {
    fn add(&mut self, path: &str, kind: Kind, perm: u32, mountpoint: bool, time: f64) -> Node {
        let node = Node {
            kind,
            perm,
            inode: self.next_inode,
            mountpoint,
            time,
        };
        self.next_inode += 1;
        self.nodes.insert(path.to_owned(), node.clone());
        node
    }
}

fn type_name(k: Kind) -> &'static str {
    match k {
        Kind::Directory => "DIRECTORY",
        Kind::File => "FILE",
    }
}

/// `stx_mode`: file type bits plus permissions.
fn full_mode(n: &Node) -> u32 {
    (if n.kind == Kind::Directory {
        0o040000
    } else {
        0o100000
    }) | n.perm
}

/// `os.path` normalisation (no symlinks in the mock): `//a/./b/` → `/a/b`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

pub(crate) fn methods() -> Vec<MethodDef> {
    vec![
        MethodDef::call("filesystem.stat", handler!(stat)),
        MethodDef::call("filesystem.mkdir", handler!(mkdir)),
    ]
}

/// `filesystem.stat [path]`.
async fn stat(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let path = args::string(&p, 0, "path")?;
    if !path.starts_with('/') {
        return Err(MockError::call(
            errno::EINVAL,
            format!("{path}: path must be absolute"),
        ));
    }
    let real = normalize(&path);
    let i = lock(&ctx.shared.fs.inner);
    let n = i
        .nodes
        .get(&real)
        .ok_or_else(|| MockError::call(errno::ENOENT, format!("Path {path} not found")))?;
    let size = if n.kind == Kind::Directory { 2 } else { 0 };
    Ok(json!({
        "realpath": real,
        "type": type_name(n.kind),
        "size": size,
        "allocation_size": 512,
        "mode": full_mode(n),
        "uid": 0,
        "gid": 0,
        "atime": n.time,
        "mtime": n.time,
        "ctime": n.time,
        "btime": n.time,
        "mount_id": if real.starts_with("/mnt/tank") { 501 } else { 25 },
        "dev": if real.starts_with("/mnt/tank") { 61 } else { 25 },
        "inode": n.inode,
        "nlink": if n.kind == Kind::Directory { 2 } else { 1 },
        "is_mountpoint": n.mountpoint,
        "is_ctldir": false,
        "attributes": if n.mountpoint { json!(["MOUNT_ROOT"]) } else { json!([]) },
        "user": "root",
        "group": "root",
        "acl": false,
    }))
}

/// `filesystem.mkdir [{path, options}]` (the catalog checks the argument schema first).
async fn mkdir(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let data = args::dict(&p, 0, "filesystem_mkdir")?;
    let path = args::field_str(&data, "path", "filesystem_mkdir.path")?;
    let mode_text = data
        .get("options")
        .and_then(|o| o.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("755")
        .to_owned();
    let perm = u32::from_str_radix(&mode_text, 8).map_err(|_| {
        MockError::call(
            errno::EINVAL,
            format!("invalid literal for int() with base 8: '{mode_text}'"),
        )
    })?;
    if !path.starts_with('/') {
        return Err(MockError::call(
            errno::EINVAL,
            format!("{path}: not an absolute path."),
        ));
    }
    let real = normalize(&path);
    let mut i = lock(&ctx.shared.fs.inner);
    if i.nodes.contains_key(&real) {
        return Err(MockError::call(
            errno::EEXIST,
            format!("{path}: path already exists."),
        ));
    }
    if !real.starts_with("/mnt/") {
        return Err(MockError::call(
            errno::EPERM,
            format!("{path}: path not permitted"),
        ));
    }
    let parent = real
        .rsplit_once('/')
        .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
    match i.nodes.get(parent).map(|n| n.kind) {
        None => {
            return Err(MockError::call(
                errno::ENOENT,
                format!("[Errno 2] No such file or directory: '{path}'"),
            ));
        }
        Some(Kind::File) => {
            return Err(MockError::call(
                ENOTDIR,
                format!("[Errno 20] Not a directory: '{path}'"),
            ));
        }
        Some(Kind::Directory) => {}
    }
    let time = ctx.shared.ids.now_ms() as f64 / 1000.0;
    let n = i.add(&real, Kind::Directory, perm & 0o7777, false, time);
    Ok(json!({
        "name": real.rsplit('/').next().unwrap_or(""),
        "path": path,
        "realpath": real,
        "type": "DIRECTORY",
        "size": 2,
        "allocation_size": 512,
        "mode": full_mode(&n),
        "acl": false,
        "uid": 0,
        "gid": 0,
        "is_mountpoint": false,
        "is_ctldir": false,
        "mount_id": 501,
        "attributes": [],
        "xattrs": [],
        "zfs_attrs": ["ARCHIVE"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        assert_eq!(normalize("//mnt/./tank/a/../b/"), "/mnt/tank/b");
        assert_eq!(normalize("/"), "/");
    }
}
