//! create, start, state, kill, delete, list.

use crate::cli::CreateArgs;
use crate::process::spawn::{self, SpawnOptions};
use crate::state::{self, ContainerState, Status, Store};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};

/// The global flags every operation needs.
pub struct Global {
    pub store: Store,
    pub systemd_cgroup: bool,
    /// Rootless mode (`--rootless`, or detected with `auto`): see `spawn::make_cgroup`.
    pub rootless: crate::rootless::Mode,
}

/// The status of a container as callers see it, derived from the live system: a dead (or
/// reused) pid means stopped; a pending exec socket means created.
pub fn status_of(g: &Global, st: &ContainerState) -> Status {
    if st.pid <= 0 || state::process_start_time(st.pid) != Some(st.pid_start_time) {
        return Status::Stopped;
    }
    if g.store.dir(&st.id).join(state::EXEC_SOCKET).exists() {
        return Status::Created;
    }
    if st.paused {
        return Status::Paused;
    }
    Status::Running
}

pub fn create(g: &Global, a: &CreateArgs) -> Result<()> {
    state::validate_id(&a.id)?;
    let bundle = crate::spec::load(&a.bundle)?;
    let console = a
        .console_socket
        .as_deref()
        .map(crate::process::console::connect)
        .transpose()?;
    let mut s = spawn::spawn(
        &bundle,
        SpawnOptions {
            id: &a.id,
            store: &g.store,
            systemd_cgroup: g.systemd_cgroup,
            rootless: g.rootless,
            console,
            start_socket: true,
            preserve_fds: a.preserve_fds,
            no_pivot: a.no_pivot,
            no_new_keyring: a.no_new_keyring,
            pid_file: a.pid_file.as_deref(),
        },
    )?;
    if let Some(sock) = &a.pidfd_socket {
        let fd = match &s.pidfd {
            Some(fd) => fd.try_clone()?,
            None => crate::sys::pidfd::open(s.state.pid)?,
        };
        send_pidfd(sock, &fd)?;
    }
    s.commit();
    Ok(())
}

pub fn start(g: &Global, id: &str) -> Result<()> {
    let _lock = g.store.lock(id)?;
    let st = g.store.load(id)?;
    match status_of(g, &st) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        s => bail!("cannot start an already {} container", s.as_str()),
    }
    let dir = std::fs::File::open(g.store.dir(id)).context("open state dir")?;
    let p = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), state::EXEC_SOCKET);
    let mut conn = std::os::unix::net::UnixStream::connect(&p)
        .with_context(|| format!("container {id}: connect to its exec socket"))?;
    // init answers "0" after the startContainer hooks, or "1<error>" when one failed; it keeps
    // the connection open until its execve (close-on-exec), so EOF means the program runs.
    let mut answer = Vec::new();
    let res = conn.read_to_end(&mut answer);
    let _ = std::fs::remove_file(g.store.dir(id).join(state::EXEC_SOCKET));
    res.context("wait for the container to start")?;
    match answer.first() {
        Some(b'0') => {}
        Some(b'1') => bail!("container {id}: {}", String::from_utf8_lossy(&answer[1..])),
        _ => bail!("container {id}: init exited before it could start the program"),
    }
    crate::log_debug!("{id}: started, pid {}", st.pid);
    if !st.poststart.is_empty() {
        let js = crate::hooks::state_json(id, "running", st.pid, &st.bundle, Some(&st.annotations));
        crate::hooks::run_all_warn("hooks.poststart", &st.poststart, &js);
    }
    Ok(())
}

/// `--pidfd-socket`: send a pidfd of the container's process to the caller.
pub fn send_pidfd(sock: &std::path::Path, pidfd: &std::os::fd::OwnedFd) -> Result<()> {
    let s = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("--pidfd-socket: connect to {}", sock.display()))?;
    crate::process::console::send_fd(s.as_raw_fd(), "pidfd", pidfd.as_raw_fd())
        .context("--pidfd-socket: send the pidfd")
}

pub fn state(g: &Global, id: &str) -> Result<()> {
    let st = g.store.load(id)?;
    let status = status_of(g, &st);
    let mut out = serde_json::to_string_pretty(&st.oci(status))?;
    out.push('\n');
    crate::cli::output::stdout(out.as_bytes())?;
    Ok(())
}

/// Signal every process in the container's cgroup (through cgroup.kill or a frozen cgroup, so
/// nothing forks away in between).
fn signal_all(st: &ContainerState, sig: i32) -> Result<()> {
    if st.cgroup.driver == crate::cgroups::NoCgroup::DRIVER {
        // A rootless container without a cgroup of its own: its init is all husk can find.
        if state::process_start_time(st.pid) == Some(st.pid_start_time) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(st.pid),
                nix::sys::signal::Signal::try_from(sig).ok(),
            );
        }
        return Ok(());
    }
    let cg = crate::cgroups::from_state(&st.cgroup)?;
    let sig = nix::sys::signal::Signal::try_from(sig)
        .map_err(|_| anyhow::anyhow!("kill --all: signal {sig} cannot be sent to a group"))?;
    cg.kill_all(sig)
}

/// The annotation config.md reserves for the signal "that SHOULD be sent by the container
/// runtimes to kill the container".
const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";

/// `signal` is the one given on the command line; without one, the config's stop-signal
/// annotation, else SIGTERM (runc's default).
pub fn kill(g: &Global, id: &str, signal: Option<&str>, all: bool) -> Result<()> {
    let given = signal.map(super::parse_kill_signal).transpose()?;
    let st = g.store.load(id)?;
    let sig = match given {
        Some(s) => s,
        None => match st.annotations.get(STOP_SIGNAL_ANNOTATION) {
            Some(a) => super::parse_signal(a).unwrap_or_else(|e| {
                crate::logging::warn(&format!(
                    "annotation {STOP_SIGNAL_ANNOTATION}: {e}; sending SIGTERM"
                ));
                libc::SIGTERM
            }),
            None => libc::SIGTERM,
        },
    };
    // `kill --all` signals every process left in the container's cgroup even once init has
    // exited, as runc does: containerd's shim runs `kill --all ID 9` right after the init of a
    // container without its own pid namespace exits, so its other processes die with it.
    crate::log_debug!(
        "{id}: signal {sig} to {}",
        if all {
            "every process of its cgroup".to_string()
        } else {
            format!("pid {}", st.pid)
        }
    );
    if all {
        if sig == 0 {
            // the null signal sends nothing: only whether something is left to signal
            if status_of(g, &st) == Status::Stopped && st.own_pid_ns {
                bail!("container not running");
            }
            return Ok(());
        }
        return signal_all(&st, sig);
    }
    // Pin the process with a pidfd, then check it is still the container's init (a dead or
    // reused pid means the container is stopped).
    let fd =
        crate::sys::pidfd::open(st.pid).map_err(|_| anyhow::anyhow!("container not running"))?;
    if state::process_start_time(st.pid) != Some(st.pid_start_time) {
        bail!("container not running");
    }
    crate::sys::pidfd::send_signal(fd.as_fd(), sig).map_err(|e| {
        if e.raw_os_error() == Some(libc::ESRCH) {
            anyhow::anyhow!("no such process")
        } else {
            anyhow::anyhow!("kill container {id}: {e}")
        }
    })
}

/// Remove everything a stopped container holds: its cgroup, then poststop hooks, then its
/// state dir.
pub fn destroy(g: &Global, st: &ContainerState) -> Result<()> {
    // (an error here is returned once the rest is removed)
    let unmounted = match st.host_rootfs_mount {
        Some(m) => crate::rootfs::unmount_host_rootfs(&st.rootfs, m),
        None => Ok(()),
    };
    let cg = crate::cgroups::from_state(&st.cgroup)?;
    cg.destroy()?;
    if !st.poststop.is_empty() {
        let js = crate::hooks::state_json(&st.id, "stopped", 0, &st.bundle, Some(&st.annotations));
        crate::hooks::run_all_warn("hooks.poststop", &st.poststop, &js);
    }
    std::fs::remove_dir_all(g.store.dir(&st.id))
        .with_context(|| format!("remove state dir of {}", st.id))?;
    unmounted
}

/// Kill every process of a container and wait until init is gone.
fn kill_everything(st: &ContainerState, was_paused: bool) {
    if !st.own_pid_ns {
        let _ = signal_all(st, libc::SIGKILL);
    }
    if was_paused {
        if let Ok(cg) = crate::cgroups::from_state(&st.cgroup) {
            let _ = cg.freeze(false);
        }
    }
    spawn::kill_and_wait(st.pid, false);
    if !st.own_pid_ns {
        let _ = signal_all(st, libc::SIGKILL);
    }
}

/// What a `create` killed half way (e.g. SIGKILL) left: its cgroup (found again from the config
/// copy saved before the cgroup was made), anything running in it, and the state dir. The init
/// of such a create exits by itself when its sync channel closes.
fn remove_half_created(g: &Global, id: &str) {
    let dir = g.store.dir(id);
    spawn::unmount_half_created(&dir);
    if let Ok(raw) = std::fs::read(dir.join(state::CONFIG_FILE)) {
        if let Ok(spec) = crate::spec::parse(&raw) {
            let path = spec
                .linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().as_ref())
                .map(|p| p.to_string_lossy().into_owned());
            // (a rootless container's unit lives in the user's systemd instance)
            let user = g.systemd_cgroup && g.rootless.get();
            let none = std::collections::HashMap::new();
            let cg = crate::cgroups::new_manager_with(
                path.as_deref(),
                id,
                g.systemd_cgroup,
                &none,
                user,
            );
            if let Ok(cg) = cg {
                let _ = cg.kill_all(nix::sys::signal::SIGKILL);
                if let Err(e) = cg.destroy() {
                    crate::logging::warn(&format!("remove the cgroup of {id}: {e:#}"));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

pub fn delete(g: &Global, id: &str, force: bool) -> Result<()> {
    state::validate_id(id)?;
    if !g.store.dir(id).exists() {
        if force {
            return Ok(());
        }
        bail!("container {id} does not exist");
    }
    let _lock = g.store.lock(id)?;
    let st = match g.store.load(id) {
        Ok(st) => st,
        Err(e) => {
            // A state dir without state.json: a create that was killed half way.
            if force {
                remove_half_created(g, id);
                return Ok(());
            }
            return Err(e);
        }
    };
    let status = status_of(g, &st);
    crate::log_debug!(
        "{id}: delete (force: {force}) of a {} container",
        status.as_str()
    );
    match status {
        Status::Stopped => {}
        Status::Created => kill_everything(&st, false),
        s if force => kill_everything(&st, s == Status::Paused),
        s => bail!(
            "cannot delete container {id} that is not stopped: {}",
            s.as_str()
        ),
    }
    destroy(g, &st)
}

pub fn list(g: &Global, format: &str, quiet: bool) -> Result<()> {
    let rows: Vec<_> = g
        .store
        .load_all()?
        .into_iter()
        .map(|st| {
            let status = status_of(g, &st);
            (st, status)
        })
        .collect();
    let mut out = String::new();
    if quiet {
        for (st, _) in &rows {
            out.push_str(&st.id);
            out.push('\n');
        }
    } else {
        match format {
            "json" => {
                // runc prints `null` for an empty list (a nil Go slice).
                let v: Vec<_> = rows.iter().map(|(st, s)| st.oci(*s)).collect();
                out = if v.is_empty() {
                    "null".into()
                } else {
                    serde_json::to_string(&v)?
                };
                out.push('\n');
            }
            "table" => out = table(&rows),
            other => bail!("--format: invalid format {other:?} (expected table or json)"),
        }
    }
    crate::cli::output::stdout(out.as_bytes())?;
    Ok(())
}

/// runc's table: tabwriter with minwidth 12, padding 3.
fn table(rows: &[(ContainerState, Status)]) -> String {
    let mut cells: Vec<[String; 6]> = vec![[
        "ID".into(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for (st, s) in rows {
        let pid = if *s == Status::Stopped { 0 } else { st.pid };
        cells.push([
            st.id.clone(),
            pid.to_string(),
            s.as_str().into(),
            st.bundle.display().to_string(),
            st.created.clone(),
            st.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 5];
    for r in &cells {
        for (i, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(r[i].len() + 3).max(12);
        }
    }
    let mut out = String::new();
    for r in &cells {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}", r[i], w = *w));
        }
        out.push_str(&r[5]);
        out.push('\n');
    }
    out
}
