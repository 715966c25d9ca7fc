//! The typed sync channel between the runtime (host side) and the container's init: a
//! SOCK_SEQPACKET socketpair carrying small, bounded messages (a message larger than the bound
//! is an error, never a silent truncation: CVE-2021-43784).

use anyhow::{bail, Context, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const MAX_MSG: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    /// Runtime → init: the process is in its cgroup; go on.
    Go,
    /// Init → runtime: process PID (0: the forked child) created a user namespace; write its
    /// id maps.
    MapsRequest(i32),
    /// Runtime → init: id maps written.
    MapsDone,
    /// Init → runtime: the real init is PID (after the extra fork a pid namespace needs).
    Pid(i32),
    /// Init → runtime: mounts done; move linux.netDevices in, run the prestart and
    /// createRuntime hooks.
    HooksRequest,
    /// Runtime → init: init's pid as the host sees it (the state given to createContainer
    /// hooks), sent just before `HooksDone`.
    HostPid(i32),
    /// Runtime → init: hooks done.
    HooksDone,
    /// Init or exec'd process → runtime: the seccomp filter is installed; its notification
    /// listener fd comes with this message (SCM_RIGHTS), for the agent at listenerPath.
    SeccompFd,
    /// Init → runtime: everything is set up; init now waits for `start`.
    Ready,
    /// Runtime → init (`run` without an exec socket): go ahead and exec.
    Start,
    /// Init → runtime: setup failed.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

impl std::os::fd::AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for the init sync channel")?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn send(&self, m: &Msg) -> Result<()> {
        let mut data = serde_json::to_vec(m).context("encode sync message")?;
        if data.len() > MAX_MSG {
            // Only an error text can be this long: cut it, keeping a valid message.
            if let Msg::Error(s) = m {
                // Cut on a char boundary (String::truncate panics inside a UTF-8 sequence) and
                // shrink until the JSON form fits: escaping can grow a text up to 6 times.
                let mut keep = MAX_MSG / 2;
                loop {
                    while !s.is_char_boundary(keep) {
                        keep -= 1;
                    }
                    data = serde_json::to_vec(&Msg::Error(format!("{}…", &s[..keep])))?;
                    if data.len() <= MAX_MSG {
                        break;
                    }
                    keep /= 2;
                }
            } else {
                bail!("sync message too large");
            }
        }
        loop {
            match nix::unistd::write(&self.fd, &data) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("send sync message"),
            }
        }
    }

    /// Send `m` with `fd` attached (SCM_RIGHTS): the receiver gets its own copy.
    #[cfg(test)]
    pub fn send_with_fd(&self, m: &Msg, fd: BorrowedFd) -> Result<()> {
        let data = serde_json::to_vec(m).context("encode sync message")?;
        self.send_encoded_with_fd(&data, fd)
    }

    /// Send an already encoded message (`serde_json::to_vec(&msg)`) with `fd` attached. Makes
    /// no syscall but sendmsg(2) and allocates nothing when it succeeds: it runs right after a
    /// seccomp filter is installed, whose notifying syscalls would wait for an agent that has
    /// not got the fd yet.
    pub fn send_encoded_with_fd(&self, data: &[u8], fd: BorrowedFd) -> Result<()> {
        if data.len() > MAX_MSG {
            bail!("sync message too large");
        }
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // room for one cmsghdr with one int, 8-byte aligned
        let mut ctl = [0u64; 4];
        // SAFETY: an all-zero msghdr is valid; its pointers are set just below.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = ctl.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE/CMSG_LEN only compute sizes; CMSG_FIRSTHDR points into `ctl`,
        // which is large enough for one cmsghdr carrying one int (CMSG_SPACE(4) <= 32).
        unsafe {
            hdr.msg_controllen = libc::CMSG_SPACE(4) as _;
            let c = libc::CMSG_FIRSTHDR(&hdr);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            (libc::CMSG_DATA(c) as *mut i32).write_unaligned(fd.as_raw_fd());
        }
        loop {
            // SAFETY: `hdr` points at `iov` (over `data`) and `ctl`, both live for the call.
            let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &hdr, 0) };
            if r >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e).context("send sync message with a file descriptor");
            }
        }
    }

    /// Receive one message; EOF (the other side exited) is an error. A file descriptor sent
    /// with it is closed (see `recv_with_fd`).
    pub fn recv(&self) -> Result<Msg> {
        self.recv_with_fd().map(|(m, _)| m)
    }

    /// Receive one message and the file descriptor that came with it, if any.
    pub fn recv_with_fd(&self) -> Result<(Msg, Option<OwnedFd>)> {
        self.recv_or_closed()?
            .context("the other side of the sync channel closed it")
    }

    /// Receive one message, or None when the other side closed the channel: for a receiver to
    /// whom the close is the expected answer (the init's exec closes it), so that no error is
    /// made on the path that succeeds.
    pub fn recv_or_closed(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG + 1];
        // room for one fd: a sender never attaches more (more would be cut: MSG_CTRUNC)
        let mut ctl = [0u64; 4];
        let mut fd = None;
        let n = loop {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: an all-zero msghdr is valid; its pointers are set just below.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = &mut iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = ctl.as_mut_ptr().cast();
            hdr.msg_controllen = std::mem::size_of_val(&ctl) as _;
            // SAFETY: `hdr` points at `iov` (over `buf`) and `ctl`, live and writable for the
            // given lengths; MSG_TRUNC makes the kernel report the real length of an oversized
            // message, MSG_CMSG_CLOEXEC marks a received fd close-on-exec.
            let r = unsafe {
                libc::recvmsg(
                    self.fd.as_raw_fd(),
                    &mut hdr,
                    libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                // ECONNRESET: the other side exited with our messages unread in its queue. The
                // kernel reports that before what it sent us last (often its error): the error
                // is now consumed, so read again.
                if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::ECONNRESET)) {
                    continue;
                }
                return Err(e).context("receive sync message");
            }
            // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, within
            // `msg_controllen`; an SCM_RIGHTS payload holds ints, each an fd now ours.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                        let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                        let p = libc::CMSG_DATA(c) as *const i32;
                        for k in 0..len / 4 {
                            let f = OwnedFd::from_raw_fd(p.add(k).read_unaligned());
                            if fd.is_none() {
                                fd = Some(f);
                            }
                        }
                    }
                    c = libc::CMSG_NXTHDR(&hdr, c);
                }
            }
            break r as usize;
        };
        if n == 0 {
            return Ok(None);
        }
        if n > MAX_MSG {
            bail!("sync message of {n} bytes exceeds the {MAX_MSG}-byte bound");
        }
        let m = serde_json::from_slice(&buf[..n]).context("decode sync message")?;
        Ok(Some((m, fd)))
    }

    /// Receive and check that it is `want`; an `Error` from the other side becomes the error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            m if m == want => Ok(()),
            Msg::Error(e) => bail!("{e}"),
            other => bail!("sync: expected {want:?}, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Msg::MapsRequest(42)).unwrap();
        assert_eq!(b.recv().unwrap(), Msg::MapsRequest(42));
        a.send(&Msg::Error("x".repeat(MAX_MSG * 2))).unwrap();
        match b.recv().unwrap() {
            Msg::Error(s) => assert!(s.len() <= MAX_MSG),
            m => panic!("{m:?}"),
        }
        // a cut inside a UTF-8 sequence, and control characters that JSON escapes 6-fold
        for long in ["€".repeat(MAX_MSG), "\u{1}".repeat(MAX_MSG)] {
            a.send(&Msg::Error(long.clone())).unwrap();
            match b.recv().unwrap() {
                Msg::Error(s) => {
                    assert!(s.ends_with('…') && long.starts_with(s.trim_end_matches('…')))
                }
                m => panic!("{m:?}"),
            }
        }
        drop(a);
        assert!(b.recv().is_err());
    }

    #[test]
    fn fd_travels_with_its_message() {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsFd;
        let (a, b) = Channel::pair().unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"seccomp").unwrap();
        a.send_with_fd(&Msg::SeccompFd, f.as_fd()).unwrap();
        a.send(&Msg::Ready).unwrap();
        let (m, fd) = b.recv_with_fd().unwrap();
        assert_eq!(m, Msg::SeccompFd);
        let mut g = std::fs::File::from(fd.expect("no fd with SeccompFd"));
        g.rewind().unwrap();
        let mut s = String::new();
        g.read_to_string(&mut s).unwrap();
        assert_eq!(s, "seccomp");
        assert_eq!(b.recv_with_fd().unwrap().0, Msg::Ready);
    }

    #[test]
    fn last_words_survive_unread_messages() {
        let (a, b) = Channel::pair().unwrap();
        b.send(&Msg::Go).unwrap();
        a.send(&Msg::Error("why".into())).unwrap();
        drop(a); // exits with Go unread: the peer sees ECONNRESET first
        assert_eq!(b.recv().unwrap(), Msg::Error("why".into()));
        assert!(b.recv().is_err());
    }
}
