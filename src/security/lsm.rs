//! AppArmor and SELinux exec labels, written through the hardened procfs.

use std::io;

use anyhow::{bail, Context, Result};

use crate::sys::procfs;

fn is_errno(e: &anyhow::Error, errno: i32) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|e| e.raw_os_error() == Some(errno))
}

/// Whether AppArmor is enabled: `/sys/module/apparmor/parameters/enabled` is `Y`. If that file
/// cannot be read (no /sys in the container), ask procfs: reading `attr/apparmor/current` only
/// works when AppArmor is an active LSM.
pub fn apparmor_enabled() -> bool {
    match std::fs::read("/sys/module/apparmor/parameters/enabled") {
        Ok(v) => v.starts_with(b"Y"),
        Err(_) => procfs::read_proc_file("self/attr/apparmor/current").is_ok(),
    }
}

/// Whether SELinux is enabled: selinuxfs is only registered (in /proc/filesystems) when it is.
pub fn selinux_enabled() -> bool {
    procfs::read_proc_file("filesystems")
        .map(|v| {
            v.split(|b| *b == b'\n')
                .any(|l| l.ends_with(b"\tselinuxfs"))
        })
        .unwrap_or(false)
}

/// Exec-time AppArmor profile. Like runc, a profile is ignored (with a warning) when AppArmor is
/// not enabled on the host.
pub fn apparmor(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    if !apparmor_enabled() {
        super::warn(&format!(
            "apparmor profile {profile:?} requested but AppArmor is not enabled on this host; ignoring it (as runc does)"
        ));
        return Ok(());
    }
    let data = format!("exec {profile}");
    match procfs::write_proc_file("self/attr/apparmor/exec", data.as_bytes()) {
        Err(e) if is_errno(&e, libc::ENOENT) => {
            // Kernels before 5.8 have only the shared attr/exec.
            procfs::write_proc_file("self/attr/exec", data.as_bytes())
        }
        r => r,
    }
    .with_context(|| format!("process.apparmorProfile: applying profile {profile:?}"))
}

/// Exec-time SELinux label. An error if SELinux is not enabled (runc refuses such configs).
pub fn selinux(label: &str) -> Result<()> {
    if label.is_empty() {
        return Ok(());
    }
    if !selinux_enabled() {
        bail!("process.selinuxLabel {label:?} requested but SELinux is not enabled on this host");
    }
    procfs::write_proc_file("self/attr/exec", label.as_bytes())
        .with_context(|| format!("process.selinuxLabel: setting exec label {label:?}"))
}
