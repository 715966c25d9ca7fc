//! AppArmor and SELinux exec labels, written through the hardened procfs.

use std::io;

use anyhow::{bail, Context, Result};

use crate::sys::procfs;

fn is_errno(e: &anyhow::Error, errno: i32) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|e| e.raw_os_error() == Some(errno))
}

/// Whether AppArmor is the active LSM.
pub fn apparmor_enabled() -> bool {
    apparmor_exec_attr().is_some()
}

/// The procfs attribute that sets the AppArmor profile for the next exec, if AppArmor is the
/// active LSM. Asked of procfs (kernel state): this runs inside the container after pivot_root,
/// where `/sys` may be absent and a path below it a plain file of the image, and an image must
/// not be able to switch its confinement off. Reading one's own `attr/apparmor/current` works
/// only when AppArmor is active: EINVAL when it is built in but not active (another major LSM,
/// or `apparmor=0`), ENOENT when it is not built in. Kernels before 5.8 have no
/// `attr/apparmor/`: there `/sys/module/apparmor/parameters/enabled` decides (runc's check),
/// trusted only when the file really is on sysfs, and the shared `attr/exec` is the one.
fn apparmor_exec_attr() -> Option<&'static str> {
    match procfs::read_proc_file("thread-self/attr/apparmor/current") {
        Ok(_) => Some("thread-self/attr/apparmor/exec"),
        Err(e) if is_errno(&e, libc::ENOENT) && sysfs_says_enabled() => {
            Some("thread-self/attr/exec")
        }
        Err(_) => None,
    }
}

/// `/sys/module/apparmor/parameters/enabled` is `Y`, read from a file on sysfs.
fn sysfs_says_enabled() -> bool {
    let Ok(f) = std::fs::File::open("/sys/module/apparmor/parameters/enabled") else {
        return false;
    };
    let on_sysfs = nix::sys::statfs::fstatfs(&f)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::SYSFS_MAGIC);
    let mut v = [0u8; 1];
    on_sysfs && io::Read::read(&mut &f, &mut v).is_ok_and(|n| n == 1) && v[0] == b'Y'
}

/// Whether SELinux is enabled with a policy loaded (go-selinux's test, so runc's).
pub fn selinux_enabled() -> bool {
    selinux_registered() && selinux_policy_loaded()
}

/// selinuxfs is only registered (in /proc/filesystems) when SELinux is enabled.
fn selinux_registered() -> bool {
    procfs::read_proc_file("filesystems")
        .map(|v| {
            v.split(|b| *b == b'\n')
                .any(|l| l.ends_with(b"\tselinuxfs"))
        })
        .unwrap_or(false)
}

/// Until a policy is loaded every task is in the initial context `kernel`, and the kernel
/// accepts any exec label (mapping it to that same context) and enforces nothing.
fn selinux_policy_loaded() -> bool {
    procfs::read_proc_file("thread-self/attr/current").is_ok_and(|v| is_policy_context(&v))
}

/// A task context read from `attr/current` is not the no-policy `kernel` one.
fn is_policy_context(current: &[u8]) -> bool {
    let end = current
        .iter()
        .rposition(|b| !matches!(b, b'\0' | b'\n'))
        .map_or(0, |i| i + 1);
    !current[..end].is_empty() && &current[..end] != b"kernel"
}

/// A profile is asked for and AppArmor is not enabled: refused at create, before anything
/// exists (whether the profile is loaded is learnt only when it is applied).
pub fn check_apparmor(profile: &str) -> Result<()> {
    if !profile.is_empty() && apparmor_exec_attr().is_none() {
        return Err(apparmor_not_enabled(profile));
    }
    Ok(())
}

fn apparmor_not_enabled(profile: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "process.apparmorProfile {profile:?} requested but AppArmor is not enabled on this host; \
         the process would run unconfined"
    )
}

/// Exec-time AppArmor profile. A profile the host cannot apply (AppArmor not the active LSM) is
/// an error: the container would run unconfined. runc fails there too (it writes the attribute
/// regardless and gets EINVAL, or ENOENT without AppArmor built in); engines only ask for a
/// profile where AppArmor is enabled.
pub fn apparmor(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    let Some(attr) = apparmor_exec_attr() else {
        return Err(apparmor_not_enabled(profile));
    };
    // The kernel answers ENOENT for a profile that is not loaded (the attribute itself exists:
    // AppArmor is active).
    procfs::write_proc_file(attr, format!("exec {profile}").as_bytes())
        .map_err(|e| {
            if is_errno(&e, libc::ENOENT) {
                e.context("no such profile is loaded")
            } else {
                e
            }
        })
        .with_context(|| format!("process.apparmorProfile {profile:?}"))
}

/// Exec-time SELinux label. An error if SELinux is not enabled or has no policy loaded (runc
/// refuses such configs).
pub fn selinux(label: &str) -> Result<()> {
    if label.is_empty() {
        return Ok(());
    }
    if !selinux_registered() {
        bail!("process.selinuxLabel {label:?} requested but SELinux is not enabled on this host");
    }
    if !selinux_policy_loaded() {
        bail!(
            "process.selinuxLabel {label:?} requested but SELinux is not enabled on this host \
             (no policy is loaded)"
        );
    }
    procfs::write_proc_file("thread-self/attr/exec", label.as_bytes())
        .with_context(|| format!("process.selinuxLabel: setting exec label {label:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_context_is_not_the_initial_kernel_one() {
        assert!(!is_policy_context(b"kernel"));
        assert!(!is_policy_context(b"kernel\0"));
        assert!(!is_policy_context(b"kernel\n"));
        assert!(!is_policy_context(b""));
        assert!(is_policy_context(b"system_u:system_r:kernel_t:s0\0"));
        assert!(is_policy_context(
            b"unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023\n"
        ));
    }
}
