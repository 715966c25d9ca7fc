//! Seccomp user notification (`SCMP_ACT_NOTIFY`, `linux.seccomp.listenerPath`): a small
//! seccomp agent in the test process receives the container process state and the listener
//! fd, and answers the container's notifying syscalls; the effect is seen from inside the
//! container. Runs against runc too (HUSK_BIN=/usr/sbin/runc).
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the agent answers a notification.
#[derive(Clone, Copy)]
enum Answer {
    /// The syscall "succeeds" with this return value, without being run.
    Success(i64),
    /// The syscall fails with this errno.
    Errno(i32),
    /// The syscall runs (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    Continue,
}

/// One notification the agent answered.
#[derive(Clone, Debug)]
struct Notif {
    pid: u32,
    nr: i32,
}

/// What one connection to the agent brought.
#[derive(Clone, Debug)]
struct Received {
    state: Value,
    /// fds in the SCM_RIGHTS of the message
    nfds: usize,
    notifs: Vec<Notif>,
    /// the listener fd reported POLLHUP: every process using the filter is gone
    hung_up: bool,
}

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
const NOTIF_RECV: u64 = 0xc050_2100;
const NOTIF_SEND: u64 = 0xc018_2101;

/// A seccomp agent on a unix socket: each connection gets a thread that receives the state
/// and the fd, then answers notifications with `answer` until the fd hangs up or the agent
/// stops.
struct Agent {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Arc<Mutex<Received>>>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Agent {
    fn start(dir: &Path, answer: Answer) -> Agent {
        let path = dir.join("agent.sock");
        let l = UnixListener::bind(&path).expect("bind the agent socket");
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let got: Arc<Mutex<Vec<Arc<Mutex<Received>>>>> = Arc::default();
        let (s, g) = (stop.clone(), got.clone());
        let t = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (s2, g2) = (s.clone(), g.clone());
                        conns.push(std::thread::spawn(move || serve(c, answer, s2, g2)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Agent {
            path,
            stop,
            got,
            threads: vec![t],
        }
    }

    /// The connections so far (a copy).
    fn received(&self) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.lock().unwrap().clone())
            .collect()
    }

    /// Wait until `n` connections arrived and each satisfies `f`.
    fn wait_for(&self, n: usize, f: impl Fn(&Received) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.received();
            if (r.len() >= n && r.iter().all(&f)) || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(
    c: std::os::unix::net::UnixStream,
    answer: Answer,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Arc<Mutex<Received>>>>>,
) {
    let (text, fds) = recv_with_fds(c.as_raw_fd());
    let state: Value = serde_json::from_slice(&text).unwrap_or_else(
        |e| json!({"undecodable": String::from_utf8_lossy(&text), "error": e.to_string()}),
    );
    let rec = Arc::new(Mutex::new(Received {
        state,
        nfds: fds.len(),
        notifs: Vec::new(),
        hung_up: false,
    }));
    got.lock().unwrap().push(rec.clone());
    drop(c);
    let Some(fd) = fds.into_iter().next() else {
        return;
    };
    while !stop.load(Ordering::SeqCst) {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, 50) };
        if r <= 0 {
            continue;
        }
        if p.revents & libc::POLLIN != 0 {
            let mut n = SeccompNotif::default();
            // SAFETY: NOTIF_RECV fills a struct seccomp_notif, which `n` is.
            if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV as _, &mut n) } < 0 {
                continue; // the process went away meanwhile
            }
            let mut resp = SeccompNotifResp {
                id: n.id,
                ..Default::default()
            };
            match answer {
                Answer::Success(v) => resp.val = v,
                Answer::Errno(e) => resp.error = -e,
                Answer::Continue => resp.flags = 1,
            }
            rec.lock().unwrap().notifs.push(Notif {
                pid: n.pid,
                nr: n.data.nr,
            });
            // SAFETY: NOTIF_SEND reads a struct seccomp_notif_resp, which `resp` is.
            unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND as _, &mut resp) };
        } else if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            rec.lock().unwrap().hung_up = true;
            return;
        }
    }
}

/// One message and the fds that came with it (SCM_RIGHTS).
fn recv_with_fds(sock: RawFd) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut ctl = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr, then pointed at live buffers.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = ctl.as_mut_ptr().cast();
    hdr.msg_controllen = std::mem::size_of_val(&ctl) as _;
    // SAFETY: hdr points at buffers valid for their lengths.
    let n = unsafe { libc::recvmsg(sock, &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    let mut fds = Vec::new();
    if n < 0 {
        return (Vec::new(), fds);
    }
    // SAFETY: walking the control buffer the kernel filled.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(c) as *const i32;
                for k in 0..len / 4 {
                    fds.push(OwnedFd::from_raw_fd(p.add(k).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&hdr, c);
        }
    }
    buf.truncate(n as usize);
    (buf, fds)
}

/// Which of `pids` (and their children) hold a seccomp listener fd.
fn listener_holders(pids: &[i32]) -> Vec<String> {
    let mut all: Vec<i32> = pids.to_vec();
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        let kids =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        all.extend(
            kids.split_whitespace()
                .filter_map(|k| k.parse::<i32>().ok()),
        );
        i += 1;
    }
    let mut held = Vec::new();
    for p in all {
        for e in std::fs::read_dir(format!("/proc/{p}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(l) = std::fs::read_link(e.path()) {
                if l.to_string_lossy().contains("seccomp notify") {
                    held.push(format!("pid {p} fd {}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    held
}

/// mkdir, mkdirat notify; everything else is allowed.
fn notify_profile(listener: &Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener,
        "listenerMetadata": "agent-metadata",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    })
}

fn is_mkdir(nr: i32) -> bool {
    nr as i64 == libc::SYS_mkdirat || nr as i64 == libc::SYS_mkdir
}

/// The container process state the agent got: runtime.md "The Container Process State".
fn check_state(r: &Received, c: &Ctr, pid: i64, init_pid: i64, status: &str) {
    let s = &r.state;
    assert_eq!(r.nfds, 1, "fds with the message: {s}");
    assert_eq!(s["fds"], json!(["seccompFd"]), "{s}");
    assert_eq!(s["pid"], pid, "{s}");
    assert_eq!(s["metadata"], "agent-metadata", "{s}");
    assert!(s["ociVersion"].is_string(), "{s}");
    let st = &s["state"];
    assert_eq!(st["id"], c.id.as_str(), "{s}");
    assert_eq!(st["status"], status, "{s}");
    assert_eq!(st["pid"], init_pid, "{s}");
    assert!(st["ociVersion"].is_string(), "{s}");
    assert_eq!(
        Path::new(st["bundle"].as_str().unwrap_or_default())
            .canonicalize()
            .ok(),
        c.bundle.canonicalize().ok(),
        "{s}"
    );
    assert_eq!(st["annotations"]["notify.test"], "yes", "{s}");
}

fn notify_ctr(tag: &str, fixture: &str, agent: &Agent) -> Ctr {
    let mut c = Ctr::new(tag, fixture);
    c.config["root"]["readonly"] = false.into();
    c.config["annotations"] = json!({"notify.test": "yes"});
    c.config["linux"]["seccomp"] = notify_profile(&agent.path);
    c
}

/// `run`: the probe's mkdir is answered by the agent with an errno of its choosing; the agent
/// got the state ("creating", the init's pid, the metadata) and the fd once, and saw the hang
/// up when the container ended.
// req: LNX-SECCOMP-NOTIFY
#[test]
fn run_mkdir_answered_by_the_agent() {
    root_or_skip!("run_mkdir_answered_by_the_agent");
    // the filter goes in at different points with and without noNewPrivileges; a user
    // namespace (the init is then not the runtime's child) changes nothing
    for (fixture, nnp) in [("default", false), ("default", true), ("userns", false)] {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::start(dir.path(), Answer::Errno(libc::EXFULL));
        let mut c = notify_ctr("ntfrun", fixture, &agent);
        c.config["process"]["noNewPrivileges"] = nnp.into();
        if nnp && !is_runc() {
            // (runc 1.1 does not know the flag) with a listener the kernel takes it
            c.config["linux"]["seccomp"]["flags"] =
                json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
        }
        c.args(&["/bin/sh", "-c", "/probe syscall mkdir; /probe sleep 2"]);
        c.write_config();
        let b = c.bundle.to_string_lossy().into_owned();
        let mut cmd = c.cmd();
        cmd.args(["run", "--bundle", &b, &c.id])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn run");
        // while the container runs: the agent alone holds the listener (the runtime and
        // the container's processes closed theirs)
        let r = agent.wait_for(1, |r| !r.notifs.is_empty());
        if let Some(p) = r.first().and_then(|r| r.state["pid"].as_i64()) {
            c.pids.push(p as i32);
            let holders = listener_holders(&[child.id() as i32, p as i32]);
            assert!(holders.is_empty(), "{fixture} nnp {nnp}: {holders:?}");
        }
        let st = wait_child(&mut child, Duration::from_secs(20));
        let mut out = String::new();
        use std::io::Read;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(st.success(), "{fixture} nnp {nnp}: run: {err}");
        let v: Value = out
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        assert_eq!(v["ok"], false, "{fixture} nnp {nnp}: {out}");
        assert_eq!(
            v["errno"],
            libc::EXFULL,
            "{fixture} nnp {nnp}: mkdir not answered by the agent: {out}"
        );
        let r = agent.wait_for(1, |r| r.hung_up);
        assert_eq!(
            r.len(),
            1,
            "{fixture} nnp {nnp}: connections to the agent: {r:?}"
        );
        let pid = r[0].state["pid"].as_i64().unwrap_or(0);
        assert!(pid > 0, "{}", r[0].state);
        check_state(&r[0], &c, pid, pid, "creating");
        // (from the shell's child, whose pid the agent cannot check against anything)
        assert!(
            r[0].notifs.iter().any(|n| is_mkdir(n.nr) && n.pid > 0),
            "{fixture} nnp {nnp}: no mkdir: {:?}",
            r[0].notifs
        );
        assert!(r[0].hung_up, "the container ended but its filter did not");
        let left = c.leftovers();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// The process that installed the filter goes on making syscalls after it (it closes its copy
/// of the fd, tells the runtime it is ready, resets signal handlers, execs): with those
/// notifying, it gets on only because the runtime passed the fd to the agent at once.
// req: LNX-SECCOMP-NOTIFY
#[test]
fn syscalls_after_the_install_are_answered() {
    root_or_skip!("syscalls_after_the_install_are_answered");
    for nnp in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::start(dir.path(), Answer::Continue);
        let mut c = notify_ctr("ntfclose", "default", &agent);
        c.config["process"]["noNewPrivileges"] = nnp.into();
        c.config["linux"]["seccomp"]["syscalls"] = json!([{
            "names": ["close", "rt_sigaction", "execve"], "action": "SCMP_ACT_NOTIFY"}]);
        c.args(&["/probe", "exit", "0"]);
        let o = c.run();
        assert!(
            o.status.success(),
            "nnp {nnp}: {} {}",
            text(&o.stderr),
            c.log_text()
        );
        let r = agent.wait_for(1, |r| r.hung_up);
        assert_eq!(r.len(), 1, "{r:?}");
        let pid = r[0].state["pid"].as_i64().unwrap_or(0);
        let nrs: Vec<i64> = r[0].notifs.iter().map(|n| n.nr as i64).collect();
        assert!(
            r[0].notifs.iter().all(|n| n.pid as i64 == pid),
            "nnp {nnp}: {:?}",
            r[0].notifs
        );
        for want in [libc::SYS_close, libc::SYS_execve] {
            assert!(nrs.contains(&want), "nnp {nnp}: no syscall {want}: {nrs:?}");
        }
        let left = c.leftovers();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// `create` hands the fd to the agent before it returns (the state says "creating" and the
/// pid `state` reports); after `start` the agent fakes a successful mkdir: the program sees
/// success and nothing was created.
// req: LNX-SECCOMP-NOTIFY
#[test]
fn create_start_mkdir_faked_by_the_agent() {
    root_or_skip!("create_start_mkdir_faked_by_the_agent");
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), Answer::Success(0));
    let mut c = notify_ctr("ntfcreate", "default", &agent);
    c.args(&[
        "/bin/sh",
        "-c",
        "/probe mkdir /faked > /mkdir.json; /probe stat /faked > /stat.json",
    ]);
    // a startContainer hook runs in the container after the hand-over: no listener fd
    c.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh",
        "args": ["sh", "-c", "ls -l /proc/self/fd/ > /hookfds"]}]});
    c.create_ok(&[]);
    // create sent it before it returned (the agent may take a moment to read it)
    let r = agent.wait_for(1, |_| true);
    assert_eq!(r.len(), 1, "connections when create returned: {r:?}");
    let pid = c.state().unwrap()["pid"].as_i64().unwrap();
    check_state(&r[0], &c, pid, pid, "creating");
    assert!(r[0].notifs.is_empty(), "{:?}", r[0].notifs);
    assert!(c.start().status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(c.rootfs().join(f)).unwrap_or_default())
            .unwrap_or(Value::Null)
    };
    assert_eq!(read("mkdir.json")["ok"], true, "{}", read("mkdir.json"));
    assert_eq!(
        read("stat.json")["errno"],
        libc::ENOENT,
        "{}",
        read("stat.json")
    );
    assert!(!c.rootfs().join("faked").exists());
    let fds = std::fs::read_to_string(c.rootfs().join("hookfds")).unwrap_or_default();
    assert!(
        fds.contains(" 0 -> "),
        "the hook did not list its fds: {fds}"
    );
    assert!(
        !fds.contains("seccomp"),
        "the hook got a listener fd: {fds}"
    );
    let r = agent.wait_for(1, |r| r.hung_up);
    assert!(
        r[0].notifs.iter().any(|n| is_mkdir(n.nr)),
        "{:?}",
        r[0].notifs
    );
    assert!(r[0].hung_up, "the container ended but its filter did not");
    assert!(c.delete(false).status.success());
    let left = c.leftovers();
    assert!(left.is_empty(), "{left:?}");
}

/// `exec` installs the container's filter in the new process and sends its own listener fd:
/// a second connection, status "running", `pid` the exec'd process, `state.pid` the init.
// req: LNX-SECCOMP-NOTIFY
#[test]
fn exec_mkdir_answered_by_the_agent() {
    root_or_skip!("exec_mkdir_answered_by_the_agent");
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), Answer::Errno(libc::EXFULL));
    let mut c = notify_ctr("ntfexec", "default", &agent);
    c.args(&["/probe", "sleep", "30"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let init = c.state().unwrap()["pid"].as_i64().unwrap();
    let o = c.rt(&["exec", &c.id, "/probe", "syscall", "mkdir"]);
    let v = probe_json(&o);
    assert_eq!(v["errno"], libc::EXFULL, "{v} {}", text(&o.stderr));
    let r = agent.wait_for(2, |r| r.state["state"]["status"] != "running" || r.hung_up);
    assert_eq!(r.len(), 2, "connections: {r:?}");
    check_state(&r[0], &c, init, init, "creating");
    let pid = r[1].state["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0 && pid != init, "{}", r[1].state);
    check_state(&r[1], &c, pid, init, "running");
    assert!(
        r[1].notifs
            .iter()
            .any(|n| is_mkdir(n.nr) && n.pid as i64 == pid),
        "{:?}",
        r[1].notifs
    );
    assert!(
        r[0].notifs.is_empty(),
        "the init made no mkdir: {:?}",
        r[0].notifs
    );
    assert!(
        r[1].hung_up,
        "the exec'd process ended but its filter did not"
    );
    // the agent gone: exec fails, naming it, and its process does not stay in the container
    let before = c.rt(&["ps", "--format", "json", &c.id]);
    let pids: Vec<i64> = serde_json::from_slice(&before.stdout).unwrap_or_default();
    assert_eq!(pids, vec![init], "ps: {}", text(&before.stderr));
    drop(agent);
    let o = c.rt(&["exec", &c.id, "/probe", "syscall", "mkdir"]);
    // runc's exit code for an exec that failed to start its process
    assert_eq!(
        code(&o.status),
        255,
        "exec without its agent: {}",
        text(&o.stderr)
    );
    let all = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(
        all.contains("failed to connect with seccomp agent"),
        "{all}"
    );
    assert!(
        text(&o.stdout).is_empty(),
        "the program ran: {}",
        text(&o.stdout)
    );
    let after = c.rt(&["ps", "--format", "json", &c.id]);
    assert_eq!(
        text(&after.stdout),
        text(&before.stdout),
        "processes in the container"
    );
    assert_eq!(c.status().as_deref(), Some("running"));
    assert!(c.kill("KILL").status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    assert!(c.delete(false).status.success());
    let left = c.leftovers();
    assert!(left.is_empty(), "{left:?}");
}

/// Profiles that cannot work are refused by name, and nothing is left behind; the same for
/// an agent that is not there.
// req: LNX-SECCOMP-NOTIFY
#[test]
fn notify_refusals_leave_nothing() {
    root_or_skip!("notify_refusals_leave_nothing");
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("nobody-listens.sock");
    let cases: [(&str, Value, &str); 4] = [
        (
            "nolistener",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath is not set",
        ),
        (
            "write",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": absent,
                   "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "SCMP_ACT_NOTIFY cannot be used for the write syscall",
        ),
        (
            "default",
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": absent}),
            "SCMP_ACT_NOTIFY cannot be used as default action",
        ),
        (
            "noagent",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": absent,
                   "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
            "failed to connect with seccomp agent",
        ),
    ];
    for (tag, profile, want) in cases {
        for create in [false, true] {
            let mut c = Ctr::new(&format!("ntf{tag}"), "default");
            c.config["linux"]["seccomp"] = profile.clone();
            c.args(&["/probe", "exit", "0"]);
            let o = if create { c.create(&[]) } else { c.run() };
            let all = format!("{}{}", text(&o.stderr), c.log_text());
            assert!(!o.status.success(), "{tag}: accepted");
            assert_eq!(code(&o.status), 1, "{tag}: {all}");
            assert!(all.contains(want), "{tag}: no {want:?} in: {all}");
            let left = c.leftovers();
            assert!(left.is_empty(), "{tag}: {left:?}");
        }
    }
    // listenerPath without a NOTIFY rule is not used, and not an error (runc runs it too)
    let mut c = Ctr::new("ntfunused", "default");
    c.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": absent,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    c.args(&["/probe", "syscall", "mkdir"]);
    let v = probe_json(&c.run());
    assert_eq!(v["errno"], libc::EPERM, "{v}");
}
