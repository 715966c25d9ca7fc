//! The `docker` section: what a docker user feels with each runtime. ONE private dockerd (own
//! socket, data and exec roots, config file, pid file; no iptables, no bridge, no userland
//! proxy; cgroupfs driver with a cgroup parent under the benchmark's) on ONE private containerd
//! (own config, root, state and sockets), started inside the benchmark's private mount
//! namespace, so every runtime sees the same host (and crun runs on a hybrid host). Each
//! runtime is registered with `--add-runtime bench-NAME=PATH` (containerd's runc.v2 shim with
//! that binary): dockerd, containerd and the shim are the same for all, only the OCI runtime
//! differs. The image is the busybox test rootfs, `docker import`ed (no registry).
//!
//! Timed: the wall time of the `docker` CLI for `docker run --rm --network none IMAGE true`
//! and for `docker exec CTR true` into one long-running container per runtime, runtimes
//! alternating run by run after warm-up rounds.
//!
//! [`Daemon`] cleans up in Drop, also after a failure or panic: containers, dockerd and
//! containerd (SIGTERM by pid, SIGKILL after a timeout), then by pid whatever still runs with
//! the temp dir in its command line (shims) or inside the docker cgroup parent (container
//! processes), mounts under the temp dir, the cgroups under the docker cgroup parent, the temp
//! dir. Nothing is looked up or ended by name.

use super::{alternate, ms, timed, Bench, Row};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "husk-bench:latest";

/// `name` as an executable file in $PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why the section cannot run here (an environmental skip), if it cannot.
pub fn unavailable() -> Option<String> {
    for bin in ["dockerd", "containerd", "containerd-shim-runc-v2"] {
        if which(bin).is_none() {
            return Some(format!(
                "`{bin}` is not installed (Debian packages docker.io and containerd; make deps)"
            ));
        }
    }
    docker_cli()
        .is_none()
        .then(|| "the `docker` CLI is not installed (make deps)".to_string())
}

/// The CLI of the daemon's own package when there (as integration/engines/docker.sh does),
/// else the first in $PATH.
fn docker_cli() -> Option<PathBuf> {
    let deb = PathBuf::from("/usr/bin/docker");
    if deb.is_file() {
        Some(deb)
    } else {
        which("docker")
    }
}

/// The docker runtime name of a benchmark runtime ("runc" is reserved by dockerd).
pub fn runtime_name(rt: &str) -> String {
    format!("bench-{rt}")
}

pub struct Daemon {
    dir: PathBuf,
    docker: PathBuf,
    sock: PathBuf,
    /// relative to each hierarchy's root, e.g. `husk-bench-123/docker`
    cg_parent: String,
    containerd: Option<Child>,
    dockerd: Option<Child>,
    /// dockerd 20.10 writes /etc/docker/key.json whatever its data root: removed if it was new
    key_was_there: bool,
    /// those of OUTSIDE_DIRS that existed before
    outside_dirs_there: Vec<&'static str>,
    pub versions: String,
}

const KEY: &str = "/etc/docker/key.json";
/// Directories outside the temp dir that dockerd 20.10 and the containerd 1.6 shims create when
/// missing (the trust key's, the shims' fixed socket directory): removed if new and empty.
const OUTSIDE_DIRS: [&str; 3] = ["/etc/docker", "/run/containerd", "/run/containerd/s"];

fn log_file(p: &Path) -> Stdio {
    std::fs::File::create(p).map_or(Stdio::null(), Stdio::from)
}

fn tail(p: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// Run to completion with a deadline (SIGKILL by pid when it passes).
pub fn output_timeout(mut c: Command, secs: u64) -> Option<Output> {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let t = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if t.elapsed() < Duration::from_secs(secs) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// SIGTERM, wait up to `secs`, SIGKILL; reaped.
fn stop_child(c: &mut Child, secs: u64) {
    if matches!(c.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: kill(2) on the pid of our own unreaped child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

pub fn alive(pid: i32) -> bool {
    // a zombie (not ours to reap) counts as gone
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

impl Daemon {
    /// Start containerd and dockerd under `dir` (created). Err: why the daemon is not usable
    /// (whatever was started is cleaned up when the returned error drops the guard).
    /// `bridge`: dockerd with its defaults for networks (the default bridge docker0, iptables
    /// rules, masquerade, the userland proxy) instead of none of them; only for a caller in a
    /// network namespace of its own (the up section).
    pub fn start(
        dir: &Path,
        cg_parent: &str,
        runtimes: &[(String, PathBuf)],
        rootfs: &Path,
        bridge: bool,
    ) -> Result<Daemon, String> {
        let docker = docker_cli().ok_or("no docker CLI")?;
        for d in ["cd/root", "cd/state", "cd/opt", "data", "exec", "cli"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut d = Daemon {
            dir: dir.to_path_buf(),
            docker,
            sock: dir.join("docker.sock"),
            cg_parent: cg_parent.trim_start_matches('/').to_string(),
            containerd: None,
            dockerd: None,
            key_was_there: Path::new(KEY).exists(),
            outside_dirs_there: OUTSIDE_DIRS
                .into_iter()
                .filter(|d| Path::new(d).exists())
                .collect(),
            versions: String::new(),
        };
        // A private containerd rather than dockerd's managed one: dockerd 20.10 silently uses
        // the system containerd whenever /run/containerd/containerd.sock exists.
        let cd_sock = dir.join("cd/containerd.sock");
        let cfg = format!(
            "version = 2\nroot = \"{0}/cd/root\"\nstate = \"{0}/cd/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{0}/cd/opt\"\n",
            dir.display(),
            cd_sock.display()
        );
        std::fs::write(dir.join("cd/config.toml"), cfg).map_err(|e| e.to_string())?;
        d.containerd = Some(
            Command::new("containerd")
                .arg("--config")
                .arg(dir.join("cd/config.toml"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(&dir.join("containerd.log")))
                .spawn()
                .map_err(|e| format!("start containerd: {e}"))?,
        );
        let t = Instant::now();
        while !cd_sock.exists() {
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "private containerd did not come up in 30 s: {}",
                    tail(&dir.join("containerd.log"), 10)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::write(dir.join("daemon.json"), "{}").map_err(|e| e.to_string())?;
        let mut c = Command::new("dockerd");
        c.arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--containerd")
            .arg(&cd_sock)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.sock.display()));
        if !bridge {
            c.args([
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--userland-proxy=false",
            ]);
        }
        c.args([
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
            "--cgroup-parent",
        ])
        .arg(format!("/{}", d.cg_parent));
        for (name, path) in runtimes {
            c.arg("--add-runtime")
                .arg(format!("{}={}", runtime_name(name), path.display()));
        }
        d.dockerd = Some(
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(&dir.join("dockerd.log")))
                .spawn()
                .map_err(|e| format!("start dockerd: {e}"))?,
        );
        let t = Instant::now();
        loop {
            let mut v = d.cli();
            v.args([
                "version",
                "--format",
                "{{.Server.Version}} {{range .Server.Components}}{{if eq .Name \"containerd\"}}{{.Version}}{{end}}{{end}}",
            ]);
            if let Some(o) = output_timeout(v, 10).filter(|o| o.status.success()) {
                let s = String::from_utf8_lossy(&o.stdout);
                let mut w = s.split_whitespace();
                d.versions = format!(
                    "dockerd {}, containerd {}",
                    w.next().unwrap_or("?"),
                    w.next().unwrap_or("?")
                );
                break;
            }
            if t.elapsed() > Duration::from_secs(60)
                || d.dockerd
                    .as_mut()
                    .is_some_and(|c| c.try_wait().is_ok_and(|s| s.is_some()))
            {
                return Err(format!(
                    "private dockerd did not come up: {}",
                    tail(&dir.join("dockerd.log"), 10)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // the image: the test rootfs as a tarball
        let tar = dir.join("image.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("tar of the test rootfs failed".into());
        }
        let mut c = d.cli();
        c.arg("import").arg(&tar).arg(IMAGE);
        match output_timeout(c, 120) {
            Some(o) if o.status.success() => {}
            Some(o) => {
                return Err(format!(
                    "docker import: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            None => return Err("docker import timed out".into()),
        }
        Ok(d)
    }

    /// The docker CLI pointed at this daemon, quiet.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(&self.docker);
        c.env("DOCKER_CONFIG", self.dir.join("cli"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// The daemon's own processes at idle: dockerd, containerd and the containerd shims (by
    /// pid; the containers' processes are not among them), each as (what, pid).
    pub fn daemon_procs(&self) -> Vec<(String, i32)> {
        let mut v = Vec::new();
        for (what, c) in [("dockerd", &self.dockerd), ("containerd", &self.containerd)] {
            if let Some(c) = c {
                v.push((what.to_string(), c.id() as i32));
            }
        }
        for pid in self.dir_procs() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.starts_with("containerd-shim") {
                v.push(("containerd-shim".to_string(), pid));
            }
        }
        v
    }

    /// pids whose command line names the temp dir (dockerd, containerd, shims)
    fn dir_procs(&self) -> Vec<i32> {
        super::up::procs_naming(&self.dir)
    }

    /// The hierarchies under /sys/fs/cgroup: (root, whether it is a real cgroup file system).
    /// On a hybrid host the benchmark hides /sys/fs/cgroup/unified under its own tmpfs, where a
    /// runtime may still create directories and files: those are plain files, removed as such.
    fn hierarchies() -> Vec<(PathBuf, bool)> {
        super::up::hierarchy_candidates()
            .into_iter()
            .map(|r| {
                let c = super::is_cgroupfs(&r);
                (r, c)
            })
            .collect()
    }

    /// every directory of the docker cgroup parent in every cgroup hierarchy, deepest first
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        if self.cg_parent.is_empty() {
            return Vec::new();
        }
        super::up::cgroup_dirs(&self.cg_parent)
    }

    fn cgroup_procs(&self) -> Vec<i32> {
        super::up::procs_in(&self.cgroup_dirs())
    }

    /// mount points under the temp dir, deepest first (the calling thread's mount namespace:
    /// the up section's thread has one of its own)
    fn mounts(&self) -> Vec<String> {
        super::up::mounts_under(&self.dir)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // 1. containers, through the daemon while it is up
        if self.sock.exists()
            && self
                .dockerd
                .as_mut()
                .is_some_and(|c| c.try_wait().is_ok_and(|s| s.is_none()))
        {
            let mut ps = self.cli();
            ps.args(["ps", "-aq"]);
            if let Some(o) = output_timeout(ps, 20) {
                let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                if !ids.is_empty() {
                    let mut rm = self.cli();
                    rm.args(["rm", "-f"]).args(&ids);
                    let _ = output_timeout(rm, 60);
                }
            }
        }
        // 2. the daemons, by pid
        if let Some(c) = self.dockerd.as_mut() {
            stop_child(c, 15);
        }
        if let Some(c) = self.containerd.as_mut() {
            stop_child(c, 10);
        }
        // 3. whatever is left: thaw our frozen cgroups, SIGKILL shims and container processes
        for d in self.cgroup_dirs() {
            let f = d.join("freezer.state");
            if f.exists() {
                let _ = std::fs::write(f, "THAWED");
            }
        }
        for _ in 0..3 {
            let pids: Vec<i32> = self
                .dir_procs()
                .into_iter()
                .chain(self.cgroup_procs())
                .filter(|&p| alive(p))
                .collect();
            if pids.is_empty() {
                break;
            }
            eprintln!("bench: docker: SIGKILL to leftover pids {pids:?}");
            for &p in &pids {
                // SAFETY: kill(2); the pid runs our temp dir's binaries or sits in our cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            let t = Instant::now();
            while pids.iter().any(|&p| alive(p)) && t.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // 4. mounts under the temp dir (overlays, shm, netns), deepest first
        for _ in 0..3 {
            let ms = self.mounts();
            if ms.is_empty() {
                break;
            }
            for m in ms {
                let Ok(c) = std::ffi::CString::new(m) else {
                    continue;
                };
                // SAFETY: umount2 with a valid C string.
                unsafe {
                    if libc::umount2(c.as_ptr(), 0) != 0 {
                        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                    }
                }
            }
        }
        // 5. our cgroups, deepest first (a cgroup can take a moment to empty after SIGKILL)
        for _ in 0..20 {
            let dirs = self.cgroup_dirs();
            if dirs.is_empty() {
                break;
            }
            for d in dirs {
                let _ = std::fs::remove_dir(d);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // ... and what a runtime wrote into the benchmark's tmpfs over the v2 mount
        for (r, cgroup) in Self::hierarchies() {
            let p = r.join(&self.cg_parent);
            if !cgroup && !self.cg_parent.is_empty() && p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            }
        }
        // 6. the trust key dockerd 20.10 writes outside its data root, and OUTSIDE_DIRS
        if !self.key_was_there {
            let _ = std::fs::remove_file(KEY);
        }
        for d in OUTSIDE_DIRS.iter().rev() {
            if !self.outside_dirs_there.contains(d) {
                let _ = std::fs::remove_dir(d); // only when empty
            }
        }
        // 7. the temp dir
        let _ = std::fs::remove_dir_all(&self.dir);
        let left_mounts = self.mounts();
        let left_cg = self.cgroup_dirs();
        if !left_mounts.is_empty() || !left_cg.is_empty() {
            eprintln!(
                "bench: docker: could not remove mounts {left_mounts:?} / cgroups {left_cg:?}"
            );
        }
    }
}

/// The section's rows: `docker run --rm` and `docker exec`, runtimes alternating.
pub fn measure(b: &Bench, runs: usize, warmup: usize, notes: &mut Vec<String>) -> Vec<Row> {
    if let Some(why) = unavailable() {
        eprintln!("bench: docker: SKIP, {why}");
        notes.push(format!("docker section skipped: {why}."));
        return Vec::new();
    }
    let dir = b.base.join("docker");
    let rts: Vec<(String, PathBuf)> = b
        .rts
        .iter()
        .map(|r| (r.name.clone(), r.bin.clone()))
        .collect();
    let cg = format!("{}/docker", b.cg_parent);
    eprintln!("bench: docker: starting a private dockerd + containerd");
    let d = match Daemon::start(&dir, &cg, &rts, &b.rootfs, false) {
        Ok(d) => d,
        Err(why) => {
            eprintln!("bench: docker: FAILED to set up: {why}");
            notes.push(format!("docker section failed to set up: {why}."));
            return Vec::new();
        }
    };
    let mut fails: std::collections::BTreeMap<String, usize> = Default::default();
    eprintln!("bench: docker run --rm IMAGE true x{runs}");
    let run_vals = alternate(b, runs, warmup, |rt| {
        let mut c = d.cli();
        c.args(["run", "--rm", "--network", "none", "--runtime"])
            .arg(runtime_name(&rt.name))
            .args([IMAGE, "true"]);
        let (t, ok, _) = timed(c);
        if !ok {
            *fails.entry(format!("{} run", rt.name)).or_default() += 1;
        }
        ok.then(|| ms(t))
    });
    eprintln!("bench: docker exec CTR true x{runs}");
    let ctrs: Vec<Option<String>> = b
        .rts
        .iter()
        .map(|rt| {
            let name = format!("husk-bench-exec-{}", rt.name);
            let mut c = d.cli();
            c.args([
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                &name,
                "--runtime",
            ])
            .arg(runtime_name(&rt.name))
            .args([IMAGE, "sleep", "1000000"]);
            match output_timeout(c, 60) {
                Some(o) if o.status.success() => Some(name),
                o => {
                    let why = o.map_or("timed out".into(), |o| {
                        String::from_utf8_lossy(&o.stderr).trim().to_string()
                    });
                    eprintln!("bench: docker: {}: run -d failed: {why}", rt.name);
                    notes.push(format!(
                        "docker exec, {}: the long-running container did not start ({why}).",
                        rt.name
                    ));
                    None
                }
            }
        })
        .collect();
    let names: Vec<String> = b.rts.iter().map(|r| r.name.clone()).collect();
    let exec_vals = alternate(b, runs, warmup, |rt| {
        let k = names.iter().position(|n| *n == rt.name)?;
        let ctr = ctrs[k].as_ref()?;
        let mut c = d.cli();
        c.args(["exec", ctr, "true"]);
        let (t, ok, _) = timed(c);
        if !ok {
            *fails.entry(format!("{} exec", rt.name)).or_default() += 1;
        }
        ok.then(|| ms(t))
    });
    for (what, n) in &fails {
        notes.push(format!(
            "docker: {n} failed `{what}` (left out of the samples)."
        ));
    }
    let note = format!(
        "{}; each runtime registered with `--add-runtime bench-NAME=PATH` (runc.v2 shim, the \
         same dockerd/containerd for all); wall time of the `docker` CLI; {warmup} warm-up \
         rounds, {runs} measured, runtimes alternating (BENCH_DOCKER_RUNS, \
         BENCH_DOCKER_WARMUP)",
        d.versions
    );
    drop(d);
    vec![
        Row {
            what: "`docker run --rm --network none IMAGE true`".into(),
            unit: "ms",
            vals: run_vals,
            note: note.clone(),
        },
        Row {
            what: "`docker exec CTR true` into a running container".into(),
            unit: "ms",
            vals: exec_vals,
            note: "same daemon; one `docker run -d ... sleep` container per runtime".into(),
        },
    ]
}
