//! `husk up --init`: a minimal init as the container's pid 1, Docker's `--init` (tini) made of
//! husk's own binary. `husk up` copies the running binary into the bundle (`husk-init`: a file
//! of the container's own, so the runtime's refusal to exec its own binary inside a container
//! holds, and a container that could write to it reaches no other), binds it read-only at
//! `/sbin/husk-init` and runs `/sbin/husk-init init-reaper -- COMMAND…`.
//!
//! [`run`] is that pid 1, as tini: every signal but the synchronous ones blocked and waited
//! for; the command forked into a process group of its own that gets the terminal; each
//! signal forwarded to it; every child (the zombies of orphans the kernel hands to pid 1)
//! reaped; the exit status of the command passed on (128+N for signal N); 127 or 126 when it
//! cannot be executed. `main` reaches it before parsing anything else, so the runtime's own
//! commands never run this code.

use anyhow::{bail, Context, Result};
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where the init is in the container (Docker's is `/sbin/docker-init`).
pub const CONTAINER_PATH: &str = "/sbin/husk-init";
/// The hidden subcommand the init runs as.
pub const SUBCOMMAND: &str = "init-reaper";
/// The copy of husk in the bundle.
const BUNDLE_FILE: &str = "husk-init";

/// The command of `husk init-reaper [--] COMMAND [ARG…]` (`args` as the process got them,
/// `args[0]` the program), taken raw: None when `args` are not that subcommand's.
pub fn reaper_command(args: &[OsString]) -> Option<Vec<OsString>> {
    if args.get(1).map(|a| a.as_bytes()) != Some(SUBCOMMAND.as_bytes()) {
        return None;
    }
    let rest = &args[2..];
    let rest = match rest.first() {
        Some(a) if a.as_bytes() == b"--" => &rest[1..],
        _ => rest,
    };
    Some(rest.to_vec())
}

/// The synchronous signals, left unblocked (tini's list): they are the process's own faults.
const SYNCHRONOUS: [Signal; 9] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// Run `command` as the container's init (see the module's text); returns the exit code.
pub fn run(command: &[OsString]) -> i32 {
    match reap(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("husk-init: {e:#}");
            1
        }
    }
}

fn reap(command: &[OsString]) -> Result<i32> {
    if command.is_empty() {
        bail!("usage: husk init-reaper -- COMMAND [ARG...]");
    }
    let argv = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .context("an argument holds a NUL byte")?;
    let mut blocked = SigSet::all();
    for s in SYNCHRONOUS {
        blocked.remove(s);
    }
    let mut original = SigSet::empty();
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&blocked), Some(&mut original))
        .context("block signals")?;
    // a background process group touching the terminal must not stop the init
    let ignore = signal::SigAction::new(
        signal::SigHandler::SigIgn,
        signal::SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: SIG_IGN installs no handler code; the old actions are restored in the child.
    let (ttin, ttou) = unsafe {
        (
            signal::sigaction(Signal::SIGTTIN, &ignore).context("ignore SIGTTIN")?,
            signal::sigaction(Signal::SIGTTOU, &ignore).context("ignore SIGTTOU")?,
        )
    };
    let default = signal::SigAction::new(
        signal::SigHandler::SigDfl,
        signal::SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: SIG_DFL installs no handler code. (An inherited SIG_IGN would have the kernel
    // reap the command itself, and its status lost.)
    unsafe { signal::sigaction(Signal::SIGCHLD, &default) }.context("default SIGCHLD")?;
    if nix::unistd::getpid() != Pid::from_raw(1) {
        // not the namespace's init (a shared pid namespace): orphans come here all the same
        nix::sys::prctl::set_child_subreaper(true).context("become a child subreaper")?;
    }
    // SAFETY: this process is single-threaded (the init runs nothing else), so the child may
    // run any code before it execs or exits.
    let child = match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            exec_child(&argv, &original, &ttin, &ttou);
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    loop {
        if let Some(code) = reap_children(child)? {
            return Ok(code);
        }
        // sigwait itself, not SigSet::wait: real-time signals are forwarded too
        let mut sig: libc::c_int = 0;
        // SAFETY: both pointers are valid for the call; the set is a sigset_t of nix's.
        let r = unsafe { libc::sigwait(blocked.as_ref(), &mut sig) };
        if r != 0 {
            if r == libc::EINTR {
                continue;
            }
            return Err(std::io::Error::from_raw_os_error(r)).context("wait for signals");
        }
        if sig == libc::SIGCHLD {
            continue;
        }
        // SAFETY: kill(2) with a pid of ours and a signal number the kernel just delivered.
        if unsafe { libc::kill(child.as_raw(), sig) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e).with_context(|| format!("forward signal {sig} to {child}"));
            }
        }
    }
}

/// The child: a process group of its own, in the terminal's foreground (when there is one),
/// the signal mask and tty signal actions as they were, then the command.
fn exec_child(
    argv: &[CString],
    original: &SigSet,
    ttin: &signal::SigAction,
    ttou: &signal::SigAction,
) -> ! {
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    match nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp()) {
        Ok(()) | Err(nix::errno::Errno::ENOTTY) | Err(nix::errno::Errno::ENXIO) => {}
        Err(e) => {
            eprintln!("husk-init: give the terminal to the command: {e}");
            // SAFETY: _exit ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(1) }
        }
    }
    // SAFETY: restoring the actions the process had before (SIG_DFL or inherited SIG_IGN).
    unsafe {
        let _ = signal::sigaction(Signal::SIGTTIN, ttin);
        let _ = signal::sigaction(Signal::SIGTTOU, ttou);
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(original), None);
    let e = nix::unistd::execvp(&argv[0], argv).unwrap_err();
    let code = match e {
        nix::errno::Errno::ENOENT => 127,
        nix::errno::Errno::EACCES => 126,
        _ => 1,
    };
    eprintln!("husk-init: exec {}: {e}", argv[0].to_string_lossy());
    // SAFETY: as above.
    unsafe { libc::_exit(code) }
}

/// Reap every child that has exited; the command's exit code once it has.
fn reap_children(command: Pid) -> Result<Option<i32>> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == command => code = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p == command => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(code),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("wait for children"),
        }
    }
}

/// Give the container `husk up --init`'s init: husk copied into `bundle`, bound read-only at
/// [`CONTAINER_PATH`], and `process.args` run under it. A dynamically linked husk needs its
/// loader in the image: without it, an error saying so.
pub fn install(bundle: &Path, spec: &mut Value) -> Result<()> {
    let exe = Path::new("/proc/self/exe");
    let head = read_head(exe).context("--init: read husk's own binary")?;
    if let Some(interp) = elf_interpreter(&head).context("--init: husk's own binary")? {
        let root = std::fs::File::open(bundle.join("rootfs")).context("--init: open the rootfs")?;
        use std::os::fd::AsFd;
        if crate::rootfs::resolve::resolve(root.as_fd(), Path::new(&interp), true).is_err() {
            bail!(
                "--init: this husk is dynamically linked (its loader is {interp}), which the \
                 image lacks; --init needs a statically linked husk (make release builds one)"
            );
        }
    }
    let copy = bundle.join(BUNDLE_FILE);
    std::fs::copy(exe, &copy)
        .with_context(|| format!("--init: copy husk to {}", copy.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o555))
        .with_context(|| format!("--init: chmod {}", copy.display()))?;
    let Some(args) = spec["process"]["args"].as_array().cloned() else {
        bail!("--init: the container has no process.args");
    };
    let mut with_init = vec![json!(CONTAINER_PATH), json!(SUBCOMMAND), json!("--")];
    with_init.extend(args);
    spec["process"]["args"] = Value::Array(with_init);
    let mount = json!({"destination": CONTAINER_PATH, "type": "bind",
                       "source": copy, "options": ["bind", "ro"]});
    match spec["mounts"].as_array_mut() {
        Some(m) => m.push(mount),
        None => spec["mounts"] = json!([mount]),
    }
    Ok(())
}

/// The first 64 KiB of a file: an ELF header and its program headers.
fn read_head(p: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut b = Vec::new();
    std::fs::File::open(p)?.take(64 << 10).read_to_end(&mut b)?;
    Ok(b)
}

/// The program interpreter (`PT_INTERP`) an ELF file asks for, None for a static one. `head` is
/// the start of the file; program headers or an interpreter beyond it are an error.
fn elf_interpreter(head: &[u8]) -> Result<Option<String>> {
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    let wide = match head[4] {
        1 => false,
        2 => true,
        c => bail!("ELF class {c} is neither 32 nor 64 bits"),
    };
    let le = match head[5] {
        1 => true,
        2 => false,
        d => bail!("ELF data encoding {d} is neither little nor big endian"),
    };
    let num = |off: usize, len: usize| -> Result<u64> {
        let b = head
            .get(off..off + len)
            .context("the ELF headers are cut short")?;
        let mut v: u64 = 0;
        for i in 0..len {
            let byte = if le { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?)
    } else {
        (num(0x1c, 4)?, num(0x2a, 2)?, num(0x2c, 2)?)
    };
    const PT_INTERP: u64 = 3;
    for i in 0..phnum {
        let ph = usize::try_from(phoff + i * phentsize).context("program header offset")?;
        if num(ph, 4)? != PT_INTERP {
            continue;
        }
        let (off, size) = if wide {
            (num(ph + 8, 8)?, num(ph + 0x20, 8)?)
        } else {
            (num(ph + 4, 4)?, num(ph + 0x10, 4)?)
        };
        let (off, size) = (usize::try_from(off)?, usize::try_from(size)?);
        let s = head
            .get(off..off.saturating_add(size))
            .context("the ELF interpreter lies beyond the headers")?;
        let s = s.split(|b| *b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(s).into_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn reaper_command_line() {
        assert_eq!(
            reaper_command(&os(&[
                "/sbin/husk-init",
                "init-reaper",
                "--",
                "sh",
                "-root"
            ])),
            Some(os(&["sh", "-root"]))
        );
        assert_eq!(
            reaper_command(&os(&["husk", "init-reaper", "ls"])),
            Some(os(&["ls"]))
        );
        assert_eq!(reaper_command(&os(&["husk", "init-reaper"])), Some(vec![]));
        assert_eq!(reaper_command(&os(&["husk", "run", "init-reaper"])), None);
        assert_eq!(reaper_command(&os(&["husk"])), None);
        assert_eq!(run(&[]), 1);
    }

    /// A minimal 64-bit little-endian ELF header with one program header of type `ty`, and
    /// an interpreter string after it.
    fn elf(ty: u32, interp: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&ty.to_le_bytes());
        let off = b.len() as u64;
        b[64 + 8..64 + 16].copy_from_slice(&off.to_le_bytes());
        b[64 + 0x20..64 + 0x28].copy_from_slice(&(interp.len() as u64).to_le_bytes());
        b.extend_from_slice(interp);
        b
    }

    #[test]
    fn elf_interpreters() {
        assert_eq!(
            elf_interpreter(&elf(3, b"/lib/ld-musl-x86_64.so.1\0")).unwrap(),
            Some("/lib/ld-musl-x86_64.so.1".into())
        );
        assert_eq!(elf_interpreter(&elf(1, b"")).unwrap(), None);
        let mut cut = elf(3, b"/lib64/ld.so\0");
        cut.truncate(cut.len() - 4);
        assert!(format!("{:#}", elf_interpreter(&cut).unwrap_err()).contains("beyond"));
        assert!(format!("{:#}", elf_interpreter(b"#!/bin/sh\n").unwrap_err()).contains("ELF"));
        let mut odd = elf(1, b"");
        odd[4] = 7;
        assert!(format!("{:#}", elf_interpreter(&odd).unwrap_err()).contains("class 7"));
        // the test binary itself: what the host's toolchain made it
        let me = read_head(Path::new("/proc/self/exe")).unwrap();
        let interp = elf_interpreter(&me).unwrap();
        if let Some(i) = interp {
            assert!(Path::new(&i).exists(), "{i}");
        }
    }

    #[test]
    fn install_wraps_the_command() {
        let t = tempfile::tempdir().unwrap();
        let bundle = t.path();
        // the host's root as the image: a dynamically linked test binary finds its loader
        std::os::unix::fs::symlink("/", bundle.join("rootfs")).unwrap();
        let mut spec = json!({"process": {"args": ["sh", "-c", "true"]}, "mounts": []});
        install(bundle, &mut spec).unwrap();
        assert_eq!(
            spec["process"]["args"],
            json!(["/sbin/husk-init", "init-reaper", "--", "sh", "-c", "true"])
        );
        let m = &spec["mounts"][0];
        assert_eq!(m["destination"], CONTAINER_PATH);
        assert_eq!(m["options"], json!(["bind", "ro"]));
        let copy = bundle.join(BUNDLE_FILE);
        assert_eq!(m["source"], json!(copy));
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let md = std::fs::metadata(&copy).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o555);
        let me = std::fs::metadata("/proc/self/exe").unwrap();
        assert_eq!(md.len(), me.len());
        assert_ne!((md.dev(), md.ino()), (me.dev(), me.ino()));
        // a dynamically linked binary and an image without its loader
        if elf_interpreter(&read_head(Path::new("/proc/self/exe")).unwrap())
            .unwrap()
            .is_some()
        {
            let t2 = tempfile::tempdir().unwrap();
            std::fs::create_dir(t2.path().join("rootfs")).unwrap();
            let mut spec = json!({"process": {"args": ["true"]}});
            let e = format!("{:#}", install(t2.path(), &mut spec).unwrap_err());
            assert!(e.contains("dynamically linked"), "{e}");
            assert_eq!(spec["process"]["args"], json!(["true"]));
        }
    }
}
