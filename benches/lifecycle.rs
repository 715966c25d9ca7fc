//! `make bench`: husk side by side with crun and runc (when installed), on identical bundles
//! from the busybox test rootfs, runtimes ALTERNATING run by run so drift hits all alike.
//!
//! Measured (min / median / max, and the husk/other ratio of medians):
//! - `run` of /bin/true (create + start + wait + delete), and create, start, delete separately;
//! - `exec` of /bin/true into a running container;
//! - docker: `docker run --rm IMAGE true` and `docker exec CTR true` through one private dockerd
//!   with every runtime registered (see lifecycle/docker.rs; on when dockerd is installed);
//! - cri: a one-container pod's life and ExecSync through containerd's CRI plugin with every
//!   runtime as a handler (lifecycle/cri.rs, integration/cri.sh);
//! - up / idle: `husk up --rm IMAGE true` next to `docker run --rm` and `podman run --rm` (each
//!   engine with its default runtime, the same image, `--network none`), and the memory each
//!   keeps running for 10 idle detached containers (lifecycle/up.rs; a table of its own);
//! - peak RSS of the runtime's largest process during `run` (wait4 rusage), and the smallest
//!   `memory.limit` under which a container still starts (binary search);
//! - throughput: 100 containers one after the other, and 100 with 10 at a time;
//! - scale: `state` and `list` with 1000 containers in the store;
//! - binary startup: `--version`;
//! - network: attach + detach of the default network with one published port, husk's native
//!   driver next to the CNI plugin chain of the same conflist (lifecycle/network.rs);
//! - image: a cold pull + unpack from a loopback registry by `husk image`, `podman pull` and
//!   `skopeo copy` + `umoci unpack`, next to the machine's floor (lifecycle/image.rs; a table of
//!   its own);
//! - compiling Docker's default seccomp profile: husk's compiler in-process next to libseccomp
//!   building and exporting the same profile the way runc does (in the runc column).
//!
//! Writes `target/bench/report.md` and `target/bench/chart.svg`.
//!
//! crun refuses a cgroup v1 "hybrid" host, so on such a host the benchmark first enters a private
//! mount namespace (once, for itself and everything it starts) and hides the empty v2 hierarchy
//! at /sys/fs/cgroup/unified under a tmpfs: every runtime then sees the same pure-v1 host, and no
//! per-run wrapper adds time. Every container gets an absolute cgroupsPath under a
//! `husk-bench-<pid>` parent that is removed at the end.
//!
//! Env: BENCH_RUNS (default 40), BENCH_WARMUP (5), BENCH_SCALE (1000), BENCH_HUSK (the static
//! build of `make release`, else target/release/husk), BENCH_RUNTIMES (name=path,... to override the set), BENCH_ONLY (comma
//! list of sections: run,phases,exec,docker,cri,up,idle,rss,minmem,throughput,scale,seccomp,
//! version,network,image),
//! BENCH_DOCKER_RUNS (20), BENCH_DOCKER_WARMUP (3), BENCH_CRI_RUNS (20), BENCH_CRI_WARMUP (3),
//! BENCH_UP_RUNS (20), BENCH_UP_WARMUP (3), BENCH_IMAGE_RUNS (3), BENCH_IMAGE_WARMUP (1, at most 1),
//! BENCH_IMAGE_MB (600), BENCH_IMAGE_ROOTFS (`debootstrap`: Debian roots as the big image's
//! layers), BENCH_DEBIAN_MIRROR (its mirror) and BENCH_DISK (`1`: the temp dir on the disk, not
//! on a tmpfs; see `base_on_tmpfs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "lifecycle/cri.rs"]
mod cri;
#[path = "lifecycle/docker.rs"]
mod docker;
#[path = "lifecycle/image.rs"]
mod image;
#[path = "lifecycle/network.rs"]
mod network;
#[path = "lifecycle/up.rs"]
mod up;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn hybrid() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists()
}

fn cgroup_mode() -> &'static str {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2 (unified)"
    } else if hybrid() {
        "v1 hybrid (v1 controllers + empty v2 at /sys/fs/cgroup/unified)"
    } else {
        "v1 (legacy)"
    }
}

fn sh_out(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Enter a private mount namespace; on a hybrid host hide the v2 mount (see the module docs).
fn isolate_mounts() -> String {
    // SAFETY: unshare/mount with valid C strings; the benchmark is single-threaded here.
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare(CLONE_NEWNS)");
        let none = c"none".as_ptr();
        let root = c"/".as_ptr();
        assert_eq!(
            libc::mount(
                none,
                root,
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null()
            ),
            0
        );
        if hybrid() {
            let r = libc::mount(
                c"husk-bench-nounified".as_ptr(),
                c"/sys/fs/cgroup/unified".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=1m,mode=755".as_ptr().cast(),
            );
            assert_eq!(r, 0, "hide /sys/fs/cgroup/unified");
            return "The host is cgroup v1 hybrid; crun refuses that, so the benchmark runs every \
                    runtime in one private mount namespace where the empty v2 mount at \
                    /sys/fs/cgroup/unified is hidden under a tmpfs (all runtimes see a pure v1 \
                    host; no per-run wrapper)."
                .into();
        }
    }
    String::new()
}

/// Unmounts the benchmark's tmpfs (and whatever an engine left mounted under it) on drop.
struct BaseFs(PathBuf);

impl Drop for BaseFs {
    fn drop(&mut self) {
        image::umount_under(&self.0, true);
    }
}

/// Put the benchmark's temp dir (every engine's state, bundles, stores and logs) on a tmpfs
/// in the private mount namespace, unless `BENCH_DISK=1`; returns the guard and the report's
/// sentence on it. This VM's root file system is ext4 without a journal, where each new inode
/// skips every inode of its group freed in the last minutes (ext4's `recently_deleted`): under
/// the benchmark's own churn a file create there costs ever more, a cost no journaled host pays
/// and one that would rank engines by how many files they make rather than by their work.
fn base_on_tmpfs(base: &Path) -> (Option<BaseFs>, String) {
    if std::env::var_os("BENCH_DISK").is_some_and(|v| v == "1") {
        return (
            None,
            format!(
                "Every engine's directories are on the disk (`BENCH_DISK=1`: {}).",
                base.display()
            ),
        );
    }
    let c = std::ffi::CString::new(base.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mount with valid C strings, in the benchmark's private mount namespace.
    let r = unsafe {
        libc::mount(
            c"husk-bench".as_ptr(),
            c.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"mode=755".as_ptr().cast(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        eprintln!("bench: no tmpfs at {}: {e}; on the disk", base.display());
        return (
            None,
            format!(
                "Every engine's directories are on the disk (a tmpfs could not be mounted: {e})."
            ),
        );
    }
    (
        Some(BaseFs(base.to_path_buf())),
        "Every engine's directories (state, bundles, stores, logs; containerd's and dockerd's \
         roots) are on a tmpfs in the benchmark's private mount namespace: this VM's root file \
         system is ext4 without a journal, where each new inode skips every inode of its group \
         freed in the last minutes (ext4's `recently_deleted`), so under the benchmark's own \
         churn a file create costs ever more, which no journaled host pays (`BENCH_DISK=1` \
         keeps them on the disk)."
            .into(),
    )
}

struct Rt {
    name: String,
    bin: PathBuf,
    work: PathBuf,
    version: String,
}

impl Rt {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.work.join("root"));
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
}

struct Bench {
    rts: Vec<Rt>,
    /// the temp dir everything else lives in
    base: PathBuf,
    rootfs: PathBuf,
    config: serde_json::Value,
    cg_parent: String,
    seq: std::sync::atomic::AtomicUsize,
}

/// Run a command, returning its wall time and (exit ok, max RSS in KiB). The child is reaped
/// with wait4 (for its rusage), not with Child::wait.
#[allow(clippy::zombie_processes)]
fn timed(mut c: Command) -> (Duration, bool, i64) {
    let t = Instant::now();
    let child = c.spawn().expect("spawn runtime");
    let mut status = 0;
    // SAFETY: rusage is a valid out buffer; the pid is our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let d = t.elapsed();
    let ok = r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (d, ok, ru.ru_maxrss)
}

impl Bench {
    fn id(&self, rt: &Rt) -> String {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("b-{}-{n}", rt.name)
    }

    /// A bundle for one container: config.json only, root.path absolute to the shared rootfs.
    fn bundle(&self, rt: &Rt, id: &str, args: &[&str], mem: Option<i64>) -> PathBuf {
        let dir = rt.work.join("bundles").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = self.config.clone();
        c["root"]["path"] = self.rootfs.to_string_lossy().as_ref().into();
        c["process"]["args"] = args.iter().map(|s| serde_json::Value::from(*s)).collect();
        c["linux"]["cgroupsPath"] = format!("{}/{id}", self.cg_parent).into();
        if let Some(m) = mem {
            c["linux"]["resources"]["memory"] = serde_json::json!({"limit": m});
        }
        std::fs::write(dir.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        dir
    }

    fn run(&self, rt: &Rt, args: &[&str], mem: Option<i64>) -> (Duration, bool, i64) {
        let id = self.id(rt);
        let b = self.bundle(rt, &id, args, mem);
        let mut c = rt.cmd();
        c.args(["run", "--bundle"]).arg(&b).arg(&id);
        let r = timed(c);
        self.cleanup(rt, &id);
        r
    }

    /// Peak RSS (KiB) of `run`, measured through a fresh launcher process (see `rss_launcher`).
    fn run_rss(&self, rt: &Rt, args: &[&str]) -> Option<i64> {
        let id = self.id(rt);
        let b = self.bundle(rt, &id, args, None);
        let out = rt.work.join(format!("{id}.maxrss"));
        let rc = Command::new(std::env::current_exe().expect("bench executable"))
            .env(RSS_LAUNCH, &out)
            .arg(&rt.bin)
            .arg("--root")
            .arg(rt.work.join("root"))
            .args(["run", "--bundle"])
            .arg(&b)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.cleanup(rt, &id);
        let rss = std::fs::read_to_string(&out).ok()?.trim().parse().ok();
        let _ = std::fs::remove_file(&out);
        rc.ok()?.success().then_some(rss?)
    }

    fn cleanup(&self, rt: &Rt, id: &str) {
        let _ = rt.cmd().args(["delete", "--force", id]).status();
        let _ = std::fs::remove_dir_all(rt.work.join("bundles").join(id));
    }
}

#[derive(Default)]
struct Row {
    what: String,
    unit: &'static str,
    /// per runtime: samples (ms or KiB or count)
    vals: Vec<(String, Vec<f64>)>,
    note: String,
}

fn summary(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some((s[0], med, s[n - 1]))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Alternate runtimes run by run: warm-up, then `runs` rounds.
fn alternate(
    b: &Bench,
    runs: usize,
    warmup: usize,
    mut f: impl FnMut(&Rt) -> Option<f64>,
) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> =
        b.rts.iter().map(|r| (r.name.clone(), Vec::new())).collect();
    for i in 0..warmup + runs {
        for (k, rt) in b.rts.iter().enumerate() {
            if let Some(v) = f(rt) {
                if i >= warmup {
                    out[k].1.push(v);
                }
            }
        }
    }
    out
}

const RSS_LAUNCH: &str = "BENCH_RSS_LAUNCH";

/// The benchmark re-executed as a launcher: fork, exec the command in argv[1..], wait4 it and
/// write its ru_maxrss (KiB) to the file named by BENCH_RSS_LAUNCH; exit with its status.
///
/// Why: Linux carries a process's peak RSS across execve (the old mm's high-water mark goes
/// into the new program's ru_maxrss), and spawning from the benchmark shares the benchmark's
/// big address space until exec, so a runtime would report at least the benchmark's own peak.
/// A freshly exec'd launcher is small, and its fork() child starts from that small mm.
fn rss_launcher(out: &std::ffi::OsStr) -> ! {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<CString> = std::env::args_os()
        .skip(1)
        .map(|a| CString::new(a.as_bytes()).expect("argument without NUL"))
        .collect();
    assert!(!args.is_empty(), "{RSS_LAUNCH}: no command");
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: single-threaded; the child only calls execv and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: argv is a NULL-terminated array of valid C strings that outlive the call.
        unsafe {
            libc::execv(argv[0], argv.as_ptr());
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "fork");
    let mut status = 0;
    // SAFETY: rusage is a valid out buffer; the pid is our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4");
    std::fs::write(out, ru.ru_maxrss.to_string()).expect("write maxrss");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    std::process::exit(code)
}

fn main() {
    if let Some(out) = std::env::var_os(RSS_LAUNCH) {
        rss_launcher(&out);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench: SKIP, needs root to run containers");
        return;
    }
    let runs = env_usize("BENCH_RUNS", 40);
    let warmup = env_usize("BENCH_WARMUP", 5);
    let scale = env_usize("BENCH_SCALE", 1000);
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let want = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let testroot = std::env::var_os("HUSK_TESTROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target/testroot/rootfs"));
    assert!(
        testroot.join("bin/true").exists(),
        "no test rootfs at {} (make testroot)",
        testroot.display()
    );
    // `make release` builds the static binary; plain `cargo build --release` the PIE one.
    let husk = std::env::var_os("BENCH_HUSK")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let st = manifest.join("target/x86_64-unknown-linux-gnu/release/husk");
            if st.exists() {
                st
            } else {
                manifest.join("target/release/husk")
            }
        });
    let mut cands: Vec<(String, PathBuf)> = match std::env::var("BENCH_RUNTIMES") {
        Ok(list) => list
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect(),
        Err(_) => vec![
            ("husk".into(), husk),
            ("crun".into(), PathBuf::from("/usr/bin/crun")),
            ("runc".into(), PathBuf::from("/usr/sbin/runc")),
        ],
    };
    cands.retain(|(n, p)| {
        let ok = p.is_file();
        if !ok {
            eprintln!("bench: {n} not installed at {}, left out", p.display());
        }
        ok
    });
    let host_mode = cgroup_mode(); // before hiding anything
    let mount_note = isolate_mounts();
    let base = tempfile::Builder::new()
        .prefix("husk-bench-")
        .tempdir()
        .expect("tempdir");
    // declared after `base`: unmounted before the temp dir is removed
    let (_base_fs, fs_note) = base_on_tmpfs(base.path());
    let rootfs = base.path().join("rootfs");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&testroot)
        .arg(&rootfs)
        .status()
        .unwrap()
        .success());
    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest.join("spec-fixtures/default/config.json")).unwrap(),
    )
    .unwrap();
    config["root"]["readonly"] = true.into();
    let cg_parent = format!("/husk-bench-{}", std::process::id());
    // removes the parent also after a panic (normally the accounting below already has)
    let _cg_guard = CgParentGuard(cg_parent.clone());
    let rts: Vec<Rt> = cands
        .into_iter()
        .map(|(name, bin)| {
            let work = base.path().join(&name);
            std::fs::create_dir_all(&work).unwrap();
            let version = Command::new(&bin)
                .arg("--version")
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default();
            Rt {
                name,
                bin,
                work,
                version,
            }
        })
        .collect();
    let mut b = Bench {
        rts,
        base: base.path().to_path_buf(),
        rootfs,
        config,
        cg_parent,
        seq: std::sync::atomic::AtomicUsize::new(0),
    };
    // Correctness gate: a runtime that cannot run /bin/true is left out (and said so).
    let mut excluded = Vec::new();
    let oks: Vec<bool> = b
        .rts
        .iter()
        .map(|rt| b.run(rt, &["/bin/true"], None).1)
        .collect();
    let all = std::mem::take(&mut b.rts);
    for (rt, ok) in all.into_iter().zip(oks) {
        if ok {
            b.rts.push(rt);
        } else {
            excluded.push(rt.name);
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    if want("run") {
        eprintln!("bench: run /bin/true x{runs}");
        rows.push(Row {
            what: "`run` /bin/true (create+start+wait+delete)".into(),
            unit: "ms",
            vals: alternate(&b, runs, warmup, |rt| {
                Some(ms(b.run(rt, &["/bin/true"], None).0))
            }),
            ..Default::default()
        });
    }
    if want("phases") {
        eprintln!("bench: create / start / delete x{runs}");
        let mut create = Vec::new();
        let mut start = Vec::new();
        let mut delete = Vec::new();
        let phases = alternate(&b, runs, warmup, |rt| {
            let id = b.id(rt);
            let bundle = b.bundle(rt, &id, &["/bin/true"], None);
            let mut c = rt.cmd();
            c.args(["create", "--bundle"]).arg(&bundle).arg(&id);
            let (tc, ok, _) = timed(c);
            let mut s = rt.cmd();
            s.args(["start", &id]);
            let (ts, ok2, _) = timed(s);
            // wait (outside the timing) until /bin/true is gone
            for _ in 0..500 {
                let o = rt
                    .cmd()
                    .args(["state", &id])
                    .stdout(Stdio::piped())
                    .output();
                if o.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"stopped\"")) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut d = rt.cmd();
            d.args(["delete", &id]);
            let (td, ok3, _) = timed(d);
            b.cleanup(rt, &id);
            (ok && ok2 && ok3).then(|| {
                create.push((rt.name.clone(), ms(tc)));
                start.push((rt.name.clone(), ms(ts)));
                delete.push((rt.name.clone(), ms(td)));
                0.0
            })
        });
        drop(phases);
        for (what, v) in [
            ("`create`", create),
            ("`start`", start),
            ("`delete` (stopped)", delete),
        ] {
            let vals = b
                .rts
                .iter()
                .map(|rt| {
                    (
                        rt.name.clone(),
                        v.iter()
                            .filter(|(n, _)| *n == rt.name)
                            .map(|(_, x)| *x)
                            .collect(),
                    )
                })
                .collect();
            rows.push(Row {
                what: what.into(),
                unit: "ms",
                vals,
                ..Default::default()
            });
        }
    }
    if want("exec") {
        eprintln!("bench: exec /bin/true x{runs}");
        let ids: Vec<String> = b
            .rts
            .iter()
            .map(|rt| {
                let id = b.id(rt);
                let bundle = b.bundle(rt, &id, &["/bin/sleep", "1000"], None);
                let ok = rt
                    .cmd()
                    .args(["run", "--detach", "--bundle"])
                    .arg(&bundle)
                    .arg(&id)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "{}: run --detach failed", rt.name);
                id
            })
            .collect();
        let names: Vec<String> = b.rts.iter().map(|r| r.name.clone()).collect();
        rows.push(Row {
            what: "`exec` /bin/true into a running container".into(),
            unit: "ms",
            vals: alternate(&b, runs, warmup, |rt| {
                let k = names.iter().position(|n| *n == rt.name).unwrap();
                let mut c = rt.cmd();
                c.args(["exec", &ids[k], "/bin/true"]);
                let (d, ok, _) = timed(c);
                ok.then(|| ms(d))
            }),
            ..Default::default()
        });
        for (rt, id) in b.rts.iter().zip(&ids) {
            b.cleanup(rt, id);
        }
    }
    if want("docker") {
        let runs = env_usize("BENCH_DOCKER_RUNS", 20);
        let warmup = env_usize("BENCH_DOCKER_WARMUP", 3);
        rows.extend(docker::measure(&b, runs, warmup, &mut notes));
    }
    if want("cri") {
        let runs = env_usize("BENCH_CRI_RUNS", 20);
        let warmup = env_usize("BENCH_CRI_WARMUP", 3);
        rows.extend(cri::measure(&b, runs, warmup, &mut notes));
    }
    // `husk up` next to docker and podman: a table of its own (other columns, other anchors)
    let mut up_rows: Vec<Row> = Vec::new();
    if want("up") || want("idle") {
        let runs = env_usize("BENCH_UP_RUNS", 20);
        let warmup = env_usize("BENCH_UP_WARMUP", 3);
        up_rows = up::measure(&b, want("up"), want("idle"), runs, warmup, &mut notes);
    }
    if want("rss") {
        eprintln!("bench: peak RSS");
        rows.push(Row {
            what: "peak RSS of the largest runtime process during `run`".into(),
            unit: "KiB",
            vals: alternate(&b, 10, 1, |rt| {
                b.run_rss(rt, &["/bin/true"]).map(|kib| kib as f64)
            }),
            note: "wait4 ru_maxrss of the runtime and its waited-for descendants, spawned from \
                   a small fresh launcher (Linux carries the spawner's peak RSS across exec)"
                .into(),
        });
    }
    if want("minmem") {
        eprintln!("bench: smallest memory limit");
        let vals = b
            .rts
            .iter()
            .map(|rt| {
                // binary search in 64 KiB steps between 64 KiB and 64 MiB; each probe twice
                let (mut lo, mut hi) = (1i64, 1024i64);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    let ok = (0..2).all(|_| b.run(rt, &["/bin/true"], Some(mid * 65536)).1);
                    if ok {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                (rt.name.clone(), vec![(lo * 64) as f64])
            })
            .collect();
        rows.push(Row {
            what: "smallest `memory.limit` under which `run` /bin/true succeeds".into(),
            unit: "KiB",
            vals,
            note: "binary search, 64 KiB steps".into(),
        });
    }
    if want("throughput") {
        eprintln!("bench: throughput");
        let n = 100;
        let mut seq = Vec::new();
        let mut par = Vec::new();
        for rt in &b.rts {
            let t = Instant::now();
            for _ in 0..n {
                b.run(rt, &["/bin/true"], None);
            }
            seq.push((rt.name.clone(), vec![ms(t.elapsed())]));
        }
        for rt in &b.rts {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..10 {
                    s.spawn(|| {
                        for _ in 0..n / 10 {
                            let id = b.id(rt);
                            let bundle = b.bundle(rt, &id, &["/bin/true"], None);
                            let _ = rt
                                .cmd()
                                .args(["run", "--bundle"])
                                .arg(&bundle)
                                .arg(&id)
                                .status();
                            b.cleanup(rt, &id);
                        }
                    });
                }
            });
            par.push((rt.name.clone(), vec![ms(t.elapsed())]));
        }
        rows.push(Row {
            what: format!("{n} containers one after the other (total)"),
            unit: "ms",
            vals: seq,
            ..Default::default()
        });
        rows.push(Row {
            what: format!("{n} containers, 10 at a time (total)"),
            unit: "ms",
            vals: par,
            ..Default::default()
        });
    }
    if want("scale") {
        eprintln!("bench: state/list with {scale} containers");
        let mut state = Vec::new();
        let mut list = Vec::new();
        for rt in &b.rts {
            let mut ids = Vec::new();
            for _ in 0..scale {
                let id = b.id(rt);
                let bundle = b.bundle(rt, &id, &["/bin/true"], None);
                let _ = rt
                    .cmd()
                    .args(["run", "--detach", "--bundle"])
                    .arg(&bundle)
                    .arg(&id)
                    .status();
                ids.push(id);
            }
            let mut sv = Vec::new();
            let mut lv = Vec::new();
            for i in 0..runs.min(20) {
                let mut c = rt.cmd();
                c.args(["state", &ids[i * 37 % ids.len()]]);
                sv.push(ms(timed(c).0));
                let mut c = rt.cmd();
                c.args(["list"]);
                lv.push(ms(timed(c).0));
            }
            state.push((rt.name.clone(), sv));
            list.push((rt.name.clone(), lv));
            for id in &ids {
                b.cleanup(rt, id);
            }
        }
        rows.push(Row {
            what: format!("`state` with {scale} containers in the store"),
            unit: "ms",
            vals: state,
            ..Default::default()
        });
        rows.push(Row {
            what: format!("`list` with {scale} containers in the store"),
            unit: "ms",
            vals: list,
            ..Default::default()
        });
    }
    if want("seccomp") {
        eprintln!("bench: seccomp compile of Docker's default profile");
        rows.push(seccomp_compile_row(manifest, runs.max(200)));
    }
    if want("network") {
        rows.extend(network::measure(&b, runs, warmup, &mut notes));
    }
    let image_md = if want("image") {
        image::measure(&b, &mut notes)
    } else {
        String::new()
    };
    if want("version") {
        eprintln!("bench: --version");
        rows.push(Row {
            what: "binary startup (`--version`)".into(),
            unit: "ms",
            vals: alternate(&b, runs, warmup, |rt| {
                let mut c = Command::new(&rt.bin);
                c.arg("--version").stdout(Stdio::null());
                Some(ms(timed(c).0))
            }),
            ..Default::default()
        });
    }

    // What each runtime left under the cgroup parent (a runtime that leaks is named in the
    // report), then remove the whole parent tree. Directories in the tmpfs that hides the v2
    // mount of a hybrid host are not cgroups: counted apart.
    let mut leaked: std::collections::BTreeMap<String, usize> = Default::default();
    let mut in_tmpfs: std::collections::BTreeMap<String, usize> = Default::default();
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let real = is_cgroupfs(&h.path());
        let parent = h.path().join(b.cg_parent.trim_start_matches('/'));
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                let name = e.file_name().to_string_lossy().into_owned();
                let rt = name.split('-').nth(1).unwrap_or("?").to_string();
                if real {
                    *leaked.entry(rt).or_default() += 1;
                    let _ = std::fs::remove_dir(e.path());
                } else {
                    *in_tmpfs.entry(rt).or_default() += 1;
                }
            }
        }
        if real {
            let _ = std::fs::remove_dir(&parent);
        } else {
            let _ = std::fs::remove_dir_all(&parent);
        }
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() / 1024).unwrap_or(0);
    let mut md = String::new();
    md.push_str(&format!(
        "# husk benchmark\n\n{} UTC, kernel {}, {} CPUs, cgroup {}.\n\n",
        sh_out("date -u +'%Y-%m-%d %H:%M'"),
        sh_out("uname -r"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        host_mode
    ));
    if !mount_note.is_empty() {
        md.push_str(&mount_note);
        md.push_str("\n\n");
    }
    md.push_str(&fs_note);
    md.push_str("\n\n");
    for rt in &b.rts {
        md.push_str(&format!(
            "- {}: `{}` {} ({} KiB binary)\n",
            rt.name,
            rt.bin.display(),
            rt.version,
            size(&rt.bin)
        ));
    }
    for n in &excluded {
        md.push_str(&format!("- {n}: left out, it failed to run /bin/true\n"));
    }
    for (rt, n) in &leaked {
        md.push_str(&format!(
            "- {rt} left {n} cgroup directories (summed over hierarchies) behind after \
             `delete --force`; the benchmark removed them\n"
        ));
    }
    for (rt, n) in &in_tmpfs {
        md.push_str(&format!(
            "- {rt} created {n} container directories (with plain `cgroup.procs` files) in the \
             tmpfs that hides /sys/fs/cgroup/unified: not cgroups, the benchmark removed them\n"
        ));
    }
    // (a run of only the up/idle sections has no rows here: no empty table)
    let mut tbl = String::new();
    tbl.push_str(&format!(
        "\nRuntimes alternate run by run ({warmup} warm-up rounds, {runs} measured), from the \
         busybox test rootfs with the default `runc spec`-style config (read-only root, \
         cgroups, 6 namespaces). Values: min / **median** / max; ratios are husk's median \
         over the other's.\n\n"
    ));
    let names: Vec<String> = b.rts.iter().map(|r| r.name.clone()).collect();
    let cols: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    tbl.push_str(&measurement_table(&rows, &cols, 2));
    if !rows.is_empty() {
        md.push_str(&tbl);
    }
    for row in rows.iter().filter(|r| !r.note.is_empty()) {
        md.push_str(&format!("\n- {}: {}.", row.what, row.note));
    }
    for n in &notes {
        md.push_str(&format!("\n- {n}"));
    }
    md.push('\n');
    if !up_rows.is_empty() {
        md.push_str(&engine_table(&up_rows));
    }
    md.push_str(&image_md);
    let out = manifest.join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("report.md"), &md).unwrap();
    std::fs::write(out.join("chart.svg"), svg(&rows, &names)).unwrap();
    println!("{md}");
    eprintln!("bench: wrote {}/report.md and chart.svg", out.display());
}

/// The `up`/`idle` rows: husk up next to docker and podman (each engine with its default
/// runtime), with husk's ratios to each.
fn engine_table(rows: &[Row]) -> String {
    let cols = [
        ("husk", "husk up"),
        ("docker", "docker"),
        ("podman", "podman"),
    ];
    let mut md = String::from(
        "\n#### `husk up` next to docker and podman\n\n\
         Each engine with its default runtime and the same image; values: min / **median** / \
         max; ratios are husk's median over the other's.\n\n",
    );
    md.push_str(&measurement_table(rows, &cols, 3));
    for row in rows.iter().filter(|r| !r.note.is_empty()) {
        md.push_str(&format!("\n- {}: {}.", row.what, row.note));
    }
    md.push('\n');
    md
}

/// A markdown table of `rows`, a column for each `(key, heading)` of `cols` (the key names the
/// samples in [`Row::vals`]): min / **median** / max (the median alone when all are equal, –
/// when there are none); then, when husk is a column, husk's median over each other column's,
/// to `places` decimals (– where there is none or the other's is 0).
fn measurement_table(rows: &[Row], cols: &[(&str, &str)], places: usize) -> String {
    let others: Vec<&str> = if cols.iter().any(|(k, _)| *k == "husk") {
        cols.iter()
            .map(|(k, _)| *k)
            .filter(|k| *k != "husk")
            .collect()
    } else {
        Vec::new()
    };
    let mut md = String::from("| measurement |");
    for (_, heading) in cols {
        md.push_str(&format!(" {heading} |"));
    }
    for k in &others {
        md.push_str(&format!(" husk/{k} |"));
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(cols.len() + others.len()));
    md.push('\n');
    let summary_of = |row: &Row, k: &str| {
        row.vals
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| summary(v))
    };
    for row in rows {
        md.push_str(&format!("| {} ({}) |", row.what, row.unit));
        for (k, _) in cols {
            let cell = match summary_of(row, k) {
                Some((lo, m, hi)) if (hi - lo).abs() < f64::EPSILON => format!("**{m:.1}**"),
                Some((lo, m, hi)) => format!("{lo:.1} / **{m:.1}** / {hi:.1}"),
                None => "–".into(),
            };
            md.push_str(&format!(" {cell} |"));
        }
        for k in &others {
            let cell = match (summary_of(row, "husk"), summary_of(row, k)) {
                (Some(h), Some(o)) if o.1 > 0.0 => format!("{:.places$}", h.1 / o.1),
                _ => "–".into(),
            };
            md.push_str(&format!(" {cell} |"));
        }
        md.push('\n');
    }
    md
}

/// Whether `p` is a cgroup (v1 or v2) file system, not e.g. the tmpfs over a hidden v2 mount.
fn is_cgroupfs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs with a valid C string and an out buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && (st.f_type == libc::CGROUP_SUPER_MAGIC || st.f_type == libc::CGROUP2_SUPER_MAGIC)
}

/// Removes whatever is left of the benchmark's cgroup parent, deepest first, on drop.
struct CgParentGuard(String);

impl Drop for CgParentGuard {
    fn drop(&mut self) {
        fn rm(d: &Path) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm(&e.path());
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = h.path().join(self.0.trim_start_matches('/'));
            if is_cgroupfs(&h.path()) {
                rm(&p);
            } else {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

/// A grouped bar chart of the medians, each measurement normalised to its largest median.
fn svg(rows: &[Row], names: &[String]) -> String {
    let colors = ["#2a9d8f", "#e9c46a", "#e76f51", "#264653"];
    let row_h = 18 * names.len() as i32 + 16;
    let h = 40 + row_h * rows.len() as i32;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='{h}' font-family='sans-serif' font-size='11'>\n\
         <text x='10' y='20' font-size='14'>husk vs crun vs runc: medians (bar length relative to the slowest/largest)</text>\n"
    );
    for (i, row) in rows.iter().enumerate() {
        let y0 = 40 + row_h * i as i32;
        s.push_str(&format!(
            "<text x='10' y='{}'>{}</text>\n",
            y0 + 12,
            row.what.replace('`', "").replace('<', "&lt;")
        ));
        let meds: Vec<(usize, f64)> = names
            .iter()
            .enumerate()
            .filter_map(|(k, n)| {
                row.vals
                    .iter()
                    .find(|(x, _)| x == n)
                    .and_then(|(_, v)| summary(v))
                    .map(|m| (k, m.1))
            })
            .collect();
        let max = meds.iter().map(|m| m.1).fold(0.0, f64::max).max(1e-9);
        for (j, (k, m)) in meds.iter().enumerate() {
            let w = (m / max * 450.0).max(1.0);
            let y = y0 + 16 + 18 * j as i32;
            s.push_str(&format!(
                "<rect x='330' y='{y}' width='{w:.0}' height='14' fill='{}'/><text x='{:.0}' y='{}'>{} {:.1} {}</text>\n",
                colors[*k % colors.len()],
                335.0 + w,
                y + 11,
                names[*k],
                m,
                row.unit
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

#[repr(C)]
struct ScmpArgCmp {
    arg: std::ffi::c_uint,
    op: std::ffi::c_int,
    datum_a: u64,
    datum_b: u64,
}

#[link(name = "seccomp")]
extern "C" {
    fn seccomp_init(def_action: u32) -> *mut std::ffi::c_void;
    fn seccomp_release(ctx: *mut std::ffi::c_void);
    fn seccomp_arch_add(ctx: *mut std::ffi::c_void, arch_token: u32) -> std::ffi::c_int;
    fn seccomp_syscall_resolve_name(name: *const std::ffi::c_char) -> std::ffi::c_int;
    fn seccomp_rule_add_array(
        ctx: *mut std::ffi::c_void,
        action: u32,
        syscall: std::ffi::c_int,
        arg_cnt: std::ffi::c_uint,
        arg_array: *const ScmpArgCmp,
    ) -> std::ffi::c_int;
    fn seccomp_export_bpf(ctx: *mut std::ffi::c_void, fd: std::ffi::c_int) -> std::ffi::c_int;
}

/// Docker's default profile (tests/data/seccomp) compiled `n` times by husk (parse excluded:
/// both start from the parsed profile) and by libseccomp as runc drives it: init, add the
/// architectures, resolve each name and add its rule, export the BPF (to /dev/null).
fn seccomp_compile_row(manifest: &Path, n: usize) -> Row {
    use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompOperator as O};
    use std::os::fd::AsRawFd;
    let text =
        std::fs::read_to_string(manifest.join("tests/data/seccomp/docker-default.json")).unwrap();
    let prof: LinuxSeccomp = serde_json::from_str(&text).unwrap();
    let act = |a: A, e: Option<u32>| -> u32 {
        match a {
            A::ScmpActKill | A::ScmpActKillThread => 0,
            A::ScmpActKillProcess => 0x8000_0000,
            A::ScmpActTrap => 0x0003_0000,
            A::ScmpActErrno => 0x0005_0000 | e.unwrap_or(1),
            A::ScmpActTrace => 0x7ff0_0000 | e.unwrap_or(1),
            A::ScmpActLog => 0x7ffc_0000,
            A::ScmpActAllow => 0x7fff_0000,
            A::ScmpActNotify => 0x7fc0_0000,
        }
    };
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let lib_once = || -> f64 {
        let t = Instant::now();
        let def = act(prof.default_action(), prof.default_errno_ret());
        // SAFETY: libseccomp calls on a context created and released here; names are valid
        // C strings and the argument arrays outlive each call.
        unsafe {
            let ctx = seccomp_init(def);
            for a in prof.architectures().iter().flatten() {
                seccomp_arch_add(ctx, *a as u32);
            }
            for sc in prof.syscalls().iter().flatten() {
                let a = act(sc.action(), sc.errno_ret());
                if a == def {
                    continue;
                }
                let conds: Vec<ScmpArgCmp> = sc
                    .args()
                    .iter()
                    .flatten()
                    .map(|c| ScmpArgCmp {
                        arg: c.index() as std::ffi::c_uint,
                        op: match c.op() {
                            O::ScmpCmpNe => 1,
                            O::ScmpCmpLt => 2,
                            O::ScmpCmpLe => 3,
                            O::ScmpCmpEq => 4,
                            O::ScmpCmpGe => 5,
                            O::ScmpCmpGt => 6,
                            O::ScmpCmpMaskedEq => 7,
                        },
                        datum_a: c.value(),
                        datum_b: c.value_two().unwrap_or(0),
                    })
                    .collect();
                for name in sc.names() {
                    let cn = std::ffi::CString::new(name.as_str()).unwrap();
                    let nr = seccomp_syscall_resolve_name(cn.as_ptr());
                    if nr != -1 {
                        seccomp_rule_add_array(ctx, a, nr, conds.len() as _, conds.as_ptr());
                    }
                }
            }
            seccomp_export_bpf(ctx, null.as_raw_fd());
            seccomp_release(ctx);
        }
        ms(t.elapsed())
    };
    let husk_once = || -> f64 {
        let t = Instant::now();
        let p = husk::security::seccomp_compile(&prof).expect("husk compiles Docker's profile");
        std::hint::black_box(&p);
        ms(t.elapsed())
    };
    let (mut h, mut l) = (Vec::new(), Vec::new());
    for i in 0..n + 10 {
        let (a, b) = (husk_once(), lib_once());
        if i >= 10 {
            h.push(a);
            l.push(b);
        }
    }
    Row {
        what: "compile Docker's default seccomp profile".into(),
        unit: "ms",
        vals: vec![("husk".into(), h), ("runc".into(), l)],
        note: "in-process, alternating; the runc column is libseccomp (the library runc links) \
               building and exporting the same profile as runc calls it"
            .into(),
    }
}
