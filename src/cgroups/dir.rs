//! One cgroup directory, by path: the file reads and writes every driver shares. The cgroupfs
//! v2 manager has one (`/sys/fs/cgroup/PATH`), the v1 manager one per hierarchy
//! (`/sys/fs/cgroup/CONTROLLERS/PATH`), and the systemd driver reaches the scope's directories
//! through those. Pids (`cgroup.procs`, recursively), placing a pid, the freezer, `cgroup.kill`,
//! the OOM kill count and the `events --stats` readings live here once; which files a
//! controller has differs between cgroup v1 and v2, so those take the [`Version`].

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::stats::{self, Stats};
use super::translate as tr;
use super::util::{self, read_file, read_opt, write_file};
use super::FreezerState;

/// Which cgroup interface a directory's files follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// A v1 hierarchy (`freezer.state`, `memory.oom_control`, ...).
    V1,
    /// The unified hierarchy (`cgroup.freeze`, `memory.events`, ...), also the hybrid one.
    V2,
}

/// How long a freeze or thaw may take before it is an error.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// A cgroup directory on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    path: PathBuf,
}

impl CgroupDir {
    pub fn new(path: PathBuf) -> CgroupDir {
        CgroupDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// `file` as text; errors name the path.
    pub fn read(&self, file: &str) -> Result<String> {
        read_file(&self.path, file)
    }

    /// `file` as text, None when the kernel has no such file here.
    pub fn read_opt(&self, file: &str) -> Result<Option<String>> {
        read_opt(&self.path, file)
    }

    /// A one-value file as a number ("max" is u64::MAX); 0 when missing or unparsable, as
    /// runc's stats readers take it.
    pub fn read_u64(&self, file: &str) -> Result<u64> {
        Ok(self
            .read_opt(file)?
            .as_deref()
            .and_then(util::parse_u64)
            .unwrap_or(0))
    }

    /// `key` of a flat-keyed file (`memory.events`, `cpu.stat`, ...); 0 when absent.
    fn keyed(&self, file: &str, key: &str) -> Result<u64> {
        let t = self.read(file)?;
        Ok(stats::parse_flat_keyed(&t).get(key).copied().unwrap_or(0))
    }

    /// Write `value` to `file`; `field` (the spec field it came from) leads the error.
    pub fn write(&self, file: &str, value: &str, field: &str) -> Result<()> {
        write_file(&self.path, file, value, field)
    }

    /// Every pid of `cgroup.procs` here and in every cgroup below. The directory must exist; a
    /// child cgroup that disappears while walking is skipped.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut v = Vec::new();
        util::pids_recursive(&self.path, &mut v)?;
        Ok(v)
    }

    /// Move `pid` (its whole thread group) here through `cgroup.procs`.
    pub fn place(&self, pid: i32) -> Result<()> {
        util::write_pid(&self.path, pid)
    }

    /// Freeze (true) or thaw (false) and wait until the kernel reports it, at most 10 s.
    /// v1: a `FREEZING` that sticks (a task in an uninterruptible sleep) is asked again every
    /// tenth poll, and a freeze that does not finish is undone before the error.
    pub fn freeze(&self, version: Version, frozen: bool) -> Result<()> {
        if self.freeze_within(version, frozen, FREEZE_TIMEOUT)? {
            return Ok(());
        }
        match version {
            Version::V2 => bail!(
                "{}: cgroup did not become {} within 10s",
                self.path.display(),
                if frozen { "frozen" } else { "thawed" }
            ),
            Version::V1 => {
                let want = if frozen { "FROZEN" } else { "THAWED" };
                let last = self.read("freezer.state")?.trim().to_string();
                if frozen {
                    let _ = util::write_path(&self.path.join("freezer.state"), "THAWED");
                }
                bail!(
                    "{}: freezer.state is {last} instead of {want} after 10s",
                    self.path.display()
                )
            }
        }
    }

    /// Ask for a freeze (true) or thaw and wait until the kernel reports it, at most `wait`:
    /// Ok(false) when it has not yet, the request left standing (v1: a `FREEZING` that
    /// sticks is asked again every tenth poll).
    pub fn freeze_within(&self, version: Version, frozen: bool, wait: Duration) -> Result<bool> {
        match version {
            Version::V2 => {
                self.write("cgroup.freeze", if frozen { "1" } else { "0" }, "freeze")?;
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                wait_until(wait, |_| {
                    let ev = self.read("cgroup.events")?;
                    Ok(ev.lines().any(|l| l.trim() == want))
                })
            }
            Version::V1 => {
                let want = if frozen { "FROZEN" } else { "THAWED" };
                self.write("freezer.state", want, "freeze")?;
                let file = self.path.join("freezer.state");
                wait_until(wait, |n| {
                    if n > 0 && n % 10 == 0 {
                        let _ = util::write_path(&file, want);
                    }
                    Ok(self.read("freezer.state")?.trim() == want)
                })
            }
        }
    }

    /// Whether the tasks here are frozen, for whatever reason: this cgroup's own freezer or an
    /// ancestor's (v1 `freezer.state` FROZEN, v2 `cgroup.events` `frozen 1`). A new cgroup
    /// below a frozen one is frozen too, and a process placed in it would block.
    pub fn is_frozen(&self, version: Version) -> Result<bool> {
        Ok(match version {
            Version::V2 => self
                .read("cgroup.events")?
                .lines()
                .any(|l| l.trim() == "frozen 1"),
            Version::V1 => self.read("freezer.state")?.trim() == "FROZEN",
        })
    }

    /// This cgroup's own freezer: what `pause` asked for and how far the kernel got. Frozen
    /// through an ancestor only is Thawed (not this container's pause, and not one it could
    /// undo; runc's GetState says thawed too).
    pub fn freezer_state(&self, version: Version) -> Result<FreezerState> {
        match version {
            Version::V2 => {
                // cgroup.freeze is what was asked, cgroup.events whether the kernel got there
                if self.read("cgroup.freeze")?.trim() != "1" {
                    return Ok(FreezerState::Thawed);
                }
                Ok(if self.is_frozen(Version::V2)? {
                    FreezerState::Frozen
                } else {
                    FreezerState::Freezing
                })
            }
            Version::V1 => {
                let st = self.read("freezer.state")?;
                Ok(match st.trim() {
                    "THAWED" => FreezerState::Thawed,
                    "FREEZING" => FreezerState::Freezing,
                    "FROZEN" => match self
                        .read_opt("freezer.self_freezing")?
                        .as_deref()
                        .map(str::trim)
                    {
                        Some("0") => FreezerState::Thawed,
                        _ => FreezerState::Frozen,
                    },
                    other => bail!(
                        "{}: unexpected freezer.state {other:?}",
                        self.path.join("freezer.state").display()
                    ),
                })
            }
        }
    }

    /// SIGKILL everything here and below with one write to `cgroup.kill` (cgroup v2, Linux
    /// 5.14). Ok(false): the kernel has no `cgroup.kill` (the directory exists); the caller
    /// then signals pid by pid.
    pub fn kill(&self) -> Result<bool> {
        let file = self.path.join("cgroup.kill");
        match util::write_path(&file, "1") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.exists() => Ok(false),
            Err(e) => bail!("writing 1 to {}: {}", file.display(), util::errstr(&e)),
        }
    }

    /// How many processes the kernel's OOM killer killed here: `oom_kill` of v2
    /// `memory.events`, of v1 `memory.oom_control`.
    pub fn oom_kill_count(&self, version: Version) -> Result<u64> {
        match version {
            Version::V2 => self.keyed("memory.events", "oom_kill"),
            Version::V1 => self.keyed("memory.oom_control", "oom_kill"),
        }
    }

    /// `events --stats` of a cgroup v2 directory.
    pub fn stats_v2(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(t) = self.read_opt("cpu.stat")? {
            let m = stats::parse_flat_keyed(&t);
            let g = |k: &str| m.get(k).copied().unwrap_or(0);
            s.cpu.usage.total = g("usage_usec") * 1000;
            s.cpu.usage.user = g("user_usec") * 1000;
            s.cpu.usage.kernel = g("system_usec") * 1000;
            s.cpu.throttling.periods = g("nr_periods");
            s.cpu.throttling.throttled_periods = g("nr_throttled");
            s.cpu.throttling.throttled_time = g("throttled_usec") * 1000;
        }
        if let Some(t) = self.read_opt("cpuset.cpus.effective")? {
            s.cpuset.cpus = stats::parse_cpuset_list(&t);
        }
        if let Some(t) = self.read_opt("cpuset.mems.effective")? {
            s.cpuset.mems = stats::parse_cpuset_list(&t);
        }
        if let Some(t) = self.read_opt("memory.stat")? {
            s.memory.raw = stats::parse_flat_keyed(&t);
            s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
            s.memory.usage.usage = self.read_u64("memory.current")?;
            s.memory.usage.limit = self.read_u64("memory.max")?;
            s.memory.usage.max = self.read_u64("memory.peak")?;
            if let Some(ev) = self.read_opt("memory.events")? {
                s.memory.usage.failcnt = stats::parse_flat_keyed(&ev)
                    .get("max")
                    .copied()
                    .unwrap_or(0);
            }
            // runc reports swap as memory+swap, like v1's memsw
            if let Some(sw) = self
                .read_opt("memory.swap.current")?
                .as_deref()
                .and_then(util::parse_u64)
            {
                s.memory.swap.usage = sw + s.memory.usage.usage;
                let swmax = self.read_u64("memory.swap.max")?;
                s.memory.swap.limit = if swmax == u64::MAX || s.memory.usage.limit == u64::MAX {
                    u64::MAX
                } else {
                    swmax + s.memory.usage.limit
                };
            }
        }
        if let Some(t) = self.read_opt("pids.current")? {
            s.pids.current = util::parse_u64(&t).unwrap_or(0);
            let lim = self.read_u64("pids.max")?;
            s.pids.limit = if lim == u64::MAX { 0 } else { lim };
        }
        if let Some(t) = self.read_opt("io.stat")? {
            let (b, i) = stats::parse_io_stat(&t);
            s.blkio.io_service_bytes_recursive = b;
            s.blkio.io_serviced_recursive = i;
        }
        for size in hugepage_sizes() {
            let Some(cur) = self.read_opt(&format!("hugetlb.{size}.current"))? else {
                continue;
            };
            let mut h = stats::Hugetlb {
                usage: util::parse_u64(&cur).unwrap_or(0),
                ..Default::default()
            };
            if let Some(ev) = self.read_opt(&format!("hugetlb.{size}.events"))? {
                h.failcnt = stats::parse_flat_keyed(&ev)
                    .get("max")
                    .copied()
                    .unwrap_or(0);
            }
            s.hugetlb.insert(size, h);
        }
        Ok(s)
    }

    /// The `events --stats` part of one cgroup v1 controller, read from its hierarchy's
    /// directory (this one) into `s`. Controllers without statistics add nothing.
    pub fn add_stats_v1(&self, controller: &str, s: &mut Stats) -> Result<()> {
        match controller {
            "cpuacct" => {
                s.cpu.usage.total = self.read_u64("cpuacct.usage")?;
                if let Some(t) = self.read_opt("cpuacct.usage_percpu")? {
                    s.cpu.usage.percpu = t
                        .split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect();
                }
                if let Some(t) = self.read_opt("cpuacct.usage_all")? {
                    // "cpu user system" header, then one line per cpu
                    for l in t.lines().skip(1) {
                        let f: Vec<u64> = l
                            .split_whitespace()
                            .filter_map(|v| v.parse().ok())
                            .collect();
                        if f.len() == 3 {
                            s.cpu.usage.percpu_user.push(f[1]);
                            s.cpu.usage.percpu_kernel.push(f[2]);
                        }
                    }
                }
                if let Some(t) = self.read_opt("cpuacct.stat")? {
                    // USER_HZ ticks to nanoseconds
                    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                        .ok()
                        .flatten()
                        .unwrap_or(100) as u64;
                    let m = stats::parse_flat_keyed(&t);
                    s.cpu.usage.user = m.get("user").copied().unwrap_or(0) * 1_000_000_000 / hz;
                    s.cpu.usage.kernel = m.get("system").copied().unwrap_or(0) * 1_000_000_000 / hz;
                }
            }
            "cpu" => {
                if let Some(t) = self.read_opt("cpu.stat")? {
                    let m = stats::parse_flat_keyed(&t);
                    let g = |k: &str| m.get(k).copied().unwrap_or(0);
                    s.cpu.throttling.periods = g("nr_periods");
                    s.cpu.throttling.throttled_periods = g("nr_throttled");
                    s.cpu.throttling.throttled_time = g("throttled_time");
                }
            }
            "cpuset" => {
                if let Some(t) = self.read_opt("cpuset.cpus")? {
                    s.cpuset.cpus = stats::parse_cpuset_list(&t);
                }
                if let Some(t) = self.read_opt("cpuset.mems")? {
                    s.cpuset.mems = stats::parse_cpuset_list(&t);
                }
                let c = &mut s.cpuset;
                for (f, v) in [
                    ("cpuset.cpu_exclusive", &mut c.cpu_exclusive),
                    ("cpuset.mem_hardwall", &mut c.mem_hardwall),
                    ("cpuset.mem_exclusive", &mut c.mem_exclusive),
                    ("cpuset.memory_migrate", &mut c.memory_migrate),
                    ("cpuset.memory_spread_page", &mut c.memory_spread_page),
                    ("cpuset.memory_spread_slab", &mut c.memory_spread_slab),
                    ("cpuset.memory_pressure", &mut c.memory_pressure),
                    ("cpuset.sched_load_balance", &mut c.sched_load_balance),
                ] {
                    *v = self.read_u64(f)?;
                }
                if let Some(t) = self.read_opt("cpuset.sched_relax_domain_level")? {
                    c.sched_relax_domain_level = t.trim().parse().unwrap_or(0);
                }
            }
            "memory" => {
                if let Some(t) = self.read_opt("memory.stat")? {
                    s.memory.raw = stats::parse_flat_keyed(&t);
                    s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
                }
                let entry = |prefix: &str| -> Result<stats::MemoryEntry> {
                    Ok(stats::MemoryEntry {
                        usage: self.read_u64(&format!("{prefix}.usage_in_bytes"))?,
                        max: self.read_u64(&format!("{prefix}.max_usage_in_bytes"))?,
                        failcnt: self.read_u64(&format!("{prefix}.failcnt"))?,
                        limit: self.read_u64(&format!("{prefix}.limit_in_bytes"))?,
                    })
                };
                s.memory.usage = entry("memory")?;
                s.memory.swap = entry("memory.memsw")?;
                s.memory.kernel = entry("memory.kmem")?;
                s.memory.kernel_tcp = entry("memory.kmem.tcp")?;
            }
            "pids" => {
                s.pids.current = self.read_u64("pids.current")?;
                let lim = self.read_u64("pids.max")?;
                s.pids.limit = if lim == u64::MAX { 0 } else { lim };
            }
            "blkio" => {
                let pick = |a: &str, b: &str| -> Result<Vec<stats::BlkioEntry>> {
                    let v = self
                        .read_opt(a)?
                        .map(|t| stats::parse_blkio_v1(&t))
                        .unwrap_or_default();
                    if !v.is_empty() {
                        return Ok(v);
                    }
                    Ok(self
                        .read_opt(b)?
                        .map(|t| stats::parse_blkio_v1(&t))
                        .unwrap_or_default())
                };
                s.blkio.io_service_bytes_recursive = pick(
                    "blkio.io_service_bytes_recursive",
                    "blkio.throttle.io_service_bytes_recursive",
                )?;
                s.blkio.io_serviced_recursive = pick(
                    "blkio.io_serviced_recursive",
                    "blkio.throttle.io_serviced_recursive",
                )?;
            }
            "hugetlb" => {
                for size in hugepage_sizes() {
                    let p = format!("hugetlb.{size}");
                    s.hugetlb.insert(
                        size,
                        stats::Hugetlb {
                            usage: self.read_u64(&format!("{p}.usage_in_bytes"))?,
                            max: self.read_u64(&format!("{p}.max_usage_in_bytes"))?,
                            failcnt: self.read_u64(&format!("{p}.failcnt"))?,
                        },
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Calls `check` with the attempt number until it holds, sleeping 200 µs, doubling up to
/// 10 ms, in between; false once `wait` passed without it.
fn wait_until(wait: Duration, mut check: impl FnMut(u32) -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(200);
    let mut n = 0u32;
    loop {
        if check(n)? {
            return Ok(true);
        }
        if start.elapsed() > wait {
            return Ok(false);
        }
        n += 1;
        sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

/// The hugepage sizes the kernel supports, as in hugetlb file names ("2MB").
fn hugepage_sizes() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| tr::hugepage_dir_to_size(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, CgroupDir) {
        let t = tempfile::Builder::new()
            .prefix("husk-test-cgdir-")
            .tempdir()
            .unwrap();
        let d = CgroupDir::new(t.path().to_path_buf());
        (t, d)
    }

    #[test]
    fn v2_freezer_state_from_cgroup_freeze_and_events() {
        let (t, d) = dir();
        for (freeze, frozen, want, any) in [
            ("0\n", "0", FreezerState::Thawed, false),
            ("1\n", "0", FreezerState::Freezing, false),
            ("1\n", "1", FreezerState::Frozen, true),
            // frozen through an ancestor: not this container's pause, but frozen all the same
            ("0\n", "1", FreezerState::Thawed, true),
        ] {
            std::fs::write(t.path().join("cgroup.freeze"), freeze).unwrap();
            std::fs::write(
                t.path().join("cgroup.events"),
                format!("populated 1\nfrozen {frozen}\n"),
            )
            .unwrap();
            let at = format!("{freeze:?} {frozen}");
            assert_eq!(d.freezer_state(Version::V2).unwrap(), want, "{at}");
            assert_eq!(d.is_frozen(Version::V2).unwrap(), any, "{at}");
        }
    }

    #[test]
    fn v1_freezer_state_as_the_kernel_says_it() {
        let (t, d) = dir();
        for (state, self_freezing, want, any) in [
            ("THAWED\n", None, FreezerState::Thawed, false),
            ("FREEZING\n", None, FreezerState::Freezing, false),
            ("FROZEN\n", Some("1\n"), FreezerState::Frozen, true),
            // frozen through an ancestor only: not this container's pause (as runc)
            ("FROZEN\n", Some("0\n"), FreezerState::Thawed, true),
        ] {
            std::fs::write(t.path().join("freezer.state"), state).unwrap();
            let _ = std::fs::remove_file(t.path().join("freezer.self_freezing"));
            if let Some(s) = self_freezing {
                std::fs::write(t.path().join("freezer.self_freezing"), s).unwrap();
            }
            let at = format!("{state:?} {self_freezing:?}");
            assert_eq!(d.freezer_state(Version::V1).unwrap(), want, "{at}");
            assert_eq!(d.is_frozen(Version::V1).unwrap(), any, "{at}");
        }
        std::fs::write(t.path().join("freezer.state"), "BOGUS").unwrap();
        let e = d.freezer_state(Version::V1).unwrap_err().to_string();
        assert!(e.contains("freezer.state") && e.contains("BOGUS"), "{e}");
    }

    #[test]
    fn oom_kill_count_per_version() {
        let (t, d) = dir();
        std::fs::write(
            t.path().join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 3\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n",
        )
        .unwrap();
        assert_eq!(d.oom_kill_count(Version::V2).unwrap(), 3);
        assert_eq!(d.oom_kill_count(Version::V1).unwrap(), 7);
        std::fs::remove_file(t.path().join("memory.events")).unwrap();
        let e = d.oom_kill_count(Version::V2).unwrap_err().to_string();
        assert!(e.contains("memory.events"), "{e}");
    }

    #[test]
    fn pids_of_the_whole_subtree() {
        let (t, d) = dir();
        std::fs::write(t.path().join("cgroup.procs"), "10\n11\n").unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::fs::write(t.path().join("sub/cgroup.procs"), "12\n").unwrap();
        // a child without cgroup.procs (gone while walking) is skipped
        std::fs::create_dir(t.path().join("gone")).unwrap();
        let mut p = d.pids().unwrap();
        p.sort();
        assert_eq!(p, [10, 11, 12]);
        std::fs::remove_file(t.path().join("cgroup.procs")).unwrap();
        assert!(
            d.pids().is_err(),
            "the top directory's cgroup.procs must exist"
        );
    }

    #[test]
    fn kill_without_cgroup_kill_says_so() {
        let (t, d) = dir();
        assert!(!d.kill().unwrap());
        std::fs::write(t.path().join("cgroup.kill"), "").unwrap();
        assert!(d.kill().unwrap());
        assert_eq!(
            std::fs::read_to_string(t.path().join("cgroup.kill")).unwrap(),
            "1"
        );
        let gone = CgroupDir::new(t.path().join("nope"));
        assert!(gone.kill().is_err());
    }

    #[test]
    fn v2_stats_from_files() {
        let (t, d) = dir();
        let w = |f: &str, v: &str| std::fs::write(t.path().join(f), v).unwrap();
        w(
            "cpu.stat",
            "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 9\n",
        );
        w("memory.stat", "file 100\nanon 7\n");
        w("memory.current", "4096\n");
        w("memory.max", "max\n");
        w("pids.current", "3\n");
        w("pids.max", "max\n");
        let s = d.stats_v2().unwrap();
        assert_eq!(s.cpu.usage.total, 5000);
        assert_eq!(s.cpu.usage.kernel, 2000);
        assert_eq!(s.cpu.throttling.periods, 9);
        assert_eq!(s.memory.cache, 100);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    }
}
