//! What husk prints on stdout (`state`, `list`, `ps`, `events`, `features`, `--version`).
//!
//! A reader that went away (`husk features | head -1`) ends husk the way it ends runc (Go dies
//! of SIGPIPE on a write to a closed stdout) and every Unix filter: by SIGPIPE, with nothing on
//! stderr and no error line in the log. The Rust runtime ignores SIGPIPE, so the write returns
//! EPIPE; `println!` would panic on it.

use std::io::{ErrorKind, Write};

/// Write `text` to stdout and flush it; on EPIPE, die of SIGPIPE ([`die_of_sigpipe`]).
pub fn stdout(text: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => die_of_sigpipe(),
        r => r,
    }
}

/// [`stdout`] of one line (a newline is added).
pub fn line(text: &str) -> std::io::Result<()> {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    stdout(s.as_bytes())
}

/// End the process by SIGPIPE (default action: terminate quietly).
pub fn die_of_sigpipe() -> ! {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGPIPE);
    let _ = set.thread_unblock();
    // SAFETY: resetting one signal's disposition to the default in this process; no handler
    // runs, and raise() then terminates the process with that signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // not reached: SIGPIPE's default action ends the process
    std::process::exit(128 + libc::SIGPIPE)
}
