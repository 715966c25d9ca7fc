//! `husk up -d`: the container runs under a small monitor process of its own (setsid, double
//! fork: no daemon shared between containers, as podman's conmon). The monitor holds the
//! container's stdio (pipes, or with `-t` the pty master), writes it to the json-file log
//! (`logs.rs`), waits for the exit, records exit code and time in `status.json`, releases the
//! network attachments, restarts the container as `--restart` says (Docker's back-off: 100 ms
//! doubling, at most a minute, back to 100 ms after 10 s up) and at the end removes everything
//! with `--rm`. Also `husk stop` and `husk restart`, and what `husk rm` does about a monitor.
//!
//! The monitor uses the runtime library as any caller does (`container::run_with`, detached,
//! with a console socket for a terminal); the runtime knows nothing of it.

use super::{bundle_dir, logs, remove_bundle};
use crate::container::{CreateOptions, Global, RunOptions};
use crate::network::ports::PortMapping;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the monitor was asked for (written by `husk up -d`, read again by `husk restart`).
pub const CONFIG: &str = "monitor.json";
/// The monitor's pid, the restart count, the last exit code and time.
pub const STATUS: &str = "status.json";
/// Present once `husk stop` (or `rm -f`) asked the container to end: no restart after that.
const STOP_MARK: &str = "stop-requested";
/// Present while `husk restart` stops the container: `--rm` does not remove it at that exit.
const RESTART_MARK: &str = "restart-requested";
/// The monitor's own errors once the container ran (nothing else sees them).
const MONITOR_LOG: &str = "monitor.log";
const CONSOLE_SOCKET: &str = "console.sock";

/// `--restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    #[default]
    No,
    /// On a non-zero exit, at most this many times (no limit: `None`).
    OnFailure(Option<u32>),
    Always,
    /// As `always` here (Docker's difference is about a daemon restart; there is no daemon).
    UnlessStopped,
}

impl Restart {
    pub fn parse(s: &str) -> Result<Restart> {
        Ok(match s {
            "" | "no" => Restart::No,
            "always" => Restart::Always,
            "unless-stopped" => Restart::UnlessStopped,
            "on-failure" => Restart::OnFailure(None),
            _ => match s.split_once(':') {
                // (0: no limit, as Docker's MaximumRetryCount)
                Some(("on-failure", n)) => match n.parse::<u32>() {
                    Ok(0) => Restart::OnFailure(None),
                    Ok(n) => Restart::OnFailure(Some(n)),
                    Err(_) => {
                        bail!("--restart {s:?}: the maximum retry count {n:?} is not a number")
                    }
                },
                Some(("no" | "always" | "unless-stopped", _)) => {
                    bail!("--restart {s:?}: a maximum retry count goes only with on-failure")
                }
                _ => bail!(
                    "--restart {s:?}: expected no, always, unless-stopped or \
                     on-failure[:max-retries]"
                ),
            },
        })
    }

    /// Whether an exit with `code`, after `done` restarts, is followed by another.
    pub fn restarts(self, code: i32, done: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always | Restart::UnlessStopped => true,
            Restart::OnFailure(max) => code != 0 && max.is_none_or(|m| done < m),
        }
    }
}

/// The checks of `-d`, `--restart`, `--stop-signal` and `--stop-timeout`, before anything is
/// pulled or made.
pub fn check(o: &super::UpOptions) -> Result<()> {
    let policy = Restart::parse(&o.restart)?;
    if policy != Restart::No && o.rm {
        bail!(
            "conflicting options: --restart {} and --rm (a container that restarts is not removed \
             at its exit; use one or the other)",
            o.restart
        );
    }
    if policy != Restart::No && !o.detach {
        bail!(
            "--restart {}: restarting is the monitor's work; add -d",
            o.restart
        );
    }
    if let Some(s) = &o.stop_signal {
        crate::container::parse_signal(s).with_context(|| format!("--stop-signal {s:?}"))?;
    }
    Ok(())
}

/// `--stop-signal`: the config's stop-signal annotation, which `husk kill` and `husk stop` read.
pub fn set_stop_signal(config: &Path, signal: Option<&str>) -> Result<()> {
    let Some(sig) = signal else { return Ok(()) };
    let text = std::fs::read(config).with_context(|| format!("read {}", config.display()))?;
    let mut v: serde_json::Value = serde_json::from_slice(&text)?;
    v["annotations"]["org.opencontainers.image.stopSignal"] = serde_json::json!(sig);
    std::fs::write(config, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("write {}", config.display()))
}

/// What a monitor runs: written to `monitor.json` in the bundle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub id: String,
    pub rm: bool,
    pub restart: String,
    /// Seconds `husk stop` waits after the stop signal [default: 10].
    pub stop_timeout: Option<u64>,
    /// A network of `husk network create`, attached before each start.
    pub network: Option<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    pub tty: bool,
    pub interactive: bool,
    /// The container's hostname and `--add-host` entries: its `/etc/hosts` (bound from the
    /// bundle) is rewritten with its addresses after each attach.
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// `--network-alias`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<String>,
    /// pasta or slirp4netns, started for each run (a caller without root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_network: Option<super::usernet::Helper>,
    /// The `_data` directories of its anonymous volumes, removed with it (`--rm`).
    #[serde(default)]
    pub anonymous_volumes: Vec<PathBuf>,
    /// `--log-driver` and `--log-opt`.
    #[serde(default)]
    pub log: logs::LogConfig,
}

/// What the monitor records (`status.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub monitor_pid: i32,
    pub monitor_start_time: u64,
    pub restart_count: u32,
    pub started_at: Option<String>,
    pub exit_code: Option<i32>,
    pub finished_at: Option<String>,
    /// Why the monitor gave up (a restart that could not start the container).
    pub error: Option<String>,
}

impl Status {
    /// Whether this monitor process still runs (its pid not reused).
    pub fn alive(&self) -> bool {
        self.monitor_pid > 0
            && crate::state::process_start_time(self.monitor_pid) == Some(self.monitor_start_time)
    }
}

fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data =
        crate::state::read_small(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
}

/// The monitor config kept in `bundle`.
pub fn load_config(bundle: &Path) -> Result<Config> {
    load(&bundle.join(CONFIG))
}

pub fn load_status(bundle: &Path) -> Result<Status> {
    load(&bundle.join(STATUS))
}

fn save<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    crate::state::write_atomic(path, &serde_json::to_vec_pretty(v)?, 0o600)
}

/// Whether the container of `bundle` has a monitor that still runs.
pub fn active(bundle: &Path) -> bool {
    load_status(bundle).is_ok_and(|s| s.alive())
}

fn stop_requested(bundle: &Path) -> bool {
    bundle.join(STOP_MARK).exists()
}

/// Keep `cfg` in the bundle (a foreground run's, for `husk stop` and `husk restart`).
pub fn save_config(bundle: &Path, cfg: &Config) -> Result<()> {
    save(&bundle.join(CONFIG), cfg)
}

/// Start a monitor for the prepared bundle of `cfg.id`; returns once the container runs (or
/// with the error that kept it from starting).
pub fn launch(g: &Global, store_dir: &Path, cfg: &Config) -> Result<()> {
    let bundle = bundle_dir(store_dir, &cfg.id);
    save(&bundle.join(CONFIG), cfg)?;
    for f in [STOP_MARK, RESTART_MARK, STATUS] {
        match std::fs::remove_file(bundle.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove {}", bundle.join(f).display()))
            }
            _ => {}
        }
    }
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: husk runs no thread of its own here (the pull's scoped threads have ended), so
    // the child may go on running Rust code.
    match unsafe { nix::unistd::fork() }.context("fork the monitor")? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            // SAFETY: as above; the middle process only forks and exits.
            let code = match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {
                    // a fresh husk, so the monitor keeps none of this process's memory (the
                    // parsed image, spec and profile, the pull's buffers); in place if the
                    // exec fails
                    let w = exec_monitor(g, store_dir, &cfg.id, w);
                    monitor_main(g, store_dir, cfg, w)
                }
                _ => 0,
            };
            // SAFETY: _exit ends this forked copy without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let _ = waitpid(child, None);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            match msg.as_str() {
                "ok" => Ok(()),
                "" => bail!("{}: the monitor ended before the container started", cfg.id),
                m => bail!("{m}"),
            }
        }
    }
}

/// The monitor idles from here until the container's next exit: give back what starting it
/// used, rather than keep it for the container's lifetime — the free heap (the spec, the
/// container's setup), and this process's mappings of the executable's code (clean pages of
/// the page cache, shared and re-read on use; the idle loop needs a few of them).
fn release_idle_memory() {
    drop_clean_mappings();
    // last, once the smaps text and the ranges read above are freed too: their pages would
    // otherwise stay as free heap for the container's lifetime
    // SAFETY: malloc_trim only returns free heap memory to the kernel; no pointer is affected.
    unsafe { libc::malloc_trim(0) };
}

/// The stack below the live frame, and the executable's read-only mappings this process never
/// wrote: dropped from this process (faulted in again from the file on use).
fn drop_clean_mappings() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // (range, whether to drop it): the executable's read-only mappings none of whose pages
    // this process wrote (a RELRO page written at start-up is an anonymous copy: kept)
    let mut ranges: Vec<(usize, usize, bool)> = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let perms = f.next().unwrap_or_default();
            let ours = f.nth(3).map(Path::new) == Some(exe.as_path());
            ranges.push((a, b, ours && (perms == "r-xp" || perms == "r--p")));
        } else if matches!(first, "Private_Dirty:" | "Anonymous:" | "Swap:")
            && f.next() != Some("0")
        {
            if let Some(last) = ranges.last_mut() {
                last.2 = false;
            }
        }
    }
    // the stack below this frame (less a margin): the start's deep calls touched it, the idle
    // loop needs little of it (pages below the stack pointer hold nothing live)
    let here = &ranges as *const _ as usize;
    let margin = 16 * 1024;
    if let Some(&(a, _, _)) = ranges.iter().find(|(a, b, _)| (*a..*b).contains(&here)) {
        let end = here.saturating_sub(margin) & !4095;
        if end > a {
            // SAFETY: [a, end) is the part of this thread's stack mapping at least 16 KiB
            // below the live frame: nothing there is in use, and MADV_DONTNEED makes it
            // zero-fill-on-demand as fresh stack is.
            unsafe { libc::madvise(a as *mut libc::c_void, end - a, libc::MADV_DONTNEED) };
        }
    }
    for (a, b, drop) in ranges {
        if drop {
            // SAFETY: a read-only private file mapping of husk's own binary that holds no
            // page this process wrote: MADV_DONTNEED only drops this process's page-table
            // entries, and each page is faulted in again, unchanged, from the file when used.
            unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
        }
    }
}

/// The hidden subcommand a monitor is exec'd as:
/// `husk up-monitor ROOT STORE_DIR ID SYSTEMD_CGROUP ROOTLESS`, its report pipe on fd 3.
pub const SUBCOMMAND: &str = "up-monitor";
const REPORT_FD: std::os::fd::RawFd = 3;

/// Replace this (forked) process by `husk up-monitor …` with `report` as fd 3; returns
/// `report` when that cannot be done.
fn exec_monitor(g: &Global, store_dir: &Path, id: &str, report: OwnedFd) -> OwnedFd {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let [root, systemd, rootless] = global_args(g);
    let args: Option<Vec<CString>> = [
        b"husk".as_slice(),
        SUBCOMMAND.as_bytes(),
        root.as_bytes(),
        store_dir.as_os_str().as_bytes(),
        id.as_bytes(),
        systemd.as_bytes(),
        rootless.as_bytes(),
    ]
    .iter()
    .map(|a| CString::new(*a).ok())
    .collect();
    let Some(args) = args else {
        return report;
    };
    let moved = if report.as_raw_fd() == REPORT_FD {
        nix::fcntl::fcntl(
            &report,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .is_ok()
    } else {
        // SAFETY: dup2 onto fd 3 of this forked copy, which execs next (or falls back to
        // running the monitor in place, which does not use fd 3).
        unsafe { libc::dup2(report.as_raw_fd(), REPORT_FD) == REPORT_FD }
    };
    if moved {
        let _ = nix::unistd::execv(c"/proc/self/exe", &args);
    }
    report
}

/// `husk up-monitor …` (`args` the process's own, program first): the monitor's exit status,
/// or None when `args` are not that subcommand's.
pub fn exec_main(args: &[std::ffi::OsString]) -> Option<i32> {
    use std::os::fd::FromRawFd;
    if args.len() != 7 || args[1] != SUBCOMMAND {
        return None;
    }
    let g = global_from(&args[2], &args[5], &args[6])?;
    let id = args[4].to_str()?;
    let store_dir = Path::new(&args[3]);
    // exec'd as /proc/self/exe, its name would be "exe"
    let _ = nix::sys::prctl::set_name(c"husk-monitor");
    // fd 3 must be the report pipe launch() made
    // SAFETY: fstat of a descriptor number: at worst EBADF, nothing is taken over.
    let st = nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(REPORT_FD) });
    if st.ok()?.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    // SAFETY: fd 3 is open (fstat above) and was passed for this process alone to own.
    let report = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    let cloexec = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC);
    let _ = nix::fcntl::fcntl(&report, cloexec);
    let cfg: Config = match load(&bundle_dir(store_dir, id).join(CONFIG)) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::File::from(report).write_all(format!("{e:#}").as_bytes());
            return Some(1);
        }
    };
    Some(monitor_main(&g, store_dir, &cfg, report))
}

/// The hidden subcommand a monitor execs itself as once its container runs, to idle in a
/// process that holds nothing of the start (its heap, stack and the code it ran):
/// `husk up-monitor-pump ROOT STORE_DIR ID SYSTEMD_CGROUP ROOTLESS PID STARTED_MS DELAY_MS
/// OUT ERR MASTER STDIN ATTACH`, the last five descriptor numbers (or `-`) inherited from the
/// monitor (ATTACH: the listener of `husk attach`). It logs the container's output until init
/// exits, serving `husk attach` meanwhile, then goes on as the monitor (`supervise`, resumed
/// with the exit code), which execs a new pump after a restart.
pub const PUMP_SUBCOMMAND: &str = "up-monitor-pump";

/// The global flags' words in a monitor's command line.
fn global_args(g: &Global) -> [String; 3] {
    let rootless = match g.rootless {
        crate::rootless::Mode::Yes => "true",
        crate::rootless::Mode::No => "false",
        crate::rootless::Mode::Auto => "auto",
    };
    [
        g.store.root.to_string_lossy().into_owned(),
        (if g.systemd_cgroup { "1" } else { "0" }).to_string(),
        rootless.to_string(),
    ]
}

/// The global flags back from [`global_args`]' words (ROOT, SYSTEMD, ROOTLESS).
fn global_from(
    root: &std::ffi::OsStr,
    systemd: &std::ffi::OsStr,
    rootless: &std::ffi::OsStr,
) -> Option<Global> {
    let systemd_cgroup = match systemd.to_str()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some(Global {
        store: crate::state::Store::new(Path::new(root)),
        systemd_cgroup,
        rootless: crate::rootless::Mode::parse(rootless.to_str()).ok()?,
    })
}

/// Replace this monitor by a fresh `husk up-monitor-pump` for `run`; returns (with every
/// descriptor as it was) when that cannot be done.
fn exec_pump(
    g: &Global,
    store_dir: &Path,
    id: &str,
    run: &Running,
    started_ms: u64,
    delay: Duration,
) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let fds = [
        &run.stdout,
        &run.stderr,
        &run.master,
        &run._stdin,
        &run.attach,
    ];
    let [root, systemd, rootless] = global_args(g);
    let mut words: Vec<Vec<u8>> = vec![
        b"husk".to_vec(),
        PUMP_SUBCOMMAND.as_bytes().to_vec(),
        root.into_bytes(),
        store_dir.as_os_str().as_bytes().to_vec(),
        id.as_bytes().to_vec(),
        systemd.into_bytes(),
        rootless.into_bytes(),
        run.pid.to_string().into_bytes(),
        started_ms.to_string().into_bytes(),
        (delay.as_millis() as u64).to_string().into_bytes(),
    ];
    for fd in fds {
        words.push(match fd {
            Some(f) => f.as_raw_fd().to_string().into_bytes(),
            None => b"-".to_vec(),
        });
    }
    let Ok(args) = words
        .into_iter()
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let inherit = |flag: nix::fcntl::FdFlag| {
        fds.iter()
            .flat_map(|f| f.as_ref())
            .all(|f| nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_SETFD(flag)).is_ok())
    };
    if inherit(nix::fcntl::FdFlag::empty()) {
        let _ = nix::unistd::execv(c"/proc/self/exe", &args);
    }
    inherit(nix::fcntl::FdFlag::FD_CLOEXEC);
}

/// `husk up-monitor-pump …` (`args` the process's own, program first): the monitor's exit
/// status, or None when `args` are not that subcommand's.
pub fn pump_main(args: &[std::ffi::OsString]) -> Option<i32> {
    use std::os::fd::FromRawFd;
    if args.len() != 15 || args[1] != PUMP_SUBCOMMAND {
        return None;
    }
    let g = global_from(&args[2], &args[5], &args[6])?;
    let store_dir = Path::new(&args[3]);
    let id = args[4].to_str()?;
    let num = |i: usize| args[i].to_str()?.parse::<u64>().ok();
    let pid = i32::try_from(num(7)?).ok()?;
    let (started_ms, delay_ms) = (num(8)?, num(9)?);
    let mut fds: Vec<Option<OwnedFd>> = Vec::new();
    for a in &args[10..15] {
        fds.push(match a.to_str()? {
            "-" => None,
            n => {
                let n: std::os::fd::RawFd = n.parse().ok().filter(|n| *n > 2)?;
                // SAFETY: fstat of a descriptor number: at worst EBADF, nothing is taken over.
                nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(n) }).ok()?;
                // SAFETY: the monitor that exec'd this process passed descriptor n (open, fstat
                // above) for this process alone to own.
                Some(unsafe { OwnedFd::from_raw_fd(n) })
            }
        });
    }
    // exec'd as /proc/self/exe, its name would be "exe"
    let _ = nix::sys::prctl::set_name(c"husk-monitor");
    for f in fds.iter().flatten() {
        let _ = nix::fcntl::fcntl(
            f,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let mut it = fds.into_iter();
    let mut run = Running {
        pid,
        stdout: it.next().flatten(),
        stderr: it.next().flatten(),
        master: it.next().flatten(),
        _stdin: it.next().flatten(),
        attach: it.next().flatten(),
    };
    let bundle = bundle_dir(store_dir, id);
    // the blocked SIGCHLD (still pending if init already exited: the new signalfd reports it)
    // and the subreaper flag outlive exec; asked again all the same
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let sfd = mask
        .thread_block()
        .and_then(|_| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK));
    // what the pump needs of the config (the rest is read again after it: not kept while idle)
    let (log_config, interactive) = match load::<Config>(&bundle.join(CONFIG)) {
        Ok(c) => (c.log, c.interactive),
        Err(e) => {
            note(&bundle, &format!("{e:#}"));
            return Some(1);
        }
    };
    let log = logs::LogWriter::open_for(&logs::log_path(&bundle, id), &log_config);
    let code = match (sfd, log) {
        (Ok(sfd), Ok(mut log)) => {
            // what this start-up touched (the stack of the argument parse, code run once)
            release_idle_memory();
            let (code, failed) = pump(&mut run, &sfd, &mut log, &bundle, interactive);
            if let Some(e) = failed {
                note(&bundle, &format!("{e:#}"));
            }
            code
        }
        (Err(e), _) => {
            note(&bundle, &format!("signalfd: {e}"));
            return Some(1);
        }
        (_, Err(e)) => {
            note(&bundle, &format!("{e:#}"));
            return Some(1);
        }
    };
    drop(run);
    let cfg: Config = match load(&bundle.join(CONFIG)) {
        Ok(c) => c,
        Err(e) => {
            note(&bundle, &format!("{e:#}"));
            return Some(1);
        }
    };
    let resume = Resume {
        code,
        started_ms,
        delay_ms,
    };
    match supervise(&g, store_dir, &cfg, &mut None, Some(resume)) {
        Ok(()) => Some(0),
        Err(e) => {
            note(&bundle, &format!("{e:#}"));
            Some(1)
        }
    }
}

/// The monitor process: returns its exit status.
fn monitor_main(g: &Global, store_dir: &Path, cfg: &Config, report: OwnedFd) -> i32 {
    let bundle = bundle_dir(store_dir, &cfg.id);
    // stdio: nothing of the caller's (a pipe held open here would keep `husk up -d | …` waiting)
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let mut report = Some(report);
    match supervise(g, store_dir, cfg, &mut report, None) {
        Ok(()) => 0,
        Err(e) => {
            let msg = format!("{e:#}");
            match report.take() {
                Some(w) => {
                    let _ = std::fs::File::from(w).write_all(msg.as_bytes());
                }
                None => note(&bundle, &msg),
            }
            1
        }
    }
}

/// Append a line to the monitor's own log.
fn note(bundle: &Path, msg: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(bundle.join(MONITOR_LOG))
    {
        let _ = writeln!(f, "{} {msg}", crate::sys::time::now_rfc3339());
    }
}

/// Where a monitor takes up its work again after its pump (`husk up-monitor-pump`) saw the
/// container's init exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    /// The exit code (128 + N for a signal).
    code: i32,
    /// When that run started (CLOCK_MONOTONIC, ms) and the restart delay then.
    started_ms: u64,
    delay_ms: u64,
}

fn supervise(
    g: &Global,
    store_dir: &Path,
    cfg: &Config,
    report: &mut Option<OwnedFd>,
    mut resume: Option<Resume>,
) -> Result<()> {
    let id = &cfg.id;
    let bundle = &bundle_dir(store_dir, id);
    let policy = Restart::parse(&cfg.restart)?;
    // processes of a pid-namespace fork come back to the monitor
    nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().context("block SIGCHLD")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let pid = std::process::id() as i32;
    let mut status = match resume {
        // the same process (exec keeps the pid and its start time)
        Some(_) => load_status(bundle)?,
        None => Status {
            monitor_pid: pid,
            monitor_start_time: crate::state::process_start_time(pid).unwrap_or(0),
            ..Default::default()
        },
    };
    let dirs = match cfg.network {
        Some(_) => Some(crate::network::Dirs::resolve(None, None, None, None)?),
        None => None,
    };
    if resume.is_none() {
        // the log exists once `husk up -d` or `husk restart` returns, whoever writes first
        // (the pump opens it again in its own process)
        logs::LogWriter::open_for(&logs::log_path(bundle, id), &cfg.log)?;
    }
    let mut delay = Duration::from_millis(resume.map_or(100, |r| r.delay_ms));
    'runs: loop {
        let (code, started_ms) = match resume.take() {
            Some(r) => (r.code, r.started_ms),
            None => {
                status.started_at = Some(crate::sys::time::now_rfc3339());
                status.exit_code = None;
                status.finished_at = None;
                save(&bundle.join(STATUS), &status)?;
                let started_ms = crate::sys::time::monotonic_ms();
                // a run of the restart policy: the AppArmor profile again first, as `husk
                // restart` does (an administrator may have removed it since)
                let started = match status.restart_count {
                    0 => start_once(g, bundle, cfg, dirs.as_ref()),
                    _ => super::apparmor::ensure_for_config(&bundle.join("config.json"))
                        .and_then(|()| start_once(g, bundle, cfg, dirs.as_ref())),
                };
                if started.is_err() {
                    // a helper started for a run that did not happen
                    let _ = super::usernet::stop(bundle);
                }
                let mut run = match started {
                    Ok(r) => r,
                    Err(e) if report.is_none() => {
                        status.error = Some(format!("restart {}: {e:#}", status.restart_count));
                        save(&bundle.join(STATUS), &status)?;
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                };
                if let Some(w) = report.take() {
                    let _ = std::fs::File::from(w).write_all(b"ok");
                }
                if stop_requested(bundle) {
                    // `husk stop` came while the container was being made
                    let _ = crate::container::kill(g, id, Some("KILL"), true);
                }
                // idle in a fresh process that runs the pump alone (returns if exec fails)
                exec_pump(g, store_dir, id, &run, started_ms, delay);
                release_idle_memory();
                let mut log = logs::LogWriter::open_for(&logs::log_path(bundle, id), &cfg.log)?;
                let (code, failed) = pump(&mut run, &sfd, &mut log, bundle, cfg.interactive);
                drop(run);
                if let Some(e) = failed {
                    note(bundle, &format!("{e:#}"));
                }
                (code, started_ms)
            }
        };
        status.exit_code = Some(code);
        status.finished_at = Some(crate::sys::time::now_rfc3339());
        save(&bundle.join(STATUS), &status)?;
        if let Err(e) = crate::network::attach::release_container(&g.store.root, id) {
            note(bundle, &format!("{e:#}"));
        }
        if let Err(e) = super::usernet::stop(bundle) {
            note(bundle, &format!("{e:#}"));
        }
        if stop_requested(bundle) || !policy.restarts(code, status.restart_count) {
            break;
        }
        if crate::sys::time::monotonic_ms().saturating_sub(started_ms) >= 10_000 {
            delay = Duration::from_millis(100);
        }
        let until = Instant::now() + delay;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if stop_requested(bundle) {
                break 'runs;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        delay = (delay * 2).min(Duration::from_secs(60));
        status.restart_count += 1;
        crate::container::delete(g, id, true)?;
    }
    if cfg.rm && !bundle.join(RESTART_MARK).exists() {
        crate::container::delete(g, id, true)?;
        crate::network::attach::release_container(&g.store.root, id)?;
        remove_bundle(bundle)?;
        super::flags::remove_anonymous_volumes(&cfg.anonymous_volumes)?;
    }
    Ok(())
}

/// A started container: its init's pid and the monitor's ends of its stdio.
#[derive(Default)]
struct Running {
    pid: i32,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    master: Option<OwnedFd>,
    /// The write end of `-i`'s stdin pipe, held so the container's stdin stays open (and
    /// written by `husk attach`).
    _stdin: Option<OwnedFd>,
    /// The listener of `husk attach` (`attach.sock` in the bundle).
    attach: Option<OwnedFd>,
}

fn start_once(
    g: &Global,
    bundle: &Path,
    cfg: &Config,
    dirs: Option<&crate::network::Dirs>,
) -> Result<Running> {
    let id = &cfg.id;
    // an overlay rootfs unmounted since (a reboot): mounted again
    crate::image::remount_rootfs(bundle)?;
    // pasta or slirp4netns in namespaces made for this run (before any stdio is redirected)
    let mut holder = match cfg.user_network {
        Some(h) => {
            let (h, bin) = super::usernet::choose("--network", Some(h))?;
            match super::usernet::prepare(bundle, h, &bin, &cfg.ports) {
                Ok(holder) => Some(holder),
                Err(e) => {
                    let _ = super::usernet::stop(bundle);
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("open /dev/null")?;
    let mut run = Running::default();
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe");
    // The console socket is reached through the bundle's fd: a store path may be longer than
    // a socket address allows.
    let dir = std::fs::File::open(bundle).with_context(|| format!("open {}", bundle.display()))?;
    let sock_path = PathBuf::from(format!(
        "/proc/self/fd/{}/{CONSOLE_SOCKET}",
        dir.as_raw_fd()
    ));
    let mut listener = None;
    if cfg.tty {
        let _ = std::fs::remove_file(bundle.join(CONSOLE_SOCKET));
        listener = Some(
            std::os::unix::net::UnixListener::bind(&sock_path)
                .with_context(|| format!("bind {}", bundle.join(CONSOLE_SOCKET).display()))?,
        );
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        nix::unistd::dup2_stdout(&out_w).context("stdout pipe")?;
        nix::unistd::dup2_stderr(&err_w).context("stderr pipe")?;
        run.stdout = Some(out_r);
        run.stderr = Some(err_r);
    }
    if cfg.interactive && !cfg.tty {
        let (in_r, in_w) = pipe()?;
        nix::unistd::dup2_stdin(&in_r).context("stdin pipe")?;
        run._stdin = Some(in_w);
    }
    let opts = RunOptions {
        create: CreateOptions {
            id: id.clone(),
            bundle: bundle.to_path_buf(),
            console_socket: listener.as_ref().map(|_| sock_path.clone()),
            ..Default::default()
        },
        detach: true,
        keep: true,
    };
    let res = crate::container::run_with(g, &opts, &mut |_| {
        drop(holder.take());
        if let (Some(dirs), Some(name)) = (dirs, &cfg.network) {
            let a = super::flags::attach_options(
                bundle,
                &cfg.ports,
                &cfg.hostname,
                &cfg.extra_hosts,
                &cfg.network_aliases,
            );
            crate::network::attach::attach(g, dirs, name, id, &a)?;
        }
        Ok(())
    });
    // the container holds its ends alone now
    let _ = nix::unistd::dup2_stdin(&null);
    let _ = nix::unistd::dup2_stdout(&null);
    let _ = nix::unistd::dup2_stderr(&null);
    let got_master = match (&res, listener) {
        (Ok(_), Some(l)) => Some(
            l.accept()
                .context("accept on the console socket")
                .and_then(|(s, _)| crate::process::console::recv_fd(s.as_raw_fd())),
        ),
        _ => None,
    };
    let _ = std::fs::remove_file(bundle.join(CONSOLE_SOCKET));
    res?;
    run.master = got_master.transpose()?;
    run.pid = g.store.load(id)?.pid;
    // (bound before husk up -d returns: an attach right after it finds the socket)
    match super::attach_sock::listen(bundle) {
        Ok(l) => run.attach = Some(l.into()),
        Err(e) => note(bundle, &format!("husk attach: {e:#}")),
    }
    Ok(run)
}

/// The pump's read buffer: fresh anonymous pages, none of them resident until a read fills
/// it, so a monitor whose container writes nothing keeps no page of it (a zeroed heap buffer
/// is written through when it is allocated: 12-16 KiB of every idle monitor).
enum ReadBuf {
    Mapped(std::ptr::NonNull<u8>, usize),
    Heap(Vec<u8>),
}

impl ReadBuf {
    fn new(len: usize) -> ReadBuf {
        // SAFETY: a new private anonymous mapping at an address the kernel picks; nothing
        // existing is touched, and the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match std::ptr::NonNull::new(p.cast::<u8>()) {
            Some(p) if p.as_ptr().cast() != libc::MAP_FAILED => ReadBuf::Mapped(p, len),
            _ => ReadBuf::Heap(vec![0u8; len]),
        }
    }
}

impl std::ops::Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping is len bytes, readable and writable (zero-filled by the
            // kernel), and lives as long as self; only self hands out references to it.
            ReadBuf::Mapped(p, len) => unsafe { std::slice::from_raw_parts(p.as_ptr(), *len) },
            ReadBuf::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for ReadBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            // SAFETY: as in deref; &mut self makes this the only reference.
            ReadBuf::Mapped(p, len) => unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), *len) },
            ReadBuf::Heap(v) => v,
        }
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if let ReadBuf::Mapped(p, len) = self {
            // SAFETY: the mapping made in new, of this length; no reference to it outlives
            // self.
            unsafe { libc::munmap(p.as_ptr().cast(), *len) };
        }
    }
}

/// Log the container's output until its init exits (and its stdio is drained), and serve
/// `husk attach` (`interactive`: the container was started with `-i`, so clients' input goes to
/// its stdin); its exit code, 128 + the signal for a killed one; and the first error writing
/// the log.
fn pump(
    run: &mut Running,
    sfd: &SignalFd,
    log: &mut logs::LogWriter,
    bundle: &Path,
    interactive: bool,
) -> (i32, Option<anyhow::Error>) {
    let mut server = run.attach.take().map(|l| {
        let stdin = match (&run._stdin, &run.master) {
            (Some(p), _) => Some(p.as_fd()),
            (None, Some(m)) if interactive => Some(m.as_fd()),
            _ => None,
        };
        super::attach_sock::Server::new(
            std::os::unix::net::UnixListener::from(l),
            stdin,
            run.master.as_ref().map(|m| m.as_fd()),
        )
    });
    let run = &*run;
    let mut streams: Vec<(&OwnedFd, &str, logs::Lines)> = [
        (&run.stdout, "stdout"),
        (&run.stderr, "stderr"),
        (&run.master, "stdout"),
    ]
    .into_iter()
    .filter_map(|(fd, name)| fd.as_ref().map(|f| (f, name, logs::Lines::default())))
    .collect();
    let mut open = vec![true; streams.len()];
    let mut code: Option<i32> = None;
    // (a page-multiple the pipe reads fill; live while idle, so not larger)
    let mut buf = ReadBuf::new(16 * 1024);
    let mut failed = None;
    loop {
        if code.is_some() && !open.contains(&true) {
            break;
        }
        let mut fds = vec![libc::pollfd {
            fd: sfd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let mut which = Vec::new();
        for (i, (fd, _, _)) in streams.iter().enumerate() {
            if open[i] {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        let clients_at = fds.len();
        if let Some(s) = &server {
            s.poll_fds(&mut fds);
        }
        // once init is gone, drain what is left without waiting on a straggler's open end
        let timeout = if code.is_some() { 100 } else { -1 };
        // SAFETY: fds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        if n == 0 && code.is_some() {
            break;
        }
        if fds[0].revents != 0 {
            while let Ok(Some(_)) = sfd.read_signal() {}
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, c)) if p.as_raw() == run.pid => code = Some(c),
                    Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == run.pid => {
                        code = Some(128 + s as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        for (k, p) in fds[1..clients_at].iter().enumerate() {
            if p.revents == 0 {
                continue;
            }
            let i = which[k];
            let (fd, name, lines) = &mut streams[i];
            match nix::unistd::read(fd.as_fd(), &mut buf) {
                Ok(0) | Err(_) => open[i] = false,
                Ok(len) => {
                    if let Some(s) = &mut server {
                        let kind = if *name == "stderr" {
                            super::attach_sock::STDERR
                        } else {
                            super::attach_sock::STDOUT
                        };
                        s.output(kind, &buf[..len]);
                    }
                    lines.push(&buf[..len], &mut |l| {
                        if let Err(e) = log.write(name, l) {
                            failed.get_or_insert(e);
                        }
                    })
                }
            }
        }
        if let Some(s) = &mut server {
            s.after_poll(&fds[clients_at..], &mut buf);
        }
    }
    for (_, name, lines) in &mut streams {
        lines.finish(&mut |l| {
            if let Err(e) = log.write(name, l) {
                failed.get_or_insert(e);
            }
        });
    }
    let code = code.unwrap_or(255);
    if let Some(s) = server {
        // the socket goes first: an attach from now on is refused, not left waiting
        super::attach_sock::remove_socket(bundle);
        s.finish(code);
    }
    (code, failed)
}

/// Whether the runtime says the container runs (created, running or paused).
pub(crate) fn is_running(g: &Global, id: &str) -> bool {
    g.store
        .load(id)
        .is_ok_and(|st| crate::container::status_of(g, &st) != crate::state::Status::Stopped)
}

fn wait_for(limit: Duration, done: &dyn Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `husk stop [-t S] NAME`: the stop signal (`--stop-signal`, the image's, else SIGTERM), then
/// after the grace time (`-t`, else `--stop-timeout`, else 10 s) SIGKILL to every process of
/// the container; no restart follows, and the monitor has finished when this returns.
pub fn stop(g: &Global, store_dir: &Path, id: &str, timeout: Option<u64>) -> Result<()> {
    stop_for(g, store_dir, id, timeout, false)
}

/// [`stop`]; `restarting`: the container is kept for `husk restart` even with `--rm`.
fn stop_for(
    g: &Global,
    store_dir: &Path,
    id: &str,
    timeout: Option<u64>,
    restarting: bool,
) -> Result<()> {
    crate::state::validate_id(id)?;
    let bundle = bundle_dir(store_dir, id);
    if !bundle.exists() && !g.store.dir(id).exists() {
        bail!("{id}: no such container");
    }
    let cfg: Option<Config> = load(&bundle.join(CONFIG)).ok();
    let monitor = load_status(&bundle).ok().filter(Status::alive);
    if bundle.exists() {
        let marks: &[&str] = if restarting {
            &[RESTART_MARK, STOP_MARK]
        } else {
            &[STOP_MARK]
        };
        for m in marks {
            std::fs::write(bundle.join(m), b"")
                .with_context(|| format!("write {}", bundle.join(m).display()))?;
        }
    }
    let grace = timeout.or(cfg.and_then(|c| c.stop_timeout)).unwrap_or(10);
    if is_running(g, id) {
        if let Err(e) = crate::container::kill(g, id, None, false) {
            if is_running(g, id) {
                return Err(e);
            }
        }
        if !wait_for(Duration::from_secs(grace), &|| !is_running(g, id)) {
            crate::log_debug!("{id}: still running after {grace} s; SIGKILL");
            let _ = crate::container::kill(g, id, Some("KILL"), true);
            if !wait_for(Duration::from_secs(10), &|| !is_running(g, id)) {
                bail!("{id}: still running 10 s after SIGKILL");
            }
        }
    }
    if let Some(m) = monitor {
        if !wait_for(Duration::from_secs(10), &|| !m.alive()) {
            bail!(
                "{id}: the container stopped but its monitor (pid {}) has not finished",
                m.monitor_pid
            );
        }
    }
    Ok(())
}

/// `husk restart NAME`: stop, then the same container started again under a new monitor (a
/// `--rm` container too: it is removed at an exit of its own, not at this one; one first run in
/// the foreground runs detached now, as with docker restart).
pub fn restart(g: &Global, store_dir: &Path, id: &str, timeout: Option<u64>) -> Result<()> {
    crate::state::validate_id(id)?;
    let bundle = bundle_dir(store_dir, id);
    if !bundle.exists() {
        bail!("{id}: no such container");
    }
    let cfg: Config = load(&bundle.join(CONFIG))
        .with_context(|| format!("{id}: not a container husk up made or kept"))?;
    // its AppArmor profile, before anything is stopped (a reboot empties the kernel's)
    super::apparmor::ensure_for_config(&bundle.join("config.json"))?;
    stop_for(g, store_dir, id, timeout, true)?;
    if !bundle.exists() {
        bail!("{id}: removed at its exit (--rm)");
    }
    crate::container::delete(g, id, true)?;
    crate::network::attach::release_container(&g.store.root, id)?;
    super::usernet::stop(&bundle)?;
    launch(g, store_dir, &cfg)
}

/// Before `husk rm` removes container `id`: a monitor that still runs is refused without
/// `force`, else told not to restart and killed (the container is then killed by its state).
pub fn before_rm(g: &Global, bundle: &Path, id: &str, force: bool) -> Result<()> {
    let Some(m) = load_status(bundle).ok().filter(Status::alive) else {
        return Ok(());
    };
    // a container that has just exited: its monitor is finishing (or waits to restart it)
    if !force && !is_running(g, id) && wait_for(Duration::from_secs(2), &|| !m.alive()) {
        return Ok(());
    }
    if !force {
        bail!(
            "cannot remove container {id}: its monitor (pid {}) still runs it; stop it first \
             (husk stop {id}) or use -f",
            m.monitor_pid
        );
    }
    std::fs::write(bundle.join(STOP_MARK), b"")
        .with_context(|| format!("write {}", bundle.join(STOP_MARK).display()))?;
    let Ok(fd) = crate::sys::pidfd::open(m.monitor_pid) else {
        return Ok(());
    };
    if !m.alive() {
        return Ok(());
    }
    crate::sys::pidfd::send_signal(fd.as_fd(), libc::SIGKILL)
        .with_context(|| format!("kill the monitor (pid {}) of {id}", m.monitor_pid))?;
    if !crate::sys::pidfd::wait_exit(fd.as_fd(), 10_000).unwrap_or(false) {
        bail!(
            "{id}: its monitor (pid {}) did not die of SIGKILL",
            m.monitor_pid
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(Restart::parse("no").unwrap(), Restart::No);
        assert_eq!(Restart::parse("").unwrap(), Restart::No);
        assert_eq!(
            Restart::parse("on-failure:2").unwrap(),
            Restart::OnFailure(Some(2))
        );
        assert_eq!(
            Restart::parse("on-failure").unwrap(),
            Restart::OnFailure(None)
        );
        assert_eq!(
            Restart::parse("on-failure:0").unwrap(),
            Restart::OnFailure(None)
        );
        assert_eq!(
            Restart::parse("unless-stopped").unwrap(),
            Restart::UnlessStopped
        );
        for (bad, want) in [
            ("bogus", "expected no, always"),
            ("on-failure:x", "not a number"),
            ("always:3", "only with on-failure"),
        ] {
            let e = Restart::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(want), "{bad}: {e}");
        }
        let p = Restart::OnFailure(Some(2));
        assert!(p.restarts(1, 0) && p.restarts(1, 1));
        assert!(!p.restarts(1, 2), "on-failure:2 restarts twice only");
        assert!(!p.restarts(0, 0), "on-failure does not restart a success");
        assert!(Restart::Always.restarts(0, 1000));
        assert!(!Restart::No.restarts(1, 0));
    }

    #[test]
    fn rm_and_restart_conflict() {
        let o = super::super::UpOptions {
            rm: true,
            detach: true,
            restart: "always".into(),
            ..Default::default()
        };
        let e = check(&o).unwrap_err().to_string();
        assert!(e.contains("--restart always") && e.contains("--rm"), "{e}");
        let o = super::super::UpOptions {
            restart: "on-failure".into(),
            ..Default::default()
        };
        assert!(check(&o).unwrap_err().to_string().contains("-d"));
        let o = super::super::UpOptions {
            detach: true,
            stop_signal: Some("SIGNOPE".into()),
            ..Default::default()
        };
        assert!(check(&o).unwrap_err().to_string().contains("--stop-signal"));
    }
}
