//! cgroup v1 (and hybrid: v1 controllers plus a cgroup2 at /sys/fs/cgroup/unified). Follows
//! runc's fs driver: one directory per mounted hierarchy runc knows, name=systemd and, on a
//! hybrid host, the unified hierarchy joined too (runc's `NameGroup{GroupName: ""}`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDevice, LinuxResources};

use super::devices::{self, Policy};
use super::dir::{CgroupDir, Version};
use super::stats::Stats;
use super::translate as tr;
use super::util::{self, read_file, read_opt, write_file};
use super::{CgroupState, FreezerState, Manager};

/// The controllers runc's fs driver manages (plus name=systemd and misc, which it joins).
const KNOWN: &[&str] = &[
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "misc",
    "name=systemd",
];

#[derive(Debug, Clone)]
struct Hier {
    /// Controllers as /proc/self/cgroup lists them ("cpu,cpuacct"); "" = hybrid cgroup2.
    key: String,
    controllers: Vec<String>,
    /// Path relative to the hierarchy root.
    rel: String,
    dir: CgroupDir,
}

pub struct V1Manager {
    hiers: Vec<Hier>,
    /// O_PATH fd of the hybrid cgroup2 leaf, for clone3 CLONE_INTO_CGROUP.
    unified_fd: std::cell::OnceCell<std::os::fd::OwnedFd>,
    /// The common path stored in the state.
    path: String,
    created: RefCell<Vec<PathBuf>>,
}

impl V1Manager {
    /// `inner` absolute or relative to husk's own cgroup in each hierarchy. `overrides`: per
    /// hierarchy paths from a saved state.
    pub fn new(inner: &str, overrides: &BTreeMap<String, String>) -> Result<V1Manager> {
        let mounts = util::cgroup_mounts()
            .map_err(|e| anyhow!("reading /proc/self/mountinfo: {}", util::errstr(&e)))?;
        let own = if inner.starts_with('/') {
            Vec::new()
        } else {
            let t = std::fs::read_to_string("/proc/self/cgroup")
                .map_err(|e| anyhow!("reading /proc/self/cgroup: {}", util::errstr(&e)))?;
            crate::sys::procfmt::proc_cgroup(&t)
        };
        Self::from_parts(inner, overrides, &mounts, &own)
    }

    fn from_parts(
        inner: &str,
        overrides: &BTreeMap<String, String>,
        mounts: &[util::CgroupMount],
        own: &[crate::sys::procfmt::CgroupLine],
    ) -> Result<V1Manager> {
        let mut hiers: Vec<Hier> = Vec::new();
        for m in mounts {
            let (key, controllers) = if m.v2 {
                // the hybrid unified hierarchy, only at its standard place
                if m.mountpoint != Path::new("/sys/fs/cgroup/unified") {
                    continue;
                }
                (String::new(), Vec::new())
            } else {
                if !m.controllers.iter().any(|c| KNOWN.contains(&c.as_str())) {
                    continue;
                }
                (m.controllers.join(","), m.controllers.clone())
            };
            if hiers.iter().any(|h| h.key == key) {
                continue; // the same hierarchy mounted twice
            }
            let (rel, dir) = if let Some(p) = overrides.get(&key) {
                (p.clone(), util::join_under(&m.mountpoint, p))
            } else if inner.starts_with('/') {
                (inner.to_string(), util::join_under(&m.mountpoint, inner))
            } else {
                // the same set of controllers, in whatever order the two files list them
                let ownp = own
                    .iter()
                    .find(|l| {
                        let c = &l.controllers;
                        if key.is_empty() {
                            c.is_empty()
                        } else {
                            !c.is_empty() && same_set(c, &controllers)
                        }
                    })
                    .map(|l| l.path.as_str())
                    .ok_or_else(|| anyhow!("no {key:?} entry in /proc/self/cgroup"))?;
                let rel = util::clean_path(&format!("{}/{}", ownp.trim_end_matches('/'), inner));
                // below the mount: strip the mount's own root
                let below = rel
                    .strip_prefix(m.root.trim_end_matches('/'))
                    .filter(|_| m.root != "/")
                    .unwrap_or(&rel)
                    .to_string();
                let dir = util::join_under(&m.mountpoint, &below);
                (rel, dir)
            };
            hiers.push(Hier {
                key,
                controllers,
                rel,
                dir: CgroupDir::new(dir),
            });
        }
        if !hiers.iter().any(|h| h.has("devices")) {
            // runc: "the non-presence of the devices subsystem is considered fatal for security
            // reasons"
            bail!("the devices cgroup controller is not mounted; refusing to run a container without device access control");
        }
        // the state's path: the one most hierarchies share
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for h in &hiers {
            *counts.entry(h.rel.as_str()).or_default() += 1;
        }
        let path = counts
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        Ok(V1Manager {
            hiers,
            unified_fd: std::cell::OnceCell::new(),
            path,
            created: RefCell::new(Vec::new()),
        })
    }

    fn hier(&self, controller: &str) -> Option<&Hier> {
        self.hiers.iter().find(|h| h.has(controller))
    }

    /// The hierarchy of a controller, or runc's error for a limit that needs a controller the
    /// host does not have mounted.
    fn hier_for(&self, controller: &str, field: &str) -> Result<&Hier> {
        self.hier(controller).ok_or_else(|| {
            anyhow!("{field}: cannot set {controller} limit: the {controller} cgroup controller is not mounted on this host")
        })
    }

    /// The directory of a controller (see [`V1Manager::hier_for`]).
    fn dir_for(&self, controller: &str, field: &str) -> Result<&Path> {
        self.hier_for(controller, field).map(|h| h.dir.path())
    }

    /// `fresh`: the cgroup was just created (apply) rather than updated while running.
    fn apply_inner(
        &self,
        r: &LinuxResources,
        dev_rules: Option<Vec<devices::Rule>>,
        fresh: bool,
    ) -> Result<()> {
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            bail!(
                "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1"
            );
        }
        if let Some(rules) = dev_rules {
            let dir = self.dir_for("devices", "linux.resources.devices")?;
            // consecutive lines for the same file share one open file
            let target =
                Policy::build(&rules).map_err(|e| anyhow!("linux.resources.devices: {e}"))?;
            let writes = if fresh {
                target.v1_writes()
            } else {
                // a running container: no deny-all moment (runc's emulator transition)
                let cur = read_file(dir, "devices.list")?;
                target.v1_transition(Policy::from_v1_list(&cur).as_ref())
            };
            let mut i = 0;
            while i < writes.len() {
                let file = writes[i].0;
                let n = writes[i..].iter().take_while(|w| w.0 == file).count();
                let lines: Vec<String> = writes[i..i + n].iter().map(|w| w.1.clone()).collect();
                util::write_lines(dir, file, &lines, "linux.resources.devices")?;
                i += n;
            }
        }
        if let Some(m) = r.memory() {
            self.set_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.set_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            if let Some(v) = tr::pids_max(p.limit()) {
                let f = "linux.resources.pids.limit";
                write_file(self.dir_for("pids", f)?, "pids.max", &v, f)?;
            }
        }
        if let Some(b) = r.block_io() {
            self.set_blkio(b)?;
        }
        if let Some(h) = r.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
            let dir = self.dir_for("hugetlb", "linux.resources.hugepageLimits")?;
            for (i, l) in h.iter().enumerate() {
                let field = format!("linux.resources.hugepageLimits[{i}]");
                let size = tr::hugepage_size(l.page_size())
                    .map_err(|e| anyhow!("{field}.pageSize: {e}"))?;
                let v = l.limit().to_string();
                write_file(dir, &format!("hugetlb.{size}.limit_in_bytes"), &v, &field)?;
                let rsvd = dir.join(format!("hugetlb.{size}.rsvd.limit_in_bytes"));
                util::write_if_present(&rsvd, &v, &field)?;
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id().filter(|id| *id != 0) {
                let f = "linux.resources.network.classID";
                write_file(
                    self.dir_for("net_cls", f)?,
                    "net_cls.classid",
                    &id.to_string(),
                    f,
                )?;
            }
            if let Some(prios) = n.priorities().as_deref().filter(|p| !p.is_empty()) {
                let dir = self.dir_for("net_prio", "linux.resources.network.priorities")?;
                for (i, p) in prios.iter().enumerate() {
                    let line = format!("{} {}", p.name(), p.priority());
                    write_file(
                        dir,
                        "net_prio.ifpriomap",
                        &line,
                        &format!("linux.resources.network.priorities[{i}]"),
                    )?;
                }
            }
        }
        if let Some(rd) = r.rdma().as_ref().filter(|r| !r.is_empty()) {
            let dir = self.dir_for("rdma", "linux.resources.rdma")?;
            let mut devs: Vec<_> = rd.iter().collect();
            devs.sort_by(|a, b| a.0.cmp(b.0));
            for (dev, l) in devs {
                if let Some(line) = tr::rdma_line(dev, l.hca_handles(), l.hca_objects()) {
                    write_file(
                        dir,
                        "rdma.max",
                        &line,
                        &format!("linux.resources.rdma.{dev}"),
                    )?;
                }
            }
        }
        Ok(())
    }

    fn set_memory(&self, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some();
        if !any {
            return Ok(());
        }
        let dir = self.dir_for("memory", "linux.resources.memory")?;
        let limit = m.limit().unwrap_or(0);
        let mut swap = m.swap().unwrap_or(0);
        // runc: memory -1 with swap unset also makes swap unlimited (when swap accounting exists)
        if limit == -1 && swap == 0 && dir.join("memory.memsw.limit_in_bytes").exists() {
            swap = -1;
        }
        if m.check_before_update() == Some(true) && limit > 0 {
            if let Some(cur) = read_opt(dir, "memory.usage_in_bytes")?
                .as_deref()
                .and_then(util::parse_u64)
            {
                if (limit as u64) < cur {
                    bail!("linux.resources.memory.limit: rejecting memory limit {limit} below current usage {cur} (checkBeforeUpdate)");
                }
            }
        }
        let set_mem = |v: i64| -> Result<()> {
            write_file(
                dir,
                "memory.limit_in_bytes",
                &v.to_string(),
                "linux.resources.memory.limit",
            )
        };
        let set_swap = |v: i64| -> Result<()> {
            write_file(
                dir,
                "memory.memsw.limit_in_bytes",
                &v.to_string(),
                "linux.resources.memory.swap",
            )
        };
        if limit != 0 && swap != 0 {
            // memsw must stay >= memory at every step: pick the order by the current limit
            let cur = read_file(dir, "memory.limit_in_bytes")?;
            let cur = util::parse_u64(&cur).unwrap_or(u64::MAX);
            if swap == -1 || cur < swap as u64 {
                set_swap(swap)?;
                set_mem(limit)?;
            } else {
                set_mem(limit)?;
                set_swap(swap)?;
            }
        } else {
            if limit != 0 {
                set_mem(limit)?;
            }
            if swap != 0 {
                set_swap(swap)?;
            }
        }
        if let Some(v) = m.reservation().filter(|v| *v != 0) {
            write_file(
                dir,
                "memory.soft_limit_in_bytes",
                &v.to_string(),
                "linux.resources.memory.reservation",
            )?;
        }
        // memory.kernel: runc >= 1.2 ignores kernel memory limits (the kernel deprecated and
        // then removed memory.kmem.limit_in_bytes), and so does husk.
        if let Some(v) = m.kernel_tcp().filter(|v| *v != 0) {
            write_file(
                dir,
                "memory.kmem.tcp.limit_in_bytes",
                &v.to_string(),
                "linux.resources.memory.kernelTCP",
            )?;
        }
        if m.disable_oom_killer() == Some(true) {
            write_file(
                dir,
                "memory.oom_control",
                "1",
                "linux.resources.memory.disableOOMKiller",
            )?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                bail!("linux.resources.memory.swappiness: invalid value {s}, valid range is 0-100");
            }
            write_file(
                dir,
                "memory.swappiness",
                &s.to_string(),
                "linux.resources.memory.swappiness",
            )?;
        }
        // memory.useHierarchy: runc never writes memory.use_hierarchy (its spec conversion has no
        // such field), and kernels >= 5.16 refuse "0" anyway (always hierarchical); ignored.
        Ok(())
    }

    fn set_cpu(&self, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
        let cpu_any = c.shares().unwrap_or(0) != 0
            || c.quota().unwrap_or(0) != 0
            || c.period().unwrap_or(0) != 0
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_runtime().unwrap_or(0) != 0
            || c.realtime_period().unwrap_or(0) != 0;
        if cpu_any {
            let dir = self.dir_for("cpu", "linux.resources.cpu")?;
            if let Some(s) = c.shares().filter(|s| *s != 0) {
                let f = "linux.resources.cpu.shares";
                write_file(dir, "cpu.shares", &s.to_string(), f)?;
                // the kernel clamps silently; runc reads back and reports the clamp
                let got = util::parse_u64(&read_file(dir, "cpu.shares")?).unwrap_or(0);
                if got != s {
                    if s > got {
                        bail!("{f}: the maximum allowed cpu-shares is {got}");
                    }
                    bail!("{f}: the minimum allowed cpu-shares is {got}");
                }
            }
            let quota = c.quota().unwrap_or(0);
            let mut retry_period = None;
            if let Some(p) = c.period().filter(|p| *p != 0) {
                let f = "linux.resources.cpu.period";
                let pv = p.to_string();
                if let Err(e) = util::write_path(&dir.join("cpu.cfs_period_us"), &pv) {
                    // a smaller period can be refused (EINVAL) until the quota is set; runc
                    // retries after the quota
                    if e.raw_os_error() == Some(libc::EINVAL) && quota != 0 {
                        retry_period = Some(pv);
                    } else {
                        bail!(
                            "{f}: writing {pv:?} to {}: {}",
                            dir.join("cpu.cfs_period_us").display(),
                            util::errstr(&e)
                        );
                    }
                }
            }
            if quota != 0 {
                write_file(
                    dir,
                    "cpu.cfs_quota_us",
                    &quota.to_string(),
                    "linux.resources.cpu.quota",
                )?;
                if let Some(pv) = retry_period {
                    write_file(dir, "cpu.cfs_period_us", &pv, "linux.resources.cpu.period")?;
                }
            }
            if let Some(b) = c.burst() {
                write_file(
                    dir,
                    "cpu.cfs_burst_us",
                    &b.to_string(),
                    "linux.resources.cpu.burst",
                )?;
            }
            if let Some(i) = c.idle() {
                write_file(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
            }
            // rt period and runtime depend on each other: a period the kernel refuses (EINVAL)
            // while a runtime is also being set is retried after the runtime, as runc does
            let rt_runtime = c.realtime_runtime().unwrap_or(0);
            let mut retry_rt_period = None;
            if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
                let pv = p.to_string();
                let file = dir.join("cpu.rt_period_us");
                if let Err(e) = util::write_path(&file, &pv) {
                    if e.raw_os_error() == Some(libc::EINVAL) && rt_runtime != 0 {
                        retry_rt_period = Some(pv);
                    } else {
                        bail!(
                            "linux.resources.cpu.realtimePeriod: writing {pv:?} to {}: {}",
                            file.display(),
                            util::errstr(&e)
                        );
                    }
                }
            }
            if rt_runtime != 0 {
                write_file(
                    dir,
                    "cpu.rt_runtime_us",
                    &rt_runtime.to_string(),
                    "linux.resources.cpu.realtimeRuntime",
                )?;
                if let Some(pv) = retry_rt_period {
                    write_file(
                        dir,
                        "cpu.rt_period_us",
                        &pv,
                        "linux.resources.cpu.realtimePeriod",
                    )?;
                }
            }
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            let f = "linux.resources.cpu.cpus";
            write_file(self.dir_for("cpuset", f)?, "cpuset.cpus", s, f)?;
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            let f = "linux.resources.cpu.mems";
            write_file(self.dir_for("cpuset", f)?, "cpuset.mems", s, f)?;
        }
        Ok(())
    }

    fn set_blkio(&self, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
        let wd = b.weight_device().as_deref().unwrap_or(&[]);
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "throttleReadBpsDevice",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "throttleWriteBpsDevice",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "throttleReadIOPSDevice",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "throttleWriteIOPSDevice",
            ),
        ];
        let any = b.weight().unwrap_or(0) != 0
            || b.leaf_weight().unwrap_or(0) != 0
            || !wd.is_empty()
            || throttles
                .iter()
                .any(|t| t.0.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        let dir = self.dir_for("blkio", "linux.resources.blockIO")?;
        // CFQ's blkio.weight, or BFQ's blkio.bfq.weight on kernels without CFQ (runc does this)
        let weight_file = if dir.join("blkio.weight").exists() {
            "blkio.weight"
        } else {
            "blkio.bfq.weight"
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write_file(
                dir,
                weight_file,
                &w.to_string(),
                "linux.resources.blockIO.weight",
            )?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write_file(
                dir,
                "blkio.leaf_weight",
                &w.to_string(),
                "linux.resources.blockIO.leafWeight",
            )?;
        }
        let wdev_file = if weight_file == "blkio.weight" {
            "blkio.weight_device"
        } else {
            "blkio.bfq.weight_device"
        };
        for (i, d) in wd.iter().enumerate() {
            if let Some(w) = d.weight() {
                let line = format!("{}:{} {}", d.major(), d.minor(), w);
                write_file(
                    dir,
                    wdev_file,
                    &line,
                    &format!("linux.resources.blockIO.weightDevice[{i}].weight"),
                )?;
            }
            if let Some(w) = d.leaf_weight() {
                let line = format!("{}:{} {}", d.major(), d.minor(), w);
                write_file(
                    dir,
                    "blkio.leaf_weight_device",
                    &line,
                    &format!("linux.resources.blockIO.weightDevice[{i}].leafWeight"),
                )?;
            }
        }
        for (list, file, name) in throttles {
            for (i, d) in list.as_deref().unwrap_or(&[]).iter().enumerate() {
                let line = format!("{}:{} {}", d.major(), d.minor(), d.rate());
                write_file(
                    dir,
                    file,
                    &line,
                    &format!("linux.resources.blockIO.{name}[{i}]"),
                )?;
            }
        }
        Ok(())
    }

    /// The ancestors a create made, as state.json recorded them (see `CgroupState::created`).
    pub fn adopt_created(self, dirs: &[PathBuf]) -> Self {
        let ok: Vec<PathBuf> = dirs
            .iter()
            .filter(|d| {
                self.hiers
                    .iter()
                    .any(|h| util::created_ancestor(h.dir.path(), &h.rel, d))
            })
            .cloned()
            .collect();
        *self.created.borrow_mut() = ok;
        self
    }

    fn freezer(&self) -> Result<&CgroupDir> {
        self.hier("freezer")
            .map(|h| &h.dir)
            .ok_or_else(|| anyhow!("the freezer cgroup controller is not mounted"))
    }
}

/// A cpuset cgroup starts with empty `cpuset.cpus`/`cpuset.mems` and accepts no task (ENOSPC),
/// and so does every cgroup below one that is empty. runc's cpusetEnsureParent: top-down from
/// the hierarchy's root to `dir` (`rel` below it), every level whose value is empty gets its
/// parent's, whoever made it (a pod cgroup or a --cgroup-parent someone else created with
/// mkdir) and whatever the other one is.
fn fill_empty_cpusets(dir: &Path, rel: &str) -> Result<()> {
    let depth = rel.split('/').filter(|c| !c.is_empty()).count();
    let mut levels: Vec<&Path> = dir.ancestors().take(depth).collect();
    levels.reverse();
    for d in levels {
        let Some(parent) = d.parent() else { continue };
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if !read_file(d, f)?.trim().is_empty() {
                continue;
            }
            let v = read_file(parent, f)?;
            let v = v.trim();
            if !v.is_empty() {
                write_file(d, f, v, "cpuset (copying the parent's)")?;
            }
        }
    }
    Ok(())
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

impl Hier {
    fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }
}

impl Manager for V1Manager {
    fn create(&self) -> Result<()> {
        let mut all_created: Vec<PathBuf> = Vec::new();
        let res = (|| -> Result<()> {
            for h in &self.hiers {
                let created = util::mkdir_all(h.dir.path())?;
                all_created.extend(created);
                if h.has("cpuset") {
                    fill_empty_cpusets(h.dir.path(), &h.rel)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            for d in all_created.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e);
        }
        self.created.borrow_mut().extend(all_created);
        Ok(())
    }

    fn apply_limits(&self, resources: &LinuxResources, devs: &[LinuxDevice]) -> Result<()> {
        let rules = super::device_rules(resources, devs)?;
        self.apply_inner(resources, Some(rules), true)
    }

    fn update(&self, resources: &LinuxResources) -> Result<()> {
        let rules = match resources.devices() {
            Some(_) => Some(super::device_rules(resources, &[])?),
            None => None,
        };
        self.apply_inner(resources, rules, false)
    }

    fn self_placement(&self) -> Option<(Option<std::os::fd::RawFd>, Vec<PathBuf>)> {
        use std::os::fd::AsRawFd;
        let mut fd = None;
        let mut files = Vec::new();
        for h in &self.hiers {
            if h.key.is_empty() {
                // the hybrid cgroup2 hierarchy has no `tasks`: clone straight into it
                let f = match self.unified_fd.get() {
                    Some(f) => f,
                    None => {
                        let f = nix::fcntl::open(
                            h.dir.path(),
                            nix::fcntl::OFlag::O_PATH
                                | nix::fcntl::OFlag::O_DIRECTORY
                                | nix::fcntl::OFlag::O_CLOEXEC,
                            nix::sys::stat::Mode::empty(),
                        )
                        .ok()?;
                        self.unified_fd.get_or_init(|| f)
                    }
                };
                fd = Some(f.as_raw_fd());
            } else {
                files.push(h.dir.path().join("tasks"));
            }
        }
        Some((fd, files))
    }

    fn place(&self, pid: i32) -> Result<()> {
        for h in &self.hiers {
            h.dir.place(pid)?;
        }
        Ok(())
    }

    fn exists(&self) -> bool {
        self.hiers.iter().any(|h| h.dir.exists())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        // runc reads the devices hierarchy (always present)
        self.hier("devices").unwrap_or(&self.hiers[0]).dir.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.freezer()?.freeze(Version::V1, frozen)
    }

    fn freeze_within(&self, wait: std::time::Duration) -> Result<bool> {
        self.freezer()?.freeze_within(Version::V1, true, wait)
    }

    fn is_frozen(&self) -> Result<bool> {
        self.freezer()?.is_frozen(Version::V1)
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        self.freezer()?.freezer_state(Version::V1)
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        super::freeze_signal_thaw(self, signal)
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for h in &self.hiers {
            if let Err(e) = util::remove_cgroup_tree(h.dir.path()) {
                first_err.get_or_insert(e);
            }
        }
        let created = self.created.borrow();
        let leaves: Vec<&Path> = self.hiers.iter().map(|h| h.dir.path()).collect();
        for d in created
            .iter()
            .rev()
            .filter(|d| !leaves.contains(&d.as_path()))
        {
            if let Err(e) = util::rmdir_ancestor(d) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        for c in [
            "cpuacct", "cpu", "cpuset", "memory", "pids", "blkio", "hugetlb",
        ] {
            if let Some(h) = self.hier(c) {
                h.dir.add_stats_v1(c, &mut s)?;
            }
        }
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        self.hier_for("memory", "oom events")?
            .dir
            .oom_kill_count(Version::V1)
    }

    fn state(&self) -> CgroupState {
        let paths = self
            .hiers
            .iter()
            .filter(|h| h.rel != self.path)
            .map(|h| (h.key.clone(), h.rel.clone()))
            .collect();
        let leaves: Vec<&Path> = self.hiers.iter().map(|h| h.dir.path()).collect();
        CgroupState {
            driver: "v1".into(),
            path: self.path.clone(),
            paths,
            created: self
                .created
                .borrow()
                .iter()
                .filter(|d| !leaves.contains(&d.as_path()))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cpusets_filled_top_down() {
        let t = tempfile::tempdir().unwrap();
        let w = |d: &Path, cpus: &str, mems: &str| {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("cpuset.cpus"), cpus).unwrap();
            std::fs::write(d.join("cpuset.mems"), mems).unwrap();
        };
        let r = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        let root = t.path();
        let (pod, other, ctr) = (
            root.join("pod"),
            root.join("pod/other"),
            root.join("pod/ctr"),
        );
        w(root, "0-3\n", "0\n");
        // a parent someone made with mkdir: empty cpus, mems already set
        w(&pod, "\n", "0\n");
        w(&other, "1\n", "\n");
        w(&ctr, "", "");
        fill_empty_cpusets(&ctr, "/pod/ctr").unwrap();
        assert_eq!(r(&pod, "cpuset.cpus"), "0-3");
        assert_eq!(r(&pod, "cpuset.mems"), "0\n");
        assert_eq!(
            (r(&ctr, "cpuset.cpus"), r(&ctr, "cpuset.mems")),
            ("0-3".into(), "0".into())
        );
        // siblings and the root are not touched
        assert_eq!(r(&other, "cpuset.mems"), "\n");
        assert_eq!(r(root, "cpuset.cpus"), "0-3\n");
    }

    const MI: &str = "\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/foo rw - cgroup cgroup rw,name=foo
";

    #[test]
    fn hierarchies_absolute() {
        let m = V1Manager::from_parts(
            "/husk/c1",
            &BTreeMap::new(),
            &util::parse_mountinfo(MI),
            &[],
        )
        .unwrap();
        let dirs: Vec<_> = m
            .hiers
            .iter()
            .map(|h| h.dir.path().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            dirs,
            vec![
                "/sys/fs/cgroup/cpu,cpuacct/husk/c1",
                "/sys/fs/cgroup/memory/husk/c1",
                "/sys/fs/cgroup/devices/husk/c1",
                "/sys/fs/cgroup/systemd/husk/c1",
                "/sys/fs/cgroup/unified/husk/c1",
            ]
        );
        let st = m.state();
        assert_eq!(st.path, "/husk/c1");
        assert!(st.paths.is_empty());
        let e = m
            .dir_for("hugetlb", "linux.resources.hugepageLimits")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.resources.hugepageLimits: cannot set hugetlb limit"),
            "{e}"
        );
    }

    #[test]
    fn hierarchies_relative() {
        let own = crate::sys::procfmt::proc_cgroup(
            "4:memory:/process_api/x\n3:devices:/\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n",
        );
        let m = V1Manager::from_parts("c1", &BTreeMap::new(), &util::parse_mountinfo(MI), &own)
            .unwrap();
        assert_eq!(
            m.hier("memory").unwrap().dir.path(),
            Path::new("/sys/fs/cgroup/memory/process_api/x/c1")
        );
        assert_eq!(
            m.hier("devices").unwrap().dir.path(),
            Path::new("/sys/fs/cgroup/devices/c1")
        );
        let st = m.state();
        assert_eq!(st.path, "/c1");
        assert_eq!(st.paths.len(), 1);
        assert_eq!(st.paths["memory"], "/process_api/x/c1");
        // and back from the state
        let m2 =
            V1Manager::from_parts(&st.path, &st.paths, &util::parse_mountinfo(MI), &[]).unwrap();
        assert_eq!(
            m2.hier("memory").unwrap().dir,
            m.hier("memory").unwrap().dir
        );
        assert_eq!(m2.hier("cpu").unwrap().dir, m.hier("cpu").unwrap().dir);
    }

    #[test]
    fn combined_net_cls_net_prio() {
        // systemd's layout: net_cls and net_prio in one hierarchy, symlinks beside it (symlinks
        // are not mounts); the controllers may be listed in either order
        let mi = format!(
            "{MI}45 31 0:40 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio\n"
        );
        let own = crate::sys::procfmt::proc_cgroup(
            "6:net_prio,net_cls:/n/x\n4:memory:/\n3:devices:/\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n",
        );
        let m = V1Manager::from_parts("c1", &BTreeMap::new(), &util::parse_mountinfo(&mi), &own)
            .unwrap();
        let want = PathBuf::from("/sys/fs/cgroup/net_cls,net_prio/n/x/c1");
        assert_eq!(m.hier("net_cls").unwrap().dir.path(), want);
        assert_eq!(m.hier("net_prio").unwrap().dir.path(), want);
        assert_eq!(
            m.dir_for("net_prio", "linux.resources.network.priorities")
                .unwrap(),
            want.as_path()
        );
        // one hierarchy, one directory: created, joined and removed once
        assert_eq!(m.hiers.iter().filter(|h| h.has("net_cls")).count(), 1);
        let st = m.state();
        assert_eq!(st.paths["net_cls,net_prio"], "/n/x/c1");
        let m2 =
            V1Manager::from_parts(&st.path, &st.paths, &util::parse_mountinfo(&mi), &[]).unwrap();
        assert_eq!(m2.hier("net_prio").unwrap().dir.path(), want);
    }

    #[test]
    fn freezer_state_as_the_kernel_says_it() {
        use crate::cgroups::FreezerState;
        let t = tempfile::tempdir().unwrap();
        let root = t.path().display();
        let mi = format!(
            "40 31 0:41 / {root}/freezer rw - cgroup cgroup rw,freezer\n\
             41 31 0:42 / {root}/devices rw - cgroup cgroup rw,devices\n"
        );
        let m = V1Manager::from_parts("/x", &BTreeMap::new(), &util::parse_mountinfo(&mi), &[])
            .unwrap();
        let dir = t.path().join("freezer/x");
        std::fs::create_dir_all(&dir).unwrap();
        for (state, self_freezing, want) in [
            ("THAWED\n", None, FreezerState::Thawed),
            ("FREEZING\n", None, FreezerState::Freezing),
            ("FROZEN\n", Some("1\n"), FreezerState::Frozen),
            // frozen through an ancestor only: not this container's pause (as runc)
            ("FROZEN\n", Some("0\n"), FreezerState::Thawed),
        ] {
            std::fs::write(dir.join("freezer.state"), state).unwrap();
            let _ = std::fs::remove_file(dir.join("freezer.self_freezing"));
            if let Some(s) = self_freezing {
                std::fs::write(dir.join("freezer.self_freezing"), s).unwrap();
            }
            assert_eq!(
                m.freezer_state().unwrap(),
                want,
                "{state:?} {self_freezing:?}"
            );
        }
        std::fs::write(dir.join("freezer.state"), "BOGUS").unwrap();
        assert!(m.freezer_state().is_err());
    }

    #[test]
    fn no_devices_is_fatal() {
        let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let e = V1Manager::from_parts("/x", &BTreeMap::new(), &util::parse_mountinfo(mi), &[])
            .err()
            .unwrap();
        assert!(e.to_string().contains("devices"));
    }
}
