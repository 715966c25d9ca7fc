//! The console of a `process.terminal` container: a pty made inside the container's devpts,
//! the master sent to the caller's console socket with SCM_RIGHTS, the slave made the
//! container's stdio and controlling terminal, and bound onto /dev/console by fd.

use anyhow::{Context, Result};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Connect to the caller's console socket (host side, before the container is spawned).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path)
        .with_context(|| format!("--console-socket: connect to {}", path.display()))?;
    Ok(s.into())
}

/// Send `fd` over the unix socket `sock` with `name` as the payload (runc's framing).
pub fn send_fd(sock: RawFd, name: &str, fd: RawFd) -> Result<()> {
    let fds = [fd];
    let iov = [IoSlice::new(name.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None).context("send fd over socket")?;
    Ok(())
}

/// Receive one fd sent with `send_fd`.
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .context("receive fd from socket")?;
    for c in msg.cmsgs().context("read control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd in our table for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    anyhow::bail!("no file descriptor received on the console socket")
}

fn ioctl(fd: RawFd, req: libc::c_ulong, arg: libc::c_ulong) -> std::io::Result<libc::c_int> {
    // SAFETY: the tty ioctls used here take an int or a pointer to a live struct passed by the
    // caller as `arg`.
    let r = unsafe { libc::ioctl(fd, req as _, arg) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// Apply `process.consoleSize` to a pty.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    ioctl(fd, libc::TIOCSWINSZ, &ws as *const _ as libc::c_ulong)
        .context("process.consoleSize: TIOCSWINSZ")?;
    Ok(())
}

/// Inside the container, after pivot_root: make the pty, hand the master to the caller, make the
/// slave our stdio and controlling terminal; the container's init also binds it onto
/// /dev/console (`console`), a process joining with `exec` does not.
pub fn setup_in_container(sock: &OwnedFd, size: Option<(u16, u16)>, console: bool) -> Result<()> {
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags_noctty()
        .open("/dev/ptmx")
        .context("open /dev/ptmx in the container")?
        .into();
    let m = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    ioctl(m, libc::TIOCSPTLCK, &unlock as *const _ as libc::c_ulong).context("unlockpt")?;
    let mut n: libc::c_uint = 0;
    ioctl(m, libc::TIOCGPTN, &mut n as *mut _ as libc::c_ulong).context("TIOCGPTN")?;
    // TIOCGPTPEER opens the slave through the master: no path lookup that could be raced.
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let s = ioctl(
        m,
        TIOCGPTPEER,
        (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as libc::c_ulong,
    )
    .context("open the pty slave (TIOCGPTPEER)")?;
    // SAFETY: TIOCGPTPEER returned a new fd that we own.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    if let Some((rows, cols)) = size {
        set_size(m, rows, cols)?;
    }
    send_fd(sock.as_raw_fd(), &format!("/dev/pts/{n}"), m)
        .context("--console-socket: send the pty master")?;
    drop(master);
    if console {
        crate::rootfs::bind_console(slave.as_fd()).context("bind the pty onto /dev/console")?;
    }
    nix::unistd::dup2_stdin(&slave).context("dup the pty onto stdin")?;
    nix::unistd::dup2_stdout(&slave).context("dup the pty onto stdout")?;
    nix::unistd::dup2_stderr(&slave).context("dup the pty onto stderr")?;
    ioctl(0, libc::TIOCSCTTY, 0).context("make the pty the controlling terminal")?;
    Ok(())
}

trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for std::fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
    }
}
