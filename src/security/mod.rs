//! Process security attributes applied inside the container just before exec: user and groups,
//! capabilities, seccomp, rlimits, LSM labels, no_new_privs, scheduler, ioprio, personality.
//!
//! Everything here runs inside the container (after pivot_root) in the process that will exec
//! the user program.
//!
//! # Wiring (for the container init)
//!
//! 1. `seccomp_compile` early (e.g. in `create`, before cloning the init) so profile errors
//!    surface there; the `SeccompProgram` is plain data and survives fork/clone.
//! 2. The init's first write through `crate::sys::procfs` (sysctl, oom_score_adj, the setgroups
//!    check, LSM labels), while it still has CAP_SYS_ADMIN, caches a private procfs instance
//!    for all later ones (a verified `/proc` where a fresh procfs may not be mounted, e.g. in a
//!    user namespace).
//! 3. After pivot_root, in this order: `apply_rlimits`, `apply_apparmor` / `apply_selinux_label`
//!    (if set), `apply_scheduler`, `apply_io_priority`, `apply_personality`, `set_no_new_privs`
//!    (if set), `seccomp_install` (here only if NNP is NOT set: it needs CAP_SYS_ADMIN then),
//!    `switch_user`, `apply_capabilities`, `seccomp_install` (here if NNP is set), exec.
//!    When the filter goes in before `switch_user`, the profile must allow what the remaining
//!    steps call (setgroups, setresgid, setresuid, capget, capset, prctl), as with runc.
//! 4. `switch_user`'s `in_userns` = the container has a user namespace; then a "deny" in
//!    /proc/self/setgroups makes it skip setgroups.

use anyhow::{bail, Result};
use oci_spec::runtime::{
    LinuxCapabilities, LinuxIOPriority, LinuxPersonality, LinuxSeccomp, PosixRlimit, Scheduler,
    User,
};

mod attrs;
pub mod caps;
pub mod lsm;
pub mod notify;
mod ruletree;
pub mod seccomp;
#[rustfmt::skip]
mod syscall_table;
mod user;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

/// Print a runc-style (logrus text format) warning on stderr.
pub(crate) fn warn(msg: &str) {
    crate::logging::warn(msg);
}

/// A seccomp filter compiled from an OCI profile, ready to install.
#[derive(Clone, Debug)]
pub struct SeccompProgram {
    /// The classic BPF program and the seccomp(2) flags.
    pub program: seccomp::Program,
    /// `listenerPath`, when a rule is SCMP_ACT_NOTIFY: where the runtime sends the listener fd.
    pub listener: Option<std::path::PathBuf>,
    /// `listenerMetadata`, passed to the agent as is.
    pub listener_metadata: Option<String>,
}

impl SeccompProgram {
    /// The filter is installed with a notification listener (a rule is SCMP_ACT_NOTIFY).
    pub fn notifies(&self) -> bool {
        self.program.flags & seccomp::FLAG_NEW_LISTENER != 0
    }
}

/// Compile `linux.seccomp` to BPF. Pure: callable (and unit-tested) anywhere.
pub fn seccomp_compile(s: &LinuxSeccomp) -> Result<SeccompProgram> {
    let program = seccomp::compile(s)?;
    let notify = program.flags & seccomp::FLAG_NEW_LISTENER != 0;
    Ok(SeccompProgram {
        program,
        listener: s.listener_path().clone().filter(|_| notify),
        listener_metadata: s.listener_metadata().clone().filter(|_| notify),
    })
}

/// Refuse a filter whose seccomp(2) flags this kernel does not have, naming the flag (only
/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, Linux 5.19, is younger than what husk needs).
pub fn seccomp_check_kernel(p: &SeccompProgram) -> Result<()> {
    let wk = seccomp::FLAG_WAIT_KILLABLE_RECV;
    if p.program.flags & wk != 0 && !seccomp::kernel_has_flags(seccomp::FLAG_NEW_LISTENER | wk) {
        bail!("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported by this kernel (needs Linux 5.19)");
    }
    Ok(())
}

/// Whether the kernel has SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (for `features`).
pub fn seccomp_kernel_has_wait_killable_recv() -> bool {
    seccomp::kernel_has_flags(seccomp::FLAG_NEW_LISTENER | seccomp::FLAG_WAIT_KILLABLE_RECV)
}

/// Install a compiled filter in the calling process (needs no_new_privs or CAP_SYS_ADMIN).
/// Returns the notification listener fd when the filter has SCMP_ACT_NOTIFY rules.
pub fn seccomp_install(p: &SeccompProgram) -> Result<Option<std::os::fd::OwnedFd>> {
    seccomp::install(&p.program)
}

pub use attrs::check_process;

/// `process.rlimits`.
pub fn apply_rlimits(r: &[PosixRlimit]) -> Result<()> {
    attrs::rlimits(r)
}

/// `process.user`: umask, additional groups, gid, uid — keeping capabilities across the switch so
/// that `apply_capabilities` can set them afterwards.
///
/// Sets the umask (`user.umask`, default 0o022), PR_SET_KEEPCAPS, the supplementary groups
/// (always, an empty list included, unless in a user namespace whose setgroups is "deny"), then
/// setresgid and setresuid. Call `apply_capabilities` afterwards.
pub fn switch_user(u: &User, in_userns: bool) -> Result<()> {
    user::switch(u, in_userns)
}

/// `process.capabilities` (after `switch_user`): bounding, effective, permitted, inheritable, ambient.
///
/// Sets exactly what is listed (`None`: every set empty; inheritable and ambient are empty unless
/// listed). Capabilities the kernel does not know are skipped with a warning, as in runc.
pub fn apply_capabilities(c: Option<&LinuxCapabilities>) -> Result<()> {
    caps::apply(c)
}

/// `process.noNewPrivileges`.
pub fn set_no_new_privs() -> Result<()> {
    attrs::no_new_privs()
}

/// `process.apparmorProfile` (effective at exec). Ignored with a warning when the host has
/// AppArmor disabled (where runc fails); an error naming the field when the profile is not loaded.
pub fn apply_apparmor(profile: &str) -> Result<()> {
    lsm::apparmor(profile)
}

/// `process.selinuxLabel` (effective at exec). Errors if the host has no SELinux.
pub fn apply_selinux_label(label: &str) -> Result<()> {
    lsm::selinux(label)
}

/// `process.scheduler`.
pub fn apply_scheduler(s: &Scheduler) -> Result<()> {
    attrs::scheduler(s)
}

/// `process.ioPriority`.
pub fn apply_io_priority(p: &LinuxIOPriority) -> Result<()> {
    attrs::io_priority(p)
}

/// `linux.personality`.
pub fn apply_personality(p: &LinuxPersonality) -> Result<()> {
    attrs::personality(p)
}

#[cfg(test)]
pub(crate) mod test_support {
    const CHILD_ENV: &str = "HUSK_SECURITY_TEST_CHILD";

    /// Whether the tests run as root (root tests print a skip reason otherwise).
    pub fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Run `f` in a child process (process-state changes stay there) and assert it succeeded.
    ///
    /// `test` is the test's path as libtest names it (`module_path!()` + "::" + fn name). Forking
    /// the multi-threaded test harness directly can deadlock the child on a lock another test
    /// thread held (backtrace capture, stderr), so the parent re-executes the test binary for
    /// just this test; that process, which runs nothing else, forks a single-threaded child that
    /// runs `f`.
    pub fn in_child(test: &str, f: impl FnOnce() -> anyhow::Result<()>) {
        let test = test.strip_prefix("husk::").unwrap_or(test);
        if std::env::var(CHILD_ENV).as_deref() != Ok(test) {
            let exe = std::env::current_exe().expect("current_exe");
            let out = std::process::Command::new(exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, test)
                .output()
                .expect("re-executing the test binary");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && text.contains("1 passed"),
                "child run of {test} failed:\n{text}"
            );
            if text.contains("skipping") {
                eprintln!(
                    "{}",
                    text.lines()
                        .filter(|l| l.contains("skipping"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            return;
        }
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        // SAFETY: this process runs only this test (the harness's main thread is blocked waiting
        // for it), so no other thread holds a lock the child could need; the child runs `f` and
        // _exit()s without returning into the harness.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let code = match f() {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("child ({test}) failed: {e:#}");
                        1
                    }
                };
                // SAFETY: terminating the forked child without running the parent's atexit code.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let st = waitpid(child, None).expect("waitpid");
                assert_eq!(st, WaitStatus::Exited(child, 0), "child ({test}) failed");
            }
        }
    }
}
