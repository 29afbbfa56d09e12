//! A minimal, in-memory NAS file tree with datasets, as the middleware implements it
//! (`plugins/filesystem.py`, `plugins/pool_/dataset.py`): enough for the compose deployer to
//! create bind-mount folders and datasets and to upload the files an app needs.
//!
//! The tree starts with `/`, `/mnt`, the pool `/mnt/tank` and `/mnt/.ix-apps` (mountpoints),
//! and `/var/log/app_lifecycle.log`; the only dataset is the pool's root dataset `tank`.
//! Entries are owned by root, directories 0755, files 0644 (the middleware's umask 022).
//!
//! - `filesystem.stat [path]`: relative → EINVAL "`{path}`: path must be absolute"; missing →
//!   ENOENT "Path {path} not found"; else the stat dict of the 25.04 schema.
//! - `filesystem.mkdir [{path, options: {mode="755", raise_chmod_error=true}}]`: one level, like
//!   `os.mkdir`: relative → EINVAL "…: not an absolute path."; existing → EEXIST "…: path
//!   already exists."; outside `/mnt/` → EPERM "…: path not permitted"; missing parent → the
//!   `OSError` the server passes on (ENOENT "[Errno 2] No such file or directory: '…'"); else
//!   the new entry (name, path, realpath, type, size, mode, …, `zfs_attrs: ["ARCHIVE"]`).
//! - `filesystem.file_receive [path, content, options?]` (private, but callable by a full
//!   admin only, EACCES "Not authorized" for others; allowed messages up to 2 MiB): `content` is base64; the parent folders are created
//!   like `os.makedirs`, the file written (or appended with `append`), `mode` applied; returns
//!   `true`. A file in the way of a folder → ENOTDIR, a folder at `path` → EISDIR, bad base64 →
//!   EINVAL "Incorrect padding".
//! - `pool.dataset.query [filters, options]`: the datasets (id, name, pool, type, mountpoint,
//!   locked, readonly, …).
//! - `pool.dataset.create [{name, type="FILESYSTEM", …}]`: validation errors at
//!   `pool_dataset_create.name` for a name without `/`, an invalid name, a missing parent
//!   ("Parent dataset (X) does not exist.") or an existing path ("Path /mnt/X already exists");
//!   else a dataset mounted at `/mnt/<name>` (a mountpoint folder in the tree), returned as its
//!   query entry.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::dispatch::{Ctx, MethodDef, args, handler};
use super::error::MockError;
use super::query;
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
    /// A file's bytes.
    content: Vec<u8>,
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
    /// Dataset name → mountpoint.
    datasets: BTreeMap<String, String>,
}

impl FsStore {
    pub fn new(now_ms: i64) -> Self {
        let time = now_ms as f64 / 1000.0;
        let mut inner = FsInner {
            nodes: BTreeMap::new(),
            next_inode: 2,
            datasets: BTreeMap::from([("tank".to_owned(), "/mnt/tank".to_owned())]),
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

    /// The bytes of a file, `None` when `path` is not a file.
    pub fn content(&self, path: &str) -> Option<Vec<u8>> {
        let i = lock(&self.inner);
        i.nodes
            .get(&normalize(path))
            .filter(|n| n.kind == Kind::File)
            .map(|n| n.content.clone())
    }

    /// The permission bits of a path.
    pub fn mode(&self, path: &str) -> Option<u32> {
        lock(&self.inner)
            .nodes
            .get(&normalize(path))
            .map(|n| n.perm)
    }

    /// Every dataset name, sorted.
    pub fn datasets(&self) -> Vec<String> {
        lock(&self.inner).datasets.keys().cloned().collect()
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
            content: Vec::new(),
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
        MethodDef::call("filesystem.file_receive", handler!(file_receive)),
        MethodDef::call("pool.dataset.query", handler!(dataset_query)).filterable(),
        MethodDef::call("pool.dataset.create", handler!(dataset_create)),
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
    let size = if n.kind == Kind::Directory {
        2
    } else {
        n.content.len()
    };
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

/// Is a directory.
const EISDIR: i64 = 21;

/// `filesystem.file_receive [path, content, options?]`: a small file, base64 in the message.
async fn file_receive(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    // A private method has no roles: only a full admin may call it.
    let full_admin = lock(&ctx.conn.session)
        .user
        .as_ref()
        .is_none_or(|u| u.full_admin);
    if !full_admin {
        return Err(MockError::call(errno::EACCES, "Not authorized"));
    }
    args::at_most(&p, 3)?;
    let path = args::string(&p, 0, "path")?;
    let content = args::string(&p, 1, "content")?;
    let options = args::object(&p, 2, "options")?;
    for (attr, v) in [("path", &path), ("content", &content)] {
        if v.is_empty() {
            return Err(MockError::invalid(
                Some(attr),
                "String should have at least 1 character",
                errno::EINVAL,
            ));
        }
    }
    for key in options.keys() {
        if !["append", "mode", "uid", "gid"].contains(&key.as_str()) {
            return Err(MockError::invalid(
                Some(&format!("options.{key}")),
                "Extra inputs are not permitted",
                errno::EINVAL,
            ));
        }
    }
    let append = args::flag(&options, "append", false, "options")?;
    let int = |key: &str| -> Result<Option<i64>, MockError> {
        match options.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                MockError::invalid(
                    Some(&format!("options.{key}")),
                    "Input should be a valid integer",
                    errno::EINVAL,
                )
            }),
        }
    };
    let mode = int("mode")?;
    int("uid")?;
    int("gid")?;
    // binascii.a2b_base64 skips characters outside the alphabet (newlines included).
    let cleaned: String = content
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    let bytes = B64
        .decode(cleaned.as_bytes())
        .map_err(|_| MockError::call(errno::EINVAL, "Incorrect padding"))?;
    // The middleware runs in `/`: a relative path is relative to it.
    let real = normalize(&path);
    let mut i = lock(&ctx.shared.fs.inner);
    // os.makedirs(os.path.dirname(path), exist_ok=True)
    let mut cur = String::new();
    let parts: Vec<&str> = real.split('/').filter(|s| !s.is_empty()).collect();
    let time = ctx.shared.ids.now_ms() as f64 / 1000.0;
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        cur.push('/');
        cur.push_str(part);
        match i.nodes.get(&cur).map(|n| n.kind) {
            Some(Kind::Directory) => {}
            Some(Kind::File) => {
                return Err(MockError::call(
                    ENOTDIR,
                    format!("[Errno 20] Not a directory: '{cur}'"),
                ));
            }
            None => {
                i.add(&cur, Kind::Directory, 0o755, false, time);
            }
        }
    }
    match i.nodes.get(&real).map(|n| n.kind) {
        Some(Kind::Directory) => {
            return Err(MockError::call(
                EISDIR,
                format!("[Errno 21] Is a directory: '{path}'"),
            ));
        }
        Some(Kind::File) => {}
        None => {
            i.add(&real, Kind::File, 0o644, false, time);
        }
    }
    let node = i.nodes.get_mut(&real).expect("just ensured");
    if append {
        node.content.extend_from_slice(&bytes);
    } else {
        node.content = bytes;
    }
    node.time = time;
    if let Some(m) = mode.filter(|m| *m != 0) {
        node.perm = (m as u32) & 0o7777;
    }
    Ok(Value::Bool(true))
}

/// A `pool.dataset.query` entry (the fields clients read; no space accounting).
fn dataset_entry(name: &str, mountpoint: &str) -> Value {
    let pool = name.split('/').next().unwrap_or(name);
    json!({
        "id": name,
        "type": "FILESYSTEM",
        "name": name,
        "pool": pool,
        "encrypted": false,
        "encryption_root": null,
        "key_loaded": false,
        "children": [],
        "mountpoint": mountpoint,
        "locked": false,
        "readonly": {"parsed": false, "rawvalue": "off", "value": "OFF", "source": "DEFAULT"},
        "comments": {"parsed": "", "rawvalue": "", "value": "", "source": "DEFAULT"},
        "user_properties": {},
    })
}

/// `pool.dataset.query [filters, options]`.
async fn dataset_query(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    let items = lock(&ctx.shared.fs.inner)
        .datasets
        .iter()
        .map(|(name, mp)| dataset_entry(name, mp))
        .collect();
    query::query(items, &p)
}

/// What libzfs accepts as a dataset name: `/`-separated components of letters, digits and
/// `_-.: ` (not `.` or `..`).
fn valid_dataset_name(name: &str) -> bool {
    name.split('/').all(|c| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.: ".contains(ch))
    })
}

/// `pool.dataset.create [{name, type, …}]` (a filesystem dataset mounted at `/mnt/<name>`).
async fn dataset_create(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let data = args::dict(&p, 0, "pool_dataset_create")?;
    let name = args::field_str(&data, "name", "pool_dataset_create.name")?;
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("FILESYSTEM");
    if kind != "FILESYSTEM" {
        return Err(MockError::call(
            38,
            "zvols are not implemented by the midscript mock",
        ));
    }
    let bad = |m: String| MockError::invalid(Some("pool_dataset_create.name"), &m, errno::EINVAL);
    if !name.contains('/') {
        return Err(bad("You need a full name, e.g. pool/newdataset".into()));
    }
    if !valid_dataset_name(&name) {
        return Err(bad("Invalid dataset name".into()));
    }
    if name.ends_with(' ') {
        return Err(bad(
            "Trailing spaces are not permitted in dataset names".into()
        ));
    }
    let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
    let mut i = lock(&ctx.shared.fs.inner);
    if !i.datasets.contains_key(parent) {
        return Err(bad(if parent.contains('/') {
            format!("Parent dataset ({parent}) does not exist.")
        } else {
            format!("zpool ({parent}) does not exist.")
        }));
    }
    let mountpoint = format!("/mnt/{name}");
    if i.nodes.contains_key(&mountpoint) {
        return Err(bad(format!("Path {mountpoint} already exists")));
    }
    let time = ctx.shared.ids.now_ms() as f64 / 1000.0;
    i.add(&mountpoint, Kind::Directory, 0o755, true, time);
    i.datasets.insert(name.clone(), mountpoint.clone());
    Ok(dataset_entry(&name, &mountpoint))
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
