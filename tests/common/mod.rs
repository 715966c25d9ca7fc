//! Shared harness for the root tests.
//!
//! * The runtime under test is `HUSK_BIN` (default: this crate's `husk`).
//! * Every [`Ctr`] has its own work dir (`/tmp/husk-test-*`) holding the bundle, its own `--root`,
//!   the `--log` file and sockets, plus a unique container id.
//! * Dropping a [`Ctr`] runs `delete --force`, then CHECKS what the runtime left behind (process,
//!   state dir, mounts under the work dir, cgroup dirs named like the id), then removes all of it
//!   by pid / mount point / path, and finally panics if anything had been left behind.
#![allow(dead_code)]

pub mod images;

use serde_json::Value;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// The runtime binary under test.
pub fn runtime() -> PathBuf {
    match std::env::var_os("HUSK_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_husk")),
    }
}

/// True when the runtime under test is runc (to note runc's legitimate deviations).
pub fn is_runc() -> bool {
    runtime().file_name().map(|n| n == "runc").unwrap_or(false)
}

pub fn is_crun() -> bool {
    runtime().file_name().map(|n| n == "crun").unwrap_or(false)
}

/// Root tests call this first; a `false` means: skip, the reason has been printed.
/// Under `CI=true` a root test that cannot run as root fails instead of skipping: a CI run that
/// silently did nothing would look green.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        let why = format!("needs root (euid {euid})");
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "{test}: {why}, and under CI=true a root test that cannot run is a failure"
        );
        skip(test, &why);
        return false;
    }
    testroot();
    true
}

/// The first line of every root test: returns from the test when it cannot run as root (see
/// [`require_root`]; the reason is printed and the test counts as skipped, not passed).
#[allow(unused_macros)]
macro_rules! root_or_skip {
    ($name:expr) => {
        if !$crate::common::require_root($name) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use root_or_skip;

/// The whole test is skipped: call it right before returning, having checked nothing. Printed
/// straight to fd 2 (libtest captures `eprintln!` of passing tests, and a skip must always be
/// visible) as `SKIP test: reason`; `make test`'s summary counts such a test as skipped, not as
/// passed, although libtest says "ok".
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("SKIP {test}: {reason}\n").as_bytes());
}

/// One part of a test is skipped, the rest of it runs (`part` is "test/what"): printed as
/// `SKIP-PART test/what: reason`, counted among the skips while the test itself counts as
/// passed.
pub fn skip_part(part: &str, reason: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("SKIP-PART {part}: {reason}\n").as_bytes());
}

static TESTROOT: Once = Once::new();

/// The busybox+probe rootfs, built by `make testroot` on first use.
pub fn testroot() -> PathBuf {
    let p = std::env::var_os("HUSK_TESTROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(MANIFEST_DIR).join("target/testroot/rootfs"));
    TESTROOT.call_once(|| {
        if !p.join("probe").exists() {
            let st = Command::new("make")
                .args(["-C", MANIFEST_DIR, "testroot"])
                .status()
                .expect("running make testroot");
            assert!(st.success(), "make testroot failed");
        }
    });
    assert!(
        p.join("probe").exists(),
        "test rootfs missing at {}",
        p.display()
    );
    p
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A unique container id: the test's tag, our pid and a sequence number.
pub fn unique_id(tag: &str) -> String {
    format!(
        "ht-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// Load `spec-fixtures/NAME/config.json` as JSON (panics on malformed: use `fixture_raw`).
pub fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_raw(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture_raw(name: &str) -> String {
    let p = Path::new(MANIFEST_DIR)
        .join("spec-fixtures")
        .join(name)
        .join("config.json");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Run a command with a timeout; kills it (by pid) on timeout and panics.
///
/// stdout/stderr go to anonymous temp files, not pipes: a detached container (after `create`)
/// inherits them and may keep them open long after the runtime exited.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    use std::io::{Seek, SeekFrom};
    let mut so = tempfile::tempfile().expect("tempfile");
    let mut se = tempfile::tempfile().expect("tempfile");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(so.try_clone().unwrap()))
        .stderr(Stdio::from(se.try_clone().unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let status = wait_child(&mut child, timeout);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    so.seek(SeekFrom::Start(0)).unwrap();
    so.read_to_end(&mut stdout).unwrap();
    se.seek(SeekFrom::Start(0)).unwrap();
    se.read_to_end(&mut stderr).unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Wait for a child with a timeout (kills it by pid on timeout and panics).
pub fn wait_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    try_wait_child(child, timeout)
        .unwrap_or_else(|| panic!("child {} timed out after {timeout:?}", child.id()))
}

/// Wait for a child with a timeout; on timeout kill it by pid and return None.
pub fn try_wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Like [`run_timeout`], but a timeout is an `Err` (the command was killed), not a panic.
pub fn try_run_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_timeout(cmd, timeout)))
        .map_err(|_| format!("hung for {timeout:?} and was killed: {what}"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parse the probe's single JSON object from stdout (the last line that parses).
pub fn probe_json(out: &Output) -> Value {
    let s = text(&out.stdout);
    s.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .unwrap_or_else(|| {
            panic!(
                "no probe JSON in stdout (status {:?})\nstdout: {s}\nstderr: {}",
                out.status,
                text(&out.stderr)
            )
        })
}

pub fn code(st: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the field after the ")" of comm; zombies count as gone
            let st = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !st.starts_with('Z') && !st.starts_with('X')
        }
        Err(_) => false,
    }
}

/// Mount points (host view) at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .map(PathBuf::from)
        .collect()
}

fn is_cgroupfs(p: &Path) -> bool {
    const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x63677270;
    let Ok(c) = std::ffi::CString::new(p.to_string_lossy().as_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    let t = st.f_type as i64;
    t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
}

/// Cgroup directories whose name contains `id` (v1 controllers and the v2 tree), depth <= 3.
/// Only real cgroup filesystems are searched (not e.g. a tmpfs hiding a hybrid host's v2 mount).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, id: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(id) {
                out.push(p);
            } else if depth > 0 {
                walk(&p, id, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    let top = Path::new("/sys/fs/cgroup");
    if is_cgroupfs(top) {
        walk(top, id, 3, &mut out); // pure v2
    } else if let Ok(rd) = std::fs::read_dir(top) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() && is_cgroupfs(&p) {
                walk(&p, id, 2, &mut out);
            }
        }
    }
    out
}

/// A process started by a test (namespace holder, receiver...): killed by pid on drop.
pub struct Helper(pub Child);
impl Helper {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}
impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `unshare FLAGS sh -c 'SETUP; exec sleep 600'` and wait until it is in its namespaces.
pub fn ns_holder(flags: &[&str], setup: &str) -> Helper {
    let child = Command::new("unshare")
        .args(flags)
        .args(["/bin/sh", "-c", &format!("{setup}; exec sleep 600")])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn unshare");
    let h = Helper(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", h.pid())).unwrap_or_default();
        if comm.trim() == "sleep" {
            break;
        }
        assert!(Instant::now() < deadline, "namespace holder did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    h
}

/// `HUSK_TEST_SYSTEMD_CGROUP=1`: containers use the systemd cgroup driver (`--systemd-cgroup`,
/// cgroupsPath `system.slice:husk:ID`, so their unit is `husk-ID.scope`), and what a container
/// leaves behind includes its unit. For a machine booted with systemd: the systemd guest of
/// `make vm-test` runs the fault injection test (tests/faults.rs) so.
pub fn systemd_driver() -> bool {
    std::env::var_os("HUSK_TEST_SYSTEMD_CGROUP").is_some_and(|v| v == "1")
}

/// The systemd unit of container `id` under [`systemd_driver`].
pub fn unit_of(id: &str) -> String {
    format!("husk-{id}.scope")
}

/// What systemd still holds of `unit`: None when it is not loaded or inactive (a unit that
/// failed stays until `reset-failed`, and counts), else its states.
pub fn unit_left(unit: &str) -> Option<String> {
    let o = match Command::new("systemctl")
        .args(["show", "-p", "LoadState", "-p", "ActiveState", unit])
        .stderr(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => return Some(format!("{unit}: systemctl show failed ({})", o.status)),
        Err(e) => return Some(format!("{unit}: systemctl: {e}")),
    };
    let out = text(&o.stdout);
    let prop = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    };
    let (load, active) = (prop("LoadState"), prop("ActiveState"));
    if load == "not-found" || active == "inactive" {
        return None;
    }
    Some(format!("{unit} (LoadState={load}, ActiveState={active})"))
}

/// One container under test, with its own work dir, --root and id.
pub struct Ctr {
    pub id: String,
    pub work: PathBuf,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub config: Value,
    /// Host pids of container processes seen (killed by pid on cleanup).
    pub pids: Vec<i32>,
    /// Extra mount points the test made (unmounted on cleanup).
    pub test_mounts: Vec<PathBuf>,
    pub global_args: Vec<String>,
    /// Run the runtime as this (uid, gid) instead of root (see [`Ctr::as_user`]).
    pub user: Option<(u32, u32)>,
    dropped: bool,
}

impl Ctr {
    /// A bundle from a fixture, with a fresh copy of the test rootfs at `bundle/rootfs`.
    pub fn new(tag: &str, fixture_name: &str) -> Ctr {
        Self::with_config(tag, fixture(fixture_name))
    }

    pub fn with_config(tag: &str, config: Value) -> Ctr {
        let id = unique_id(tag);
        let work = tempfile::Builder::new()
            .prefix(&format!("husk-test-{tag}-"))
            .tempdir()
            .expect("tempdir")
            .keep();
        let bundle = work.join("bundle");
        let root = work.join("root");
        std::fs::create_dir_all(&bundle).unwrap();
        // --root is created by the runtime normally; runc creates it 0700. Pre-create the parent only.
        let st = Command::new("cp")
            .arg("-a")
            .arg(testroot())
            .arg(bundle.join("rootfs"))
            .status()
            .expect("cp rootfs");
        assert!(st.success(), "copying the test rootfs failed");
        let mut c = Ctr {
            id,
            log: work.join("log.json"),
            work,
            bundle,
            root,
            config,
            pids: Vec::new(),
            test_mounts: Vec::new(),
            global_args: Vec::new(),
            user: None,
            dropped: false,
        };
        // deterministic cgroup path named after the id, so leftovers are findable
        c.config["linux"]["cgroupsPath"] = Value::String(format!("/{}", c.id));
        if systemd_driver() {
            c.config["linux"]["cgroupsPath"] = format!("system.slice:husk:{}", c.id).into();
            c.global_args.push("--systemd-cgroup".into());
        }
        c
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// Replace `@TOKEN@` placeholders in every string of the config.
    pub fn substitute(&mut self, token: &str, value: &str) {
        fn walk(v: &mut Value, t: &str, val: &str) {
            match v {
                Value::String(s) if s.contains(t) => *s = s.replace(t, val),
                Value::Array(a) => a.iter_mut().for_each(|x| walk(x, t, val)),
                Value::Object(o) => o.values_mut().for_each(|x| walk(x, t, val)),
                _ => {}
            }
        }
        walk(&mut self.config, token, value);
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = args.iter().map(|s| Value::from(*s)).collect();
        self
    }

    pub fn write_config(&self) {
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// A runtime command with the global flags (`--root`, `--log`, `--log-format json`).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        c.args(&self.global_args);
        c.current_dir(&self.work);
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c
    }

    /// Run the runtime as `uid`/`gid` from now on: the work dir (bundle, rootfs copy, --root
    /// and log) is handed to that user. The rootfs files stay root's, readable by all.
    pub fn as_user(&mut self, uid: u32, gid: u32) -> &mut Self {
        let own = |p: &Path| std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
        own(&self.work);
        own(&self.bundle);
        self.user = Some((uid, gid));
        self
    }

    pub fn rt(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(args);
        run_timeout(&mut c, CMD_TIMEOUT)
    }

    /// `run --bundle B ID` in the foreground; writes the config first.
    pub fn run(&mut self) -> Output {
        self.write_config();
        let b = self.bundle.to_string_lossy().into_owned();
        let id = self.id.clone();
        self.rt(&["run", "--bundle", &b, &id])
    }

    /// `run`, assert exit 0 (the failure shows stdout, stderr and the log), return the output.
    pub fn run_ok(&mut self) -> Output {
        let o = self.run();
        assert!(
            o.status.success(),
            "run failed: {:?}\nstdout: {}\nstderr: {}\nlog: {}",
            o.status,
            text(&o.stdout),
            text(&o.stderr),
            self.log_text()
        );
        o
    }

    /// `run`, assert exit 0, return the probe's JSON.
    pub fn run_probe(&mut self) -> Value {
        let o = self.run_ok();
        probe_json(&o)
    }

    /// `create --bundle B [extra] ID`; records the pid from state on success.
    pub fn create(&mut self, extra: &[&str]) -> Output {
        self.write_config();
        let b = self.bundle.to_string_lossy().into_owned();
        let mut a: Vec<&str> = vec!["create", "--bundle", &b];
        a.extend_from_slice(extra);
        let id = self.id.clone();
        a.push(&id);
        let o = self.rt(&a);
        if o.status.success() {
            if let Some(p) = self.state().and_then(|s| s["pid"].as_i64()) {
                self.pids.push(p as i32);
            }
        }
        o
    }

    pub fn create_ok(&mut self, extra: &[&str]) {
        let o = self.create(extra);
        assert!(
            o.status.success(),
            "create failed: {:?}\nstderr: {}\nlog: {}",
            o.status,
            text(&o.stderr),
            self.log_text()
        );
    }

    /// `create`, SIGKILLed half way: a createRuntime hook (replacing the config's hooks) holds
    /// the runtime after its cgroup and mounts exist; `while_held` runs then (to check a
    /// precondition), and the runtime and the hook are killed. The container is left as an
    /// engine would find it after killing its runtime.
    pub fn create_killed_mid_way(&mut self, while_held: impl FnOnce(&Ctr)) {
        let hook_pid = self.work.join("hook.pid");
        self.config["hooks"] = serde_json::json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 30", hook_pid.display())]
        }]});
        self.write_config();
        let mut cmd = self.cmd();
        cmd.args(["create", "--bundle"])
            .arg(&self.bundle)
            .arg(&self.id)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn create");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !hook_pid.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !hook_pid.exists() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the createRuntime hook never ran");
        }
        while_held(self);
        child.kill().unwrap(); // SIGKILL of the runtime mid-create
        child.wait().unwrap();
        let hp: i32 = std::fs::read_to_string(&hook_pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: kill(2) of the hook's pid, a process this test started.
        unsafe { libc::kill(hp, libc::SIGKILL) };
    }

    pub fn start(&self) -> Output {
        self.rt(&["start", &self.id])
    }

    /// `state ID` parsed, or None on failure.
    pub fn state(&self) -> Option<Value> {
        let o = self.rt(&["state", &self.id]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    pub fn status(&self) -> Option<String> {
        self.state()
            .and_then(|s| s["status"].as_str().map(String::from))
    }

    /// Poll `state` until status is `want` (or timeout).
    pub fn wait_status(&self, want: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.status().as_deref() == Some(want) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&self, sig: &str) -> Output {
        self.rt(&["kill", &self.id, sig])
    }

    pub fn delete(&self, force: bool) -> Output {
        if force {
            self.rt(&["delete", "--force", &self.id])
        } else {
            self.rt(&["delete", &self.id])
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the runtime left behind for this container.
    pub fn leftovers(&self) -> Vec<String> {
        let mut l = Vec::new();
        // processes may take a moment to be reaped after kill
        let deadline = Instant::now() + Duration::from_secs(3);
        for &p in &self.pids {
            while pid_alive(p) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if pid_alive(p) {
                l.push(format!("process {p} still alive"));
            }
        }
        if self.root.join(&self.id).exists() {
            l.push(format!("state dir {}", self.root.join(&self.id).display()));
        }
        // the private directory of a create killed before it renamed it to the id
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with("@new.") {
                l.push(format!("half-made state dir {}", e.path().display()));
            }
        }
        for m in mounts_under(&self.work) {
            if !self.test_mounts.contains(&m) {
                l.push(format!("mount {}", m.display()));
            }
        }
        for d in cgroup_dirs(&self.id) {
            l.push(format!("cgroup {}", d.display()));
        }
        if systemd_driver() {
            if let Some(u) = unit_left(&unit_of(&self.id)) {
                l.push(format!("unit {u}"));
            }
        }
        l
    }

    /// Remove everything by pid / mount point / path, whatever the runtime did.
    pub fn force_cleanup(&self) {
        force_remove(&self.pids, &self.work, &self.id);
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        // The pid may only be known now (e.g. run -d through other code paths).
        if let Some(p) = self.state().and_then(|s| s["pid"].as_i64()) {
            if p > 0 && !self.pids.contains(&(p as i32)) {
                self.pids.push(p as i32);
            }
        }
        let _ = self.delete(true);
        let left = self.leftovers();
        self.force_cleanup();
        if !left.is_empty() {
            let msg = format!(
                "container {} left behind after delete --force: {left:?}",
                self.id
            );
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Listens on a unix socket for `--console-socket` and receives the pty master (SCM_RIGHTS).
pub struct ConsoleReceiver {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleReceiver {
    pub fn new(dir: &Path) -> ConsoleReceiver {
        let path = dir.join("console.sock");
        let listener = UnixListener::bind(&path).expect("bind console socket");
        listener.set_nonblocking(true).unwrap();
        ConsoleReceiver { path, listener }
    }

    /// Accept one connection and receive one fd (the pty master), waiting up to `timeout`.
    pub fn receive(&self, timeout: Duration) -> OwnedFd {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no console-socket connection");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .expect("recvmsg on console socket");
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    return unsafe { OwnedFd::from_raw_fd(fd) };
                }
            }
        }
        panic!("console socket message carried no fd");
    }
}

/// Read from a pty master until EOF/EIO (the slave side closed) or timeout.
pub fn read_pty(master: &OwnedFd, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let fd = master.as_raw_fd();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r <= 0 {
            continue;
        }
        let mut b = [0u8; 4096];
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&b[..n as usize]);
    }
    text(&out)
}

/// Capability bit numbers (linux/capability.h) used by tests.
pub const CAP_CHOWN: u32 = 0;
pub const CAP_KILL: u32 = 5;
pub const CAP_SETUID: u32 = 7;
pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_AUDIT_WRITE: u32 = 29;

pub fn cap_mask(v: &Value, set: &str) -> u64 {
    let s = v["caps"][set]
        .as_str()
        .unwrap_or_else(|| panic!("no {set} in probe"));
    u64::from_str_radix(s, 16).unwrap()
}

pub fn mask_of(bits: &[u32]) -> u64 {
    bits.iter().fold(0, |m, b| m | (1u64 << b))
}

/// The mountinfo line (container view) whose mount point is exactly `dest`.
pub fn mount_line<'a>(v: &'a Value, dest: &str) -> Option<&'a str> {
    v["mountinfo"]
        .as_array()?
        .iter()
        .filter_map(|l| l.as_str())
        .rfind(|l| l.split(' ').nth(4) == Some(dest))
}

/// Mount options (per-mount and super block) and fs type of `dest` in the container.
pub fn mount_info(v: &Value, dest: &str) -> Option<(Vec<String>, String, Vec<String>)> {
    let l = mount_line(v, dest)?;
    let f: Vec<&str> = l.split(' ').collect();
    let opts = f[5].split(',').map(String::from).collect();
    let sep = f.iter().position(|x| *x == "-")?;
    let fstype = f[sep + 1].to_string();
    let sopts = f
        .get(sep + 3)
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default();
    Some((opts, fstype, sopts))
}

/// Remove what a container left, whatever the runtime did: kill `pids` and everything in the
/// cgroups named after `id` (by pid), unmount what is under `work`, remove the cgroup dirs and
/// `work`. Shared by the guard of `Ctr` and the differential runner.
pub fn force_remove(pids: &[i32], work: &Path, id: &str) {
    if systemd_driver() {
        // the unit's stop kills what is in its cgroup; a failed unit stays until reset
        for verb in ["stop", "reset-failed"] {
            let _ = Command::new("systemctl")
                .args([verb, &unit_of(id)])
                .stderr(Stdio::null())
                .status();
        }
    }
    for &p in pids {
        if pid_alive(p) {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    let mut ms = mounts_under(work);
    ms.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in ms {
        if let Ok(c) = std::ffi::CString::new(m.to_string_lossy().as_bytes()) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    // processes still in the container's cgroups (e.g. a container whose pid we never saw);
    // thawed first: frozen tasks do not die on cgroup v1
    let mut dirs = cgroup_dirs(id);
    for d in &dirs {
        let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        if d.join("cgroup.freeze").exists() {
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        }
    }
    for d in &dirs {
        let _ = Command::new("find")
            .arg(d)
            .args(["-name", "cgroup.procs", "-exec", "cat", "{}", ";"])
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                for p in text(&o.stdout).split_whitespace() {
                    if let Ok(p) = p.parse::<i32>() {
                        if p > 1 {
                            unsafe { libc::kill(p, libc::SIGKILL) };
                        }
                    }
                }
            });
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
    for d in dirs {
        // children first, then the dir; rmdir fails while tasks remain
        let _ = Command::new("find")
            .arg(&d)
            .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
            .stderr(Stdio::null())
            .status();
        while d.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let _ = std::fs::remove_dir(&d);
        }
    }
    let _ = std::fs::remove_dir_all(work);
}

/// The probe's uid_map/gid_map lines, with the kernel's column padding collapsed.
pub fn id_map(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_str()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The probe's /proc/self/cgroup lines.
pub fn cgroup_lines(v: &Value) -> Vec<String> {
    v["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// The runtime's `features` document (runtime-spec features.md), parsed.
pub fn features() -> serde_json::Value {
    let o = run_timeout(
        std::process::Command::new(runtime()).arg("features"),
        CMD_TIMEOUT,
    );
    assert!(o.status.success(), "features: {}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("features JSON")
}

/// Fails listing every problem a campaign collected, each on its own line; with the `seed` that
/// replays a random one.
pub fn assert_no_problems(seed: Option<u64>, problems: &[String]) {
    let seed = seed.map(|s| format!("seed {s}: ")).unwrap_or_default();
    assert!(
        problems.is_empty(),
        "{seed}{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// xorshift64*: small and seeded, for the suite's random moments and mutations.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An index below `n`.
    pub fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The seed in `var`, or one from the clock (never 0, which xorshift would keep at 0).
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s != 0)
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}
