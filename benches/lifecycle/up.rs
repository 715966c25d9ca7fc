//! The `up` and `idle` sections: `husk up` next to `docker run` and `podman run`, each engine
//! with its default runtime, the same image (the busybox test rootfs as one tar layer), with
//! `--network none` and on each engine's default network.
//!
//! The whole section runs in a thread of its own that first enters a new network namespace and
//! a new mount namespace (`unshare(2)` of that thread; what it spawns inherits both): dockerd's
//! docker0 and iptables rules, podman's CNI bridge, husk's bridge and nftables table, every veth
//! and container namespace stay in it. In the mount namespace /etc, /run and /var/lib are
//! overlays with upper layers in the temp dir, and /run/netns, /var/lib/cni and /etc/cni/net.d
//! are empty temp dirs; husk's network dirs are private (HUSK_NETWORK_DIR, ...), podman's
//! default network is a private copy of Debian's conflist. A guard SIGKILLs by pid whatever is
//! still in that network namespace at the end. When the namespaces cannot be made, the
//! default-network rows are left out; they never run in the machine's own namespace.
//!
//! - husk: a private store (an OCI image layout written here, as tests/up.rs does) and `--root`
//!   under the benchmark's temp dir. `husk up` puts a container's cgroup under husk's own
//!   (a relative cgroupsPath, `husk-TAG-<id>`, as runc's default `<id>`), so every husk process the benchmark starts first
//!   joins `<bench cgroup parent>/up` in every hierarchy (`pre_exec`, raw syscalls).
//! - docker: one private dockerd + containerd (lifecycle/docker.rs's [`Daemon`]) with no extra
//!   runtime registered: dockerd's default, runc; cgroup parent `<bench parent>/docker-up`;
//!   in the private network namespace with its default bridge and iptables on.
//! - podman: private `--root`, `--runroot`, `--tmpdir`, config files (containers.conf,
//!   storage.conf, registries.conf through CONTAINERS_*), overlay storage (vfs when overlay
//!   cannot be used), cgroupfs manager, file events, its default runtime, `--cgroup-parent
//!   <bench parent>/podman`; the image `podman import`ed from the same tar.
//!
//! `up`: wall time of `husk up --rm IMAGE true` / `docker run --rm` / `podman run --rm`, with
//! `--network none` and without `--network` (husk's default network `husk`, a native bridge
//! made on first use; Docker's default bridge; podman's default network through CNI), the six
//! alternating run by run after warm-up rounds (BENCH_UP_RUNS, BENCH_UP_WARMUP).
//! `idle`: 10 detached `sleep 100000` containers per engine (one engine at a time), then the
//! summed PSS (smaps_rollup; RSS where PSS is unavailable) of what the engine keeps running for
//! them: husk's monitors; dockerd + containerd + the shims; podman's conmons. The containers'
//! own processes are counted for none.
//!
//! Each engine's guard removes its containers, then SIGKILLs by pid whatever still names its
//! temp dir or sits in its cgroups, unmounts what is under its dir, removes its cgroups and the
//! dir, also after a failure or panic.

use super::docker::{self, Daemon};
use super::{ms, summary, timed, Bench, Row};
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IDLE_N: usize = 10;
const HUSK_REF: &str = "docker.io/library/husk-bench:latest";
const PODMAN_IMAGE: &str = "localhost/husk-bench:latest";

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    let mut s = String::from("sha256:");
    for x in sha2::Sha256::digest(b).iter() {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// SIGKILL to `pids` (the benchmark's own leftovers: naming its temp dir, in its cgroup or its
/// network namespace), then up to 3 s for them to be gone.
fn kill_and_wait(pids: &[i32]) {
    for &p in pids {
        // SAFETY: kill(2) of a pid the caller found to be the benchmark's own.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let t = Instant::now();
    while pids.iter().any(|&p| docker::alive(p)) && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// pids (not ours) whose command line names `dir`
pub(crate) fn procs_naming(dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(&needle)
            })
        })
        .collect()
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Proportional set size of a process in KiB (smaps_rollup), else its RSS; (KiB, was PSS).
fn pss_kib(pid: i32) -> Option<(f64, bool)> {
    let field = |file: &str, key: &str| -> Option<f64> {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .ok()?
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    field("smaps_rollup", "Pss:")
        .map(|k| (k, true))
        .or_else(|| field("status", "VmRSS:").map(|k| (k, false)))
}

/// Mount points under `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<String> {
    let t = dir.to_string_lossy().into_owned();
    // the calling thread's mount namespace (the section runs in a thread with one of its own)
    let mut v: Vec<String> = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| *m == t || m.starts_with(&format!("{t}/")))
        .collect();
    v.sort();
    v.reverse();
    v
}

/// /sys/fs/cgroup and the real directories in it (cpu and cpuacct are symlinks to
/// cpu,cpuacct): where a cgroup hierarchy may be mounted.
pub(crate) fn hierarchy_candidates() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/sys/fs/cgroup")];
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            v.push(e.path());
        }
    }
    v
}

/// Every real cgroup hierarchy root (v1 controllers, or the v2 root).
fn hierarchies() -> Vec<PathBuf> {
    let mut v = hierarchy_candidates();
    v.retain(|p| super::is_cgroupfs(p));
    v
}

/// The directories of cgroup `rel` (relative to each hierarchy's root), deepest first.
pub(crate) fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
        out.push(d.to_path_buf());
    }
    let mut out = Vec::new();
    for h in hierarchies() {
        let p = h.join(rel);
        if p.is_dir() {
            walk(&p, &mut out);
        }
    }
    out
}

fn cgroup_procs(rel: &str) -> Vec<i32> {
    procs_in(&cgroup_dirs(rel))
}

/// The pids in the `cgroup.procs` of `dirs`, sorted, each once.
pub(crate) fn procs_in(dirs: &[PathBuf]) -> Vec<i32> {
    let mut v: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What an engine left: SIGKILL by pid to what names `dir` or sits in cgroup `rel` (thawed
/// first), unmount under `dir`, remove the cgroups (deepest first), then `dir`.
fn sweep(what: &str, dir: &Path, rel: &str) {
    for d in cgroup_dirs(rel) {
        let f = d.join("freezer.state");
        if f.exists() {
            let _ = std::fs::write(f, "THAWED");
        }
    }
    for _ in 0..3 {
        let pids: Vec<i32> = procs_naming(dir)
            .into_iter()
            .chain(cgroup_procs(rel))
            .filter(|&p| docker::alive(p))
            .collect();
        if pids.is_empty() {
            break;
        }
        eprintln!("bench: {what}: SIGKILL to leftover pids {pids:?}");
        kill_and_wait(&pids);
    }
    for _ in 0..3 {
        let ms = mounts_under(dir);
        if ms.is_empty() {
            break;
        }
        for m in ms {
            let Ok(c) = CString::new(m) else { continue };
            // SAFETY: umount2 with a valid C string.
            unsafe {
                if libc::umount2(c.as_ptr(), 0) != 0 {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
    for _ in 0..20 {
        let dirs = cgroup_dirs(rel);
        if dirs.is_empty() {
            break;
        }
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // ... and what a runtime wrote into the benchmark's tmpfs over a hybrid host's v2 mount
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path().join(rel);
        if !super::is_cgroupfs(&e.path()) && !rel.is_empty() && p.is_dir() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    let (m, c) = (mounts_under(dir), cgroup_dirs(rel));
    if !m.is_empty() || !c.is_empty() {
        eprintln!("bench: {what}: could not remove mounts {m:?} / cgroups {c:?}");
    }
}

/// husk with a private store and root; its processes join cgroup `cg` first.
struct Husk {
    bin: PathBuf,
    dir: PathBuf,
    cg: String,
    /// `<hierarchy>/<cg>/cgroup.procs` of every hierarchy, for pre_exec
    procs_files: Vec<CString>,
}

impl Husk {
    fn setup(bin: &Path, dir: &Path, layer: &[u8], cg: &str) -> Result<Husk, String> {
        let mut h = Husk {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            cg: cg.to_string(),
            procs_files: Vec::new(),
        };
        for r in hierarchies() {
            let d = r.join(cg);
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            // a new v1 cpuset cgroup has no cpus and mems (joining it fails with ENOSPC):
            // each level takes its parent's
            let mut level = r.clone();
            for part in Path::new(cg).components() {
                level.push(part);
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let Some(parent) = level.parent() else {
                        continue;
                    };
                    let here = std::fs::read_to_string(level.join(f)).unwrap_or_default();
                    if level.join(f).exists() && here.trim().is_empty() {
                        let v = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                        let _ = std::fs::write(level.join(f), v.trim());
                    }
                }
            }
            h.procs_files.push(
                CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes())
                    .map_err(|e| e.to_string())?,
            );
        }
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(&cfg), "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256(layer), "size": layer.len()}],
        }))
        .unwrap();
        let store = h.store();
        let blobs = store.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
        for b in [layer, &cfg, &manifest] {
            std::fs::write(blobs.join(&sha256(b)[7..]), b).map_err(|e| e.to_string())?;
        }
        let idx = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": HUSK_REF}
        }]});
        std::fs::write(
            store.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .and_then(|()| std::fs::write(store.join("index.json"), idx.to_string()))
        .map_err(|e| e.to_string())?;
        Ok(h)
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// `husk --root R SUBCOMMAND --store S [--pull never]`, quiet, in the cgroup.
    fn cmd(&self, sub: &str) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg(sub)
            .arg("--store")
            .arg(self.store());
        if sub == "up" {
            c.args(["--pull", "never"]);
        }
        // husk's networks (the default one is made on first use): private dirs
        let net = self.dir.join("net");
        c.env("HUSK_NETWORK_DIR", net.join("conf"))
            .env("HUSK_NETWORK_RUN_DIR", net.join("run"))
            .env("HUSK_CNI_CONFIG_DIR", net.join("cni"));
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let files = self.procs_files.clone();
        // SAFETY: between fork and exec only open/write/close on prepared C strings.
        unsafe {
            c.pre_exec(move || {
                for f in &files {
                    let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if r != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        c
    }

    fn ids(&self) -> Vec<String> {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(self.dir.join("root"))
            .args(["list", "-q"]);
        docker::output_timeout(c, 30)
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn rm_all(&self) {
        let ids = self.ids();
        if !ids.is_empty() {
            let mut c = self.cmd("rm");
            c.arg("-f").args(&ids);
            let _ = docker::output_timeout(c, 60);
        }
    }

    /// The monitors of `husk up -d`: husk processes in a session of their own (not the
    /// benchmark's: the monitor calls setsid, then forks once more) whose command line names
    /// this store or root.
    fn monitors(&self) -> Vec<(String, i32)> {
        // SAFETY: getsid(2) has no memory preconditions.
        let ours = unsafe { libc::getsid(0) };
        procs_naming(&self.dir)
            .into_iter()
            .filter(|&p| comm(p).starts_with("husk"))
            // SAFETY: as above.
            .filter(|&p| {
                let sid = unsafe { libc::getsid(p) };
                sid > 0 && sid != ours
            })
            .map(|p| ("monitor".to_string(), p))
            .collect()
    }
}

impl Drop for Husk {
    fn drop(&mut self) {
        self.rm_all();
        sweep("husk", &self.dir, &self.cg);
    }
}

/// podman with private roots, config and cgroup parent.
struct Podman {
    dir: PathBuf,
    cg: String,
    driver: &'static str,
    lock_existed: bool,
    crun_root_existed: bool,
    version: String,
}

/// podman's default network as Debian's podman 4.3 ships it (/etc/cni/net.d/
/// 87-podman-bridge.conflist), in the private network config dir, with the firewall plugin's
/// backend fixed to iptables (it would use a running firewalld over D-Bus otherwise, whose rules
/// are the host's)
const PODMAN_NET: &str = r#"{
  "cniVersion": "0.4.0",
  "name": "podman",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni-podman0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "10.88.0.0/16", "gateway": "10.88.0.1" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "firewall", "backend": "iptables" },
    { "type": "tuning" }
  ]
}
"#;

/// podman's lock file is POSIX shm whatever its roots: removed afterwards if new
const PODMAN_LOCK: &str = "/dev/shm/libpod_lock";
/// podman calls crun without --root: crun's default state directory, removed if new and empty
const CRUN_ROOT: &str = "/run/crun";

impl Podman {
    fn setup(dir: &Path, tar: &Path, cg: &str) -> Result<Podman, String> {
        if docker::which("podman").is_none() || docker::which("conmon").is_none() {
            return Err("podman or conmon is not installed (make deps)".into());
        }
        let mut p = Podman {
            dir: dir.to_path_buf(),
            cg: cg.to_string(),
            driver: "overlay",
            lock_existed: Path::new(PODMAN_LOCK).exists(),
            crun_root_existed: Path::new(CRUN_ROOT).exists(),
            version: String::new(),
        };
        // `default_ulimits = []`: podman's built-in rlimits, none from a config file (the
        // engine test's explicit nofile/nproc values made crun's setrlimit fail with EPERM in a
        // container without CAP_SYS_RESOURCE)
        for d in ["root", "runroot", "tmp", "net"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
        }
        let conf = format!(
            "[containers]\ndefault_ulimits = []\n[network]\nnetwork_backend = \"cni\"\n\
             network_config_dir = \"{0}/net\"\ncni_plugin_dirs = [\"/usr/lib/cni\"]\n\
             default_network = \"podman\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{0}/events.log\"\n",
            dir.display()
        );
        std::fs::write(dir.join("containers.conf"), conf)
            .and_then(|()| std::fs::write(dir.join("net/87-podman-bridge.conflist"), PODMAN_NET))
            .and_then(|()| {
                std::fs::write(
                    dir.join("registries.conf"),
                    "unqualified-search-registries = []\n",
                )
            })
            .map_err(|e| e.to_string())?;
        let mut why = String::new();
        for driver in ["overlay", "vfs"] {
            p.driver = driver;
            std::fs::write(
                dir.join("storage.conf"),
                format!(
                    "[storage]\ndriver = \"{driver}\"\ngraphroot = \"{0}/root\"\n\
                     runroot = \"{0}/runroot\"\n",
                    dir.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut c = p.cmd();
            c.arg("import").arg(tar).arg(PODMAN_IMAGE);
            match docker::output_timeout(c, 120) {
                Some(o) if o.status.success() => {
                    why.clear();
                    break;
                }
                o => {
                    why = o.map_or("timed out".into(), |o| {
                        String::from_utf8_lossy(&o.stderr).trim().to_string()
                    });
                    eprintln!("bench: podman: import with the {driver} driver failed: {why}");
                    let mut c = p.cmd();
                    c.args(["system", "reset", "--force"]);
                    let _ = docker::output_timeout(c, 60);
                    for m in mounts_under(dir) {
                        if let Ok(c) = CString::new(m) {
                            // SAFETY: umount2 with a valid C string.
                            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                        }
                    }
                    let _ = std::fs::remove_dir_all(dir.join("root"));
                    let _ = std::fs::remove_dir_all(dir.join("runroot"));
                    let _ = std::fs::create_dir_all(dir.join("root"));
                    let _ = std::fs::create_dir_all(dir.join("runroot"));
                }
            }
        }
        if !why.is_empty() {
            return Err(format!("podman import: {why}"));
        }
        let mut c = p.cmd();
        c.args([
            "info",
            "--format",
            "{{.Version.Version}} {{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}",
        ]);
        if let Some(o) = docker::output_timeout(c, 30) {
            let s = String::from_utf8_lossy(&o.stdout).replace('\n', " ");
            let mut w = s.split_whitespace();
            let ver = w.next().unwrap_or("?").to_string();
            let rt = w.next().unwrap_or("?").to_string();
            // "crun version 1.8.1 commit: ..." -> "crun 1.8.1"
            let rtv = w.skip_while(|x| *x != "version").nth(1).unwrap_or("?");
            p.version = format!("podman {ver}, runtime {rt} {rtv}");
        }
        Ok(p)
    }

    fn cmd(&self) -> Command {
        let d = &self.dir;
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", self.driver])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// `podman run --cgroup-parent ...` (the caller adds `--network none` or not)
    fn run(&self) -> Command {
        let mut c = self.cmd();
        c.args(["run", "--cgroup-parent"])
            .arg(format!("/{}", self.cg));
        c
    }

    fn conmons(&self) -> Vec<(String, i32)> {
        procs_naming(&self.dir)
            .into_iter()
            .filter(|&p| comm(p) == "conmon")
            .map(|p| ("conmon".to_string(), p))
            .collect()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let mut c = self.cmd();
        c.args(["rm", "-af", "-t", "0"]);
        let _ = docker::output_timeout(c, 60);
        sweep("podman", &self.dir, &self.cg);
        if !self.lock_existed {
            let _ = std::fs::remove_file(PODMAN_LOCK);
        }
        if !self.crun_root_existed {
            let _ = std::fs::remove_dir(CRUN_ROOT); // only when empty
        }
    }
}

fn docker_rm_all(d: &Daemon) {
    let mut ps = d.cli();
    ps.args(["ps", "-aq"]);
    if let Some(o) = docker::output_timeout(ps, 20) {
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut rm = d.cli();
            rm.args(["rm", "-f"]).args(&ids);
            let _ = docker::output_timeout(rm, 60);
        }
    }
}

/// Summed PSS (KiB) of `procs`, and a breakdown "what n×avg".
fn idle_sum(procs: &[(String, i32)]) -> (f64, String, bool) {
    let mut total = 0.0;
    let mut all_pss = true;
    let mut by: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
    for (what, pid) in procs {
        if let Some((k, pss)) = pss_kib(*pid) {
            total += k;
            all_pss &= pss;
            let e = by.entry(what).or_default();
            e.0 += 1;
            e.1 += k;
        }
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(w, (n, k))| {
            if *n == 1 {
                format!("{w} {k:.0}")
            } else {
                format!("{n} {w} {k:.0} ({:.0} each)", k / *n as f64)
            }
        })
        .collect();
    (total, parts.join(" + "), all_pss)
}

/// The inode of a namespace file (`/proc/PID/ns/net`, ...).
fn ns_ino(p: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// Move the calling thread (only it: the section's own thread) into a new network namespace
/// and a new mount namespace; what it spawns inherits both. Ok: the network namespace's inode.
fn unshare_net() -> Result<u64, String> {
    let host = ns_ino("/proc/thread-self/ns/net").ok_or("no /proc/thread-self/ns/net")?;
    // SAFETY: unshare(2) has no memory preconditions; it changes the calling thread's
    // namespaces (CLONE_NEWNS implies an fs struct of the thread's own, allowed in a thread).
    if unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET | CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    let ino = ns_ino("/proc/thread-self/ns/net").ok_or("no /proc/thread-self/ns/net")?;
    if ino == host {
        return Err("the thread's network namespace did not change".into());
    }
    Ok(ino)
}

fn mount(
    src: &str,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let src = c(src)?;
    let dstc = c(&dst.to_string_lossy())?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    // SAFETY: mount(2) with valid C strings (or null where optional) that outlive the call.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dstc.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount {} on {}: {}",
            src.to_string_lossy(),
            dst.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// In the thread's new mount namespace (nothing propagates out of it): /etc, /run and /var/lib
/// become overlays whose upper layers are under `dir` (what the engines write there, such as
/// iptables' /run/xtables.lock or dockerd's /etc/docker/key.json, stays private), and empty
/// directories of `dir` are bound over /run/netns, /var/lib/cni and /etc/cni/net.d (podman's
/// and CNI's namespaces, IPAM leases, result cache and configs).
fn private_mounts(dir: &Path) -> Result<(), String> {
    mount(
        "none",
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    for (k, top) in ["/etc", "/run", "/var/lib"].iter().enumerate() {
        if dir.starts_with(top) {
            return Err(format!("the temp dir {} is under {top}", dir.display()));
        }
        let (up, work) = (
            dir.join(format!("o{k}/upper")),
            dir.join(format!("o{k}/work")),
        );
        for d in [&up, &work] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        mount(
            "husk-bench-overlay",
            Path::new(top),
            Some("overlay"),
            0,
            Some(&format!(
                "lowerdir={top},upperdir={},workdir={}",
                up.display(),
                work.display()
            )),
        )?;
    }
    for (k, p) in ["/run/netns", "/var/lib/cni", "/etc/cni/net.d"]
        .iter()
        .enumerate()
    {
        let src = dir.join(format!("b{k}"));
        for d in [&src, &PathBuf::from(p)] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        mount(
            &src.to_string_lossy(),
            Path::new(p),
            None,
            libc::MS_BIND,
            None,
        )?;
    }
    Ok(())
}

/// SIGKILL, by pid, every process (not this one) in the network namespace `ino`.
fn kill_in_netns(ino: u64) {
    let me = std::process::id() as i32;
    for _ in 0..3 {
        let pids: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&p| p != me && docker::alive(p))
            .filter(|p| ns_ino(&format!("/proc/{p}/ns/net")) == Some(ino))
            .collect();
        if pids.is_empty() {
            return;
        }
        eprintln!("bench: up: SIGKILL to leftover pids {pids:?} in the private network namespace");
        kill_and_wait(&pids);
    }
}

/// Ends what is still in the private network namespace when the section's thread leaves.
struct NetnsGuard(u64);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        kill_in_netns(self.0);
    }
}

/// The rows of the `up` and `idle` sections (rendered as their own table: husk, docker, podman).
/// They run in a thread of their own that first moves into a private network and mount
/// namespace ([`unshare_net`], [`private_mounts`]): every engine, its daemons and containers,
/// bridges, veths, firewall rules and network namespaces live there and go with it. When that
/// fails, the default-network rows are left out (never run in the machine's namespace).
pub fn measure(
    b: &Bench,
    do_up: bool,
    do_idle: bool,
    runs: usize,
    warmup: usize,
    notes: &mut Vec<String>,
) -> Vec<Row> {
    let netns = std::sync::atomic::AtomicU64::new(0);
    let r = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("bench-up".into())
            .spawn_scoped(s, || {
                section(b, do_up, do_idle, runs, warmup, notes, &netns)
            })
            .map_err(|e| e.to_string())
            .and_then(|h| h.join().map_err(|_| "panicked".to_string()))
    });
    // whatever a panic left in the private namespace
    let ino = netns.load(std::sync::atomic::Ordering::SeqCst);
    if ino != 0 {
        kill_in_netns(ino);
    }
    let _ = std::fs::remove_dir_all(b.base.join("up"));
    r.unwrap_or_else(|why| {
        notes.push(format!("up/idle sections failed: their thread {why}."));
        Vec::new()
    })
}

fn section(
    b: &Bench,
    do_up: bool,
    do_idle: bool,
    runs: usize,
    warmup: usize,
    notes: &mut Vec<String>,
    netns: &std::sync::atomic::AtomicU64,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let Some(husk_bin) = b
        .rts
        .iter()
        .find(|r| r.name == "husk")
        .map(|r| r.bin.clone())
    else {
        notes.push("up/idle sections skipped: husk is not among the runtimes.".into());
        return rows;
    };
    let dir = b.base.join("up");
    let cgp = b.cg_parent.trim_start_matches('/');
    let tar = dir.join("image.tar");
    let _ = std::fs::create_dir_all(&dir);
    let private = unshare_net().and_then(|ino| {
        netns.store(ino, std::sync::atomic::Ordering::SeqCst);
        private_mounts(&dir.join("ns")).map(|()| ino)
    });
    // declared before the engines: dropped after them
    let _netns_guard = match netns.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        ino => Some(NetnsGuard(ino)),
    };
    let bridge = match &private {
        Ok(ino) => {
            eprintln!("bench: up: in a private network namespace (net:[{ino}])");
            true
        }
        Err(why) => {
            eprintln!("bench: up: no private network namespace: {why}");
            notes.push(format!(
                "up: the default-network rows are left out: no private network namespace \
                 ({why})."
            ));
            false
        }
    };
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&b.rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .is_ok_and(|s| s.success());
    let layer = std::fs::read(&tar).unwrap_or_default();
    if !ok || layer.is_empty() {
        notes.push("up/idle sections failed to set up: tar of the test rootfs failed.".into());
        return rows;
    }
    eprintln!("bench: up: setting up husk, a private dockerd + containerd, podman");
    let husk = match Husk::setup(&husk_bin, &dir.join("husk"), &layer, &format!("{cgp}/up")) {
        Ok(h) => Some(h),
        Err(why) => {
            notes.push(format!("up/idle: husk store failed to set up: {why}."));
            None
        }
    };
    let dock = match docker::unavailable() {
        Some(why) => {
            notes.push(format!("up/idle: docker left out: {why}."));
            None
        }
        None => match Daemon::start(
            &dir.join("docker"),
            &format!("{cgp}/docker-up"),
            &[],
            &b.rootfs,
            bridge,
        ) {
            Ok(d) => Some(d),
            Err(why) => {
                notes.push(format!("up/idle: docker failed to set up: {why}."));
                None
            }
        },
    };
    let pod = match Podman::setup(&dir.join("podman"), &tar, &format!("{cgp}/podman")) {
        Ok(p) => Some(p),
        Err(why) => {
            notes.push(format!("up/idle: podman left out: {why}."));
            None
        }
    };
    let mut fails: std::collections::BTreeMap<&str, usize> = Default::default();

    if do_up {
        // the three engines' `run --rm IMAGE ARGS`, with `--network none` or on the default network
        let cmd = |k: usize, none: bool, args: &[&str]| -> Option<Command> {
            let net: &[&str] = if none { &["--network", "none"] } else { &[] };
            match k {
                0 => husk.as_ref().map(|h| {
                    let mut c = h.cmd("up");
                    c.args(net).args(["--rm", HUSK_REF]).args(args);
                    c
                }),
                1 => dock.as_ref().map(|d| {
                    let mut c = d.cli();
                    c.arg("run")
                        .args(net)
                        .args(["--rm", docker::IMAGE])
                        .args(args);
                    c
                }),
                _ => pod.as_ref().map(|p| {
                    let mut c = p.run();
                    c.args(net).args(["--rm", PODMAN_IMAGE]).args(args);
                    c
                }),
            }
        };
        const WHAT: [&str; 3] = ["husk up", "docker run", "podman run"];
        // the default network, checked once per engine (and made, for husk): the container
        // has an eth0 besides lo; otherwise that engine's row is left out
        let mut on_bridge = [false; 3];
        if bridge {
            for (k, on) in on_bridge.iter_mut().enumerate() {
                let Some(c) = cmd(k, false, &["cat", "/proc/net/dev"]) else {
                    continue;
                };
                match docker::output_timeout(c, 120) {
                    Some(o) if o.status.success() => {
                        let out = String::from_utf8_lossy(&o.stdout);
                        *on = out.contains("eth0:");
                        if !*on {
                            notes.push(format!(
                                "up, default network: `{}`'s container had no eth0 ({}); row \
                                 left out.",
                                WHAT[k],
                                out.split_whitespace().collect::<Vec<_>>().join(" ")
                            ));
                        }
                    }
                    o => {
                        let why = o.map_or("timed out".into(), |o| {
                            String::from_utf8_lossy(&o.stderr).trim().to_string()
                        });
                        eprintln!(
                            "bench: up: {} on the default network failed: {why}",
                            WHAT[k]
                        );
                        notes.push(format!(
                            "up, default network: `{}` failed in the private network \
                             namespace ({why}); row left out.",
                            WHAT[k]
                        ));
                    }
                }
            }
        }
        eprintln!(
            "bench: up: husk up / docker run / podman run --rm IMAGE true x{runs}, --network \
             none{}",
            if bridge {
                " and the default network"
            } else {
                ""
            }
        );
        let names = ["husk", "docker", "podman"];
        let mut none_vals: Vec<(String, Vec<f64>)> =
            names.iter().map(|n| (n.to_string(), Vec::new())).collect();
        let mut br_vals = none_vals.clone();
        for i in 0..warmup + runs {
            // per round: each engine with --network none, then each on its default network
            for (none, k) in [true, false]
                .into_iter()
                .flat_map(|n| (0..3).map(move |k| (n, k)))
            {
                if !none && !on_bridge[k] {
                    continue;
                }
                let Some(mut c) = cmd(k, none, &["true"]) else {
                    continue;
                };
                let errf = dir.join(format!("stderr-{k}"));
                if let Ok(f) = std::fs::File::create(&errf) {
                    c.stderr(f);
                }
                let (t, ok, _) = timed(c);
                let what = [
                    ["husk up", "docker run", "podman run"],
                    [
                        "husk up (default network)",
                        "docker run (default network)",
                        "podman run (default network)",
                    ],
                ][usize::from(!none)][k];
                if !ok {
                    let n = fails.entry(what).or_default();
                    if *n == 0 {
                        let e = std::fs::read_to_string(&errf).unwrap_or_default();
                        eprintln!("bench: up: {what} failed: {}", e.trim());
                        notes.push(format!("up: the first failed `{what}` said: {}", e.trim()));
                    }
                    *n += 1;
                } else if i >= warmup {
                    let v = if none { &mut none_vals } else { &mut br_vals };
                    v[k].1.push(ms(t));
                }
            }
        }
        let mut note = format!(
            "husk: `husk up --rm --network none --pull never` from a private store; docker: \
             {}, its default runtime runc (`{}`), `docker run --rm --network none`; podman: {}, \
             `podman run --rm --network none`, {} storage, cgroupfs, file events; wall time of \
             each CLI, engines alternating, {warmup} warm-up rounds, {runs} measured \
             (BENCH_UP_RUNS, BENCH_UP_WARMUP){}",
            dock.as_ref().map_or("–".into(), |d| d.versions.clone()),
            docker::which("runc").map_or("?".into(), |p| p.display().to_string()),
            pod.as_ref().map_or("–".into(), |p| p.version.clone()),
            pod.as_ref().map_or("–", |p| p.driver),
            if bridge {
                "; all in the benchmark's private network namespace, where dockerd also has its \
                 default bridge and iptables rules"
            } else {
                ""
            },
        );
        note.push_str(&goal(&none_vals, &[("docker", 0.1), ("podman", 0.2)]));
        rows.push(Row {
            what: "`up --rm --network none IMAGE true` / `run --rm --network none`".into(),
            unit: "ms",
            vals: none_vals,
            note,
        });
        if bridge {
            let mut note = String::from(
                "no `--network`: husk's default network `husk` (a native bridge, made on first \
                 use, masquerade in an nftables table of its own), Docker's default bridge \
                 (docker0, iptables on), podman's default network (CNI: bridge cni-podman0, \
                 host-local, portmap, firewall, tuning from /usr/lib/cni); same daemons, store \
                 and rounds as the row above, alternating with it. Everything runs in a private \
                 network namespace the benchmark makes (and a private mount namespace in which \
                 /etc, /run and /var/lib are overlays, and /run/netns, /var/lib/cni and \
                 /etc/cni/net.d empty temp dirs): no bridge, veth, firewall rule or namespace \
                 reaches the machine's own; each engine's default network was checked once \
                 (the container has an eth0)",
            );
            note.push_str(&goal(&br_vals, &[("docker", 0.1), ("podman", 0.2)]));
            rows.push(Row {
                what: "`up --rm IMAGE true` / `run --rm IMAGE true`, default network".into(),
                unit: "ms",
                vals: br_vals,
                note,
            });
        }
    }
    if do_idle {
        eprintln!("bench: idle: {IDLE_N} detached `sleep 100000` containers per engine");
        let mut vals: Vec<(String, Vec<f64>)> = Vec::new();
        let mut parts = Vec::new();
        let mut rss_only = Vec::new();
        // one engine at a time: start IDLE_N, let them settle, sample 3 times, remove them
        let mut sample = |name: &str,
                          start: &mut dyn FnMut() -> bool,
                          procs: &dyn Fn() -> Vec<(String, i32)>,
                          rm: &dyn Fn()| {
            let started = (0..IDLE_N).filter(|_| start()).count();
            let mut v = Vec::new();
            let mut last = String::new();
            if started == IDLE_N {
                std::thread::sleep(Duration::from_secs(2));
                for _ in 0..3 {
                    let ps = procs();
                    if ps.len() < IDLE_N {
                        notes.push(format!(
                            "idle, {name}: {} processes found for {IDLE_N} containers ({ps:?}); \
                             left out.",
                            ps.len()
                        ));
                        v.clear();
                        break;
                    }
                    let (k, breakdown, pss) = idle_sum(&ps);
                    v.push(k);
                    if !pss {
                        rss_only.push(name.to_string());
                    }
                    last = breakdown;
                    std::thread::sleep(Duration::from_millis(500));
                }
                if !v.is_empty() {
                    parts.push(format!("{name}: {last} KiB"));
                }
            } else {
                notes.push(format!(
                    "idle, {name}: only {started} of {IDLE_N} detached containers started; left out."
                ));
            }
            rm();
            vals.push((name.to_string(), v));
        };
        if let Some(h) = &husk {
            sample(
                "husk",
                &mut || {
                    let mut c = h.cmd("up");
                    c.args(["--network", "none", "-d", HUSK_REF, "sleep", "100000"]);
                    docker::output_timeout(c, 60).is_some_and(|o| o.status.success())
                },
                &|| h.monitors(),
                &|| h.rm_all(),
            );
        }
        if let Some(d) = &dock {
            sample(
                "docker",
                &mut || {
                    let mut c = d.cli();
                    c.args(["run", "-d", "--network", "none", docker::IMAGE])
                        .args(["sleep", "100000"]);
                    docker::output_timeout(c, 60).is_some_and(|o| o.status.success())
                },
                &|| d.daemon_procs(),
                &|| docker_rm_all(d),
            );
        }
        if let Some(p) = &pod {
            sample(
                "podman",
                &mut || {
                    let mut c = p.run();
                    c.args(["--network", "none", "-d", PODMAN_IMAGE, "sleep", "100000"]);
                    docker::output_timeout(c, 60).is_some_and(|o| o.status.success())
                },
                &|| p.conmons(),
                &|| {
                    let mut c = p.cmd();
                    c.args(["rm", "-af", "-t", "0"]);
                    let _ = docker::output_timeout(c, 60);
                },
            );
        }
        let mut note = format!(
            "{IDLE_N} detached `sleep 100000` containers, one engine at a time, 3 samples 0.5 s \
             apart after 2 s; summed PSS (/proc/PID/smaps_rollup) of husk's monitors, of dockerd \
             + containerd + the shims, of podman's conmons; the containers' processes not \
             counted. Last sample: {}",
            parts.join("; ")
        );
        if !rss_only.is_empty() {
            note.push_str(&format!(
                "; RSS instead of PSS for some processes of {}",
                rss_only.join(", ")
            ));
        }
        let smallest = vals
            .iter()
            .filter(|(n, _)| n != "husk")
            .filter_map(|(n, v)| summary(v).map(|s| (n.clone(), s.1)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((n, _)) = smallest {
            note.push_str(&goal(&vals, &[(n.as_str(), 0.3)]));
        }
        rows.push(Row {
            what: format!("idle memory, {IDLE_N} detached containers"),
            unit: "KiB",
            vals,
            note,
        });
    }
    for (what, n) in &fails {
        notes.push(format!(
            "up: {n} failed `{what}` (left out of the samples)."
        ));
    }
    drop(pod);
    drop(dock);
    drop(husk);
    rows
}

/// "; goal husk ≤ 0.1× docker: met (0.05)" for each (other, factor).
fn goal(vals: &[(String, Vec<f64>)], goals: &[(&str, f64)]) -> String {
    let med = |n: &str| {
        vals.iter()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| summary(v))
            .map(|s| s.1)
    };
    let mut s = String::new();
    for (other, f) in goals {
        let verdict = match (med("husk"), med(other)) {
            (Some(h), Some(o)) if o > 0.0 => {
                let r = h / o;
                format!("{} ({r:.3})", if r <= *f { "met" } else { "NOT met" })
            }
            _ => "not measured".into(),
        };
        s.push_str(&format!("; goal husk ≤ {f}× {other}: {verdict}"));
    }
    s
}
