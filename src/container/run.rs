//! `run`: create and start in one go; in the foreground (`foreground.rs`), forward signals to
//! the container, proxy its terminal, and exit with its status.

use super::foreground::{block_signals, forward_until_exit, remove_after_exit};
use super::lifecycle::Global;
use super::RunOptions;
use crate::process::spawn::{self, SpawnOptions};
use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};

/// Returns the exit code for the husk process.
pub fn run(g: &Global, a: &RunOptions) -> Result<i32> {
    run_with(g, a, &mut |_| Ok(()))
}

/// [`run`], calling `created` once the container exists (its state saved, its init waiting)
/// and before its program starts: a companion attaches networks there. An error from it
/// removes the container and is returned.
pub fn run_with(
    g: &Global,
    a: &RunOptions,
    created: &mut dyn FnMut(&crate::state::ContainerState) -> Result<()>,
) -> Result<i32> {
    crate::state::validate_id(&a.create.id)?;
    let bundle = crate::spec::load(&a.create.bundle)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut console = a
        .create
        .console_socket
        .as_deref()
        .map(crate::process::console::connect)
        .transpose()?;
    // Foreground with a terminal and no console socket: husk holds the pty master itself.
    let mut own_pty_sock: Option<OwnedFd> = None;
    if terminal && console.is_none() && !a.detach {
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for the console")?;
        own_pty_sock = Some(ours);
        console = Some(theirs);
    }

    // Block the signals we forward before the fork so none is lost; init unblocks them before
    // exec. Orphans of a pid-namespace fork are reparented to us.
    let mask = if a.detach {
        None
    } else {
        let mask = block_signals()?;
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
        Some(mask)
    };

    let mut s = spawn::spawn(
        &bundle,
        SpawnOptions {
            id: &a.create.id,
            store: &g.store,
            systemd_cgroup: g.systemd_cgroup,
            rootless: g.rootless,
            console,
            start_socket: false,
            preserve_fds: a.create.preserve_fds,
            no_pivot: a.create.no_pivot,
            no_new_keyring: a.create.no_new_keyring,
            pid_file: a.create.pid_file.as_deref(),
        },
    )?;
    if let Some(sock) = &a.create.pidfd_socket {
        super::lifecycle::send_pidfd(sock, s.pidfd.as_ref(), s.state.pid)?;
    }
    let master = match &own_pty_sock {
        Some(sock) => Some(crate::process::console::recv_fd(sock.as_raw_fd())?),
        None => None,
    };
    created(&s.state)?;
    // Returns once the program runs (init's channel end closes at execve); a failing
    // startContainer hook comes back as an error and the cleanup removes everything.
    s.start()?;
    crate::fault::step("run: started");
    s.commit();
    let st = s.state.clone();
    if !st.poststart.is_empty() {
        let js =
            crate::hooks::state_json(&st.id, "running", st.pid, &st.bundle, Some(&st.annotations));
        crate::hooks::run_all_warn("hooks.poststart", &st.poststart, &js);
    }
    let Some(mask) = mask else {
        return Ok(0);
    };
    let code = forward_until_exit(st.pid, &mask, master.as_ref())?;
    crate::fault::step("run: exited");
    crate::log_debug!("{}: exited, status {code}", a.create.id);
    if !a.keep {
        remove_after_exit(g, &st)?;
    }
    Ok(code)
}
