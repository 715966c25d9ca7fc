//! The container's init: everything that runs inside the new namespaces, from the fork to the
//! exec of the user program, as ONE function of named steps in spec order (`run_steps`).
//! Nothing here runs on the host side; the host side is `spawn.rs`.

use super::channel::{Channel, Msg};
use crate::namespaces::Plan;
use crate::spec::Bundle;
use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, LinuxPersonality, Process, Spec};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How init learns that `start` was called.
pub enum StartGate {
    /// A listening unix socket in the state dir: `husk start` connects to it.
    Socket(OwnedFd),
    /// `run`: the runtime itself says `Start` on the sync channel.
    Channel,
}

/// Everything init needs; prepared on the host before the fork and inherited by memory.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub plan: &'a Plan,
    pub chan: Channel,
    pub console: Option<OwnedFd>,
    pub gate: StartGate,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub seccomp: Option<crate::security::SeccompProgram>,
    /// (dev, ino) of the husk binary: init refuses to exec it (CVE-2019-5736).
    pub self_exe: (u64, u64),
    /// The init was forked without namespace flags and must create/join them itself.
    pub slow_path: bool,
    /// `Go` (placed in the cgroup) was received.
    pub go_seen: std::cell::Cell<bool>,
    /// cgroup v1 `tasks` files init writes "0" to, placing itself (see
    /// `Manager::self_placement`); empty when the runtime places it.
    pub self_join: Vec<PathBuf>,
    /// The connection of `husk start`, open until exec.
    pub start_conn: std::cell::Cell<Option<OwnedFd>>,
    /// Detached id-mapped mount trees by index in `mounts`, made by the runtime before the fork.
    pub idmapped: &'a [(usize, OwnedFd)],
    /// The container's cgroup v2 directory on the host, when it has one.
    pub cgroup2_dir: Option<PathBuf>,
}

/// The entry point of the forked child. Never returns.
pub fn run(ctx: InitContext) -> ! {
    let err = match run_steps(&ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = crate::logging::fold_warnings(format!("{err:#}"));
    // After `start` connected, it waits for our exec (EOF) or this error text.
    if let Some(conn) = ctx.start_conn.take() {
        let _ = nix::unistd::write(&conn, format!("1{msg}").as_bytes());
    }
    if ctx.chan.send(&Msg::Error(msg.clone())).is_err() {
        eprintln!("husk init: {msg}");
    }
    // SAFETY: _exit ends this forked process without running the parent's atexit handlers or
    // destructors of state it shares with the parent.
    unsafe { libc::_exit(1) }
}

fn step<T>(what: &str, r: Result<T>) -> Result<T> {
    if r.is_ok() {
        // written through the descriptor logging keeps open (see logging.rs): it reaches
        // `--log` also after pivot_root
        crate::log_debug!("init[{}]: {what}: done", std::process::id());
    }
    r.with_context(|| what.to_string())
}

fn spec<'a>(ctx: &InitContext<'a>) -> &'a Spec {
    &ctx.bundle.spec
}

/// The init sequence. Each step names what it does; errors carry that name.
fn run_steps(ctx: &InitContext) -> Result<Infallible> {
    let spec = spec(ctx);
    let process = spec.process().as_ref().context("process: missing")?;

    // On the fast path the runtime moves us into our cgroup (slow on cgroup v1) while we do the
    // setup that does not depend on it; the slow path must be placed before it forks the init of
    // the pid namespace.
    if ctx.slow_path {
        step("wait for the cgroup placement", wait_go(ctx))?;
        // Placing ourselves, before any namespace is joined: the host's cgroupfs paths and
        // privilege are still ours, and the init forked below inherits the cgroup.
        step("join the cgroup", self_join(ctx))?;
        step("create and join namespaces", enter_namespaces(ctx))?;
    } else if ctx.plan.creates(libc::CLONE_NEWUSER) {
        // Our own pid is 1 in the new pid namespace: 0 asks for the pid the runtime forked.
        // The runtime writes the maps through /proc/PID, which needs us dumpable; nothing of
        // the container runs yet, so nobody can attach in the meantime.
        step("map user ids", request_id_maps(ctx, 0))?;
    }
    // CVE-2016-9962 / CVE-2019-5736: from here on nobody in the container may ptrace us or
    // open our /proc/PID/exe while we run husk's code.
    step("make init non-dumpable", set_dumpable(false))?;
    if !ctx.no_new_keyring {
        // runc's config says NEWUSER for a created or a joined user namespace alike
        let userns =
            ctx.plan.creates(libc::CLONE_NEWUSER) || ctx.plan.joins(LinuxNamespaceType::User);
        step(
            "join a new session keyring",
            join_session_keyring(ctx.id, userns),
        )?;
    }
    step(
        "setsid",
        nix::unistd::setsid().map(drop).map_err(Into::into),
    )?;
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        step("hostname", nix::unistd::sethostname(h).map_err(Into::into))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        step("domainname", set_domainname(d))?;
    }

    let in_userns =
        ctx.plan.creates(libc::CLONE_NEWUSER) || ctx.plan.joins(LinuxNamespaceType::User);
    let opts = crate::rootfs::RootfsOptions {
        spec,
        rootfs: &ctx.bundle.rootfs,
        bundle: &ctx.bundle.dir,
        new_cgroupns: ctx.plan.creates(libc::CLONE_NEWCGROUP),
        in_userns,
        idmapped: ctx.idmapped,
        cgroup2_dir: ctx.cgroup2_dir.as_deref(),
    };
    let mut enter_cgroup = || -> Result<()> {
        step("wait for the cgroup placement", wait_go(ctx))?;
        // (the slow path placed the process that forked us before its namespaces)
        if !ctx.slow_path {
            self_join(ctx)?;
        }
        if ctx.plan.creates(libc::CLONE_NEWCGROUP) {
            step(
                "create the cgroup namespace",
                nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(Into::into),
            )?;
        }
        Ok(())
    };
    step(
        "prepare the root filesystem",
        crate::rootfs::prepare_with(&opts, &mut enter_cgroup),
    )?;

    let hooks = spec.hooks().as_ref();
    let has = |h: Option<&Vec<oci_spec::runtime::Hook>>| h.is_some_and(|v| !v.is_empty());
    // The host moves linux.netDevices into our network namespace, runs prestart/createRuntime
    // and tells init its host pid: in a new pid namespace getpid() is 1, but runtime.md's state
    // carries the pid as seen by the host.
    let mut host_pid = None;
    #[allow(deprecated)]
    if crate::netdev::requested(spec)
        || hooks.is_some_and(|h| {
            has(h.prestart().as_ref())
                || has(h.create_runtime().as_ref())
                || has(h.create_container().as_ref())
        })
    {
        ctx.chan.send(&Msg::HooksRequest)?;
        match ctx.chan.recv()? {
            Msg::HostPid(p) => host_pid = Some(p),
            Msg::Error(e) => bail!("{e}"),
            other => bail!("sync: expected HostPid, got {other:?}"),
        }
        step(
            "linux.netDevices, prestart/createRuntime hooks",
            ctx.chan.expect(Msg::HooksDone),
        )?;
    }
    if let Some(cc) = hooks.and_then(|h| h.create_container().as_ref()) {
        // runc runs them with the container's rootfs (the self-bind) as cwd
        step(
            "chdir to the rootfs for the createContainer hooks",
            nix::unistd::chdir(&ctx.bundle.rootfs).map_err(Into::into),
        )?;
        let state = crate::hooks::state_json(
            ctx.id,
            "created",
            host_pid.unwrap_or(std::process::id() as i32),
            &ctx.bundle.dir,
            spec.annotations().as_ref(),
        );
        crate::hooks::run_all("hooks.createContainer", cc, &state)?;
    }

    if crate::rootfs::own_mount_ns(spec) {
        step(
            "pivot_root",
            crate::rootfs::pivot(&ctx.bundle.rootfs, ctx.no_pivot),
        )?;
    } else {
        step("chroot", crate::rootfs::chroot_into(&ctx.bundle.rootfs))?;
    }
    if !dev_is_bind_mounted(spec) {
        step("reopen /dev/null", crate::rootfs::reopen_dev_null())?;
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            crate::sys::procfs::write_sysctl(k, v)?;
        }
    }
    if let Some(sock) = &ctx.console {
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        step(
            "set up the console",
            super::console::setup_in_container(sock, size, true),
        )?;
    }
    step(
        "finalize the root filesystem",
        crate::rootfs::finalize(spec),
    )?;
    if let Some(p) = super::mempolicy::check(spec)? {
        step("set linux.memoryPolicy", super::mempolicy::apply(&p))?;
    }
    let tail = ProcessTail {
        process,
        personality: spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
        seccomp: ctx.seccomp.as_ref(),
        in_userns,
        preserve_fds: ctx.preserve_fds,
        self_exe: ctx.self_exe,
        // config.md: execCPUAffinity "is not applicable to the container's init process"; init
        // still gets runc's reset (see `finish`).
        exec_affinity: None,
        chan: &ctx.chan,
    };
    finish(&tail, &mut || {
        ctx.chan.send(&Msg::Ready)?;
        // The runtime answers once the state is saved.
        ctx.chan.expect(Msg::Start)?;
        // `start`'s connection stays open (close-on-exec) until the execve: `start` reads "0"
        // once the startContainer hooks ran (or "1<error>", written by `run` on failure), then
        // waits for EOF before it runs the poststart hooks (runtime.md: startContainer hooks,
        // the program, then poststart).
        if let StartGate::Socket(listener) = &ctx.gate {
            let conn = step("wait for start", wait_for_start(listener))?;
            ctx.start_conn.set(Some(conn));
        }
        if let Some(sc) = hooks.and_then(|h| h.start_container().as_ref()) {
            let state = crate::hooks::state_json(
                ctx.id,
                "running",
                host_pid.unwrap_or(std::process::id() as i32),
                &ctx.bundle.dir,
                spec.annotations().as_ref(),
            );
            crate::hooks::run_all("hooks.startContainer", sc, &state)?;
        }
        if let Some(c) = ctx.start_conn.take() {
            nix::unistd::write(&c, b"0").context("answer start")?;
            ctx.start_conn.set(Some(c));
        }
        Ok(())
    })
}

/// The attributes of the process that will exec, shared by the container's init and `exec`.
pub struct ProcessTail<'a> {
    pub process: &'a Process,
    pub personality: Option<&'a LinuxPersonality>,
    pub seccomp: Option<&'a crate::security::SeccompProgram>,
    pub in_userns: bool,
    pub preserve_fds: u32,
    pub self_exe: (u64, u64),
    /// `process.execCPUAffinity` of an exec'd process (`None` for the container's init).
    pub exec_affinity: Option<&'a crate::process::affinity::ExecAffinity>,
    /// The sync channel to the runtime: a seccomp notification fd goes there.
    pub chan: &'a Channel,
}

/// Install the seccomp filter; with SCMP_ACT_NOTIFY rules, hand the listener fd to the runtime
/// (which passes it on to the agent at listenerPath) and close our copy. Before it returns, a
/// notifying syscall of this process waits for the agent.
fn install_seccomp(f: &crate::security::SeccompProgram, chan: &Channel) -> Result<()> {
    // encoded before the install: from the install until the runtime has the fd, a notifying
    // syscall (an allocation's brk or mmap, say) would wait for an agent without the fd
    let msg = serde_json::to_vec(&Msg::SeccompFd).context("encode sync message")?;
    let listener = step(
        "install the seccomp filter",
        crate::security::seccomp_install(f),
    )?;
    if let Some(fd) = listener {
        use std::os::fd::AsFd;
        step(
            "send the seccomp notification fd to the runtime",
            chan.send_encoded_with_fd(&msg, fd.as_fd()),
        )?;
    }
    Ok(())
}

/// From a fully set-up container environment to the user program: oomScoreAdj, rlimits, LSM
/// labels, scheduler, ioprio, personality, no_new_privs, seccomp (without no_new_privs), user,
/// capabilities, cwd, fds, seccomp (with no_new_privs), then `gate` (wait for start, the
/// startContainer hooks: always under the filter), then exec. Returns only on error.
pub fn finish(t: &ProcessTail, gate: &mut dyn FnMut() -> Result<()>) -> Result<Infallible> {
    let process = t.process;
    // In the container's cgroup now (a cpuset join may have reset the affinity): the final CPU
    // affinity, before the scheduler policy and seccomp filter that could refuse the change.
    match t.exec_affinity {
        Some(a) => a.apply_final()?,
        // The container's init: the widest affinity its cpuset allows, not the one of whoever
        // ran husk (runc >= 1.2.7 tryResetCPUAffinity, also for init).
        None => crate::process::affinity::reset_self(),
    }
    if let Some(adj) = process.oom_score_adj() {
        crate::sys::procfs::write_proc_file("self/oom_score_adj", adj.to_string().as_bytes())
            .context("process.oomScoreAdj")?;
    }

    // The process attributes, in the order runc applies them.
    if let Some(r) = process.rlimits() {
        crate::security::apply_rlimits(r)?;
    }
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        crate::security::apply_apparmor(p)?;
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        crate::security::apply_selinux_label(l)?;
    }
    if let Some(s) = process.scheduler() {
        crate::security::apply_scheduler(s)?;
    }
    if let Some(p) = process.io_priority() {
        crate::security::apply_io_priority(p)?;
    }
    if let Some(p) = t.personality {
        crate::security::apply_personality(p)?;
    }
    let nnp = process.no_new_privileges().unwrap_or(false);
    if nnp {
        crate::security::set_no_new_privs()?;
    } else if let Some(f) = t.seccomp {
        crate::log_debug!(
            "init[{}]: install the seccomp filter; no records after it",
            std::process::id()
        );
        crate::logging::silence();
        install_seccomp(f, t.chan)?;
    }
    // As runc's finalizeNamespace: the cwd is entered while still root (a directory the
    // runtime can enter but the user cannot is fine), and again as the user only if that was
    // refused (EACCES/EPERM: e.g. root squashed on a network filesystem).
    let cwd = process.cwd();
    let cwd_entered = match nix::unistd::chdir(cwd) {
        Ok(()) => true,
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => false,
        Err(e) => return Err(e).with_context(|| format!("process.cwd {}", cwd.display())),
    };
    if process.terminal().unwrap_or(false) {
        step(
            "hand the terminal to process.user",
            chown_terminal(process.user().uid()),
        )?;
    }
    crate::security::switch_user(process.user(), t.in_userns)?;
    crate::security::apply_capabilities(process.capabilities().as_ref())?;
    if !cwd_entered {
        nix::unistd::chdir(cwd).with_context(|| format!("process.cwd {}", cwd.display()))?;
    }
    let filter_on = !nnp && t.seccomp.is_some();
    step("chdir to process.cwd", verify_cwd(cwd, filter_on))?;
    let env = build_env(
        process.env().as_deref().unwrap_or(&[]),
        process.user().uid(),
    );
    let args = process.args().as_deref().unwrap_or(&[]);
    let exe =
        lookup_executable(&args[0], &env).map_err(|e| anyhow::anyhow!("process.args[0]: {e}"))?;
    refuse_self_exec(&exe, t.self_exe)?;
    let c_exe = cstring(exe.as_os_str().as_encoded_bytes())?;
    let c_args = args
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let c_env = env
        .iter()
        .map(|e| cstring(e.as_bytes()))
        .collect::<Result<Vec<_>>>()?;

    // CVE-2024-21626: only stdio and the preserved fds reach the program.
    step(
        "close inherited fds",
        crate::sys::fd::cloexec_from(3 + t.preserve_fds).map_err(Into::into),
    )?;
    for fd in 3..3 + t.preserve_fds {
        if crate::logging::sink_fd() == Some(fd as i32) {
            // the number was free when husk started (the caller did not pass it); husk's
            // --debug log took it and must not reach the program
            bail!("--preserve-fds: fd {fd} is not open");
        }
        crate::sys::fd::clear_cloexec(fd as i32)
            .with_context(|| format!("--preserve-fds: fd {fd} is not open"))?;
    }

    // (before the seccomp filter: a profile may refuse write(2); without noNewPrivileges the
    // filter is already in and this writes nothing)
    crate::log_debug!(
        "process[{}]: set up; execve {:?} next",
        std::process::id(),
        exe.display()
    );

    // With no_new_privs the filter goes in as late as possible, but before `gate`: what runs
    // there on the container's behalf (the startContainer hooks) runs under the container's
    // filter, as in runc, which installs it before waiting on its exec FIFO.
    if nnp {
        if let Some(f) = t.seccomp {
            crate::logging::silence();
            install_seccomp(f, t.chan)?;
        }
    }
    gate()?;

    reset_signals();
    let err = nix::unistd::execve(&c_exe, &c_args, &c_env).unwrap_err();
    bail!("exec {:?}: {err}", exe.display())
}

/// Whether config.json bind-mounts the host's /dev (then the stdio /dev/null is left alone).
fn dev_is_bind_mounted(spec: &Spec) -> bool {
    spec.mounts().as_deref().unwrap_or(&[]).iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

pub fn set_dumpable(on: bool) -> Result<()> {
    nix::sys::prctl::set_dumpable(on).context("prctl(PR_SET_DUMPABLE)")
}

/// Wait until the runtime says we are in our cgroup (it may have said so already).
/// Write "0" to each v1 `tasks` file of `self_join`: the writing thread moves without the
/// threadgroup rwsem's RCU grace period (see `Manager::self_placement`).
fn self_join(ctx: &InitContext) -> Result<()> {
    for f in &ctx.self_join {
        std::fs::write(f, b"0")
            .with_context(|| format!("join the cgroup: write 0 to {}", f.display()))?;
    }
    Ok(())
}

fn wait_go(ctx: &InitContext) -> Result<()> {
    if !ctx.go_seen.get() {
        ctx.chan.expect(Msg::Go)?;
        ctx.go_seen.set(true);
    }
    Ok(())
}

fn request_id_maps(ctx: &InitContext, pid: i32) -> Result<()> {
    ctx.chan.send(&Msg::MapsRequest(pid))?;
    // `Go` may arrive first: the runtime places us in the cgroup before it reads the request.
    loop {
        match ctx.chan.recv()? {
            Msg::MapsDone => break,
            Msg::Go => ctx.go_seen.set(true),
            Msg::Error(e) => bail!("{e}"),
            other => bail!("sync: expected MapsDone, got {other:?}"),
        }
    }
    // Become root of the new user namespace (uid/gid 0 must be mapped for that).
    let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
    let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
    Ok(())
}

/// After joining a user namespace by path, become its uid/gid 0, as runc's init does: joining
/// keeps our host credentials, and host root is usually not mapped there, so every file the
/// init then creates (mount points, /dev) would fail with EOVERFLOW.
fn become_root_of_joined_userns() -> Result<()> {
    let why = "in the joined user namespace (is 0 mapped in its uid_map and gid_map?)";
    nix::unistd::setresgid(0.into(), 0.into(), 0.into())
        .map_err(|e| anyhow::anyhow!("become gid 0 {why}: {e}"))?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into())
        .map_err(|e| anyhow::anyhow!("become uid 0 {why}: {e}"))?;
    Ok(())
}

/// Slow path (some namespace is joined by path): join those (the user namespace first), then
/// create the new ones; a pid namespace only applies to children, so fork once more and let
/// the child be the container's init.
fn enter_namespaces(ctx: &InitContext) -> Result<()> {
    for j in &ctx.plan.join {
        if j.typ == LinuxNamespaceType::Cgroup {
            continue;
        }
        nix::sched::setns(&j.fd, CloneFlags::from_bits_retain(j.flag))
            .with_context(|| format!("join the {:?} namespace", j.typ))?;
        if j.typ == LinuxNamespaceType::User {
            become_root_of_joined_userns()?;
        }
    }
    let new = ctx.plan.new_flags & !libc::CLONE_NEWCGROUP;
    if new & libc::CLONE_NEWUSER != 0 {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).context("create the user namespace")?;
        request_id_maps(ctx, std::process::id() as i32)?;
    }
    let rest = new & !libc::CLONE_NEWUSER;
    if rest != 0 {
        nix::sched::unshare(CloneFlags::from_bits_retain(rest)).context("create the namespaces")?;
    }
    // Joining a cgroup namespace last: it must not change our view before the others.
    for j in ctx
        .plan
        .join
        .iter()
        .filter(|j| j.typ == LinuxNamespaceType::Cgroup)
    {
        nix::sched::setns(&j.fd, CloneFlags::CLONE_NEWCGROUP)
            .context("join the cgroup namespace")?;
    }
    if new & libc::CLONE_NEWPID != 0 || ctx.plan.joins(LinuxNamespaceType::Pid) {
        // The child waits for the intermediate's Pid to be sent (the end of file of this pipe,
        // whose write end only the intermediate holds once forked, at its exit): both write to
        // the one channel, and a child that ran ahead would send its requests, or Ready, before
        // the host knew its pid.
        let (sent_r, sent_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe for the pid")?;
        match crate::sys::clone3::fork_with(0, None, false)
            .context("fork into the pid namespace")?
        {
            (crate::sys::clone3::Forked::Child, _) => {
                drop(sent_w);
                let mut b = [0u8; 1];
                while let Err(nix::errno::Errno::EINTR) = nix::unistd::read(&sent_r, &mut b) {}
                return Ok(());
            }
            (crate::sys::clone3::Forked::Parent { pid, .. }, _) => {
                crate::fault::delay("init: before the pid namespace's init is reported");
                let _ = ctx.chan.send(&Msg::Pid(pid));
                drop(sent_w);
                // SAFETY: the intermediate process ends here without unwinding shared state.
                unsafe { libc::_exit(0) }
            }
        }
    }
    Ok(())
}

fn join_session_keyring(id: &str, userns: bool) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = cstring(format!("_ses.{id}").as_bytes())?;
    // SAFETY: keyctl with a valid NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // No keyring support (ENOSYS) or a quota in a user namespace: run without, as runc does.
        if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EDQUOT)) {
            return Ok(());
        }
        return Err(e).context("keyctl(JOIN_SESSION_KEYRING)");
    }
    // runc then makes the keyring searchable (ModKeyringPerm(.., 0xffffffff, bits)): by its
    // user (KEY_USR_SEARCH, 0x080000), or in a user namespace by others (KEY_OTH_SEARCH, 0x08).
    // The kernel creates a session keyring with possessor-all plus user view, read and link
    // (0x3f130000, security/keys/process_keys.c), so the result is known without reading it.
    const KEYCTL_SETPERM: libc::c_long = 5;
    let search: libc::c_long = if userns { 0x08 } else { 0x0008_0000 };
    let perm: libc::c_long = 0x3f13_0000 | search;
    // SAFETY: keyctl on the keyring serial the kernel just returned; no pointers involved.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, r, perm) };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .context("keyctl(SETPERM) of the session keyring");
    }
    Ok(())
}

fn set_domainname(d: &str) -> Result<()> {
    // SAFETY: setdomainname reads exactly len bytes from the pointer.
    let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("setdomainname");
    }
    Ok(())
}

/// The pty made for the process (its stdin now) gets the process's uid, so that it can reopen
/// its own terminal (/dev/pts/N is 0620 root:tty otherwise), as runc's fixStdioPermissions; the
/// gid stays the one devpts gave (its `gid=` option). Only the pty husk made: stdio inherited
/// from the caller is never chowned. In a user namespace where the owner or the group is not
/// mapped the kernel refuses (EPERM / EINVAL) and the terminal stays as it is, as in runc.
fn chown_terminal(uid: u32) -> Result<()> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    if !nix::unistd::isatty(fd).unwrap_or(false) {
        return Ok(());
    }
    match std::os::unix::fs::fchown(fd, Some(uid), None) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("fchown of the terminal to uid {uid}")),
    }
}

/// Check that the working directory is reachable from the new root (CVE-2024-21626: a cwd
/// that is a leaked host directory shows up as "(unreachable)" or fails getcwd with ENOENT).
/// `filter_on`: the seccomp filter is already installed, so any other getcwd error is most
/// likely the filter's, and the error says so.
fn verify_cwd(cwd: &Path, filter_on: bool) -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(_) | Err(nix::errno::Errno::ENOENT) => bail!(
            "process.cwd {}: the working directory is outside the container",
            cwd.display()
        ),
        Err(e) => {
            let by = if filter_on {
                ", returned by the linux.seccomp filter (installed before this check when \
                 noNewPrivileges is false; the filter must allow getcwd)"
            } else {
                ""
            };
            bail!(
                "process.cwd {}: checking the working directory failed: getcwd: {e}{by}",
                cwd.display()
            )
        }
    }
}

fn build_env(env: &[String], uid: u32) -> Vec<String> {
    let mut out = env.to_vec();
    if !out.iter().any(|e| e.starts_with("HOME=")) {
        out.push(format!(
            "HOME={}",
            home_of(uid).unwrap_or_else(|| "/".into())
        ));
    }
    out
}

fn home_of(uid: u32) -> Option<String> {
    let p = std::fs::read_to_string("/etc/passwd").ok()?;
    p.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

/// Find the program like execvp with the container's PATH; the error wording is runc's, which
/// podman and containerd match on.
fn lookup_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let is_exec =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0);
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => bail!("exec: {arg0:?}: is a directory"),
            Ok(_) if is_exec(&p) => Ok(p),
            Ok(_) => bail!("exec: {arg0:?}: permission denied"),
            Err(e) => bail!("exec: {arg0:?}: {}", nix_errno_text(&e)),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if is_exec(&cand) {
            return Ok(cand);
        }
    }
    bail!("exec: {arg0:?}: executable file not found in $PATH")
}

fn nix_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn refuse_self_exec(exe: &Path, me: (u64, u64)) -> Result<()> {
    if let Ok(m) = std::fs::metadata(exe) {
        if (m.dev(), m.ino()) == me {
            bail!(
                "exec {:?}: refusing to run the runtime binary inside the container",
                exe.display()
            );
        }
    }
    Ok(())
}

fn wait_for_start(listener: &OwnedFd) -> Result<OwnedFd> {
    let conn = loop {
        match nix::sys::socket::accept4(
            listener.as_raw_fd(),
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(fd) => break fd,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("accept on the exec socket"),
        }
    };
    // SAFETY: accept4 returned a new fd we own (close-on-exec: it closes at the execve).
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(conn) })
}

fn reset_signals() {
    // SAFETY: restoring default dispositions and an empty mask in a single-threaded process
    // right before exec; the Rust runtime ignores SIGPIPE, which exec would otherwise keep.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).context("string contains a NUL byte")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_uses_container_path() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("prog");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let env = vec![format!("PATH=/nonexistent:{}", d.path().display())];
        assert_eq!(lookup_executable("prog", &env).unwrap(), bin);
        let e = lookup_executable("nope", &env).unwrap_err().to_string();
        assert_eq!(e, "exec: \"nope\": executable file not found in $PATH");
        let e = lookup_executable("/nope/x", &env).unwrap_err().to_string();
        assert!(e.contains("no such file or directory"), "{e}");
    }

    #[test]
    fn home_is_added_once() {
        let e = build_env(&["HOME=/x".into()], 0);
        assert_eq!(e, vec!["HOME=/x".to_string()]);
        assert!(build_env(&[], 12345).iter().any(|e| e.starts_with("HOME=")));
    }
}
