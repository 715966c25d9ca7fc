//! cgroup v2 (unified hierarchy at /sys/fs/cgroup). Follows runc's fs2 driver.

use std::cell::{OnceCell, RefCell};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{open, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDevice, LinuxResources};

use super::devices::{self, Policy};
use super::dir::{CgroupDir, Version};
use super::stats::Stats;
use super::translate as tr;
use super::util::{self, read_file, read_opt, CGROUP_ROOT};
use super::{CgroupState, FreezerState, Manager};

pub struct V2Manager {
    /// Path below the hierarchy root, "/a/b".
    rel: String,
    dir: CgroupDir,
    /// Directories this manager created (top-down), removed by destroy.
    created: RefCell<Vec<PathBuf>>,
    /// O_PATH fd of the leaf for CLONE_INTO_CGROUP.
    path_fd: OnceCell<OwnedFd>,
}

impl V2Manager {
    /// `inner`: absolute (below /sys/fs/cgroup) or relative to the parent of husk's own cgroup.
    pub fn new(inner: &str) -> Result<V2Manager> {
        let rel = if inner.starts_with('/') {
            inner.to_string()
        } else {
            let own = std::fs::read_to_string("/proc/self/cgroup")
                .map_err(|e| anyhow!("reading /proc/self/cgroup: {}", util::errstr(&e)))?;
            let own = crate::sys::procfmt::proc_cgroup(&own)
                .into_iter()
                .find(|l| l.controllers.is_empty())
                .map(|l| l.path)
                .ok_or_else(|| anyhow!("no cgroup v2 entry in /proc/self/cgroup"))?;
            let parent = Path::new(&own)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".to_string());
            util::clean_path(&format!("{}/{}", parent.trim_end_matches('/'), inner))
        };
        let dir = CgroupDir::new(util::join_under(Path::new(CGROUP_ROOT), &rel));
        Ok(V2Manager {
            rel,
            dir,
            created: RefCell::new(Vec::new()),
            path_fd: OnceCell::new(),
        })
    }

    /// The cached O_PATH fd of the leaf, opened on first use.
    fn open_path_fd(&self) -> Result<RawFd> {
        if let Some(fd) = self.path_fd.get() {
            return Ok(fd.as_raw_fd());
        }
        let fd = open(
            self.dir.path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| anyhow!("opening {}: {}", self.dir.path().display(), e.desc()))?;
        Ok(self.path_fd.get_or_init(|| fd).as_raw_fd())
    }

    fn field_write(&self, file: &str, value: &str, field: &str) -> Result<()> {
        self.dir.write(file, value, field)
    }

    /// Make sure every ancestor of the leaf has the root's controllers enabled in
    /// cgroup.subtree_control (runc enables all of them). Pre-existing ancestors are only
    /// written when a controller is missing; created ones get them all in one write.
    fn enable_controllers(&self, created: &[PathBuf]) -> Result<()> {
        let root = Path::new(CGROUP_ROOT);
        let mut ancestors: Vec<&Path> = self.dir.path().ancestors().skip(1).collect();
        ancestors.retain(|a| a.starts_with(root));
        ancestors.reverse(); // root first
        let mut available: Vec<String> = read_file(root, "cgroup.controllers")?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for a in ancestors {
            let is_new = created.iter().any(|c| c == a);
            let mut enabled: Vec<String> = if is_new {
                Vec::new()
            } else {
                read_opt(a, "cgroup.subtree_control")?
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            };
            let missing: Vec<String> = available
                .iter()
                .filter(|c| !enabled.contains(c))
                .cloned()
                .collect();
            if !missing.is_empty() {
                let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
                let p = a.join("cgroup.subtree_control");
                if util::write_path(&p, &all.join(" ")).is_ok() {
                    enabled.extend(missing);
                } else {
                    // one by one, ignoring failures as runc does: a controller that cannot be
                    // enabled shows up later as a missing file when a limit needs it
                    for c in missing {
                        if util::write_path(&p, &format!("+{c}")).is_ok() {
                            enabled.push(c);
                        }
                    }
                }
            }
            // what the next level down can have
            available = enabled;
        }
        Ok(())
    }

    fn apply_inner(&self, r: &LinuxResources, dev_rules: Option<Vec<devices::Rule>>) -> Result<()> {
        if let Some(m) = r.memory() {
            if m.check_before_update() == Some(true) {
                if let Some(limit) = m.limit().filter(|l| *l > 0) {
                    if let Some(cur) = self
                        .dir
                        .read_opt("memory.current")?
                        .as_deref()
                        .and_then(util::parse_u64)
                    {
                        if (limit as u64) < cur {
                            bail!("linux.resources.memory.limit: rejecting memory limit {limit} below current usage {cur} (checkBeforeUpdate)");
                        }
                    }
                }
            }
            let swap = tr::swap_to_v2(m.swap(), m.limit())
                .map_err(|e| anyhow!("linux.resources.memory.swap: {e}"))?;
            if let Some(s) = swap {
                let v = tr::v2_limit(s);
                if let Err(e) =
                    self.field_write("memory.swap.max", &v, "linux.resources.memory.swap")
                {
                    // runc: without swap accounting, silently ignore "max" and "0"
                    let absent = !self.dir.path().join("memory.swap.max").exists();
                    if !(absent && (v == "max" || v == "0")) {
                        return Err(e);
                    }
                }
            }
            if let Some(l) = m.limit().filter(|l| *l != 0) {
                self.field_write(
                    "memory.max",
                    &tr::v2_limit(l),
                    "linux.resources.memory.limit",
                )?;
            }
            if let Some(l) = m.reservation().filter(|l| *l != 0) {
                self.field_write(
                    "memory.low",
                    &tr::v2_limit(l),
                    "linux.resources.memory.reservation",
                )?;
            }
            // kernel, kernelTCP, swappiness, disableOOMKiller, useHierarchy have no cgroup v2
            // file; runc's fs2 driver ignores them too.
        }
        if let Some(c) = r.cpu() {
            if let Some(idle) = c.idle() {
                self.field_write("cpu.idle", &idle.to_string(), "linux.resources.cpu.idle")?;
            }
            // the kernel refuses cpu.weight on an idle group; runc skips it (fs2 setCPU)
            let w = tr::shares_to_weight(c.shares().unwrap_or(0));
            if w != 0 && c.idle().unwrap_or(0) == 0 {
                self.field_write("cpu.weight", &w.to_string(), "linux.resources.cpu.shares")?;
            }
            if let Some(v) = tr::cpu_max(c.quota(), c.period()) {
                self.field_write("cpu.max", &v, "linux.resources.cpu.quota")?;
            }
            if let Some(b) = c.burst() {
                self.field_write("cpu.max.burst", &b.to_string(), "linux.resources.cpu.burst")?;
            }
            if c.realtime_runtime().unwrap_or(0) != 0 || c.realtime_period().unwrap_or(0) != 0 {
                // cgroup v2 has no real-time group bandwidth files. runc's fs2 driver ignores
                // these fields (setCPU never looks at them, no validation refuses them), so
                // husk does too, but says so (ARCHITECTURE.md, cgroups).
                crate::logging::warn("linux.resources.cpu.realtimeRuntime/realtimePeriod ignored: cgroup v2 has no real-time group scheduling limits (as runc)");
            }
            if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                self.field_write("cpuset.cpus", s, "linux.resources.cpu.cpus")?;
            }
            if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                self.field_write("cpuset.mems", s, "linux.resources.cpu.mems")?;
            }
        }
        if let Some(p) = r.pids() {
            if let Some(v) = tr::pids_max(p.limit()) {
                self.field_write("pids.max", &v, "linux.resources.pids.limit")?;
            }
        }
        if let Some(b) = r.block_io() {
            let wd = b.weight_device().as_deref().unwrap_or(&[]);
            let bfq = self.dir.path().join("io.bfq.weight");
            let has_bfq = (b.weight().unwrap_or(0) != 0 || !wd.is_empty()) && bfq.exists();
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                if has_bfq {
                    self.field_write(
                        "io.bfq.weight",
                        &w.to_string(),
                        "linux.resources.blockIO.weight",
                    )?;
                } else {
                    let v = tr::blkio_weight_to_io_weight(w);
                    self.field_write(
                        "io.weight",
                        &v.to_string(),
                        "linux.resources.blockIO.weight",
                    )?;
                }
            }
            if has_bfq {
                for (i, d) in wd.iter().enumerate() {
                    if let Some(w) = d.weight() {
                        let line = format!("{}:{} {}", d.major(), d.minor(), w);
                        self.field_write(
                            "io.bfq.weight",
                            &line,
                            &format!("linux.resources.blockIO.weightDevice[{i}]"),
                        )?;
                    }
                }
            }
            // without BFQ, per-device weights have no v2 file; runc ignores them as well
            let throttles = [
                (
                    b.throttle_read_bps_device(),
                    "rbps",
                    "throttleReadBpsDevice",
                ),
                (
                    b.throttle_write_bps_device(),
                    "wbps",
                    "throttleWriteBpsDevice",
                ),
                (
                    b.throttle_read_iops_device(),
                    "riops",
                    "throttleReadIOPSDevice",
                ),
                (
                    b.throttle_write_iops_device(),
                    "wiops",
                    "throttleWriteIOPSDevice",
                ),
            ];
            for (list, key, name) in throttles {
                for (i, d) in list.as_deref().unwrap_or(&[]).iter().enumerate() {
                    let line = format!("{}:{} {}={}", d.major(), d.minor(), key, d.rate());
                    self.field_write(
                        "io.max",
                        &line,
                        &format!("linux.resources.blockIO.{name}[{i}]"),
                    )?;
                }
            }
        }
        if let Some(h) = r.hugepage_limits() {
            for (i, l) in h.iter().enumerate() {
                let field = format!("linux.resources.hugepageLimits[{i}]");
                let size = tr::hugepage_size(l.page_size())
                    .map_err(|e| anyhow!("{field}.pageSize: {e}"))?;
                let v = l.limit().to_string();
                self.field_write(&format!("hugetlb.{size}.max"), &v, &field)?;
                // reservation limits where the kernel has them (runc does the same)
                let rsvd = self.dir.path().join(format!("hugetlb.{size}.rsvd.max"));
                util::write_if_present(&rsvd, &v, &field)?;
            }
        }
        if let Some(rd) = r.rdma() {
            let mut devs: Vec<_> = rd.iter().collect();
            devs.sort_by(|a, b| a.0.cmp(b.0));
            for (dev, l) in devs {
                if let Some(line) = tr::rdma_line(dev, l.hca_handles(), l.hca_objects()) {
                    self.field_write("rdma.max", &line, &format!("linux.resources.rdma.{dev}"))?;
                }
            }
        }
        // linux.resources.network (net_cls/net_prio) has no cgroup v2 equivalent; runc's fs2
        // driver ignores it as well.
        if let Some(u) = r.unified() {
            let mut keys: Vec<_> = u.iter().collect();
            keys.sort();
            for (k, v) in keys {
                let field = format!("linux.resources.unified.{k:?}");
                if k.contains('/') || k.starts_with('.') || k.is_empty() {
                    bail!("{field}: must be a file name (no slashes)");
                }
                if !k.contains('.') {
                    bail!("{field}: must be in the form CONTROLLER.PARAMETER");
                }
                // one write per line, as runc's WriteFileByLine (e.g. several io.max devices)
                let p = self.dir.path().join(k);
                for line in v.split('\n').filter(|l| !l.is_empty()) {
                    if let Err(e) = util::write_path(&p, line) {
                        let hint = if e.kind() == std::io::ErrorKind::NotFound {
                            let ctrl = k.split('.').next().unwrap_or("");
                            format!(" (controller {ctrl:?} not available in this cgroup)")
                        } else {
                            String::new()
                        };
                        bail!(
                            "{field}: writing {line:?} to {}: {}{hint}",
                            p.display(),
                            util::errstr(&e)
                        );
                    }
                }
            }
        }
        if let Some(rules) = dev_rules {
            self.set_devices(&rules)?;
        }
        Ok(())
    }

    fn set_devices(&self, rules: &[devices::Rule]) -> Result<()> {
        let policy = Policy::build(rules).map_err(|e| anyhow!("linux.resources.devices: {e}"))?;
        let dirfd = open(
            self.dir.path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            anyhow!(
                "linux.resources.devices: opening {}: {}",
                self.dir.path().display(),
                e.desc()
            )
        })?;
        if policy.is_allow_all() {
            return devices::detach_all(dirfd.as_fd()).context("linux.resources.devices");
        }
        let prog =
            devices::load_program(&policy.bpf_program()).context("linux.resources.devices")?;
        devices::attach_replacing(dirfd.as_fd(), prog.as_fd())
            .with_context(|| format!("linux.resources.devices: {}", self.dir.path().display()))
    }
}

impl V2Manager {
    /// The ancestors a create made, as state.json recorded them (see `CgroupState::created`).
    pub fn adopt_created(self, dirs: &[PathBuf]) -> Self {
        let ok: Vec<PathBuf> = dirs
            .iter()
            .filter(|d| util::created_ancestor(self.dir.path(), &self.rel, d))
            .cloned()
            .collect();
        *self.created.borrow_mut() = ok;
        self
    }
}

impl Manager for V2Manager {
    fn create(&self) -> Result<()> {
        let created = util::mkdir_all(self.dir.path())?;
        if let Err(e) = self.enable_controllers(&created) {
            for c in created.iter().rev() {
                let _ = std::fs::remove_dir(c);
            }
            return Err(e);
        }
        self.created.borrow_mut().extend(created);
        self.open_path_fd()?;
        Ok(())
    }

    fn apply_limits(&self, resources: &LinuxResources, devs: &[LinuxDevice]) -> Result<()> {
        let rules = super::device_rules(resources, devs)?;
        self.apply_inner(resources, Some(rules))
    }

    fn update(&self, resources: &LinuxResources) -> Result<()> {
        let rules = match resources.devices() {
            Some(_) => Some(super::device_rules(resources, &[])?),
            None => None,
        };
        self.apply_inner(resources, rules)
    }

    fn delegate(&self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        util::delegate(self.dir.path(), uid, gid)
    }

    fn place(&self, pid: i32) -> Result<()> {
        self.dir.place(pid)
    }

    fn clone_into_fd(&self) -> Option<RawFd> {
        // opened by create(); a manager from the state (exec) opens it on first use
        self.open_path_fd().ok()
    }

    fn exists(&self) -> bool {
        self.dir.exists()
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.dir.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.dir.freeze(Version::V2, frozen)
    }

    fn freeze_within(&self, wait: std::time::Duration) -> Result<bool> {
        self.dir.freeze_within(Version::V2, true, wait)
    }

    fn is_frozen(&self) -> Result<bool> {
        self.dir.is_frozen(Version::V2)
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        self.dir.freezer_state(Version::V2)
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL && self.dir.kill()? {
            return Ok(());
        }
        super::freeze_signal_thaw(self, signal)
    }

    fn destroy(&self) -> Result<()> {
        util::remove_cgroup_tree(self.dir.path())?;
        let created = self.created.borrow();
        for d in created
            .iter()
            .rev()
            .filter(|d| d.as_path() != self.dir.path())
        {
            util::rmdir_ancestor(d)?;
        }
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        self.dir.stats_v2()
    }

    fn oom_kill_count(&self) -> Result<u64> {
        self.dir.oom_kill_count(Version::V2)
    }

    fn state(&self) -> CgroupState {
        CgroupState {
            driver: "v2".into(),
            path: self.rel.clone(),
            created: self
                .created
                .borrow()
                .iter()
                .filter(|d| d.as_path() != self.dir.path())
                .cloned()
                .collect(),
            ..Default::default()
        }
    }
}
