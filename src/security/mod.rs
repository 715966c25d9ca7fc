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

pub mod seccomp;
#[rustfmt::skip]
mod syscall_table;

/// Print a runc-style (logrus text format) warning on stderr.
#[allow(dead_code)] // used by the capability code
pub(crate) fn warn(msg: &str) {
    eprintln!("level=warning msg={msg:?}");
}

/// A seccomp filter compiled from an OCI profile, ready to install.
#[derive(Clone, Debug)]
pub struct SeccompProgram {
    /// The classic BPF program and the seccomp(2) flags.
    pub program: seccomp::Program,
}

/// Compile `linux.seccomp` to BPF. Pure: callable (and unit-tested) anywhere.
pub fn seccomp_compile(s: &LinuxSeccomp) -> Result<SeccompProgram> {
    Ok(SeccompProgram {
        program: seccomp::compile(s)?,
    })
}

/// Install a compiled filter in the calling process (needs no_new_privs or CAP_SYS_ADMIN).
pub fn seccomp_install(p: &SeccompProgram) -> Result<()> {
    seccomp::install(&p.program)
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
