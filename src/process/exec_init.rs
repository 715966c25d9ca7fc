//! The process `husk exec` forks: everything it does between the fork and the exec of the
//! user program, joining the running container (cgroup, namespaces, root, console) and then
//! the process tail it shares with the container's init (`init::finish`). Nothing here runs on
//! the host side; the host side is `container/exec.rs`.

use super::channel::{Channel, Msg};
use super::init::{finish, set_dumpable, ProcessTail};
use anyhow::{Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::convert::Infallible;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Everything the exec'd process needs; prepared on the host before the fork and inherited by
/// memory.
pub struct ExecContext<'a> {
    pub process: &'a Process,
    pub chan: Channel,
    /// Files to write `0` to, to join the container's cgroup (`Placement::self_join`).
    pub self_join: &'a [PathBuf],
    /// `exec --cgroup`: the sub-cgroup directories to move into afterwards.
    pub sub_cgroups: &'a [PathBuf],
    /// The container's namespaces to join, user namespace first and mount last; the pid and
    /// time namespaces, which apply to children, were entered before the fork.
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// No mount namespace of its own: the container's root to chroot into.
    pub chroot_dir: Option<OwnedFd>,
    /// The console socket (`process.terminal`): the pty is made inside and its master sent.
    pub console: Option<OwnedFd>,
    pub mempolicy: Option<super::mempolicy::MemPolicy>,
    pub seccomp: Option<&'a crate::security::SeccompProgram>,
    pub in_userns: bool,
    pub preserve_fds: u32,
    /// (dev, ino) of the husk binary, which the process must never exec.
    pub self_exe: (u64, u64),
    pub affinity: &'a super::affinity::ExecAffinity,
}

/// Run in the forked child: join, set up and exec; on failure send the error to the runtime
/// and exit 255.
pub fn run(mut ctx: ExecContext) -> ! {
    let err = match run_steps(&mut ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = crate::logging::fold_warnings(format!("{err:#}"));
    let _ = ctx.chan.send(&Msg::Error(msg));
    // SAFETY: end the forked child without running the parent's destructors.
    unsafe { libc::_exit(255) }
}

fn run_steps(ctx: &mut ExecContext) -> Result<Infallible> {
    set_dumpable(false)?;
    ctx.chan.expect(Msg::Go)?;
    for f in ctx.self_join {
        std::fs::write(f, b"0")
            .with_context(|| format!("join the container's cgroup: write 0 to {}", f.display()))?;
    }
    join_sub_cgroups(ctx.sub_cgroups)?;
    // (the namespace and root fds are closed before the tail: --preserve-fds keeps low fds)
    for (t, fd) in std::mem::take(&mut ctx.join) {
        if matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            continue;
        }
        nix::sched::setns(
            &fd,
            CloneFlags::from_bits_retain(crate::namespaces::clone_flag(t)),
        )
        .with_context(|| {
            format!(
                "join the container's {} namespace",
                crate::namespaces::proc_name(t)
            )
        })?;
    }
    if let Some(d) = ctx.chroot_dir.take() {
        nix::unistd::fchdir(&d).context("fchdir to the container's root")?;
        nix::unistd::chroot(".").context("chroot into the container's root")?;
    }
    if let Some(sock) = &ctx.console {
        nix::unistd::setsid().context("setsid")?;
        let size = ctx
            .process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        super::console::setup_in_container(sock, size, false)?;
    }
    if let Some(p) = &ctx.mempolicy {
        super::mempolicy::apply(p)?;
    }
    let tail = ProcessTail {
        process: ctx.process,
        personality: None,
        seccomp: ctx.seccomp,
        in_userns: ctx.in_userns,
        preserve_fds: ctx.preserve_fds,
        self_exe: ctx.self_exe,
        exec_affinity: Some(ctx.affinity),
        chan: &ctx.chan,
    };
    finish(&tail, &mut || Ok(()))
}

/// `exec --cgroup`: before joining any namespace, move into each sub-cgroup directory.
fn join_sub_cgroups(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        let f = d.join("cgroup.procs");
        std::fs::write(&f, b"0").with_context(|| {
            format!("--cgroup: join the sub-cgroup: write 0 to {}", f.display())
        })?;
    }
    Ok(())
}
