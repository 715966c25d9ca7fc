//! The pump's side of `husk attach` (`attach.rs`): the container's pump (`monitor.rs`, which
//! holds its stdio) listens on `attach.sock` in the bundle, in its own poll loop (no thread):
//! it copies what the container writes from then on to each connected client besides the log,
//! and the clients' input to the container's stdin (the `-i` pipe, or with `-t` the pty
//! master). When the container's init exits, each client gets the exit code, and the socket is
//! removed.
//!
//! Both directions are frames: a kind byte, a little-endian u32 length, the payload. From the
//! pump: [`STDOUT`], [`STDERR`] (the bytes as written), [`EXIT`] (an i32 exit code, last). From a
//! client: [`STDIN`] (bytes for the container's stdin), [`RESIZE`] (rows and columns, u16 each,
//! for the pty).

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The pump's socket, in the bundle.
pub const SOCKET: &str = "attach.sock";

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const STDIN: u8 = 4;
pub const RESIZE: u8 = 5;

/// The largest frame either side sends or takes.
const MAX_FRAME: usize = 64 * 1024;
/// Output a client has not read yet beyond this: the client is dropped (the container is never
/// held up by a slow client).
const MAX_BACKLOG: usize = 4 * 1024 * 1024;

pub(super) fn header(kind: u8, len: usize) -> [u8; 5] {
    let l = (len as u32).to_le_bytes();
    [kind, l[0], l[1], l[2], l[3]]
}

/// The next complete frame at the start of `buf`: (kind, payload, its whole length); None
/// while incomplete; Err for a frame longer than any side sends.
pub(super) fn next_frame(buf: &[u8]) -> Result<Option<(u8, &[u8], usize)>> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME {
        bail!("a frame of {len} bytes");
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    Ok(Some((buf[0], &buf[5..5 + len], 5 + len)))
}

/// A path to `bundle/NAME` that fits a socket address however long the store's path: through
/// the bundle's descriptor, which the caller keeps open while it is used.
pub(super) fn short_path(bundle: &Path, name: &str) -> Result<(std::fs::File, PathBuf)> {
    let dir = std::fs::File::open(bundle).with_context(|| format!("open {}", bundle.display()))?;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
    Ok((dir, p))
}

/// Bind the pump's socket in `bundle` (one left by a monitor that was killed is replaced).
pub fn listen(bundle: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(bundle.join(SOCKET));
    let (_dir, p) = short_path(bundle, SOCKET)?;
    let l = UnixListener::bind(&p)
        .with_context(|| format!("bind {}", bundle.join(SOCKET).display()))?;
    l.set_nonblocking(true).context("attach socket")?;
    Ok(l)
}

/// The socket's file goes with the pump that listened on it.
pub fn remove_socket(bundle: &Path) {
    let _ = std::fs::remove_file(bundle.join(SOCKET));
}

struct Client {
    sock: UnixStream,
    /// Frames read and not yet complete.
    input: Vec<u8>,
    /// Output not yet taken by the client.
    out: Vec<u8>,
    /// Until the client ends its side (its stdin is done).
    reading: bool,
}

/// The pump's side: the listener and its clients, polled in the pump's loop.
pub struct Server {
    listener: UnixListener,
    clients: Vec<Client>,
    /// Where clients' input goes: the `-i` pipe or the pty master (the pump owns it), if
    /// the container was started with `-i`.
    stdin: Option<RawFd>,
    /// The pty master, for window sizes.
    master: Option<RawFd>,
    /// Input taken from clients, not yet written to `stdin`; clients are not read meanwhile.
    pending: Vec<u8>,
}

impl Server {
    /// `stdin` and `master` stay open as long as the server (the pump holds them).
    // (not inlined: its locals would enlarge the idle pump's frame)
    #[inline(never)]
    pub fn new(
        listener: UnixListener,
        stdin: Option<BorrowedFd>,
        master: Option<BorrowedFd>,
    ) -> Server {
        for fd in stdin.iter() {
            let _ = nix::fcntl::fcntl(
                *fd,
                nix::fcntl::FcntlArg::F_SETFL(
                    nix::fcntl::OFlag::from_bits_truncate(
                        nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_GETFL).unwrap_or(0),
                    ) | nix::fcntl::OFlag::O_NONBLOCK,
                ),
            );
        }
        Server {
            listener,
            clients: Vec::new(),
            stdin: stdin.map(|f| f.as_raw_fd()),
            master: master.map(|f| f.as_raw_fd()),
            pending: Vec::new(),
        }
    }

    /// The descriptors to poll, appended to `fds`: the listener, the container's stdin (while
    /// input waits), then each client.
    pub fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        let fd = |fd: RawFd, events: libc::c_short| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        fds.push(fd(self.listener.as_raw_fd(), libc::POLLIN));
        fds.push(match self.stdin {
            Some(s) if !self.pending.is_empty() => fd(s, libc::POLLOUT),
            // (a negative descriptor is skipped by poll)
            _ => fd(-1, 0),
        });
        for c in &self.clients {
            let mut ev = 0;
            if c.reading && self.pending.is_empty() {
                ev |= libc::POLLIN;
            }
            if !c.out.is_empty() {
                ev |= libc::POLLOUT;
            }
            fds.push(fd(c.sock.as_raw_fd(), ev));
        }
    }

    /// Act on what poll said of the descriptors [`poll_fds`] appended (`fds`, in that order).
    // (not inlined: its locals would enlarge the idle pump's frame)
    #[inline(never)]
    pub fn after_poll(&mut self, fds: &[libc::pollfd], buf: &mut [u8]) {
        if fds[0].revents & libc::POLLIN != 0 {
            while let Ok((sock, _)) = self.listener.accept() {
                if sock.set_nonblocking(true).is_ok() {
                    self.clients.push(Client {
                        sock,
                        input: Vec::new(),
                        out: Vec::new(),
                        reading: true,
                    });
                }
            }
        }
        if fds[1].revents != 0 {
            self.write_stdin();
        }
        let mut gone = Vec::new();
        for (i, p) in fds[2..].iter().enumerate() {
            if p.revents == 0 || i >= self.clients.len() {
                continue;
            }
            let keep = self.serve(i, p.revents, buf);
            if !keep {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.swap_remove(i);
        }
        if !self.pending.is_empty() {
            self.write_stdin();
        }
    }

    /// Client `i`'s events; false when it is to be dropped.
    fn serve(&mut self, i: usize, revents: libc::c_short, buf: &mut [u8]) -> bool {
        if revents & libc::POLLOUT != 0 && !flush(&mut self.clients[i]) {
            return false;
        }
        if revents & libc::POLLIN != 0 {
            let c = &mut self.clients[i];
            match (&c.sock).read(buf) {
                Ok(0) => c.reading = false,
                Ok(n) => c.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
            let mut used = 0;
            loop {
                let frame = match next_frame(&c.input[used..]) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => return false,
                };
                let (kind, data, len) = frame;
                match kind {
                    STDIN if self.stdin.is_some() => self.pending.extend_from_slice(data),
                    RESIZE if data.len() == 4 => {
                        if let Some(m) = self.master {
                            let rows = u16::from_le_bytes([data[0], data[1]]);
                            let cols = u16::from_le_bytes([data[2], data[3]]);
                            let _ = crate::process::console::set_size(m, rows, cols);
                        }
                    }
                    _ => {}
                }
                used += len;
            }
            c.input.drain(..used);
            if c.input.is_empty() {
                c.input = Vec::new();
            }
        } else if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return false;
        }
        true
    }

    /// Write what input waits to the container's stdin, as far as it takes it now.
    fn write_stdin(&mut self) {
        let Some(fd) = self.stdin else {
            self.pending = Vec::new();
            return;
        };
        while !self.pending.is_empty() {
            // SAFETY: fd is the pump's open stdin pipe or pty master (see `new`); the slice is
            // valid for its length.
            let n = unsafe { libc::write(fd, self.pending.as_ptr().cast(), self.pending.len()) };
            if n > 0 {
                self.pending.drain(..n as usize);
                continue;
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return,
                // the container closed its stdin: input goes nowhere from now on
                _ => {
                    self.stdin = None;
                    self.pending = Vec::new();
                    return;
                }
            }
        }
        self.pending = Vec::new();
    }

    /// The container wrote `data` on `kind` (STDOUT or STDERR): to every client.
    // (not inlined: its locals would enlarge the idle pump's frame)
    #[inline(never)]
    pub fn output(&mut self, kind: u8, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        self.clients.retain_mut(|c| {
            for chunk in data.chunks(MAX_FRAME) {
                c.out.extend_from_slice(&header(kind, chunk.len()));
                c.out.extend_from_slice(chunk);
            }
            c.out.len() <= MAX_BACKLOG && flush(c)
        });
    }

    /// The container's init exited with `code`: each client gets what is left of its output
    /// and the code (waiting at most a second for a slow one), then the connections close.
    // (not inlined: its locals would enlarge the idle pump's frame)
    #[inline(never)]
    pub fn finish(mut self, code: i32) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        for c in &mut self.clients {
            c.out.extend_from_slice(&header(EXIT, 4));
            c.out.extend_from_slice(&code.to_le_bytes());
        }
        while !self.clients.is_empty() {
            self.clients.retain_mut(|c| flush(c) && !c.out.is_empty());
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.clients.is_empty() || left.is_zero() {
                break;
            }
            let mut fds: Vec<libc::pollfd> = self
                .clients
                .iter()
                .map(|c| libc::pollfd {
                    fd: c.sock.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            // SAFETY: fds is a valid array of pollfd of the given length.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    left.as_millis() as i32,
                )
            };
        }
    }
}

/// Send what `c` has waiting, as far as its socket takes it now; false when the client is gone.
fn flush(c: &mut Client) -> bool {
    while !c.out.is_empty() {
        match nix::sys::socket::send(
            c.sock.as_raw_fd(),
            &c.out,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(_) => return false,
        }
    }
    c.out = Vec::new();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_where_they_end() {
        let mut b = header(STDOUT, 3).to_vec();
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&header(EXIT, 4));
        assert_eq!(next_frame(&b[..7]).unwrap(), None);
        let (k, d, n) = next_frame(&b).unwrap().unwrap();
        assert_eq!((k, d, n), (STDOUT, &b"abc"[..], 8));
        assert_eq!(next_frame(&b[n..]).unwrap(), None);
        assert!(next_frame(&header(STDIN, MAX_FRAME + 1)).is_err());
    }
}
