//! Id-mapped bind mounts (config.md: the `idmap`/`ridmap` options, `mounts[].uidMappings` and
//! `gidMappings`), as runc 1.2 does them.
//!
//! The mappings are in the container's view: a file owned by `containerID` on disk shows as
//! owned by `hostID` through the mount (the maps are written as they are into the uid_map/gid_map
//! of a user namespace that is handed to mount_setattr(MOUNT_ATTR_IDMAP)). Mount mappings without
//! an option mean `idmap`; `idmap` without mount mappings takes the container's user namespace.
//!
//! Making a mount id-mapped needs CAP_SYS_ADMIN over the filesystem (the initial user namespace
//! for host filesystems) and a mount that was never attached. So the runtime makes the detached
//! trees on the host side, before it forks the init ([`detach_trees`]); the init inherits them
//! and only attaches them (move_mount) in [`super::mounts::mount_entry`], also from inside a user
//! namespace.

use super::options::parse_mount_options;
use crate::sys::mount_api::{clone_tree, mount_setattr, set_idmap};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Where the user namespace of an id-mapped mount comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Userns<'a> {
    /// A new user namespace with these maps.
    Maps {
        uid: &'a [LinuxIdMapping],
        gid: &'a [LinuxIdMapping],
    },
    /// The user namespace the container joins (`linux.namespaces[].path`).
    Path(&'a Path),
}

/// How one mount is id-mapped.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `ridmap`: the submounts of an rbind are id-mapped too.
    pub recursive: bool,
    pub userns: Userns<'a>,
}

/// Whether `m` asks for an id-mapped mount at all (an option or mount mappings).
pub fn is_idmapped(m: &Mount) -> bool {
    m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "idmap" || o == "ridmap")
}

/// The id mapping `m` asks for, `None` for an ordinary mount; an error for a request that cannot
/// be honoured (it is never silently dropped).
pub fn request<'a>(spec: &'a Spec, m: &'a Mount) -> Result<Option<Request<'a>>> {
    if !is_idmapped(m) {
        return Ok(None);
    }
    let opts = parse_mount_options(m.options().as_deref().unwrap_or(&[]))?;
    let what = match opts.idmap {
        Some(true) => "mount option \"ridmap\"",
        Some(false) => "mount option \"idmap\"",
        None => "uidMappings/gidMappings",
    };
    let typ = m.typ().as_deref().unwrap_or("");
    if typ != "bind" && !opts.is_bind() {
        bail!("{what}: only bind mounts can be id-mapped (type {typ:?}, no bind/rbind option)");
    }
    let recursive = opts.idmap == Some(true);
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        let uid = m.uid_mappings().as_deref().unwrap_or(&[]);
        let gid = m.gid_mappings().as_deref().unwrap_or(&[]);
        if uid.is_empty() || gid.is_empty() {
            bail!("uidMappings/gidMappings: an id-mapped mount needs both, each non-empty");
        }
        return Ok(Some(Request {
            recursive,
            userns: Userns::Maps { uid, gid },
        }));
    }
    // config.md: without mount mappings the container's user namespace mappings are used; with
    // neither an error MUST be returned.
    let linux = spec.linux().as_ref();
    let userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User));
    let Some(ns) = userns else {
        bail!(
            "{what} without uidMappings/gidMappings on the mount needs the container's user \
             namespace mappings, and the container has no user namespace"
        );
    };
    if let Some(p) = ns.path() {
        return Ok(Some(Request {
            recursive,
            userns: Userns::Path(p),
        }));
    }
    let uid = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or(&[]);
    let gid = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    if uid.is_empty() || gid.is_empty() {
        bail!("{what}: the container's user namespace has no linux.uidMappings/gidMappings");
    }
    Ok(Some(Request {
        recursive,
        userns: Userns::Maps { uid, gid },
    }))
}

/// Check every mount's id-mapping request (create refuses a bad config before anything exists).
pub fn validate(spec: &Spec) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        request(spec, m)
            .with_context(|| format!("mounts[{i}] (destination {:?})", m.destination()))?;
    }
    Ok(())
}

/// The detached trees of bind mounts made by the runtime, by index in `mounts`: the source
/// cloned (recursively for rbind), its bind options applied. Id-mapped mounts then get
/// MOUNT_ATTR_IDMAP (with AT_RECURSIVE for `ridmap`). With `userns` (the container gets or
/// joins a user namespace) every other bind mount is cloned here too: the runtime opens the
/// source with the host's credentials, where the container's root may not reach it (a 0700
/// directory of the host's root), as runc's mount source fds. Those the runtime cannot clone are
/// left to the init. Host side, single-threaded, before the init is forked.
pub fn detach_trees(spec: &Spec, bundle: &Path, userns: bool) -> Result<Vec<(usize, OwnedFd)>> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let what = || format!("mounts[{i}] (destination {:?})", m.destination());
        let Some(req) = request(spec, m).with_context(what)? else {
            // best effort: where the runtime cannot clone it (no open_tree, a rootless runtime
            // without CAP_SYS_ADMIN over its mount namespace, a missing source) the init looks
            // the source up itself and reports what fails, as before
            if userns && is_bind(m) {
                if let Ok(tree) = detach_one(m, None, bundle) {
                    out.push((i, tree));
                }
            }
            continue;
        };
        let tree = detach_one(m, Some(&req), bundle).with_context(what)?;
        out.push((i, tree));
    }
    Ok(out)
}

/// A bind mount by type or option (`bind`/`rbind`), whatever else its options say.
fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

fn detach_one(m: &Mount, req: Option<&Request>, bundle: &Path) -> Result<OwnedFd> {
    let opts = parse_mount_options(m.options().as_deref().unwrap_or(&[]))?;
    let src = m.source().as_ref().context("bind mount without a source")?;
    let src = if src.is_relative() {
        bundle.join(src)
    } else {
        src.clone()
    };
    let src_fd = nix::fcntl::open(
        &src,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| anyhow::anyhow!("source {src:?}: {}", std::io::Error::from(e)))?;
    let tree = clone_tree(src_fd.as_fd(), opts.is_recursive_bind())
        .with_context(|| format!("bind mount {src:?}: open_tree"))?;
    let attr = opts.bind_attr();
    if !attr.is_empty() {
        mount_setattr(tree.as_fd(), false, attr).context("mount options")?;
    }
    if !opts.rec_attr.is_empty() {
        mount_setattr(tree.as_fd(), true, opts.rec_attr).context("recursive mount options")?;
    }
    let Some(req) = req else {
        return Ok(tree);
    };
    let userns: OwnedFd = match &req.userns {
        Userns::Maps { uid, gid } => {
            let text = crate::namespaces::id_map_text;
            userns_with_maps(&text(uid), &text(gid))?
        }
        Userns::Path(p) => std::fs::File::open(p)
            .with_context(|| format!("the container's user namespace {}", p.display()))?
            .into(),
    };
    map_tree(tree.as_fd(), req.recursive, userns.as_fd(), &src)?;
    Ok(tree)
}

/// A user namespace fd whose maps are these `uid_map`/`gid_map` texts, for [`map_tree`].
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    crate::sys::userns::userns_fd(uid_map, gid_map).context("a user namespace with the mappings")
}

/// Make the detached tree `tree` (a clone of `src`, never attached) id-mapped through `userns`
/// (its submounts too with `recursive`).
pub fn map_tree(
    tree: std::os::fd::BorrowedFd<'_>,
    recursive: bool,
    userns: std::os::fd::BorrowedFd<'_>,
    src: &Path,
) -> Result<()> {
    set_idmap(tree, recursive, userns).with_context(|| {
        format!(
            "id-mapping the bind mount of {src:?} (mount_setattr MOUNT_ATTR_IDMAP{})",
            if recursive { ", recursive" } else { "" }
        )
    })
}

/// An id-mapped detached clone of the directory `src` (its own mount only, not its
/// submounts), for a caller that attaches or stacks it (`husk up --userns`'s overlay lowers).
pub fn mapped_clone(src: &Path, userns: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        src,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {}", src.display(), std::io::Error::from(e)))?;
    let tree =
        clone_tree(fd.as_fd(), false).with_context(|| format!("bind mount {src:?}: open_tree"))?;
    map_tree(tree.as_fd(), false, userns, src)?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({"ociVersion": "1.2.0", "root": {"path": "rootfs"}});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn req_err(s: &Spec) -> String {
        format!("{:#}", validate(s).unwrap_err())
    }

    #[test]
    fn requests() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // mappings without an option: idmap (not recursive)
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/a", "type": "bind", "source": "/x", "options": ["rbind"],
             "uidMappings": map, "gidMappings": map},
            {"destination": "/b", "type": "none", "source": "/x", "options": ["rbind", "ridmap"],
             "uidMappings": map, "gidMappings": map},
            {"destination": "/c", "type": "bind", "source": "/x"}]}));
        let ms = s.mounts().as_ref().unwrap();
        let r = request(&s, &ms[0]).unwrap().unwrap();
        assert!(!r.recursive);
        assert!(matches!(r.userns, Userns::Maps { uid, .. } if uid.len() == 1));
        assert!(request(&s, &ms[1]).unwrap().unwrap().recursive);
        assert_eq!(request(&s, &ms[2]).unwrap(), None);

        // no mappings: the container's user namespace, created or joined
        let s = spec(serde_json::json!({
            "mounts": [{"destination": "/a", "type": "bind", "source": "/x", "options": ["idmap"]}],
            "linux": {"namespaces": [{"type": "user"}], "uidMappings": map, "gidMappings": map}}));
        let r = request(&s, &s.mounts().as_ref().unwrap()[0])
            .unwrap()
            .unwrap();
        assert!(matches!(r.userns, Userns::Maps { uid, .. } if uid[0].host_id() == 100000));
        let s = spec(serde_json::json!({
            "mounts": [{"destination": "/a", "type": "bind", "source": "/x", "options": ["ridmap"]}],
            "linux": {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}}));
        let r = request(&s, &s.mounts().as_ref().unwrap()[0])
            .unwrap()
            .unwrap();
        assert_eq!(r.userns, Userns::Path(Path::new("/proc/1/ns/user")));
    }

    #[test]
    fn refusals_name_the_mount() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // neither mount mappings nor a user namespace: an error MUST be returned
        for o in ["idmap", "ridmap"] {
            let s = spec(serde_json::json!({"mounts": [
                {"destination": "/a", "type": "bind", "source": "/x", "options": ["bind", o]}]}));
            let e = req_err(&s);
            assert!(e.contains("mounts[0]") && e.contains(o) && e.contains("user namespace"));
        }
        // only bind mounts
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/a", "type": "bind", "source": "/x"},
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
             "uidMappings": map, "gidMappings": map}]}));
        let e = req_err(&s);
        assert!(
            e.contains("mounts[1]") && e.contains("only bind mounts"),
            "{e}"
        );
        // uid without gid mappings
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/a", "type": "bind", "source": "/x", "uidMappings": map}]}));
        let e = req_err(&s);
        assert!(e.contains("mounts[0]") && e.contains("gidMappings"), "{e}");
    }
}
