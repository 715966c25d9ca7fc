//! The host side of `create`: make the state dir and cgroup, fork the container's init into its
//! namespaces, answer its requests (id maps, hooks), and record the state once it is ready.

use super::channel::{Channel, Msg};
use super::init::{InitContext, StartGate};
use super::teardown::Teardown;
use crate::cgroups;
use crate::namespaces::Plan;
use crate::spec::Bundle;
use crate::state::{self, ContainerState, Store};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

pub struct SpawnOptions<'a> {
    pub id: &'a str,
    pub store: &'a Store,
    pub systemd_cgroup: bool,
    /// `--rootless` (decided where it matters): see [`make_cgroup`].
    pub rootless: crate::rootless::Mode,
    pub console: Option<OwnedFd>,
    /// true: `husk start` releases the container (exec socket); false: the caller does, with
    /// `Spawned::start`.
    pub start_socket: bool,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub pid_file: Option<&'a Path>,
}

/// A created container, blocked before exec.
pub struct Spawned {
    pub state: ContainerState,
    pub chan: Channel,
    /// pidfd of init when it is our child (fast path).
    pub pidfd: Option<OwnedFd>,
    cleanup: Option<Teardown>,
}

impl Spawned {
    /// Release the container (for `run`) and return once its program runs: init's end of the
    /// channel closes on exec; a failure before that arrives as an error.
    pub fn start(&self) -> Result<()> {
        self.chan.send(&Msg::Start)?;
        // the init's exec closes the channel: that is the answer when all went well
        match self.chan.recv_or_closed() {
            Ok(None) | Err(_) => Ok(()),
            Ok(Some((Msg::Error(e), _))) => bail!("{e}"),
            Ok(Some((m, _))) => bail!("unexpected message from init: {m:?}"),
        }
    }

    /// Keep everything: the container exists from now on.
    pub fn commit(&mut self) {
        self.cleanup = None;
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(c) = self.cleanup.take() {
            c.run_warn();
        }
    }
}

pub fn spawn(bundle: &Bundle, o: SpawnOptions) -> Result<Spawned> {
    let spec = &bundle.spec;
    let process = spec.process().as_ref().context("process: missing")?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && o.console.is_none() {
        bail!("process.terminal is true: a console socket is needed (--console-socket) when husk does not stay attached");
    }
    if !terminal && o.console.is_some() {
        bail!("--console-socket given but process.terminal is false");
    }
    let plan = Plan::from_spec(spec)?;
    let seccomp = super::compile_seccomp(spec)?;
    let self_exe = super::self_exe_id()?;

    let host_rootfs = if crate::rootfs::own_mount_ns(spec) {
        None
    } else {
        let id = crate::sys::mount_id(&bundle.rootfs).with_context(|| {
            format!(
                "the mount id of the rootfs {} (statx STATX_MNT_ID)",
                bundle.rootfs.display()
            )
        })?;
        Some((bundle.rootfs.clone(), id))
    };

    // The container's lock, held until its state is saved (or the half-made container is torn
    // down): a `delete --force` meanwhile waits and then deletes a whole container, instead of
    // taking this one for the remains of a killed create.
    let (mut cleanup, lock) = super::make_state_dir(o.store, o.id, bundle, host_rootfs)?;
    let dir = cleanup.dir.clone();
    let res = spawn_in(
        bundle,
        &o,
        plan,
        seccomp,
        self_exe,
        &dir,
        &mut cleanup,
        lock.as_raw_fd(),
    );
    let res = match res {
        Ok(mut s) => {
            s.cleanup = Some(cleanup);
            Ok(s)
        }
        Err(e) => {
            cleanup.run_warn();
            Err(e)
        }
    };
    drop(lock);
    res
}

#[allow(clippy::too_many_arguments)]
fn spawn_in(
    bundle: &Bundle,
    o: &SpawnOptions,
    plan: Plan,
    seccomp: Option<crate::security::SeccompProgram>,
    self_exe: (u64, u64),
    dir: &Path,
    cleanup: &mut Teardown,
    lock_fd: RawFd,
) -> Result<Spawned> {
    let spec = &bundle.spec;
    crate::fault::step("create: config saved");

    cleanup.cgroup = Some(super::make_cgroup(
        spec,
        o.id,
        o.systemd_cgroup,
        o.rootless,
    )?);
    let cg = cleanup.cgroup.as_ref().expect("just set");
    crate::fault::step("create: cgroup made");
    crate::log_debug!(
        "{}: cgroup driver {}, path {:?}",
        o.id,
        cg.state().driver,
        cg.state().path
    );

    let gate = if o.start_socket {
        let dirf = std::fs::File::open(dir).context("open state dir")?;
        // Bind through /proc/self/fd so a long --root cannot overflow sun_path.
        let p = format!("/proc/self/fd/{}/{}", dirf.as_raw_fd(), state::EXEC_SOCKET);
        let l = std::os::unix::net::UnixListener::bind(&p)
            .with_context(|| format!("bind {}", dir.join(state::EXEC_SOCKET).display()))?;
        StartGate::Socket(l.into())
    } else {
        StartGate::Channel
    };

    // Id-mapped mounts need the initial user namespace's privilege over the source filesystem,
    // and in a user namespace every bind source is opened with the host's credentials: made
    // here, attached by the init (which inherits the fds; they are close-on-exec).
    let userns = plan.creates(libc::CLONE_NEWUSER) || plan.joins(LinuxNamespaceType::User);
    let idmapped = crate::rootfs::idmap::detach_trees(spec, &bundle.dir, userns)?;

    let (parent_chan, child_chan) = Channel::pair()?;
    // linux.timeOffsets: the runtime makes the time namespace (see timens.rs); neither clone3
    // nor the init creates it then
    let mut plan = plan;
    let timens_offsets = super::timens::offsets_text(spec)?;
    if timens_offsets.is_some() {
        plan.new_flags &= !libc::CLONE_NEWTIME;
    }
    let slow_path = !plan.join.is_empty();
    let clone_flags = if slow_path {
        0
    } else {
        (plan.new_flags & !libc::CLONE_NEWCGROUP) as u64
    };
    let own_pid_ns = plan.creates(libc::CLONE_NEWPID);
    // A privileged child places itself where that is cheaper (cgroup v1): on the fast path
    // once clone3 made its namespaces, on the slow path (namespaces joined, as a pod's
    // containers join the sandbox's) before it joins or makes any.
    let placement = super::Placement::for_init(cg.as_ref(), !userns);
    // computed here: the child should allocate as little as possible
    let cgroup2_dir = cgroup2_dir(&cg.state());
    let timens_restore = timens_offsets
        .as_deref()
        .map(super::timens::prepare)
        .transpose()?;
    let forked = crate::sys::clone3::fork_with(clone_flags, placement.clone_fd, true);
    if let (Some(r), Ok((crate::sys::clone3::Forked::Parent { .. }, _)) | Err(_)) =
        (timens_restore, &forked)
    {
        // (only later children of the runtime, e.g. hooks, would see the offsets)
        if let Err(e) = r.back() {
            crate::logging::warn(&format!("{e:#}"));
        }
    }
    let (forked, into_cgroup) = forked.context("clone the container's init")?;
    let (mut pid, pidfd) = match forked {
        crate::sys::clone3::Forked::Child => {
            drop(parent_chan);
            placement.close_in_child();
            // The create lock's descriptor shares its open file description with the parent's:
            // closed, never unlocked (an unlock would release the parent's lock), so that the
            // lock ends with the create and not at the init's exec.
            // SAFETY: closing a descriptor number this process inherited and never uses again
            // (the parent's Flock owns it; this process ends in exec or _exit).
            unsafe { libc::close(lock_fd) };
            super::init::run(InitContext {
                id: o.id,
                bundle,
                plan: &plan,
                chan: child_chan,
                console: o.console.as_ref().and_then(|c| c.try_clone().ok()),
                gate,
                preserve_fds: o.preserve_fds,
                no_pivot: o.no_pivot,
                no_new_keyring: o.no_new_keyring,
                seccomp,
                self_exe,
                slow_path,
                go_seen: std::cell::Cell::new(false),
                self_join: placement.self_join.clone(),
                start_conn: std::cell::Cell::new(None),
                idmapped: &idmapped,
                cgroup2_dir,
            })
        }
        crate::sys::clone3::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_chan);
    drop(gate);
    drop(idmapped);
    cleanup.pid = pid;
    crate::log_debug!("{}: container init cloned, pid {pid}", o.id);
    crate::fault::step("create: init cloned");
    let placed = placement.complete(cg.as_ref(), pid, into_cgroup);
    if let Err(e) = placed.and_then(|_| parent_chan.send(&Msg::Go)) {
        // init may have failed meanwhile (it sets up in parallel): its error says why. If it
        // did not, it waits for Go: kill it first, so that reading its last words ends (at its
        // end of the channel's close) instead of waiting for each other.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        // (bounded: a process the init forked may still hold the channel)
        if crate::sys::fd::readable_within(parent_chan.as_fd(), 1000).unwrap_or(false) {
            if let Ok(Some((Msg::Error(m), _))) = parent_chan.recv_or_closed() {
                bail!("{m}");
            }
        }
        return Err(e);
    }
    crate::fault::step("create: init placed");

    let mut is_child = true;
    let mut pidfd = pidfd;
    loop {
        let (msg, fd) = match parent_chan.recv_with_fd() {
            Ok(m) => m,
            Err(_) => bail!(
                "container init exited during setup{}",
                exit_note(pid, is_child)
            ),
        };
        match msg {
            Msg::MapsRequest(p) => {
                crate::namespaces::write_id_maps(if p == 0 { pid } else { p }, spec)?;
                parent_chan.send(&Msg::MapsDone)?;
            }
            Msg::Pid(p) => {
                // The intermediate process forked the real init and exits: reap it.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                pid = p;
                is_child = false;
                pidfd = crate::sys::pidfd::open(p).ok();
                cleanup.pid = p;
                cleanup.is_child = false;
            }
            Msg::HooksRequest => {
                // the network namespace exists (made at clone, or by the init before Pid)
                crate::netdev::move_into(spec, pid)?;
                super::run_create_hooks(o.id, pid, bundle)?;
                crate::fault::step("create: hooks run");
                parent_chan.send(&Msg::HostPid(pid))?;
                parent_chan.send(&Msg::HooksDone)?;
            }
            Msg::SeccompFd => {
                let (Some(fd), Some(p)) = (fd, seccomp.as_ref()) else {
                    bail!("sync: SeccompFd without a notification fd or a filter");
                };
                // runc's state for the agent: the container is still being created
                let st = crate::hooks::state_json(
                    o.id,
                    "creating",
                    pid,
                    &bundle.dir,
                    spec.annotations().as_ref(),
                );
                crate::security::notify::send_to_agent(p, pid, &st, fd.as_fd())?;
            }
            Msg::Ready => {
                crate::log_debug!("{}: init {pid} is set up, waiting for start", o.id);
                crate::fault::step("create: init ready");
                break;
            }
            Msg::Error(e) => bail!("{e}"),
            other => bail!("unexpected message from init: {other:?}"),
        }
    }

    let mut st = super::new_state(bundle, o.id, pid, cg.as_ref(), own_pid_ns, o.systemd_cgroup)?;
    if let Some((rootfs, before)) = &cleanup.host_rootfs {
        let now = crate::sys::mount_id(rootfs)
            .with_context(|| format!("the mount id of the rootfs {}", rootfs.display()))?;
        if now == *before {
            bail!(
                "the init's bind of the rootfs {} is missing",
                rootfs.display()
            );
        }
        st.host_rootfs_mount = Some(now);
    }
    o.store.save(&st)?;
    crate::fault::step("create: state saved");
    if let Some(pf) = o.pid_file {
        super::write_pid_file(pf, pid)?;
    }
    if o.start_socket {
        // Tell init the state is saved: it may now wait for `husk start`.
        parent_chan.send(&Msg::Start)?;
        crate::fault::step("create: init told to wait for start");
    }
    Ok(Spawned {
        state: st,
        chan: parent_chan,
        pidfd,
        cleanup: None,
    })
}

/// The host directory of a container's cgroup v2 cgroup (cgroupfs v2 or systemd drivers; the
/// mount code uses it only on a unified host).
fn cgroup2_dir(s: &cgroups::CgroupState) -> Option<std::path::PathBuf> {
    matches!(
        s.driver.as_str(),
        "v2" | "systemd" | cgroups::systemd::USER_DRIVER
    )
    .then(|| cgroups::util::join_under(Path::new(cgroups::util::CGROUP_ROOT), &s.path))
}

fn exit_note(pid: i32, is_child: bool) -> String {
    if !is_child {
        return String::new();
    }
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => format!(" (exit status {c})"),
        Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => format!(" (killed by {s})"),
        _ => String::new(),
    }
}
