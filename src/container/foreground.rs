//! The foreground of `run`, `exec` and `restore`: signals blocked before the fork (or, for
//! restore, once CRIU is done), forwarded to the container's process until it exits, its pty
//! proxied, orphans reaped; and for `run` and `restore`, the container removed after its init
//! exited.

use super::lifecycle::{destroy, Global};
use crate::state::ContainerState;
use anyhow::{Context, Result};
use nix::sys::signal::SigSet;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Block every signal that can be blocked (the ones forwarded), returning the mask for
/// [`forward_until_exit`]. Before the fork, so none is lost: the container's process unblocks
/// them before its exec.
pub(crate) fn block_signals() -> Result<SigSet> {
    let mut mask = SigSet::all();
    mask.remove(nix::sys::signal::SIGKILL);
    mask.remove(nix::sys::signal::SIGSTOP);
    mask.thread_block().context("block signals")?;
    Ok(mask)
}

/// After the container's init (`st.pid`, reaped by [`forward_until_exit`]) exited: kill what
/// is left in its cgroup (nothing is, with a pid namespace of its own: the kernel killed it
/// with the init), reap whatever was reparented to husk, and remove the container.
pub(crate) fn remove_after_exit(g: &Global, st: &ContainerState) -> Result<()> {
    if !st.own_pid_ns {
        if let Ok(cg) = crate::cgroups::from_state(&st.cgroup) {
            for p in cg.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
    }
    reap_all();
    destroy(g, st)
}

fn reap_all() {
    while let Ok(ws) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if ws == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Puts a tty in raw mode and restores it on drop.
pub(crate) struct RawTty {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawTty {
    pub(crate) fn new() -> Self {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(
                stdin.as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                &raw,
            );
        }
        RawTty { saved }
    }
}

impl Drop for RawTty {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

fn copy_winsize(master: BorrowedFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass; failure (no tty) is ignored.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        let _ = crate::process::console::set_size(master.as_raw_fd(), ws.ws_row, ws.ws_col);
    }
}

/// Forward signals to `pid`, proxy the pty, reap every child that exits, and return the exit
/// code once `pid` has exited (and was reaped).
pub(crate) fn forward_until_exit(pid: i32, mask: &SigSet, master: Option<&OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(
        mask,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
    .context("signalfd")?;
    let _raw = master.map(|_| RawTty::new());
    if let Some(m) = master {
        copy_winsize(m.as_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 16 * 1024];
    let mut code: Option<i32> = None;
    loop {
        if let Some(c) = code {
            if !master_open {
                return Ok(c);
            }
        }
        let mut fds = vec![libc::pollfd {
            fd: sfd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(m) = master {
            if master_open {
                fds.push(libc::pollfd {
                    fd: m.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if stdin_open && code.is_none() {
                fds.push(libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        // After exit, drain the pty without blocking forever.
        let timeout = if code.is_some() { 100 } else { -1 };
        // SAFETY: fds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).context("poll");
        }
        if n == 0 && code.is_some() {
            return Ok(code.unwrap_or(0));
        }
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == sfd.as_fd().as_raw_fd() {
                while let Ok(Some(info)) = sfd.read_signal() {
                    let sig = info.ssi_signo as i32;
                    if sig == libc::SIGCHLD {
                        loop {
                            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                                Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => code = Some(c),
                                Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => {
                                    code = Some(128 + s as i32)
                                }
                                Ok(WaitStatus::StillAlive) | Err(_) => break,
                                Ok(_) => {}
                            }
                        }
                    } else if sig == libc::SIGWINCH {
                        if let Some(m) = master {
                            copy_winsize(m.as_fd());
                        }
                    } else {
                        // SAFETY: plain kill(2) with a pid and signal number.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            } else if master.is_some_and(|m| p.fd == m.as_raw_fd()) {
                let m = master.expect("checked");
                match nix::unistd::read(m, &mut buf) {
                    Ok(0) | Err(_) => master_open = false,
                    Ok(k) => write_all(1, &buf[..k]),
                }
            } else if p.fd == 0 {
                let stdin = std::io::stdin();
                match nix::unistd::read(stdin.as_fd(), &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(k) => write_all(master.expect("pty").as_raw_fd(), &buf[..k]),
                }
            }
        }
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice to an fd we hold.
        let r = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if r <= 0 {
            if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        data = &data[r as usize..];
    }
}
