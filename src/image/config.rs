//! Image config (`application/vnd.oci.image.config.v1+json`) -> runtime `config.json`, starting
//! from `husk spec`'s default: Entrypoint + Cmd, Env, WorkingDir, User (names resolved in the
//! image's own /etc/passwd and /etc/group, read through the in-root resolver), StopSignal as the
//! `org.opencontainers.image.stopSignal` annotation `husk kill` reads, Labels as annotations,
//! Volumes and ExposedPorts kept as annotations for the tools that set those up.

use crate::rootfs::resolve;
use anyhow::{bail, Context, Result};
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";
pub const VOLUMES: &str = "org.opencontainers.image.volumes";
pub const EXPOSED_PORTS: &str = "org.opencontainers.image.exposedPorts";

/// One line of /etc/passwd or /etc/group, split on ':'.
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
}

/// Read a small file of the image (`etc/passwd`) resolved inside `root`; `None` if missing.
fn read_in_root(root: BorrowedFd<'_>, path: &str) -> Result<Option<String>> {
    let fd = match resolve::resolve(root, Path::new(path), true) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("resolve /{path} in the image")),
    };
    let p = resolve::proc_fd_path(fd.as_fd());
    let mut text = String::new();
    std::fs::File::open(std::ffi::OsStr::from_bytes(p.as_bytes()))
        .with_context(|| format!("open /{path} in the image"))?
        .take(16 << 20)
        .read_to_string(&mut text)
        .with_context(|| format!("read /{path} in the image"))?;
    Ok(Some(text))
}

#[derive(Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

/// Resolve Docker's `user[:group]` (names or numbers) against the image's passwd and group files.
pub fn resolve_user(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<User> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let entry = if user.is_empty() {
        entries(passwd).find(|e| e.get(2) == Some(&"0"))
    } else if let Ok(uid) = user.parse::<u32>() {
        entries(passwd).find(|e| e.get(2).and_then(|v| v.parse::<u32>().ok()) == Some(uid))
    } else {
        Some(entries(passwd).find(|e| e[0] == user).ok_or_else(|| {
            anyhow::anyhow!("User {spec:?}: no user {user:?} in the image's /etc/passwd")
        })?)
    };
    let uid = match user.parse::<u32>() {
        Ok(u) => u,
        Err(_) if user.is_empty() => 0,
        Err(_) => entry
            .as_ref()
            .and_then(|e| e.get(2)?.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("User {spec:?}: bad uid in the image's /etc/passwd"))?,
    };
    let name = entry.as_ref().map(|e| e[0]);
    let gid = match grp {
        None | Some("") => entry
            .as_ref()
            .and_then(|e| e.get(3)?.parse().ok())
            .unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entries(group)
                .find(|e| e[0] == g)
                .and_then(|e| e.get(2)?.parse().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("User {spec:?}: no group {g:?} in the image's /etc/group")
                })?,
        },
    };
    let mut additional_gids = Vec::new();
    if let Some(n) = name {
        for e in entries(group) {
            let member = e
                .get(3)
                .is_some_and(|m| m.split(',').any(|m| m.trim() == n));
            if let (true, Some(Ok(g))) = (member, e.get(2).map(|v| v.parse::<u32>())) {
                if g != gid && !additional_gids.contains(&g) {
                    additional_gids.push(g);
                }
            }
        }
    }
    let home = entry.and_then(|e| e.get(5).map(|h| h.to_string()));
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// The caller's `/etc/passwd` and `/etc/group` lines that `husk up --userns keep-id` adds to the
/// container (podman's `AddCurrentUserPasswdEntry`): the caller's name, gecos and group as the
/// host's user database has them, at its container ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    /// The home directory in the container (podman: the caller's own where a mount puts it
    /// there, else the working directory).
    pub home: String,
    /// The name of the caller's primary group (`None`: the host has none for its gid).
    pub group: Option<String>,
}

/// The lines `entry` adds to the image's `passwd` and `group` texts (`None` for a missing
/// file), as podman writes them: a passwd line unless the image has the name or the uid, a
/// group line (the user its member) unless it has the group's name or gid.
pub fn caller_lines(
    entry: &CallerEntry,
    passwd: Option<&str>,
    group: Option<&str>,
) -> (Option<String>, Option<String>) {
    let has = |text: Option<&str>, name: &str, id: u32| {
        entries(text.unwrap_or(""))
            .any(|e| e[0] == name || e.get(2).and_then(|v| v.parse::<u32>().ok()) == Some(id))
    };
    let p = (!has(passwd, &entry.name, entry.uid)).then(|| {
        format!(
            "{}:*:{}:{}:{}:{}:/bin/sh\n",
            entry.name, entry.uid, entry.gid, entry.gecos, entry.home
        )
    });
    let g = entry
        .group
        .as_deref()
        .filter(|g| !has(group, g, entry.gid))
        .map(|g| format!("{g}:x:{}:{}\n", entry.gid, entry.name));
    (p, g)
}

/// Append `entry`'s lines ([`caller_lines`]) to the image's `/etc/passwd` and `/etc/group` in
/// the rootfs open as `root` (resolved inside it; a missing file is made, 0644).
pub fn add_caller_entry(root: BorrowedFd<'_>, entry: &CallerEntry) -> Result<()> {
    let passwd = read_in_root(root, "etc/passwd")?;
    let group = read_in_root(root, "etc/group")?;
    let (p, g) = caller_lines(entry, passwd.as_deref(), group.as_deref());
    for (path, line, old) in [("etc/passwd", p, passwd), ("etc/group", g, group)] {
        let Some(mut line) = line else {
            continue;
        };
        if old
            .as_deref()
            .is_some_and(|t| !t.is_empty() && !t.ends_with('\n'))
        {
            line.insert(0, '\n');
        }
        let fd = resolve::create_file(
            root,
            Path::new(path),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .with_context(|| format!("make /{path} in the image"))?;
        let p = resolve::proc_fd_path(fd.as_fd());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(std::ffi::OsStr::from_bytes(p.as_bytes()))
            .with_context(|| format!("open /{path} in the image"))?;
        std::io::Write::write_all(&mut f, line.as_bytes())
            .with_context(|| format!("add {:?} to /{path} in the image", line.trim()))?;
    }
    Ok(())
}

/// The runtime spec for an image with config `cfg`, whose rootfs is open as `rootfs`.
pub fn runtime_spec(cfg: &ImageConfiguration, rootfs: BorrowedFd<'_>) -> Result<Value> {
    spec_from(cfg, rootfs, None)
}

/// [`runtime_spec`] for a user's rootless unpack: `husk spec --rootless`'s default (a user
/// namespace, no network namespace, /sys bound, no resources) mapping the caller's own ids to
/// 0, or with `layout` its uid and gid mappings (the image's owners were shifted by them), so
/// that the user runs the bundle rootless.
pub fn runtime_spec_rootless(
    cfg: &ImageConfiguration,
    rootfs: BorrowedFd<'_>,
    layout: Option<&super::userns::Layout>,
) -> Result<Value> {
    spec_from(cfg, rootfs, Some(layout))
}

fn spec_from(
    cfg: &ImageConfiguration,
    rootfs: BorrowedFd<'_>,
    rootless: Option<Option<&super::userns::Layout>>,
) -> Result<Value> {
    let mut spec: Value = serde_json::from_str(&crate::spec::default_spec_json(rootless.is_some()))
        .context("the default spec")?;
    if let Some(Some(l)) = rootless {
        let (u, g) = l.spec_mappings();
        spec["linux"]["uidMappings"] = u;
        spec["linux"]["gidMappings"] = g;
    }
    // a writable rootfs and no terminal: what an image's program expects when started from a
    // bundle (as umoci writes it); edit config.json for an interactive shell
    spec["root"]["readonly"] = json!(false);
    spec["process"]["terminal"] = json!(false);
    let Some(c) = cfg.config() else {
        return Ok(spec);
    };
    let mut args: Vec<String> = c.entrypoint().clone().unwrap_or_default();
    args.extend(c.cmd().clone().unwrap_or_default());
    if args.is_empty() {
        bail!("the image config has neither Entrypoint nor Cmd: nothing to run");
    }
    spec["process"]["args"] = json!(args);
    let mut env: Vec<String> = spec["process"]["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for e in c.env().clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|old| old.split('=').next() != Some(&key));
        env.push(e);
    }
    if let Some(w) = c.working_dir().as_deref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            bail!("the image config's WorkingDir {w:?} is not an absolute path");
        }
        spec["process"]["cwd"] = json!(w);
    }
    let user_spec = c.user().clone().unwrap_or_default();
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let group = read_in_root(rootfs, "etc/group")?;
    let user = resolve_user(&user_spec, passwd.as_deref(), group.as_deref())?;
    spec["process"]["user"] = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() {
        spec["process"]["user"]["additionalGids"] = json!(user.additional_gids);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            user.home
                .as_deref()
                .filter(|h| !h.is_empty())
                .unwrap_or("/")
        ));
    }
    spec["process"]["env"] = json!(env);
    let mut ann = serde_json::Map::new();
    if let Some(labels) = c.labels() {
        for (k, v) in labels {
            ann.insert(k.clone(), json!(v));
        }
    }
    if let Some(s) = c.stop_signal().as_deref().filter(|s| !s.is_empty()) {
        ann.insert(STOP_SIGNAL.into(), json!(s));
    }
    if let Some(v) = c.volumes().as_ref().filter(|v| !v.is_empty()) {
        ann.insert(VOLUMES.into(), json!(v.join(",")));
    }
    if let Some(p) = c.exposed_ports().as_ref().filter(|p| !p.is_empty()) {
        ann.insert(EXPOSED_PORTS.into(), json!(p.join(",")));
    }
    if !ann.is_empty() {
        spec["annotations"] = Value::Object(ann);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:web:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww:x:34:\nstaff:x:50:www,other\naudio:x:29:www\n";

    #[test]
    fn users_resolve_like_docker() {
        let r = |s| resolve_user(s, Some(PASSWD), Some(GROUP));
        assert_eq!(
            r("").unwrap(),
            User {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: Some("/root".into())
            }
        );
        let www = r("www").unwrap();
        assert_eq!(
            (www.uid, www.gid, www.additional_gids.clone()),
            (33, 34, vec![50, 29])
        );
        assert_eq!(www.home.as_deref(), Some("/var/www"));
        assert_eq!(r("33").unwrap().gid, 34);
        assert_eq!(r("www:staff").unwrap().gid, 50);
        assert_eq!(r("www:7").unwrap().gid, 7);
        let n = r("1000:1000").unwrap();
        assert_eq!((n.uid, n.gid, n.home), (1000, 1000, None));
        assert_eq!(r("1000").unwrap().gid, 0);
        let e = r("nobody").unwrap_err().to_string();
        assert!(
            e.contains("no user \"nobody\" in the image's /etc/passwd"),
            "{e}"
        );
        let e = r("www:wheel").unwrap_err().to_string();
        assert!(e.contains("no group \"wheel\""), "{e}");
        assert!(resolve_user("app", None, None).is_err());
    }

    #[test]
    fn caller_entries_as_podman_writes_them() {
        let e = CallerEntry {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            gecos: "Alice".into(),
            home: "/".into(),
            group: Some("alice".into()),
        };
        let (p, g) = caller_lines(&e, Some(PASSWD), Some(GROUP));
        assert_eq!(p.as_deref(), Some("alice:*:1000:1000:Alice:/:/bin/sh\n"));
        assert_eq!(g.as_deref(), Some("alice:x:1000:alice\n"));
        // the image has the uid, or the name: no line (nor for the group's gid or name)
        let (p, g) = caller_lines(&e, Some("u:x:1000:5::/:/bin/sh\n"), Some("g:x:1000:\n"));
        assert_eq!((p, g), (None, None));
        let (p, g) = caller_lines(&e, Some("alice:x:7:7::/:/bin/sh\n"), Some("alice:x:7:\n"));
        assert_eq!((p, g), (None, None));
        // no files, no host group
        let e = CallerEntry { group: None, ..e };
        let (p, g) = caller_lines(&e, None, None);
        assert!(p.is_some() && g.is_none());
    }

    #[test]
    fn caller_entry_is_appended_inside_the_rootfs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // no newline at the end: the entry goes on a line of its own
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh").unwrap();
        // an absolute symlink resolves inside the rootfs
        std::fs::write(root.join("etc/group.real"), "root:x:0:\n").unwrap();
        std::os::unix::fs::symlink("/etc/group.real", root.join("etc/group")).unwrap();
        let fd = resolve::open_root(&root).unwrap();
        let e = CallerEntry {
            name: "bob".into(),
            uid: 1001,
            gid: 1002,
            gecos: "".into(),
            home: "/work".into(),
            group: Some("bobs".into()),
        };
        add_caller_entry(fd.as_fd(), &e).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
            "root:x:0:0::/root:/bin/sh\nbob:*:1001:1002::/work:/bin/sh\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/group.real")).unwrap(),
            "root:x:0:\nbobs:x:1002:bob\n"
        );
        let u = resolve_user(
            "1001:1002",
            Some(&std::fs::read_to_string(root.join("etc/passwd")).unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(u.home.as_deref(), Some("/work"));
        // again: nothing more
        add_caller_entry(fd.as_fd(), &e).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("etc/passwd"))
                .unwrap()
                .lines()
                .count(),
            2
        );
    }

    #[test]
    fn passwd_is_read_inside_the_rootfs() {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host-passwd");
        std::fs::write(&host, "app:x:4242:4242::/:/bin/sh\n").unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // an absolute symlink to the host's file: resolved inside the rootfs, where it is missing
        std::os::unix::fs::symlink(&host, root.join("etc/passwd")).unwrap();
        let fd = resolve::open_root(&root).unwrap();
        let cfg: ImageConfiguration = serde_json::from_value(json!({
            "architecture": "amd64", "os": "linux",
            "config": {"User": "app", "Cmd": ["/x"]},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        let e = runtime_spec(&cfg, fd.as_fd()).unwrap_err().to_string();
        assert!(e.contains("no user \"app\""), "{e}");
        // the same file inside the rootfs is used
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::fs::copy(&host, root.join("etc/passwd")).unwrap();
        let spec = runtime_spec(&cfg, fd.as_fd()).unwrap();
        assert_eq!(spec["process"]["user"], json!({"uid": 4242, "gid": 4242}));
        assert_eq!(spec["process"]["args"], json!(["/x"]));
        assert_eq!(spec["root"]["readonly"], json!(false));
    }
}
