//! probe: run inside a container, report what the container sees as ONE JSON object.
//!
//! `probe [--sysctl NAME]... [--cgroup-file PATH]...` prints the full report.
//! Active checks print `{"ok":true,...}` or `{"ok":false,"errno":N,"error":"..."}` and exit
//! 0 on success, 1 on failure:
//!   read PATH | write PATH DATA | open-write PATH | mkdir PATH | stat PATH | ls PATH
//!   ptrace-attach PID | exit N | sleep SECS | fork-bomb [MAX] | alloc MIB | syscall NAME | tty
//!   syscalls CHECK...  (each CHECK `NAME` or `personality:ARG0` / `mkdir:MODE` (octal);
//!                       reports `{"ok":true,"results":{CHECK:"ok"|"errno N"}}`)
//!
//! Only libc; no allocator tricks, no threads. Built static so the test rootfs needs no libs.

use std::ffi::CString;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;

/// Minimal JSON writer: values are built as strings.
fn q(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

struct Obj(Vec<(String, String)>);
impl Obj {
    fn new() -> Self {
        Obj(Vec::new())
    }
    fn raw(&mut self, k: &str, v: String) -> &mut Self {
        self.0.push((k.to_string(), v));
        self
    }
    fn s(&mut self, k: &str, v: &str) -> &mut Self {
        self.raw(k, q(v))
    }
    fn n<T: std::fmt::Display>(&mut self, k: &str, v: T) -> &mut Self {
        self.raw(k, v.to_string())
    }
    fn opt_s(&mut self, k: &str, v: Option<String>) -> &mut Self {
        match v {
            Some(v) => self.s(k, &v),
            None => self.raw(k, "null".into()),
        }
    }
    fn build(&self) -> String {
        let mut o = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str(&q(k));
            o.push(':');
            o.push_str(v);
        }
        o.push('}');
        o
    }
}

fn arr(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().collect();
    format!("[{}]", v.join(","))
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn strerror(e: i32) -> String {
    let s = std::io::Error::from_raw_os_error(e).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| die("argument contains NUL"))
}

fn die(msg: &str) -> ! {
    let mut o = Obj::new();
    o.raw("ok", "false".into()).n("errno", 22).s("error", msg);
    out(&o, 2)
}

fn out(o: &Obj, code: i32) -> ! {
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(o.build().as_bytes());
    let _ = so.write_all(b"\n");
    let _ = so.flush();
    drop(so);
    std::process::exit(code)
}

/// Result of a syscall-like operation: Ok(extra fields) or Err(errno).
fn finish(r: Result<Obj, i32>) -> ! {
    match r {
        Ok(mut o) => {
            o.0.insert(0, ("ok".into(), "true".into()));
            out(&o, 0)
        }
        Err(e) => {
            let mut o = Obj::new();
            o.raw("ok", "false".into())
                .n("errno", e)
                .s("error", &strerror(e));
            out(&o, 1)
        }
    }
}

fn io_err(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn read_str(p: &str) -> Option<String> {
    fs::read(p)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn readlink(p: &str) -> Option<String> {
    fs::read_link(p)
        .ok()
        .map(|b| b.to_string_lossy().into_owned())
}

fn c_chars(buf: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

const RLIMITS: &[(&str, i32)] = &[
    ("RLIMIT_CPU", 0),
    ("RLIMIT_FSIZE", 1),
    ("RLIMIT_DATA", 2),
    ("RLIMIT_STACK", 3),
    ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5),
    ("RLIMIT_NPROC", 6),
    ("RLIMIT_NOFILE", 7),
    ("RLIMIT_MEMLOCK", 8),
    ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10),
    ("RLIMIT_SIGPENDING", 11),
    ("RLIMIT_MSGQUEUE", 12),
    ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14),
    ("RLIMIT_RTTIME", 15),
];

/// Cgroup files reported when they exist (v1 hybrid and v2 names).
const CGROUP_FILES: &[&str] = &[
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
    "/sys/fs/cgroup/pids/pids.max",
    "/sys/fs/cgroup/cpu/cpu.shares",
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/pids.max",
    "/sys/fs/cgroup/cpu.weight",
    "/sys/fs/cgroup/cpu.max",
];

fn rlim(v: libc::rlim_t) -> String {
    if v == libc::RLIM_INFINITY {
        "\"unlimited\"".into()
    } else {
        v.to_string()
    }
}

fn tty_info() -> Obj {
    let mut o = Obj::new();
    for fd in 0..3 {
        let is = unsafe { libc::isatty(fd) } == 1;
        o.raw(&format!("isatty{fd}"), is.to_string());
    }
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        o.n("rows", ws.ws_row).n("cols", ws.ws_col);
    } else {
        o.raw("rows", "null".into()).raw("cols", "null".into());
    }
    o.opt_s("ttyname", readlink("/proc/self/fd/0"));
    o
}

/// `tty_info` plus the owner of the terminal on stdin and whether the process can open it again
/// by its name (what a shell's `tty`/`ssh`/`sudo` do): `reopen` true, or the errno.
fn tty_detail() -> Obj {
    let mut o = tty_info();
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(0, &mut st) } == 0 {
        o.n("owner_uid", st.st_uid).n("owner_gid", st.st_gid);
    }
    match readlink("/proc/self/fd/0") {
        Some(name) => {
            let fd = unsafe { libc::open(cstr(&name).as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
            if fd >= 0 {
                unsafe { libc::close(fd) };
                o.raw("reopen", "true".into());
            } else {
                o.n("reopen", errno());
            }
        }
        None => {
            o.raw("reopen", "null".into());
        }
    }
    o
}

/// The session keyring: `{"id":N,"desc":"type;uid;gid;perm;name"}` (keyctl(2)), or
/// `{"id":null,"errno":N}` when there is none to read.
fn session_keyring() -> String {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEYCTL_DESCRIBE: libc::c_long = 6;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: keyctl(GET_KEYRING_ID) takes two integers (no pointers) and returns a serial.
    let id = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0 as libc::c_long,
        )
    };
    if id < 0 {
        return format!("{{\"id\":null,\"errno\":{}}}", errno());
    }
    let mut buf = vec![0u8; 1024];
    // SAFETY: keyctl(DESCRIBE) writes at most buf.len() bytes into buf, which outlives the call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            id,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let mut o = Obj::new();
    o.n("id", id);
    if n < 0 {
        o.raw("desc", "null".into()).n("errno", errno());
    } else {
        buf.truncate((n as usize).min(buf.len()));
        let desc: Vec<u8> = buf.into_iter().take_while(|&b| b != 0).collect();
        o.s("desc", &String::from_utf8_lossy(&desc));
    }
    o.build()
}

fn report(args: &[String]) -> ! {
    let mut sysctls = Vec::new();
    let mut cg_files: Vec<String> = CGROUP_FILES.iter().map(|s| s.to_string()).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sysctl" => sysctls.push(it.next().cloned().unwrap_or_else(|| die("--sysctl NAME"))),
            "--cgroup-file" => cg_files.push(
                it.next()
                    .cloned()
                    .unwrap_or_else(|| die("--cgroup-file PATH")),
            ),
            _ => die(&format!("unknown argument {a}")),
        }
    }
    if let Ok(v) = std::env::var("PROBE_SYSCTLS") {
        sysctls.extend(v.split(',').filter(|s| !s.is_empty()).map(String::from));
    }

    let mut o = Obj::new();
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    o.s("hostname", &c_chars(&u.nodename));
    o.s("domainname", &c_chars(&u.domainname));
    unsafe {
        o.n("pid", libc::getpid())
            .n("ppid", libc::getppid())
            .n("uid", libc::getuid())
            .n("gid", libc::getgid())
            .n("euid", libc::geteuid())
            .n("egid", libc::getegid());
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    let n = unsafe { libc::getgroups(groups.len() as i32, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    o.raw("groups", arr(groups.iter().map(|g| g.to_string())));
    let m = unsafe { libc::umask(0) };
    unsafe { libc::umask(m) };
    o.s("umask", &format!("{:04o}", m));
    o.opt_s(
        "cwd",
        std::env::current_dir()
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
    );
    o.raw(
        "env",
        arr(std::env::vars_os()
            .map(|(k, v)| q(&format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))),
    );

    // /proc/self/status: capabilities, NoNewPrivs, Seccomp.
    let status = read_str("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)
                .map(|r| r.trim_start_matches(':').trim().to_string())
        })
    };
    let mut caps = Obj::new();
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        caps.opt_s(k, field(k));
    }
    o.raw("caps", caps.build());
    o.raw(
        "no_new_privs",
        field("NoNewPrivs").unwrap_or_else(|| "null".into()),
    );
    o.raw("seccomp", field("Seccomp").unwrap_or_else(|| "null".into()));

    let mut rl = Obj::new();
    for (name, res) in RLIMITS {
        let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrlimit(*res as _, &mut r) } == 0 {
            rl.raw(
                name,
                format!(
                    "{{\"soft\":{},\"hard\":{}}}",
                    rlim(r.rlim_cur),
                    rlim(r.rlim_max)
                ),
            );
        }
    }
    o.raw("rlimits", rl.build());
    o.raw(
        "oom_score_adj",
        read_str("/proc/self/oom_score_adj")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "null".into()),
    );
    o.n("personality", unsafe { libc::personality(0xffff_ffff) });
    let pol = unsafe { libc::sched_getscheduler(0) };
    let mut sp: libc::sched_param = unsafe { std::mem::zeroed() };
    unsafe { libc::sched_getparam(0, &mut sp) };
    // getpriority can legitimately return -1; clear errno first.
    unsafe { *libc::__errno_location() = 0 };
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    o.raw(
        "sched",
        format!(
            "{{\"policy\":{},\"priority\":{},\"nice\":{}}}",
            pol, sp.sched_priority, nice
        ),
    );
    let iop = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    o.raw(
        "ioprio",
        format!(
            "{{\"raw\":{},\"class\":{},\"level\":{}}}",
            iop,
            if iop >= 0 { iop >> 13 } else { -1 },
            if iop >= 0 { iop & 0x1fff } else { -1 }
        ),
    );

    let mut ns = Obj::new();
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        ns.opt_s(n, readlink(&format!("/proc/self/ns/{n}")));
    }
    o.raw("ns", ns.build());
    let lines = |s: Option<String>| match s {
        Some(s) => arr(s.lines().map(q)),
        None => "null".into(),
    };
    o.raw("uid_map", lines(read_str("/proc/self/uid_map")));
    o.raw("gid_map", lines(read_str("/proc/self/gid_map")));
    o.raw("cgroup", lines(read_str("/proc/self/cgroup")));
    let mut cg = Obj::new();
    for f in &cg_files {
        if let Some(v) = read_str(f) {
            cg.s(f, v.trim());
        }
    }
    o.raw("cgroup_files", cg.build());
    o.raw("mountinfo", lines(read_str("/proc/self/mountinfo")));

    let mut fds = Obj::new();
    if let Ok(rd) = fs::read_dir("/proc/self/fd") {
        let mut v: Vec<(i32, String)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .map(|fd: i32| {
                (
                    fd,
                    readlink(&format!("/proc/self/fd/{fd}")).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        for (fd, t) in v {
            fds.s(&fd.to_string(), &t);
        }
    }
    o.raw("fds", fds.build());

    let mut sc = Obj::new();
    for s in &sysctls {
        let p = format!("/proc/sys/{}", s.replace('.', "/"));
        sc.opt_s(s, read_str(&p).map(|v| v.trim().to_string()));
    }
    o.raw("sysctl", sc.build());
    o.opt_s(
        "apparmor",
        read_str("/proc/self/attr/current").map(|s| s.trim_end_matches(['\n', '\0']).to_string()),
    );
    o.raw("tty", tty_info().build());
    o.raw("session_keyring", session_keyring());
    out(&o, 0)
}

fn arg<'a>(args: &'a [String], i: usize, usage: &str) -> &'a str {
    args.get(i)
        .map(String::as_str)
        .unwrap_or_else(|| die(usage))
}

fn do_syscall(name: &str) -> Result<Obj, i32> {
    let tmp = cstr("/tmp/.probe-syscall-dir");
    let r: libc::c_long = unsafe {
        match name {
            "mkdir" => {
                let r = libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, tmp.as_ptr(), 0o755);
                if r == 0 {
                    libc::rmdir(tmp.as_ptr());
                }
                r
            }
            "unshare" => libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS),
            "ptrace" => libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0),
            "getpid" => libc::syscall(libc::SYS_getpid),
            "mount" => libc::syscall(
                libc::SYS_mount,
                cstr("none").as_ptr(),
                cstr("/tmp").as_ptr(),
                cstr("tmpfs").as_ptr(),
                0,
                0,
            ),
            "sethostname" => libc::syscall(libc::SYS_sethostname, cstr("probe").as_ptr(), 5),
            "chroot" => libc::syscall(libc::SYS_chroot, cstr("/").as_ptr()),
            "keyctl" => libc::syscall(libc::SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0),
            "setuid" => libc::syscall(libc::SYS_setuid, 0),
            // Linux 6.6; libc has no constant for it everywhere: x86_64 and generic number.
            "fchmodat2" => libc::syscall(452, libc::AT_FDCWD, cstr("/").as_ptr(), 0o755, 0),
            _ => die(&format!("unknown syscall {name}")),
        }
    };
    if r < 0 {
        Err(errno())
    } else {
        let mut o = Obj::new();
        o.n("ret", r);
        Ok(o)
    }
}

/// Several syscalls in one process; NAME:ARG gives the argument that seccomp rules look at.
fn do_syscalls(checks: &[String]) -> Result<Obj, i32> {
    let mut res = Obj::new();
    for c in checks {
        let (name, arg) = c.split_once(':').unwrap_or((c.as_str(), ""));
        let r = match name {
            "personality" => {
                let v = u64::from_str_radix(arg.trim_start_matches("0x"), 16)
                    .unwrap_or_else(|_| die(&format!("personality:HEX, not {c}")));
                // SAFETY: personality only changes this process's execution domain; the
                // value is set back right after.
                let r = unsafe { libc::syscall(libc::SYS_personality, v) };
                if r >= 0 && v != 0xffff_ffff {
                    unsafe { libc::syscall(libc::SYS_personality, r) };
                }
                if r < 0 {
                    Err(errno())
                } else {
                    Ok(Obj::new())
                }
            }
            "mkdir" => {
                let mode = u32::from_str_radix(arg, 8)
                    .unwrap_or_else(|_| die(&format!("mkdir:OCTAL, not {c}")));
                let tmp = cstr("/tmp/.probe-syscalls-dir");
                let r =
                    unsafe { libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, tmp.as_ptr(), mode) };
                if r == 0 {
                    unsafe { libc::rmdir(tmp.as_ptr()) };
                    Ok(Obj::new())
                } else {
                    Err(errno())
                }
            }
            _ => do_syscall(name),
        };
        match r {
            Ok(_) => res.s(c, "ok"),
            Err(e) => res.s(c, &format!("errno {e}")),
        };
    }
    let mut o = Obj::new();
    o.raw("results", res.build());
    Ok(o)
}

fn fork_bomb(max: usize) -> ! {
    let mut kids = Vec::new();
    let mut err = 0;
    while kids.len() < max {
        let p = unsafe { libc::fork() };
        if p == 0 {
            loop {
                unsafe { libc::pause() };
            }
        }
        if p < 0 {
            err = errno();
            break;
        }
        kids.push(p);
    }
    for &k in &kids {
        unsafe { libc::kill(k, libc::SIGKILL) };
    }
    for &k in &kids {
        unsafe { libc::waitpid(k, std::ptr::null_mut(), 0) };
    }
    let mut o = Obj::new();
    o.raw("ok", (err == 0).to_string())
        .n("forked", kids.len())
        .n("errno", err);
    if err != 0 {
        o.s("error", &strerror(err));
    }
    out(&o, if err == 0 { 0 } else { 1 })
}

fn stat_obj(p: &str) -> Result<Obj, i32> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::lstat(cstr(p).as_ptr(), &mut st) } != 0 {
        return Err(errno());
    }
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        libc::S_IFCHR => "char",
        libc::S_IFBLK => "block",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        _ => "other",
    };
    let mut o = Obj::new();
    o.s("type", kind)
        .s("mode", &format!("{:04o}", st.st_mode & 0o7777))
        .n("uid", st.st_uid)
        .n("gid", st.st_gid)
        .n("major", libc::major(st.st_rdev))
        .n("minor", libc::minor(st.st_rdev))
        .n("size", st.st_size);
    if kind == "symlink" {
        o.opt_s("target", readlink(p));
    }
    Ok(o)
}

/// A pod sandbox's pause process (the CRI tests' pause image runs `/probe pause`): waits for
/// signals, reaps every child that is re-parented to it (a pod sharing its pid namespace), and
/// exits 0 on SIGINT or SIGTERM.
/// Answer every datagram on [::]:PORT (IPv4 too; 0.0.0.0:PORT where IPv6 is off) with "echo:"
/// and its payload, forever.
fn udp_echo(port: &str) -> ! {
    let Ok(port) = port.parse::<u16>() else {
        die(&format!("udp-echo: bad port {port}"))
    };
    let bound = std::net::UdpSocket::bind(("::", port))
        .or_else(|_| std::net::UdpSocket::bind(("0.0.0.0", port)));
    let sock = match bound {
        Ok(s) => s,
        Err(e) => die(&format!("udp-echo: bind {port}: {e}")),
    };
    let mut buf = [0u8; 1500];
    loop {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, from);
        }
    }
}

fn pause() -> ! {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            let mut sig = 0;
            if libc::sigwait(&set, &mut sig) != 0 {
                continue;
            }
            if sig == libc::SIGCHLD {
                while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            } else {
                libc::_exit(0);
            }
        }
    }
}

/// `fuse-hang DIR`: leave a task of the container where the cgroup freezer cannot freeze it.
/// Mounts a FUSE file system at DIR served by this process (needs CAP_SYS_ADMIN and /dev/fuse),
/// answers the kernel's INIT and then reads nothing more; a forked child looks up DIR/x, a
/// request nobody ever reads. The child waits for the answer in the kernel: interruptibly at
/// first, then, once a freezer's wake-up interrupts that wait, in a killable wait the freezer
/// does not count as frozen, so a freeze of the cgroup stays FREEZING (v1) or `frozen 0` (v2)
/// for good. SIGKILL still ends it (the request was never read, so it is withdrawn). A second
/// child holds the connection (it ends when the holder dies); this process prints
/// `{"ok": true, "holder": PID, "child": PID}` and sleeps.
fn fuse_hang(dir: &str) -> Result<Obj, i32> {
    // SAFETY: open(2) of a NUL-terminated path; the fd is checked.
    let fd = unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    let opts = cstr(&format!("fd={fd},rootmode=40000,user_id=0,group_id=0"));
    let target = cstr(dir);
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            c"husk-hang".as_ptr(),
            target.as_ptr(),
            c"fuse".as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if r < 0 {
        return Err(errno());
    }
    // the INIT request: fuse_in_header (len u32, opcode u32, unique u64, nodeid u64, uid, gid,
    // pid u32, total_extlen u16, padding u16) then fuse_init_in
    let mut buf = vec![0u8; 1 << 17];
    // SAFETY: read(2) into a buffer of buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 40 {
        return Err(if n < 0 { errno() } else { libc::EPROTO });
    }
    let opcode = u32::from_ne_bytes(buf[4..8].try_into().unwrap());
    if opcode != 26 {
        die(&format!(
            "fuse-hang: first request has opcode {opcode}, not INIT (26)"
        ));
    }
    let unique = &buf[8..16];
    // fuse_out_header (len u32, error i32, unique u64) then fuse_init_out (64 bytes): major 7,
    // minor 31, max_readahead, flags 0, max_background, congestion_threshold, max_write
    let mut reply = [0u8; 16 + 64];
    let len = reply.len() as u32;
    reply[0..4].copy_from_slice(&len.to_ne_bytes());
    reply[8..16].copy_from_slice(unique);
    reply[16..20].copy_from_slice(&7u32.to_ne_bytes());
    reply[20..24].copy_from_slice(&31u32.to_ne_bytes());
    reply[24..28].copy_from_slice(&4096u32.to_ne_bytes());
    reply[36..40].copy_from_slice(&4096u32.to_ne_bytes());
    // SAFETY: write(2) of an initialised buffer.
    if unsafe { libc::write(fd, reply.as_ptr().cast(), reply.len()) } < 0 {
        return Err(errno());
    }
    // the connection's holder: a child that keeps the fd and sleeps (freezable), so that the
    // connection outlives this process (killed first by a delete) and the stuck child is left
    // for the sweep of the cgroup
    // SAFETY: fork(2); the child only sleeps.
    let holder = unsafe { libc::fork() };
    if holder < 0 {
        return Err(errno());
    }
    if holder == 0 {
        loop {
            // SAFETY: pause(2) has no arguments.
            unsafe { libc::pause() };
        }
    }
    let path = cstr(&format!("{dir}/x"));
    // SAFETY: fork(2); the child only calls async-signal-safe functions (close, stat, _exit).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(errno());
    }
    if child == 0 {
        // SAFETY: the child drops its copy of the connection, then stats a path whose lookup
        // is never answered.
        unsafe {
            libc::close(fd);
            let mut st: libc::stat = std::mem::zeroed();
            libc::stat(path.as_ptr(), &mut st);
            libc::_exit(0)
        }
    }
    // SAFETY: closing the fd this process opened; the holder keeps its copy.
    unsafe { libc::close(fd) };
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(
        format!("{{\"ok\": true, \"holder\": {holder}, \"child\": {child}}}\n").as_bytes(),
    );
    let _ = so.flush();
    drop(so);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sub = args.get(1).map(String::as_str).unwrap_or("");
    if sub.is_empty() || sub.starts_with("--") {
        report(&args[1..]);
    }
    let r = match sub {
        "report" => report(&args[2..]),
        "read" => fs::read(arg(&args, 2, "read PATH"))
            .map(|b| {
                let mut o = Obj::new();
                o.s("data", &String::from_utf8_lossy(&b));
                o
            })
            .map_err(io_err),
        "write" => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(arg(&args, 2, "write PATH DATA"))
            .and_then(|mut f| f.write_all(arg(&args, 3, "write PATH DATA").as_bytes()))
            .map(|_| Obj::new())
            .map_err(io_err),
        "open-write" => {
            let fd = unsafe {
                libc::open(
                    cstr(arg(&args, 2, "open-write PATH")).as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                Err(errno())
            } else {
                unsafe { libc::close(fd) };
                Ok(Obj::new())
            }
        }
        "mkdir" => fs::create_dir(arg(&args, 2, "mkdir PATH"))
            .map(|_| Obj::new())
            .map_err(io_err),
        "stat" => stat_obj(arg(&args, 2, "stat PATH")),
        "ls" => fs::read_dir(arg(&args, 2, "ls PATH"))
            .map(|rd| {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                let mut o = Obj::new();
                o.raw("entries", arr(v.iter().map(|s| q(s))));
                o
            })
            .map_err(io_err),
        "ptrace-attach" => {
            let pid: libc::pid_t = arg(&args, 2, "ptrace-attach PID")
                .parse()
                .unwrap_or_else(|_| die("PID must be a number"));
            let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            if r < 0 {
                Err(errno())
            } else {
                unsafe {
                    libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
                    libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                }
                Ok(Obj::new())
            }
        }
        "exit" => {
            let n: i32 = arg(&args, 2, "exit N")
                .parse()
                .unwrap_or_else(|_| die("N must be a number"));
            std::process::exit(n)
        }
        "sleep" => {
            let s: u64 = arg(&args, 2, "sleep SECS")
                .parse()
                .unwrap_or_else(|_| die("SECS must be a number"));
            std::thread::sleep(std::time::Duration::from_secs(s));
            Ok(Obj::new())
        }
        "fork-bomb" => fork_bomb(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4096)),
        "alloc" => {
            let mib: usize = arg(&args, 2, "alloc MIB")
                .parse()
                .unwrap_or_else(|_| die("MIB must be a number"));
            let len = mib << 20;
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
            if p == libc::MAP_FAILED {
                Err(errno())
            } else {
                let b = p as *mut u8;
                let mut i = 0;
                while i < len {
                    unsafe { std::ptr::write_volatile(b.add(i), 1) };
                    i += 4096;
                }
                let mut o = Obj::new();
                o.n("mib", mib);
                Ok(o)
            }
        }
        "pause" => pause(),
        "fuse-hang" => fuse_hang(arg(&args, 2, "fuse-hang DIR")),
        "udp-echo" => udp_echo(arg(&args, 2, "udp-echo PORT")),
        "syscall" => do_syscall(arg(&args, 2, "syscall NAME")),
        "syscalls" => do_syscalls(&args[2..]),
        "tty" => Ok(tty_detail()),
        _ => die(&format!("unknown subcommand {sub}")),
    };
    finish(r)
}
