//! Process security attributes applied inside the container just before exec: user and groups,
//! capabilities, seccomp, rlimits, LSM labels, no_new_privs, scheduler, ioprio, personality.
//!
//! Everything here runs inside the container (after pivot_root) in the process that will exec
//! the user program.

use anyhow::Result;
use oci_spec::runtime::{
    LinuxCapabilities, LinuxIOPriority, LinuxPersonality, LinuxSeccomp, PosixRlimit, Scheduler,
    User,
};

/// A seccomp filter compiled from an OCI profile, ready to install.
pub struct SeccompProgram {
    _private: (),
}

/// Compile `linux.seccomp` to BPF. Pure: callable (and unit-tested) anywhere.
pub fn seccomp_compile(_s: &LinuxSeccomp) -> Result<SeccompProgram> {
    anyhow::bail!("seccomp is not implemented yet")
}

/// Install a compiled filter in the calling process.
pub fn seccomp_install(_p: &SeccompProgram) -> Result<()> {
    anyhow::bail!("seccomp is not implemented yet")
}

/// `process.rlimits`.
pub fn apply_rlimits(_r: &[PosixRlimit]) -> Result<()> {
    anyhow::bail!("rlimits are not implemented yet")
}

/// `process.user`: umask, additional groups, gid, uid — keeping capabilities across the switch so
/// that `apply_capabilities` can set them afterwards.
pub fn switch_user(_u: &User, _in_userns: bool) -> Result<()> {
    anyhow::bail!("user switch is not implemented yet")
}

/// `process.capabilities` (after `switch_user`): bounding, effective, permitted, inheritable, ambient.
pub fn apply_capabilities(_c: Option<&LinuxCapabilities>) -> Result<()> {
    anyhow::bail!("capabilities are not implemented yet")
}

/// `process.noNewPrivileges`.
pub fn set_no_new_privs() -> Result<()> {
    anyhow::bail!("no_new_privs is not implemented yet")
}

/// `process.apparmorProfile` (effective at exec). Errors if the host has no AppArmor.
pub fn apply_apparmor(_profile: &str) -> Result<()> {
    anyhow::bail!("apparmor is not implemented yet")
}

/// `process.selinuxLabel` (effective at exec). Errors if the host has no SELinux.
pub fn apply_selinux_label(_label: &str) -> Result<()> {
    anyhow::bail!("selinux is not implemented yet")
}

/// `process.scheduler`.
pub fn apply_scheduler(_s: &Scheduler) -> Result<()> {
    anyhow::bail!("scheduler is not implemented yet")
}

/// `process.ioPriority`.
pub fn apply_io_priority(_p: &LinuxIOPriority) -> Result<()> {
    anyhow::bail!("ioPriority is not implemented yet")
}

/// `linux.personality`.
pub fn apply_personality(_p: &LinuxPersonality) -> Result<()> {
    anyhow::bail!("personality is not implemented yet")
}
