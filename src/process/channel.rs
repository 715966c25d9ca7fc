//! The typed sync channel between the runtime (host side) and the container's init: a
//! SOCK_SEQPACKET socketpair carrying small, bounded messages (a message larger than the bound
//! is an error, never a silent truncation: CVE-2021-43784).

use anyhow::{bail, Context, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

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

    /// Receive one message; EOF (the other side exited) is an error.
    pub fn recv(&self) -> Result<Msg> {
        let mut buf = vec![0u8; MAX_MSG + 1];
        let n = loop {
            // SAFETY: buf is a valid writable buffer of the given length; MSG_TRUNC makes the
            // kernel report the real length of an oversized message.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
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
            break r as usize;
        };
        if n == 0 {
            bail!("the other side of the sync channel closed it");
        }
        if n > MAX_MSG {
            bail!("sync message of {n} bytes exceeds the {MAX_MSG}-byte bound");
        }
        serde_json::from_slice(&buf[..n]).context("decode sync message")
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
    fn last_words_survive_unread_messages() {
        let (a, b) = Channel::pair().unwrap();
        b.send(&Msg::Go).unwrap();
        a.send(&Msg::Error("why".into())).unwrap();
        drop(a); // exits with Go unread: the peer sees ECONNRESET first
        assert_eq!(b.recv().unwrap(), Msg::Error("why".into()));
        assert!(b.recv().is_err());
    }
}
