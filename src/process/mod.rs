//! Spawning the container: the sync channel between the runtime and the container's init, the
//! console, the init sequence itself (`init.rs`) and the exec'd process's (`exec_init.rs`), the
//! code that runs inside the container; and here, what the host side of create, exec and
//! restore share: the cgroup placement of a forked process, the container's cgroup and state
//! record, seccomp compiled up front, the pid file, and killing a process that must not live.

pub mod affinity;
pub mod channel;
pub mod console;
pub mod exec_init;
pub mod init;
pub mod mempolicy;
pub mod spawn;
pub mod teardown;
pub mod timens;

use teardown::Teardown;

use crate::cgroups::{self, Manager};
use crate::spec::Bundle;
use crate::state::{self, ContainerState, Store};
use anyhow::{Context, Result};
use std::os::fd::{AsFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How a process forked into a container gets into the container's cgroup: clone3
/// (CLONE_INTO_CGROUP) with an fd of the cgroup, the child itself writing `0` to the v1 `tasks`
/// files (cheaper than a `cgroup.procs` write from here, see `Manager::self_placement`), and
/// the parent's `place_init` (create) or `place` (exec) for whatever those did not do. Decoded
/// from the manager once, for create and exec alike.
pub struct Placement {
    /// The cgroup fd for clone3, if any (owned by the manager).
    pub clone_fd: Option<RawFd>,
    /// Files the child writes `0` to, before it joins any namespace.
    pub self_join: Vec<PathBuf>,
    /// The manager's self placement is used (else only `clone_fd` and the parent's move).
    by_child: bool,
    /// The container's first process (the init): the parent's move is `place_init` (the
    /// systemd driver starts the unit there), else `place`.
    init: bool,
}

impl Placement {
    /// The container's init. `child_may_place_itself`: a privileged child that writes before
    /// it joins any namespace (create's fast path, whose namespaces clone3 made, and the slow
    /// path's first child before its setns; not with a user namespace). The parent's move,
    /// where needed, is the manager's `place_init`.
    pub fn for_init(cg: &dyn Manager, child_may_place_itself: bool) -> Placement {
        Placement::of(cg, child_may_place_itself, true)
    }

    /// A process exec'd into a running container: its child always places itself where the
    /// manager allows it; the parent's move, where needed, is `place`.
    pub fn for_exec(cg: &dyn Manager) -> Placement {
        Placement::of(cg, true, false)
    }

    fn of(cg: &dyn Manager, child_may_place_itself: bool, init: bool) -> Placement {
        match child_may_place_itself
            .then(|| cg.self_placement())
            .flatten()
        {
            Some((clone_fd, self_join)) => Placement {
                clone_fd,
                self_join,
                by_child: true,
                init,
            },
            None => Placement {
                clone_fd: cg.clone_into_fd(),
                self_join: Vec::new(),
                by_child: false,
                init,
            },
        }
    }

    /// In the forked child: drop the cgroup fd, which served clone3 only (CVE-2016-9962: no
    /// host directory fd inside the container). Its owner, the manager, is never dropped in the
    /// child: the child ends in exec or _exit.
    pub fn close_in_child(&self) {
        if let Some(fd) = self.clone_fd {
            // SAFETY: closing a descriptor number this process inherited and will not use.
            unsafe { libc::close(fd) };
        }
    }

    /// After the fork (`into_cgroup`: clone3 placed the child): the parent moves `pid` unless
    /// clone3, or the child's own writes to the v1 hierarchies, cover every hierarchy.
    pub fn complete(&self, cg: &dyn Manager, pid: i32, into_cgroup: bool) -> Result<()> {
        if self.parent_adds(into_cgroup) {
            // clone3 could not place it: everything from here (the child's writes then change
            // nothing)
            return if self.init {
                cg.place_init(pid)
            } else {
                cg.place(pid)
            };
        }
        Ok(())
    }

    /// Whether the parent must move the child: clone3 did not place it, and the child's own
    /// writes do not cover every hierarchy (there is a cgroup2 part for clone3, or no self
    /// placement at all).
    fn parent_adds(&self, into_cgroup: bool) -> bool {
        !(into_cgroup || (self.by_child && self.clone_fd.is_none()))
    }
}

/// SIGKILL a process and wait until it is gone (reaping it if it is our child).
pub fn kill_and_wait(pid: i32, is_child: bool) {
    let pidfd = crate::sys::pidfd::open(pid).ok();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    if is_child {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    } else if let Some(fd) = pidfd {
        let _ = crate::sys::pidfd::wait_exit(fd.as_fd(), 5000);
    }
}

/// The state dir of a new container with the copy of its config (and, for a rootfs without a
/// mount namespace of its own, the id of the mount at the rootfs before the init binds it, for
/// a delete of a create killed before state.json exists): the first step of create and
/// restore. What was made is in the teardown returned; on error it is removed again. The
/// container's lock comes with it, held from the directory's first moment: keep it until the
/// state is saved or the teardown has run.
pub fn make_state_dir(
    store: &Store,
    id: &str,
    bundle: &Bundle,
    host_rootfs: Option<(PathBuf, u64)>,
) -> Result<(Teardown, nix::fcntl::Flock<std::fs::File>)> {
    let (dir, lock) = store.create_dir(id)?;
    let t = Teardown {
        host_rootfs,
        ..Teardown::new(dir)
    };
    let saved = state::write_atomic(&t.dir.join(state::CONFIG_FILE), &bundle.raw, 0o600)
        .context("save config.json")
        .and_then(|()| match &t.host_rootfs {
            Some((rootfs, before)) => {
                let text = format!("{before} {}", rootfs.display());
                state::write_atomic(
                    &t.dir.join(teardown::HOST_ROOTFS_FILE),
                    text.as_bytes(),
                    0o600,
                )
                .context("save the rootfs's mount id")
            }
            None => Ok(()),
        });
    match saved {
        Ok(()) => Ok((t, lock)),
        Err(e) => {
            t.run_warn();
            Err(e)
        }
    }
}

/// The prestart and createRuntime hooks, given the state `creating` of the init `pid`: for
/// create once the init's network namespace exists, for restore at CRIU's
/// `setup-namespaces`.
pub fn run_create_hooks(id: &str, pid: i32, bundle: &Bundle) -> Result<()> {
    let spec = &bundle.spec;
    let Some(h) = spec.hooks().as_ref() else {
        return Ok(());
    };
    let st = crate::hooks::state_json(
        id,
        "creating",
        pid,
        &bundle.dir,
        spec.annotations().as_ref(),
    );
    #[allow(deprecated)]
    if let Some(p) = h.prestart() {
        crate::hooks::run_all("hooks.prestart", p, &st)?;
    }
    if let Some(c) = h.create_runtime() {
        crate::hooks::run_all("hooks.createRuntime", c, &st)?;
    }
    Ok(())
}

/// `linux.seccomp` compiled now, so that a bad profile fails before anything is created.
pub fn compile_seccomp(
    spec: &oci_spec::runtime::Spec,
) -> Result<Option<crate::security::SeccompProgram>> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => {
            let p = crate::security::seccomp_compile(s).context("linux.seccomp")?;
            crate::security::seccomp_check_kernel(&p)?;
            Ok(Some(p))
        }
        None => Ok(None),
    }
}

/// (dev, ino) of the running husk binary, which the container's process must never exec.
pub fn self_exe_id() -> Result<(u64, u64)> {
    std::fs::metadata("/proc/self/exe")
        .map(|m| (m.dev(), m.ino()))
        .context("stat /proc/self/exe")
}

/// Create the container's cgroup and apply its resources and device rules (runc's default
/// allow list applies even without `resources`). On error the cgroup is removed again.
/// Shared by create and restore.
pub fn make_cgroup(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    systemd_cgroup: bool,
    rootless: crate::rootless::Mode,
) -> Result<Box<dyn Manager>> {
    let linux = spec.linux().as_ref();
    let cg_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty());
    // org.systemd.property.* annotations become unit properties with --systemd-cgroup; a
    // rootless container's unit goes to the user's systemd instance.
    let no_annotations = std::collections::HashMap::new();
    let annotations = spec.annotations().as_ref().unwrap_or(&no_annotations);
    // (only the systemd driver needs to know up front: it picks the manager by it)
    let cg = cgroups::new_manager_with(
        cg_path.as_deref(),
        id,
        systemd_cgroup,
        annotations,
        systemd_cgroup && rootless.get(),
    )?;
    let no_resources = oci_spec::runtime::LinuxResources::default();
    let resources = linux
        .and_then(|l| l.resources().as_ref())
        .unwrap_or(&no_resources);
    // runc's Create: neither a cgroup holding processes nor a frozen one is taken, and the
    // check comes before anything is made so that a cgroup that is not ours stays as it was
    let what = match &cg_path {
        Some(p) => format!("linux.cgroupsPath {p:?}"),
        None => format!("cgroup {:?}", cg.state().path),
    };
    cgroups::refuse_occupied_or_frozen(cg.as_ref(), &what)?;
    if let Err(e) = cg.create() {
        // runc's rootless cgroup managers: without a cgroupsPath of its own choosing, a rootless
        // container that may not create its cgroup runs in its caller's, unless it asks for
        // limits. (The systemd driver never falls back: its unit is the container's cgroup.)
        if systemd_cgroup || cg_path.is_some() || !is_permission_error(&e) || !rootless.get() {
            return Err(e);
        }
        if cgroups::needs_own_cgroup(resources) {
            return Err(e.context(
                "linux.resources: a rootless container that may not create its cgroup cannot \
                 have resource limits (remove them, or give the user a delegated cgroup and \
                 set linux.cgroupsPath)",
            ));
        }
        crate::logging::debug(&format!(
            "rootless: running without a cgroup of its own ({e:#})"
        ));
        return Ok(Box::new(cgroups::NoCgroup));
    }
    let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    // (a cgroup made just now below a frozen one is frozen too)
    let applied = cgroups::refuse_frozen(cg.as_ref(), &what)
        .and_then(|()| cg.apply_limits(resources, devices))
        .and_then(|()| {
            // runtime-spec "Cgroup ownership" (cgroup v2 only; see cgroups::delegation_owner)
            match cgroups::delegation_owner(spec) {
                Some((uid, gid)) => cg.delegate(uid, gid),
                None => Ok(()),
            }
        });
    if let Err(e) = applied {
        if let Err(d) = cg.destroy() {
            crate::logging::warn(&format!("remove cgroup: {d:#}"));
        }
        return Err(e);
    }
    Ok(cg)
}

/// Whether an error comes from missing permission (EACCES, EPERM, or a read-only cgroup mount).
fn is_permission_error(e: &anyhow::Error) -> bool {
    let denied = |n: i32| matches!(n, libc::EACCES | libc::EPERM | libc::EROFS);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
            .is_some_and(denied)
            || c.downcast_ref::<nix::errno::Errno>()
                .is_some_and(|e| denied(*e as i32))
    })
}

/// The state record of a container whose init is `pid`. Shared by create and restore.
pub fn new_state(
    bundle: &Bundle,
    id: &str,
    pid: i32,
    cg: &dyn Manager,
    own_pid_ns: bool,
    systemd_cgroup: bool,
) -> Result<ContainerState> {
    let spec = &bundle.spec;
    let start_time = state::process_start_time(pid)
        .with_context(|| format!("container init (pid {pid}) exited during setup"))?;
    Ok(ContainerState {
        oci_version: spec.version().clone(),
        id: id.to_string(),
        pid,
        pid_start_time: start_time,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::now_rfc3339(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        owner: state::owner_name(nix::unistd::geteuid().as_raw()),
        paused: false,
        cgroup: cg.state(),
        own_pid_ns,
        systemd_cgroup,
        poststart: spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default(),
        poststop: spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default(),
        host_rootfs_mount: None,
    })
}

/// `--pid-file`: the decimal pid, no newline, written atomically.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = std::path::absolute(path).context("--pid-file")?;
    state::write_atomic(&abs, pid.to_string().as_bytes(), 0o644)
        .with_context(|| format!("--pid-file {}", abs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_leaves_to_the_parent_what_nothing_else_did() {
        let p = |clone_fd: Option<RawFd>, by_child: bool| Placement {
            clone_fd,
            self_join: Vec::new(),
            by_child,
            init: true,
        };
        // pure v1, the child writes to every hierarchy itself
        assert!(!p(None, true).parent_adds(false));
        // hybrid: the child's v1 writes plus clone3 for the cgroup2 part
        assert!(!p(Some(3), true).parent_adds(true));
        assert!(
            p(Some(3), true).parent_adds(false),
            "clone3 failed to place it"
        );
        // v2 or systemd: clone3 alone
        assert!(!p(Some(3), false).parent_adds(true));
        assert!(p(Some(3), false).parent_adds(false));
        // no fd and no self placement (a user namespace): always the parent
        assert!(p(None, false).parent_adds(false));
    }

    #[test]
    fn placement_of_a_manager_without_cgroup() {
        let p = Placement::for_init(&cgroups::NoCgroup, true);
        assert_eq!((p.clone_fd, p.self_join.len()), (None, 0));
        assert!(p.parent_adds(false));
        p.complete(&cgroups::NoCgroup, 1, false).unwrap();
    }
}
