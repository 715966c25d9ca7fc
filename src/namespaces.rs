//! Namespaces: which to create, which to join by path, and user-namespace id maps.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

pub fn clone_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The name of a namespace type under /proc/PID/ns (also CRIU's, runc's configs.NsName).
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join: its type and an open fd of its nsfs file.
pub struct JoinNs {
    pub typ: LinuxNamespaceType,
    pub flag: libc::c_int,
    pub fd: OwnedFd,
}

/// The namespace plan of a container.
pub struct Plan {
    /// CLONE_NEW* flags of the namespaces to create.
    pub new_flags: libc::c_int,
    /// Namespaces to join, user namespace first.
    pub join: Vec<JoinNs>,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut new_flags = 0;
        let mut join = Vec::new();
        let list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        for (i, ns) in list.iter().enumerate() {
            let flag = clone_flag(ns.typ());
            match ns.path() {
                None => new_flags |= flag,
                Some(p) => {
                    let f = File::open(p).with_context(|| {
                        format!("linux.namespaces[{i}].path: open {}", p.display())
                    })?;
                    check_nsfs(&f, ns.typ())
                        .with_context(|| format!("linux.namespaces[{i}].path: {}", p.display()))?;
                    join.push(JoinNs {
                        typ: ns.typ(),
                        flag,
                        fd: f.into(),
                    });
                }
            }
        }
        join.sort_by_key(|j| j.typ != LinuxNamespaceType::User);
        Ok(Plan { new_flags, join })
    }

    pub fn creates(&self, flag: libc::c_int) -> bool {
        self.new_flags & flag != 0
    }

    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join.iter().any(|j| j.typ == t)
    }
}

/// A namespace path must be an nsfs file of the right type (NS_GET_NSTYPE).
fn check_nsfs(f: &File, t: LinuxNamespaceType) -> Result<()> {
    let st = nix::sys::statfs::fstatfs(f.as_fd()).context("fstatfs")?;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    if st.filesystem_type().0 as i64 != NSFS_MAGIC {
        bail!("not a namespace file (expected a file under /proc/PID/ns or a bind mount of one)");
    }
    let got = crate::sys::ns_get_type(f.as_fd()).context("NS_GET_NSTYPE")?;
    if got != clone_flag(t) {
        bail!("the namespace file is not a {:?} namespace", t);
    }
    Ok(())
}

/// The text of a uid_map/gid_map file.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    let mut s = String::new();
    for m in maps {
        s.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    s
}

/// True when `maps` maps exactly the one id `own` (what an unprivileged writer may write).
fn only_own(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.host_id() == own && m.size() == 1)
}

/// Have the setuid `tool` (newuidmap/newgidmap, package uidmap) write `maps` for `pid`.
fn map_with_helper(
    tool: &str,
    field: &str,
    subids: &str,
    pid: i32,
    maps: &[LinuxIdMapping],
) -> Result<()> {
    let path = crate::rootless::find_id_map_tool(tool).with_context(|| {
        format!(
            "{field}: mapping more than the caller's own id needs {tool} (package uidmap), which is not installed or not in $PATH"
        )
    })?;
    let mut cmd = std::process::Command::new(&path);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let o = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("{field}: run {}", path.display()))?;
    if !o.status.success() {
        bail!(
            "{field}: {tool} refused {:?} (are the host ids in the caller's {subids} ranges?): {}",
            id_map_text(maps).trim().replace('\n', ", "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

/// Write the id maps of the process `pid` (host side, after it created its user namespace).
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().context("linux: missing")?;
    let uid = linux.uid_mappings().as_deref().unwrap_or(&[]);
    let gid = linux.gid_mappings().as_deref().unwrap_or(&[]);
    let euid = nix::unistd::geteuid();
    if !euid.is_root()
        && (!only_own(uid, euid.as_raw()) || !only_own(gid, nix::unistd::getegid().as_raw()))
    {
        // The kernel takes more than the writer's own id only from a writer with CAP_SETUID
        // over the parent namespace: the setuid helpers check the caller's /etc/subuid and
        // /etc/subgid ranges and write the maps, as runc does for such a rootless container
        // (the only way an unprivileged user gets them; see user_namespaces(7)).
        map_with_helper("newuidmap", "linux.uidMappings", "/etc/subuid", pid, uid)?;
        return map_with_helper("newgidmap", "linux.gidMappings", "/etc/subgid", pid, gid);
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), id_map_text(uid))
        .context("linux.uidMappings: write uid_map")?;
    if !nix::unistd::geteuid().is_root() {
        // Without CAP_SETGID over the parent namespace the kernel takes a gid_map only once
        // setgroups(2) is denied in the new namespace (user_namespaces(7)); as runc does for a
        // rootless container. The container then cannot change its supplementary groups.
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .context("rootless: write deny to the user namespace's setgroups")?;
    }
    std::fs::write(format!("/proc/{pid}/gid_map"), id_map_text(gid))
        .context("linux.gidMappings: write gid_map")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .unwrap()
    }

    #[test]
    fn only_the_callers_own_id() {
        assert!(only_own(&[map(0, 1000, 1)], 1000));
        assert!(only_own(&[map(5, 1000, 1)], 1000));
        assert!(!only_own(&[map(0, 1000, 2)], 1000));
        assert!(!only_own(&[map(0, 1001, 1)], 1000));
        assert!(!only_own(&[map(0, 1000, 1), map(1, 100000, 65536)], 1000));
        assert!(!only_own(&[], 1000));
    }
}
