//! Talking to CRIU the way runc does: `criu swrk <fd>` over a SOCK_SEQPACKET socketpair, one
//! protobuf `criu_req` per message, `criu_resp` messages back (NOTIFY messages in between, each
//! acknowledged). CRIU is an external program: it is the checkpoint tool, not part of husk's
//! container start path.

pub mod proto;
pub mod request;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use proto::{Req, ReqType, Resp};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What a NOTIFY message carried.
pub struct Notify {
    pub script: String,
    pub pid: Option<i32>,
    /// A file descriptor CRIU passed along (the pty master of `orphan-pts-master`).
    pub fd: Option<OwnedFd>,
}

/// One `criu swrk` process.
pub struct Swrk {
    sock: OwnedFd,
    child: Option<Child>,
    /// CRIU's log file (in the work dir), named in every error.
    log: PathBuf,
}

impl Swrk {
    /// Start `criu swrk` (the binary `criu`, or the global `--criu` path). With
    /// `inherit_stdio` (restore) CRIU gets husk's stdio, which the restored process inherits
    /// (runc's way); otherwise its stdout and stderr go to `log`, so an early failure (before
    /// CRIU opens its log) is kept there.
    pub fn start(criu: &str, log: &Path, inherit_stdio: bool) -> Result<Swrk> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("criu: socketpair for swrk")?;
        // CRIU's end must survive exec: clear close-on-exec on it alone.
        nix::fcntl::fcntl(
            &theirs,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .context("criu: clear FD_CLOEXEC on the swrk socket")?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("criu: open log file {}", log.display()))?;
        let err = out.try_clone().context("criu: dup log fd")?;
        let mut cmd = Command::new(criu);
        cmd.arg("swrk").arg(theirs.as_raw_fd().to_string());
        if !inherit_stdio {
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        }
        let child = cmd
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow::anyhow!("criu: executable file not found in $PATH: {criu} (install CRIU, Debian package `criu`)")
                } else {
                    anyhow::anyhow!("criu: start {criu} swrk: {e}")
                }
            })?;
        drop(theirs);
        Ok(Swrk {
            sock: ours,
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Send one message; `false` when CRIU is gone (it exited before reading).
    fn send(&self, req: &Req) -> Result<bool> {
        let b = req.encode();
        match nix::sys::socket::send(self.sock.as_raw_fd(), &b, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => Ok(true),
            Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("criu: send {:?} request", req.typ)),
        }
    }

    /// Receive one message; `None` when CRIU closed its end (it exited).
    fn recv(&self) -> Result<Option<(Resp, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let m = match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                // CRIU exited with our request unread.
                Err(nix::errno::Errno::ECONNRESET) => return Ok(None),
                Err(e) => return Err(e).context("criu: receive a response"),
            };
            let mut fd = None;
            for c in m.cmsgs().context("criu: control message")? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for (i, f) in fds.into_iter().enumerate() {
                        // SAFETY: SCM_RIGHTS just installed this fd in our table; we own it.
                        let owned = unsafe { OwnedFd::from_raw_fd(f) };
                        if i == 0 {
                            fd = Some(owned);
                        }
                    }
                }
            }
            (m.bytes, fd)
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((Resp::decode(&buf[..n])?, fd)))
    }

    /// Send `req`, answer NOTIFY messages through `on_notify`, and return CRIU's final answer.
    /// A refusal or an exit without answer is an error naming CRIU's words and its log file.
    pub fn call(
        &mut self,
        req: &Req,
        mut on_notify: impl FnMut(Notify) -> Result<()>,
    ) -> Result<Resp> {
        let mut alive = self.send(req)?;
        loop {
            let got = if alive { self.recv()? } else { None };
            let Some((resp, fd)) = got else {
                let how = self.wait_exit();
                bail!(
                    "criu {} failed: criu exited without answering ({how}){}; see log {}",
                    action(req.typ),
                    self.log_excerpt(),
                    self.log.display()
                );
            };
            if resp.typ == ReqType::Notify as i64 {
                on_notify(Notify {
                    script: resp.notify_script.clone().unwrap_or_default(),
                    pid: resp.notify_pid,
                    fd,
                })?;
                alive = self.send(&Req::notify_ack())?;
                continue;
            }
            if !resp.success {
                let mut why = String::new();
                if let Some(m) = &resp.cr_errmsg {
                    why.push_str(&format!(": {m}"));
                }
                if let Some(e) = resp.cr_errno.filter(|e| *e != 0) {
                    why.push_str(&format!(": {}", std::io::Error::from_raw_os_error(e)));
                }
                bail!(
                    "criu {} failed{why}{}; see log {}",
                    action(req.typ),
                    self.log_excerpt(),
                    self.log.display()
                );
            }
            if resp.typ != req.typ as i64 {
                bail!(
                    "criu: answer of type {} to a {:?} request",
                    resp.typ,
                    req.typ
                );
            }
            return Ok(resp);
        }
    }

    /// After CRIU's final answer: close our end and wait for CRIU. A non-zero exit is an
    /// error, except after a pre-dump (runc's rule: CRIU then waits for a DUMP that never
    /// comes).
    pub fn finish(mut self, typ: ReqType) -> Result<()> {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let st = c.wait().context("criu: wait for exit")?;
        if !st.success() && typ != ReqType::PreDump {
            bail!(
                "criu {} failed: criu exited with {st} after answering; see log {}",
                action(typ),
                self.log.display()
            );
        }
        Ok(())
    }

    /// Wait for CRIU to exit; describe how it did.
    fn wait_exit(&mut self) -> String {
        match self.child.take().map(|mut c| c.wait()) {
            Some(Ok(st)) => match (
                st.code(),
                std::os::unix::process::ExitStatusExt::signal(&st),
            ) {
                (Some(c), _) => format!("exit status {c}"),
                (_, Some(s)) => format!("killed by signal {s}"),
                _ => st.to_string(),
            },
            Some(Err(e)) => format!("wait: {e}"),
            None => "already reaped".into(),
        }
    }

    /// The last `Error` lines of CRIU's log, on one line.
    fn log_excerpt(&self) -> String {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return String::new();
        };
        let errs: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("Error"))
            .map(str::trim)
            .collect();
        if errs.is_empty() {
            return String::new();
        }
        let tail = &errs[errs.len().saturating_sub(3)..];
        format!("; its log ends: {}", tail.join(" | "))
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        // Closing our end makes swrk exit; then reap it.
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

fn action(t: ReqType) -> &'static str {
    match t {
        ReqType::Dump => "dump",
        ReqType::PreDump => "pre-dump",
        ReqType::Restore => "restore",
        ReqType::Version => "version",
        ReqType::Check => "check",
        _ => "request",
    }
}

/// Whether the CRIU binary `criu` (a path, or a name looked up in $PATH) is an executable file.
/// A cheap stat, no subprocess: `features` runs this on every call.
pub fn installed(criu: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if criu.contains('/') {
        return exec(Path::new(criu));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| exec(&d.join(criu))))
}

#[cfg(test)]
mod tests {
    use super::installed;

    #[test]
    fn installed_is_an_executable_file_by_path_or_in_path() {
        assert!(installed("/bin/sh"));
        assert!(installed("sh"));
        assert!(!installed("/etc/passwd"), "not executable");
        assert!(!installed("/bin"), "a directory");
        assert!(!installed("/no/such/criu"));
        assert!(!installed("husk-no-such-criu-binary"));
    }
}
