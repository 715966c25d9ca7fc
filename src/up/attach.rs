//! `husk attach NAME`: the caller's stdio attached to a running container of `husk up -d`, as
//! `docker attach`, through its pump's socket (`attach_sock.rs`): the container's output from
//! then on, the caller's stdin to the container's when it was started with `-i`, the detach
//! keys on a terminal, signals passed on (`--sig-proxy`), and the container's exit code.

use super::attach_sock::{
    header, next_frame, short_path, EXIT, RESIZE, SOCKET, STDERR, STDIN, STDOUT,
};
use super::{bundle_dir, monitor};
use crate::container::Global;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// What `husk attach` was asked for.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// `--no-stdin`: the caller's stdin is not attached.
    pub no_stdin: bool,
    /// `--sig-proxy`: signals husk attach gets go to the container (not with a terminal).
    pub sig_proxy: bool,
    /// `--detach-keys`: the sequence that detaches (a terminal's input only).
    pub detach_keys: Vec<u8>,
}

/// Docker's default detach sequence, Ctrl-P Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// `--detach-keys`: comma-separated keys, each a single character or `ctrl-X` (X a letter, or
/// `@`, `[`, `\`, `]`, `^`, `_`), as Docker reads them.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let b = key.as_bytes();
        if b.len() == 1 {
            out.push(b[0]);
            continue;
        }
        let code = key.strip_prefix("ctrl-").and_then(|k| match k.as_bytes() {
            [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
            [b'@'] => Some(0),
            [b'['] => Some(27),
            [b'\\'] => Some(28),
            [b']'] => Some(29),
            [b'^'] => Some(30),
            [b'_'] => Some(31),
            _ => None,
        });
        match code {
            Some(c) => out.push(c),
            None => bail!(
                "--detach-keys {s:?}: unknown key {key:?} (a character, or ctrl-a … ctrl-z, \
                 ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_; comma-separated)"
            ),
        }
    }
    Ok(out)
}

/// Watches a terminal's input for the detach sequence: bytes that may begin it are held back
/// until it is complete (detach) or broken (they are passed on).
struct Escape<'a> {
    keys: &'a [u8],
    matched: usize,
}

impl Escape<'_> {
    /// `data` with the held bytes of a broken sequence; true when the sequence is complete
    /// (what came before it is in `out`).
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in data {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// The signals `--sig-proxy` passes on (as the docker CLI: all but those about husk attach
/// itself).
const PROXIED: &[nix::sys::signal::Signal] = {
    use nix::sys::signal::Signal::*;
    &[
        SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCONT, SIGTSTP, SIGTTIN,
        SIGTTOU, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGXCPU, SIGXFSZ,
    ]
};

/// `husk attach NAME`: returns the container's exit code once it ended, or 0 after the detach
/// sequence.
pub fn attach(g: &Global, store_dir: &Path, id: &str, o: &AttachOptions) -> Result<i32> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    crate::state::validate_id(id)?;
    let bundle = bundle_dir(store_dir, id);
    if !bundle.exists() && !g.store.dir(id).exists() {
        bail!("{id}: no such container");
    }
    if !monitor::is_running(g, id) {
        bail!("{id}: cannot attach to a stopped container (start it: husk restart {id})");
    }
    let not_monitored = || {
        anyhow::anyhow!(
            "{id}: no monitor holds its stdio (only a running container of husk up -d can be \
             attached to)"
        )
    };
    let cfg = monitor::load_config(&bundle).map_err(|_| not_monitored())?;
    if !monitor::active(&bundle) {
        return Err(not_monitored());
    }
    let (_dir, path) = short_path(&bundle, SOCKET)?;
    let sock = UnixStream::connect(&path).map_err(|_| not_monitored())?;
    let stdin_on = cfg.interactive && !o.no_stdin;
    let tty = cfg.tty;
    let stdin = std::io::stdin();
    let stdin_is_tty = nix::unistd::isatty(stdin.as_fd()).unwrap_or(false);
    let _raw = (tty && stdin_on && stdin_is_tty).then(crate::container::foreground::RawTty::new);
    let mut mask = SigSet::empty();
    if tty {
        mask.add(Signal::SIGWINCH);
    } else if o.sig_proxy {
        for s in PROXIED {
            mask.add(*s);
        }
    }
    mask.thread_block().context("block signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let send = |kind: u8, data: &[u8]| -> Result<()> {
        let mut frame = header(kind, data.len()).to_vec();
        frame.extend_from_slice(data);
        (&sock)
            .write_all(&frame)
            .with_context(|| format!("{id}: write to its monitor"))
    };
    let resize = || {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills the winsize struct passed; an error (no terminal) is left.
        if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0
            // SAFETY: as above, of stdin.
            || unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0
        {
            let mut d = ws.ws_row.to_le_bytes().to_vec();
            d.extend_from_slice(&ws.ws_col.to_le_bytes());
            return send(RESIZE, &d);
        }
        Ok(())
    };
    if tty {
        resize()?;
    }
    let mut escape = Escape {
        keys: if tty && stdin_on { &o.detach_keys } else { &[] },
        matched: 0,
    };
    let mut reading_stdin = stdin_on;
    let mut input = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::new();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if reading_stdin { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(std::io::Error::last_os_error()).context("poll");
        }
        if fds[0].revents != 0 {
            let n = match (&sock).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("{id}: read from its monitor")),
            };
            if n == 0 {
                // the monitor went away without the exit code (killed): what it recorded
                let code = monitor::load_status(&bundle).ok().and_then(|s| s.exit_code);
                return code.with_context(|| {
                    format!("{id}: its monitor ended before the container's exit code came")
                });
            }
            input.extend_from_slice(&buf[..n]);
            let mut used = 0;
            while let Some((kind, data, len)) =
                next_frame(&input[used..]).with_context(|| format!("{id}: from its monitor"))?
            {
                match kind {
                    STDOUT => write_out(1, data)?,
                    STDERR => write_out(2, data)?,
                    EXIT if data.len() == 4 => {
                        return Ok(i32::from_le_bytes([data[0], data[1], data[2], data[3]]))
                    }
                    _ => {}
                }
                used += len;
            }
            input.drain(..used);
        }
        if fds[1].revents != 0 {
            while let Ok(Some(si)) = sfd.read_signal() {
                let sig = si.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    resize()?;
                } else if let Err(e) = crate::container::kill(g, id, Some(&sig.to_string()), false)
                {
                    crate::logging::warn(&format!("{id}: signal {sig}: {e:#}"));
                }
            }
        }
        if fds[2].revents != 0 {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => {
                    // (the container's stdin stays open, as docker attach's)
                    reading_stdin = false;
                }
                Ok(n) => {
                    out.clear();
                    let detach = escape.feed(&buf[..n], &mut out);
                    if !out.is_empty() {
                        send(STDIN, &out)?;
                    }
                    if detach {
                        return Ok(0);
                    }
                }
            }
        }
    }
}

/// Write all of `data` to descriptor `fd` (1 or 2); a closed stdout ends husk by SIGPIPE.
fn write_out(fd: RawFd, data: &[u8]) -> Result<()> {
    // SAFETY: fd is this process's stdout or stderr, open for its lifetime.
    let f = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut rest = data;
    while !rest.is_empty() {
        match nix::unistd::write(f, rest) {
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EPIPE) => crate::output::die_of_sigpipe(),
            Err(e) => return Err(e).context("write the container's output"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_reads_them() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(parse_detach_keys("a,ctrl-@,ctrl-_").unwrap(), [b'a', 0, 31]);
        for bad in ["ctrl-", "ctrl-1", "ab", "x,"] {
            let e = parse_detach_keys(bad).unwrap_err().to_string();
            assert!(e.contains("--detach-keys"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_detach_sequence_is_held_back_until_broken() {
        let mut e = Escape {
            keys: DEFAULT_DETACH_KEYS,
            matched: 0,
        };
        let mut out = Vec::new();
        assert!(!e.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        assert!(!e.feed(b"c\x10\x10", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
        assert!(e.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
    }
}
