//! `text-order BINARY OUT -- COMMAND [ARG...]`: run COMMAND (and everything it starts) under
//! ptrace, with a breakpoint (int3) on the first byte of every function of BINARY in each
//! process that executes BINARY; each breakpoint hit records the function and is removed, so
//! every function costs one trap per process at most. OUT gets the names of the functions run,
//! first run first: lld's `--symbol-ordering-file`, which puts them side by side at the start
//! of `.text`. Why: the kernel maps an executable's pages 64 KiB at a time around each fault
//! (fault-around), so a start that runs 600 KiB of code spread over 7 MB of text pays for
//! every 64 KiB window it touches; laid out together it pays for about ten.
//!
//! BINARY must be a position-dependent static executable with its symbol table (the release
//! build before stripping); symbols are read with `nm`. COMMAND must not leave processes of
//! BINARY running: the trace ends when every traced process has exited.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::process::exit;

fn die(msg: &str) -> ! {
    eprintln!("text-order: {msg}");
    exit(2)
}

/// Function start address -> names (aliases share an address), from `nm -S --defined-only`.
fn functions(binary: &str) -> BTreeMap<u64, Vec<String>> {
    let out = std::process::Command::new("nm")
        .args(["-S", "--defined-only", binary])
        .output()
        .unwrap_or_else(|e| die(&format!("run nm on {binary}: {e}")));
    if !out.status.success() {
        die(&format!(
            "nm {binary}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut map: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 || !matches!(f[2], "t" | "T" | "w" | "W") {
            continue;
        }
        let (Ok(addr), Ok(size)) = (u64::from_str_radix(f[0], 16), u64::from_str_radix(f[1], 16))
        else {
            continue;
        };
        if size > 0 {
            map.entry(addr).or_default().push(f[3].to_string());
        }
    }
    if map.is_empty() {
        die(&format!(
            "{binary} has no function symbols (a stripped build?)"
        ));
    }
    map
}

/// ELF type must be ET_EXEC: the symbol addresses are the run-time addresses.
fn check_position_dependent(binary: &str) {
    let head = std::fs::read(binary).unwrap_or_else(|e| die(&format!("read {binary}: {e}")));
    if head.len() < 18 || &head[..4] != b"\x7fELF" {
        die(&format!("{binary} is not an ELF file"));
    }
    if u16::from_le_bytes([head[16], head[17]]) != 2 {
        die(&format!(
            "{binary} is position-independent; text-order needs the static release build"
        ));
    }
}

fn peek(pid: i32, addr: u64) -> Option<u64> {
    // SAFETY: PEEKDATA reads a word of a stopped tracee; errno distinguishes -1 from failure.
    unsafe {
        *libc::__errno_location() = 0;
        let v = libc::ptrace(libc::PTRACE_PEEKDATA, pid, addr as *mut libc::c_void, 0);
        if v == -1 && *libc::__errno_location() != 0 {
            return None;
        }
        Some(v as u64)
    }
}

fn poke(pid: i32, addr: u64, word: u64) -> bool {
    // SAFETY: POKEDATA writes a word of a stopped tracee (text included, as a debugger does).
    unsafe {
        libc::ptrace(
            libc::PTRACE_POKEDATA,
            pid,
            addr as *mut libc::c_void,
            word as *mut libc::c_void,
        ) == 0
    }
}

/// Set the byte at `addr` in `pid` to `byte`; the old byte.
fn set_byte(pid: i32, addr: u64, byte: u8) -> Option<u8> {
    let word_addr = addr & !7;
    let shift = (addr - word_addr) * 8;
    let word = peek(pid, word_addr)?;
    let old = (word >> shift) as u8;
    let new = (word & !(0xffu64 << shift)) | ((byte as u64) << shift);
    poke(pid, word_addr, new).then_some(old)
}

fn cont(pid: i32, sig: i32) {
    // SAFETY: restarts a tracee in ptrace-stop; a vanished tracee only makes it fail.
    unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig as libc::c_long) };
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() < 5 || args[3] != "--" {
        die("usage: text-order BINARY OUT -- COMMAND [ARG...]");
    }
    let binary = args[1].to_string_lossy().into_owned();
    let out_path = args[2].clone();
    check_position_dependent(&binary);
    let funcs = functions(&binary);
    let meta = std::fs::metadata(&binary).unwrap_or_else(|e| die(&format!("{binary}: {e}")));
    let id = (meta.dev(), meta.ino());

    let argv: Vec<CString> = args[4..]
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| die("an argument holds a NUL")))
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());

    // SAFETY: single-threaded here; the child only calls async-signal-safe functions.
    let child = unsafe { libc::fork() };
    if child < 0 {
        die("fork failed");
    }
    if child == 0 {
        // SAFETY: TRACEME then execvp; on failure only _exit.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::execvp(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: waits for our own child's stop at its exec.
    if unsafe { libc::waitpid(child, &mut status, 0) } != child || !libc::WIFSTOPPED(status) {
        die("the command did not start under trace");
    }
    let opts = libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACEEXEC;
    // SAFETY: sets options on our stopped tracee.
    unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, child, 0, opts as libc::c_long) };

    let mut original: HashMap<u64, u8> = HashMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut order: Vec<u64> = Vec::new();
    let mut fresh: HashSet<i32> = HashSet::new();
    let mut live: HashSet<i32> = HashSet::from([child]);
    let mut code = 0;

    let is_binary = |pid: i32| {
        std::fs::metadata(format!("/proc/{pid}/exe"))
            .map(|m| (m.dev(), m.ino()) == id)
            .unwrap_or(false)
    };
    let arm = |pid: i32, original: &mut HashMap<u64, u8>, seen: &HashSet<u64>| {
        for &addr in funcs.keys() {
            if seen.contains(&addr) {
                continue;
            }
            if let Some(old) = set_byte(pid, addr, 0xcc) {
                original.entry(addr).or_insert(old);
            }
        }
    };
    if is_binary(child) {
        arm(child, &mut original, &seen);
    }
    cont(child, 0);

    while !live.is_empty() {
        // SAFETY: waits for any tracee (all threads: __WALL).
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            live.remove(&pid);
            if pid == child {
                code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        live.insert(pid);
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        if sig == libc::SIGTRAP && event != 0 {
            if event == libc::PTRACE_EVENT_CLONE
                || event == libc::PTRACE_EVENT_FORK
                || event == libc::PTRACE_EVENT_VFORK
            {
                let mut new: libc::c_ulong = 0;
                // SAFETY: the event message of a fork/clone stop is the new tid.
                unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, pid, 0, &mut new) };
                let new = new as i32;
                if !live.contains(&new) {
                    fresh.insert(new);
                    live.insert(new);
                }
            } else if event == libc::PTRACE_EVENT_EXEC && is_binary(pid) {
                arm(pid, &mut original, &seen);
            }
            cont(pid, 0);
            continue;
        }
        if sig == libc::SIGSTOP && fresh.remove(&pid) {
            cont(pid, 0);
            continue;
        }
        if sig == libc::SIGTRAP {
            // SAFETY: a zeroed register block is a valid out buffer for GETREGS.
            let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
            // SAFETY: the tracee is stopped; regs is a valid buffer.
            if unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) } == 0 {
                let at = regs.rip.wrapping_sub(1);
                if let Some(&old) = original.get(&at) {
                    if seen.insert(at) {
                        order.push(at);
                    }
                    set_byte(pid, at, old);
                    regs.rip = at;
                    // SAFETY: writes back the tracee's registers with rip on the restored byte.
                    unsafe { libc::ptrace(libc::PTRACE_SETREGS, pid, 0, &regs) };
                    cont(pid, 0);
                    continue;
                }
            }
        }
        cont(pid, sig);
    }

    let mut out = Vec::new();
    for addr in &order {
        for name in &funcs[addr] {
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
        }
    }
    let write = std::fs::File::create(&out_path).and_then(|mut f| f.write_all(&out));
    if let Err(e) = write {
        die(&format!("write {}: {e}", out_path.to_string_lossy()));
    }
    eprintln!(
        "text-order: {} of {} functions of {binary} ran; the command exited {code}",
        order.len(),
        funcs.len()
    );
    exit(code)
}
