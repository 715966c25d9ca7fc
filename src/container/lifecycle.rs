//! create, start, state, kill, delete, list.

use super::CreateOptions;
use crate::process::spawn::{self, SpawnOptions};
use crate::process::teardown::{Leftover, Teardown};
use crate::state::{self, ContainerState, Status, Store};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};

/// The global flags every operation needs.
pub struct Global {
    pub store: Store,
    pub systemd_cgroup: bool,
    /// Rootless mode (`--rootless`, or detected with `auto`): see `process::make_cgroup`.
    pub rootless: crate::rootless::Mode,
}

/// The status of a container as callers see it, derived from the live system: a dead (or
/// reused) pid means stopped; a frozen or freezing cgroup means paused (the freezer, not the
/// `paused` flag, is the truth: a `pause` killed half way leaves the cgroup frozen with the flag
/// unset); a pending exec socket means created. The order is runc's (a paused container that
/// was never started is paused).
pub fn status_of(g: &Global, st: &ContainerState) -> Status {
    if st.pid <= 0 || state::process_start_time(st.pid) != Some(st.pid_start_time) {
        return Status::Stopped;
    }
    if is_paused(st) {
        return Status::Paused;
    }
    if g.store.dir(&st.id).join(state::EXEC_SOCKET).exists() {
        return Status::Created;
    }
    Status::Running
}

/// Whether the container's cgroup is frozen or freezing; the recorded flag only when the
/// freezer cannot be read (no cgroup of its own, no freezer controller).
fn is_paused(st: &ContainerState) -> bool {
    if st.cgroup.driver == crate::cgroups::NoCgroup::DRIVER {
        return st.paused;
    }
    match crate::cgroups::from_state(&st.cgroup).and_then(|cg| cg.freezer_state()) {
        Ok(f) => f != crate::cgroups::FreezerState::Thawed,
        Err(_) => st.paused,
    }
}

pub fn create(g: &Global, a: &CreateOptions) -> Result<()> {
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
        send_pidfd(sock, s.pidfd.as_ref(), s.state.pid)?;
    }
    s.commit();
    Ok(())
}

pub fn start(g: &Global, id: &str) -> Result<()> {
    let _lock = g.store.lock(id)?;
    let st = g.store.load(id)?;
    crate::fault::step("start: locked");
    match status_of(g, &st) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        s => bail!("cannot start an already {} container", s.as_str()),
    }
    let dir = std::fs::File::open(g.store.dir(id)).context("open state dir")?;
    let p = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), state::EXEC_SOCKET);
    let mut conn = std::os::unix::net::UnixStream::connect(&p)
        .with_context(|| format!("container {id}: connect to its exec socket"))?;
    crate::fault::step("start: connected");
    // init answers "0" after the startContainer hooks, or "1<error>" when one failed; it keeps
    // the connection open until its execve (close-on-exec), so EOF means the program runs.
    let mut answer = Vec::new();
    let res = conn.read_to_end(&mut answer);
    crate::fault::step("start: answer read");
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

/// `--pidfd-socket`: send a pidfd of the process `pid` to the caller: `pidfd` when clone3 gave
/// one, else a new one from pidfd_open.
pub fn send_pidfd(
    sock: &std::path::Path,
    pidfd: Option<&std::os::fd::OwnedFd>,
    pid: i32,
) -> Result<()> {
    let opened;
    let pidfd = match pidfd {
        Some(fd) => fd,
        None => {
            opened = crate::sys::pidfd::open(pid)?;
            &opened
        }
    };
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
    crate::output::stdout(out.as_bytes())?;
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

/// Whether any directory of the container's cgroup is there (when the state's cgroup cannot
/// even be described, assume it is).
fn cgroup_exists(st: &ContainerState) -> bool {
    crate::cgroups::from_state(&st.cgroup).map_or(true, |cg| cg.exists())
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
    crate::fault::step("kill: state loaded");
    if all {
        if sig == 0 {
            // the null signal sends nothing: only whether something is left to signal
            if status_of(g, &st) == Status::Stopped && st.own_pid_ns {
                bail!("container not running");
            }
            return Ok(());
        }
        // With the systemd driver the container's cgroup is its scope's, which systemd removes
        // with the scope's last process: a stopped container whose cgroup is gone has nothing
        // left to signal, and that is no error (runc alike). containerd's shim sends `kill
        // --all ID 9` when it deletes an exited task; on an error containerd never finishes
        // stopping the pod sandbox.
        return signal_all(&st, sig).or_else(|e| {
            if status_of(g, &st) == Status::Stopped && !cgroup_exists(&st) {
                crate::log_debug!("{id}: stopped and its cgroup is gone: nothing to signal");
                Ok(())
            } else {
                Err(e)
            }
        });
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
/// state dir. The state dir goes even when the cgroup cannot be removed (as runc's destroy):
/// the error then says so and names the cgroup.
pub fn destroy(g: &Global, st: &ContainerState) -> Result<()> {
    // (errors here are returned once the rest is removed)
    let unmounted = match st.host_rootfs_mount {
        Some(m) => crate::rootfs::unmount_host_rootfs(&st.rootfs, m),
        None => Ok(()),
    };
    let cg = crate::cgroups::from_state(&st.cgroup).and_then(|cg| cg.destroy());
    crate::fault::step("delete: cgroup removed");
    if !st.poststop.is_empty() {
        let js = crate::hooks::state_json(&st.id, "stopped", 0, &st.bundle, Some(&st.annotations));
        crate::hooks::run_all_warn("hooks.poststop", &st.poststop, &js);
    }
    std::fs::remove_dir_all(g.store.dir(&st.id))
        .with_context(|| format!("remove state dir of {}", st.id))?;
    cg.map_err(|e| cgroup_left(&st.id, e))?;
    unmounted
}

fn cgroup_left(id: &str, e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("container {id} deleted, but its cgroup could not be removed: {e:#}")
}

/// Kill every process of a container: its init when `init_alive` (the pid was checked against
/// its start time), and everything in its cgroup.
fn kill_everything(st: &ContainerState, init_alive: bool) {
    if st.cgroup.driver == crate::cgroups::NoCgroup::DRIVER {
        // A rootless container without a cgroup of its own: its init is all husk can find.
        if init_alive {
            crate::process::kill_and_wait(st.pid, false);
        }
        return;
    }
    let cg = crate::cgroups::from_state(&st.cgroup);
    if let Ok(cg) = &cg {
        let _ = cg.freeze(false);
    }
    crate::fault::step("delete: cgroup thawed");
    if init_alive {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(st.pid),
            nix::sys::signal::SIGKILL,
        );
    }
    if let Ok(cg) = &cg {
        crate::process::teardown::sweep(cg.as_ref());
    }
    if init_alive {
        crate::process::kill_and_wait(st.pid, false);
    }
}

/// What a `create` killed half way (e.g. SIGKILL) left, or a container whose state.json cannot
/// be read or names an unusable cgroup: its cgroup (found again from the config copy saved
/// before the cgroup was made), anything running in it, and the state dir.
fn remove_half_created(g: &Global, id: &str) -> Result<()> {
    let dir = g.store.dir(id);
    let spec = std::fs::read(dir.join(state::CONFIG_FILE))
        .ok()
        .and_then(|raw| crate::spec::parse(&raw).ok());
    let cg = spec.and_then(|spec| {
        let path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned());
        // (a rootless container's unit lives in the user's systemd instance)
        let user = g.systemd_cgroup && g.rootless.get();
        let none = std::collections::HashMap::new();
        crate::cgroups::new_manager_with(path.as_deref(), id, g.systemd_cgroup, &none, user).ok()
    });
    match Teardown::of_state_dir(dir, cg).run() {
        Ok(()) => Ok(()),
        Err(Leftover::StateDir(e)) => Err(e),
        Err(Leftover::Cgroup(e)) => Err(cgroup_left(id, e)),
    }
}

pub fn delete(g: &Global, id: &str, force: bool) -> Result<()> {
    state::validate_id(id)?;
    if !g.store.dir(id).exists() {
        if force {
            // a create of this id killed before its directory had the id leaves an `@new.*`
            g.store.sweep_new_dirs();
            return Ok(());
        }
        bail!("container {id} does not exist");
    }
    let Some(_lock) = g.store.lock_existing(id)? else {
        // deleted by a concurrent delete while we waited for the lock (a container made again
        // under the id since is another one)
        if force {
            return Ok(());
        }
        bail!("container {id} does not exist");
    };
    crate::fault::step("delete: locked");
    let st = match g.store.load(id) {
        Ok(st) => st,
        Err(e) => {
            // A state dir without state.json (a create that was killed half way) or with one
            // that cannot be read.
            if force {
                if !g.store.dir(id).exists() {
                    return Ok(()); // deleted by a concurrent delete while we waited for the lock
                }
                return remove_half_created(g, id);
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
        Status::Stopped | Status::Created => {}
        _ if force => {}
        s => bail!(
            "cannot delete container {id} that is not stopped: {}",
            s.as_str()
        ),
    }
    if st.cgroup.driver != crate::cgroups::NoCgroup::DRIVER {
        if let Err(e) = crate::cgroups::from_state(&st.cgroup) {
            // a state.json whose cgroup is unusable: the cgroup is found from the saved config
            crate::logging::warn(&format!("{id}: {e:#}; using the saved config.json"));
            if status != Status::Stopped {
                crate::process::kill_and_wait(st.pid, false);
            }
            return remove_half_created(g, id);
        }
    }
    kill_everything(&st, status != Status::Stopped);
    crate::fault::step("delete: processes killed");
    destroy(g, &st)
}

/// The status `list` shows for a container whose state file cannot be read (the reason goes
/// to stderr): it is listed, not hidden, since its processes may still run.
const UNREADABLE_STATUS: &str = "unknown";

pub fn list(g: &Global, format: &str, quiet: bool) -> Result<()> {
    let empty = std::collections::HashMap::new();
    let rows: Vec<(Option<ContainerState>, String, &str)> = g
        .store
        .load_all()?
        .into_iter()
        .map(|r| match r {
            Ok(st) => {
                let status = status_of(g, &st).as_str();
                let id = st.id.clone();
                (Some(st), id, status)
            }
            Err(u) => {
                eprintln!(
                    "husk: list: container {}: state cannot be read: {}",
                    u.id, u.reason
                );
                (None, u.id, UNREADABLE_STATUS)
            }
        })
        .collect();
    fn oci<'a>(
        (st, id, status): &'a (Option<ContainerState>, String, &'static str),
        empty: &'a std::collections::HashMap<String, String>,
    ) -> state::OciState<'a> {
        match st {
            Some(st) => st.oci_with(status),
            None => state::OciState {
                oci_version: "",
                id,
                pid: 0,
                status,
                bundle: std::path::Path::new(""),
                rootfs: std::path::Path::new(""),
                created: "",
                annotations: empty,
                owner: "",
            },
        }
    }
    let mut out = String::new();
    if quiet {
        for (_, id, _) in &rows {
            out.push_str(id);
            out.push('\n');
        }
    } else {
        match format {
            "json" => {
                // runc prints `null` for an empty list (a nil Go slice).
                let v: Vec<_> = rows.iter().map(|r| oci(r, &empty)).collect();
                out = if v.is_empty() {
                    "null".into()
                } else {
                    serde_json::to_string(&v)?
                };
                out.push('\n');
            }
            "table" => out = table(&rows.iter().map(|r| oci(r, &empty)).collect::<Vec<_>>()),
            other => bail!("--format: invalid format {other:?} (expected table or json)"),
        }
    }
    crate::output::stdout(out.as_bytes())?;
    Ok(())
}

/// runc's table: tabwriter with minwidth 12, padding 3.
fn table(rows: &[state::OciState]) -> String {
    let mut cells: Vec<[String; 6]> = vec![[
        "ID".into(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for r in rows {
        cells.push([
            r.id.to_string(),
            r.pid.to_string(),
            r.status.into(),
            r.bundle.display().to_string(),
            r.created.to_string(),
            r.owner.to_string(),
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
