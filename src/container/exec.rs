//! `exec`: run another process in a running container, joining its namespaces, cgroup, LSM
//! label and seccomp profile. Like runc, every failure to start exits 255.

use super::lifecycle::{status_of, Global};
use super::ExecOptions;
use crate::process::channel::{Channel, Msg};
use crate::state::{self, Status};
use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{Capability, LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// Returns the exit code: the process's status in the foreground, 0 detached, 255 on failure.
pub fn exec(g: &Global, a: &ExecOptions) -> i32 {
    match exec_inner(g, a) {
        Ok(code) => code,
        Err(e) => {
            crate::logging::error(&format!("exec failed: {e:#}"));
            255
        }
    }
}

/// `uid[:gid]`, both decimal, nothing else.
pub fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let num = |p: &str, what: &str| -> Result<u32> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            bail!("--user {s:?}: {what} must be a decimal number");
        }
        p.parse::<u32>()
            .with_context(|| format!("--user {s:?}: {what} out of range"))
    };
    match s.split_once(':') {
        None => Ok((num(s, "uid")?, None)),
        Some((u, gid)) => Ok((num(u, "uid")?, Some(num(gid, "gid")?))),
    }
}

fn build_process(spec: &Spec, a: &ExecOptions) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("--process {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_slice(&data);
        let parsed: Result<Process> = serde_path_to_error::deserialize(de).map_err(|e| {
            anyhow::anyhow!("--process {}: {}: {}", path.display(), e.path(), e.inner())
        });
        // An empty execCPUAffinity list means unset (as in runc), which oci-spec refuses.
        let mut p = match parsed {
            Ok(p) => p,
            Err(e) => {
                let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&data) else {
                    return Err(e);
                };
                let affinity = crate::spec::drop_empty_affinity(&mut v);
                if !crate::spec::default_user(&mut v) && !affinity {
                    return Err(e);
                }
                serde_json::from_value(v).map_err(|_| e)?
            }
        };
        // As runc (the process's CPUAffinity, else the config's ExecCPUAffinity): a process
        // JSON without execCPUAffinity gets the one of the container's config.
        if p.exec_cpu_affinity().is_none() {
            p.set_exec_cpu_affinity(
                spec.process()
                    .as_ref()
                    .and_then(|sp| sp.exec_cpu_affinity().clone()),
            );
        }
        return Ok(p);
    }
    if a.command.is_empty() {
        bail!("exec: no command given (args)");
    }
    let mut p = spec
        .process()
        .clone()
        .context("process: missing in the container's config")?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.into());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
        user.set_additional_gids(if a.additional_gids.is_empty() {
            user.additional_gids().clone()
        } else {
            Some(a.additional_gids.clone())
        });
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let name = if c.starts_with("CAP_") {
                c.clone()
            } else {
                format!("CAP_{c}")
            };
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name))
                .map_err(|_| anyhow::anyhow!("--cap: unknown capability {c:?}"))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    _ => caps.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(ap) = &a.apparmor {
        p.set_apparmor_profile(Some(ap.clone()));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

fn exec_inner(g: &Global, a: &ExecOptions) -> Result<i32> {
    let st = g.store.load(&a.id)?;
    crate::fault::step("exec: state loaded");
    match status_of(g, &st) {
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Paused if !a.ignore_paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => {}
    }
    let raw = std::fs::read(g.store.dir(&a.id).join(state::CONFIG_FILE))
        .context("read the container's saved config.json")?;
    let spec = crate::spec::parse(&raw)?;
    let process = build_process(&spec, a)?;
    if process.args().as_ref().is_none_or(|v| v.is_empty()) {
        bail!("process.args: must not be empty");
    }
    if !process.cwd().is_absolute() {
        bail!(
            "process.cwd: {:?} is not an absolute path",
            process.cwd().display()
        );
    }
    let affinity = crate::process::affinity::ExecAffinity::of(&process)?;
    let terminal = process.terminal().unwrap_or(false);
    let mut console = a
        .console_socket
        .as_deref()
        .map(crate::process::console::connect)
        .transpose()?;
    let mut own_pty: Option<OwnedFd> = None;
    if terminal && console.is_none() {
        if a.detach {
            bail!("--tty with --detach needs --console-socket");
        }
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )?;
        own_pty = Some(ours);
        console = Some(theirs);
    }
    let sub_cgroups = super::exec_cgroup::parse(&a.cgroup)?;
    let mempolicy = crate::process::mempolicy::check(&spec)?;
    let seccomp = crate::process::compile_seccomp(&spec)?;
    let self_exe = crate::process::self_exe_id()?;

    // Open the container's namespaces (pinned by the pidfd-checked pid).
    let pidfd = crate::sys::pidfd::open(st.pid).context("container not running")?;
    if state::process_start_time(st.pid) != Some(st.pid_start_time) {
        bail!("container not running");
    }
    let mut join: Vec<(LinuxNamespaceType, OwnedFd)> = Vec::new();
    let types: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.iter().map(|n| n.typ()).collect())
        .unwrap_or_default();
    for t in &types {
        let name = crate::namespaces::proc_name(*t);
        let theirs = format!("/proc/{}/ns/{name}", st.pid);
        let mine = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .map(|m| m.ino())
            .ok();
        let f = std::fs::File::open(&theirs).with_context(|| format!("open {theirs}"))?;
        if f.metadata().map(|m| m.ino()).ok() == mine {
            continue;
        }
        join.push((*t, f.into()));
    }
    let in_userns = types.contains(&LinuxNamespaceType::User);
    // No mount namespace of its own: the container's root is its init's chroot, entered here
    // through the init's root (pinned by the pidfd-checked pid, like the namespaces).
    let chroot_dir: Option<OwnedFd> = if crate::rootfs::own_mount_ns(&spec) {
        None
    } else {
        let p = format!("/proc/{}/root", st.pid);
        let fd = nix::fcntl::open(
            p.as_str(),
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("open the container's root {p}"))?;
        Some(fd)
    };
    if !nix::unistd::geteuid().is_root() {
        // Rootless: the container's other namespaces belong to its user namespace, and only
        // there does this process have the capabilities setns(2) needs; enter it first (it
        // owns that namespace, so nothing is lost on the host side).
        if let Some(i) = join
            .iter()
            .position(|(t, _)| *t == LinuxNamespaceType::User)
        {
            let (_, fd) = join.remove(i);
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWUSER)
                .context("join the container's user namespace")?;
        }
    }
    // pid and time namespaces apply to children: enter them here, before the fork.
    for (t, fd) in &join {
        if matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            nix::sched::setns(
                fd,
                CloneFlags::from_bits_retain(crate::namespaces::clone_flag(*t)),
            )
            .with_context(|| {
                format!(
                    "join the container's {} namespace",
                    crate::namespaces::proc_name(*t)
                )
            })?;
        }
    }
    join.sort_by_key(|(t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    let cg = crate::cgroups::from_state(&st.cgroup)?;
    let sub_dirs = super::exec_cgroup::target_dirs(&st.cgroup, &sub_cgroups)?;

    let mask = if a.detach {
        None
    } else {
        Some(super::foreground::block_signals()?)
    };
    let (parent_chan, child_chan) = Channel::pair()?;
    // As in create: on cgroup v1 the child places itself (writes 0 to `tasks`, before it joins
    // any namespace), skipping the grace-period wait of a `cgroup.procs` write.
    let placement = crate::process::Placement::for_exec(cg.as_ref());
    // execCPUAffinity.initial: the child is born with it, before it is in the container's
    // cgroup (clone3 may place it there at birth), as runc starts `runc init` from a thread
    // pinned to it. This process gets its own affinity back right after the fork.
    let saved_affinity = match &affinity.initial {
        Some(set) => {
            let saved = crate::process::affinity::get_self()?;
            crate::process::affinity::set_self(set).context("process.execCPUAffinity.initial")?;
            Some(saved)
        }
        None => None,
    };
    let forked = crate::sys::clone3::fork_with(0, placement.clone_fd, true);
    if let (Some(saved), Ok((crate::sys::clone3::Forked::Parent { .. }, _)) | Err(_)) =
        (&saved_affinity, &forked)
    {
        if let Err(e) = crate::process::affinity::set_self(saved) {
            crate::logging::warn(&format!("restore the CPU affinity: {e:#}"));
        }
    }
    let (forked, into_cg) = forked.context("fork the exec process")?;
    let (pid, child_pidfd) = match forked {
        crate::sys::clone3::Forked::Child => {
            drop(parent_chan);
            placement.close_in_child();
            crate::process::exec_init::run(crate::process::exec_init::ExecContext {
                process: &process,
                chan: child_chan,
                self_join: &placement.self_join,
                sub_cgroups: &sub_dirs,
                join,
                chroot_dir,
                console,
                mempolicy,
                seccomp: seccomp.as_ref(),
                in_userns,
                preserve_fds: a.preserve_fds,
                self_exe,
                affinity: &affinity,
            })
        }
        crate::sys::clone3::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_chan);
    drop(pidfd);
    crate::fault::step("exec: forked");
    let fail = |e: anyhow::Error| -> Result<i32> {
        crate::process::kill_and_wait(pid, true);
        Err(e)
    };
    if let Err(e) = placement.complete(cg.as_ref(), pid, into_cg) {
        return fail(e.context("join the container's cgroup"));
    }
    crate::fault::step("exec: placed");
    parent_chan.send(&Msg::Go)?;
    // The channel closes on a successful exec (close-on-exec); an error arrives as a message.
    loop {
        match parent_chan.recv_with_fd() {
            Err(_) => break,
            Ok((Msg::Error(e), _)) => {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                bail!("{e}")
            }
            Ok((Msg::SeccompFd, Some(fd))) if seccomp.is_some() => {
                // runc's state for the agent: the container runs; `pid` is this process's
                let p = seccomp.as_ref().expect("checked");
                let state = crate::hooks::state_json(
                    &a.id,
                    "running",
                    st.pid,
                    &st.bundle,
                    spec.annotations().as_ref(),
                );
                if let Err(e) = crate::security::notify::send_to_agent(p, pid, &state, fd.as_fd()) {
                    return fail(e);
                }
            }
            Ok((m, _)) => return fail(anyhow::anyhow!("unexpected message {m:?}")),
        }
    }
    crate::log_debug!("{}: exec'd process runs, pid {pid}", a.id);
    crate::fault::step("exec: running");
    if let Some(pf) = &a.pid_file {
        crate::process::write_pid_file(pf, pid)?;
    }
    if let Some(sock) = &a.pidfd_socket {
        super::lifecycle::send_pidfd(sock, child_pidfd.as_ref(), pid)?;
    }
    let master = match &own_pty {
        Some(s) => Some(crate::process::console::recv_fd(s.as_raw_fd())?),
        None => None,
    };
    let Some(mask) = mask else {
        return Ok(0);
    };
    super::foreground::forward_until_exit(pid, &mask, master.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn cap_names() {
        let spec = crate::spec::parse(crate::spec::default_spec_json(false).as_bytes()).unwrap();
        let mut a = crate::cli::Cli::try_parse_from([
            "husk",
            "exec",
            "--cap",
            "SYS_ADMIN",
            "--cap",
            "CAP_NET_RAW",
            "c",
            "sh",
        ])
        .unwrap();
        let Some(crate::cli::Command::Runtime(crate::cli::RuntimeCommand::Exec(e))) =
            a.command.take()
        else {
            panic!()
        };
        let p = build_process(&spec, &e.into()).unwrap();
        let caps = p.capabilities().as_ref().unwrap();
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert!(caps
            .permitted()
            .as_ref()
            .unwrap()
            .contains(&Capability::NetRaw));
        assert!(caps.inheritable().as_ref().is_none_or(|i| i.is_empty()));
    }

    #[test]
    fn user_strings_are_strict() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("0:5").unwrap(), (0, Some(5)));
        for bad in [
            "",
            ":",
            "1000:",
            ":1000",
            "a",
            "1000:x",
            "-1",
            "1:2:3",
            "4294967296",
            " 1",
            "+1",
        ] {
            assert!(parse_user(bad).is_err(), "{bad:?} accepted");
        }
    }
}
