//! Tests against the real cgroup filesystem. They need root and print a skip reason otherwise.
//! Each creates its own cgroup `/husk-test-<pid>-<n>/c` and a `Guard` that kills the processes
//! it started (by pid) and removes the cgroups when the test ends, also when an assertion fails.
//! Nothing else on the machine is touched. Run with `--test-threads=1` inside the slow v2 guest.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::signal::Signal;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};

use super::util::{self, Mode};
use super::{from_state, new_manager, Manager};

static N: AtomicU32 = AtomicU32::new(0);

fn skip_unless_root(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "{test}: needs root to create cgroups, and under CI=true a root test that cannot run \
             is a failure"
        );
        crate::testing::skip(test, "needs root to create cgroups");
        return true;
    }
    if util::detect_mode().is_err() {
        crate::testing::skip(test, "no cgroup filesystem at /sys/fs/cgroup");
        return true;
    }
    false
}

struct Guard {
    mgr: Box<dyn Manager>,
    top: String,
    children: Vec<Child>,
}

impl Guard {
    fn new() -> Guard {
        let top = format!(
            "/husk-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mgr = new_manager(Some(&format!("{top}/c")), "unused", false).expect("new_manager");
        mgr.create().expect("create");
        Guard {
            mgr,
            top,
            children: Vec::new(),
        }
    }

    /// A child blocked on its stdin that runs `script` once a line arrives (after it was moved
    /// into the cgroup). Its stdout is piped.
    fn spawn_waiting(&mut self, script: &str) -> usize {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        self.children.push(child);
        self.children.len() - 1
    }

    fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    /// Let child `i` go on and collect its output.
    fn release(&mut self, i: usize) -> String {
        let c = &mut self.children[i];
        if let Some(mut stdin) = c.stdin.take() {
            let _ = stdin.write_all(b"go\n"); // EPIPE when it was killed already
        }
        let mut out = String::new();
        if let Some(mut o) = c.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        c.wait().unwrap();
        out
    }

    /// Every directory of this test's cgroups in every mounted hierarchy.
    fn all_dirs(&self) -> Vec<PathBuf> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut v = Vec::new();
        for m in util::parse_mountinfo(&mi) {
            if m.mountpoint.starts_with(util::CGROUP_ROOT) {
                v.push(util::join_under(&m.mountpoint, &self.top));
            }
        }
        v
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            // only our own children, by pid
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
        let _ = self.mgr.freeze(false);
        let _ = self.mgr.destroy();
    }
}

fn mode() -> Mode {
    util::detect_mode().unwrap()
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f))
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.join(f).display()))
        .trim()
        .to_string()
}

/// The directory of the test cgroup's leaf for a v1 controller or the v2 leaf.
fn leaf(g: &Guard, controller: &str) -> PathBuf {
    let rel = format!("{}/c", g.top);
    match mode() {
        Mode::Unified => util::join_under(Path::new(util::CGROUP_ROOT), &rel),
        Mode::Legacy => {
            let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let m = util::parse_mountinfo(&mi)
                .into_iter()
                .find(|m| m.controllers.iter().any(|c| c == controller))
                .unwrap_or_else(|| panic!("{controller} not mounted"));
            util::join_under(&m.mountpoint, &rel)
        }
    }
}

fn basic_resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * 1024 * 1024i64)
                .reservation(32 * 1024 * 1024i64)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[test]
fn lifecycle_apply_freeze_kill_destroy() {
    if skip_unless_root("lifecycle_apply_freeze_kill_destroy") {
        return;
    }
    let mut g = Guard::new();
    g.mgr.apply(&basic_resources()).expect("apply");

    match mode() {
        Mode::Legacy => {
            let mem = leaf(&g, "memory");
            assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
            assert_eq!(read(&mem, "memory.soft_limit_in_bytes"), "33554432");
            assert_eq!(read(&leaf(&g, "pids"), "pids.max"), "20");
            let cpu = leaf(&g, "cpu");
            assert_eq!(read(&cpu, "cpu.shares"), "512");
            assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
            let list = read(&leaf(&g, "devices"), "devices.list");
            assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
            assert!(list.lines().any(|l| l == "c 136:* rwm"), "{list}");
            assert!(!list.lines().any(|l| l == "a *:* rwm"), "{list}");
        }
        Mode::Unified => {
            let d = leaf(&g, "");
            assert_eq!(read(&d, "memory.max"), "67108864");
            assert_eq!(read(&d, "memory.low"), "33554432");
            assert_eq!(read(&d, "pids.max"), "20");
            assert_eq!(read(&d, "cpu.weight"), "59");
            assert_eq!(read(&d, "cpu.max"), "50000 100000");
            let fd = g.mgr.clone_into_fd().expect("clone_into_fd");
            assert_eq!(
                std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap(),
                d
            );
            let flags = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
            let flags = flags
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .unwrap();
            let flags = u32::from_str_radix(flags.trim(), 8).unwrap();
            assert_ne!(flags & libc::O_PATH as u32, 0, "not O_PATH: {flags:o}");
            assert_eq!(g.mgr.clone_into_fd(), Some(fd), "cached");
        }
    }

    // a process moved in; it checks device access from inside
    let i = g.spawn_waiting(
        "cat /proc/self/cgroup; \
         (exec 3</dev/null) 2>/dev/null && echo null-ok || echo null-denied; \
         (exec 3</dev/kmsg) 2>/dev/null && echo kmsg-ok || echo kmsg-denied; \
         exec sleep 100",
    );
    let pid = g.pid(i);
    g.mgr.place(pid).expect("place");
    assert!(g.mgr.pids().unwrap().contains(&pid));
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("{}/c", g.top)), "{cg}");

    // release it and read its first lines without waiting for the sleep
    let mut stdin = g.children[i].stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut stdout = g.children[i].stdout.take().unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 4096];
    while !out.contains("kmsg-") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "child ended early: {out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("kmsg-denied"), "{out}");

    // the sh exec'd sleep by now or soon: wait until the cgroup has exactly our pid
    g.mgr.freeze(true).expect("freeze");
    assert!(g.mgr.is_frozen().unwrap());
    if mode() == Mode::Legacy {
        assert_eq!(read(&leaf(&g, "freezer"), "freezer.state"), "FROZEN");
    }
    g.mgr.freeze(false).expect("thaw");
    assert!(!g.mgr.is_frozen().unwrap());

    // stats see the process
    let st = g.mgr.stats().expect("stats");
    assert!(st.pids.current >= 1, "{st:?}");
    assert_eq!(st.pids.limit, 20);
    assert_eq!(st.memory.usage.limit, 64 * 1024 * 1024);
    assert!(st.cpu.usage.total > 0, "{:?}", st.cpu);
    assert!(!st.memory.raw.is_empty());
    assert!(st.memory.usage.usage > 0, "{:?}", st.memory.usage);
    if mode() == Mode::Legacy {
        assert!(!st.cpu.usage.percpu.is_empty());
        assert!(!st.cpuset.cpus.is_empty(), "{:?}", st.cpuset);
        assert_eq!(st.cpuset.sched_load_balance, 1);
        assert!(
            st.memory.raw.contains_key("total_rss"),
            "{:?}",
            st.memory.raw.keys()
        );
    } else {
        assert!(
            st.memory.raw.contains_key("anon"),
            "{:?}",
            st.memory.raw.keys()
        );
    }
    let j = serde_json::to_value(&st).unwrap();
    assert!(j["memory"]["usage"].get("limit").is_some());

    g.mgr.kill_all(Signal::SIGKILL).expect("kill_all");
    let status = g.children[i].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // the kernel takes a moment to empty the cgroup; destroy retries on EBUSY
    g.mgr.destroy().expect("destroy");
    for d in g.all_dirs() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
}

#[test]
fn kill_all_freezes_and_signals_with_other_signals() {
    if skip_unless_root("kill_all_freezes_and_signals_with_other_signals") {
        return;
    }
    let mut g = Guard::new();
    let a = g.spawn_waiting("exec sleep 100");
    let b = g.spawn_waiting("exec sleep 100");
    for i in [a, b] {
        g.mgr.place(g.pid(i)).unwrap();
    }
    let mut pids = g.mgr.pids().unwrap();
    pids.sort();
    let mut want = vec![g.pid(a), g.pid(b)];
    want.sort();
    assert_eq!(pids, want);
    // SIGTERM goes through freeze + signal + thaw on v1 and v2
    g.mgr.kill_all(Signal::SIGTERM).unwrap();
    use std::os::unix::process::ExitStatusExt;
    for i in [a, b] {
        assert_eq!(g.children[i].wait().unwrap().signal(), Some(libc::SIGTERM));
    }
    assert!(!g.mgr.is_frozen().unwrap());
}

#[test]
fn errors_name_the_field_and_file() {
    if skip_unless_root("errors_name_the_field_and_file") {
        return;
    }
    let g = Guard::new();
    let r = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("4095").build().unwrap())
        .build()
        .unwrap();
    let e = g.mgr.apply(&r).unwrap_err().to_string();
    let cpuset_file = leaf(&g, "cpuset").join("cpuset.cpus");
    assert!(
        e.starts_with(&format!(
            "linux.resources.cpu.cpus: writing \"4095\" to {}: ",
            cpuset_file.display()
        )),
        "{e}"
    );
    assert!(!e.contains("os error"), "{e}");

    // spec validation errors name the field too
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().swap(10i64).build().unwrap())
        .build()
        .unwrap();
    let e = g.mgr.update(&r).unwrap_err().to_string();
    if mode() == Mode::Unified {
        assert!(e.starts_with("linux.resources.memory.swap: "), "{e}");
    } else {
        // v1 writes memsw as given and the kernel refuses 10 < memory limit
        assert!(
            e.starts_with("linux.resources.memory.swap: writing \"10\""),
            "{e}"
        );
    }
}

#[test]
fn memory_limit_below_usage_is_busy_on_v1() {
    if skip_unless_root("memory_limit_below_usage_is_busy_on_v1") {
        return;
    }
    if mode() != Mode::Legacy {
        crate::testing::skip(
            "memory_limit_below_usage_is_busy_on_v1",
            "v2 OOM-kills instead of EBUSY",
        );
        return;
    }
    let mut g = Guard::new();
    // a process that has touched some memory inside the cgroup
    let i =
        g.spawn_waiting("x=$(head -c 2000000 /dev/zero | tr '\\0' a); echo ready; exec sleep 100");
    g.mgr.place(g.pid(i)).unwrap();
    let mut stdin = g.children[i].stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut line = [0u8; 6];
    g.children[i]
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(1i64).build().unwrap())
        .build()
        .unwrap();
    let e = g.mgr.update(&r).unwrap_err().to_string();
    let f = leaf(&g, "memory").join("memory.limit_in_bytes");
    assert_eq!(
        e,
        format!(
            "linux.resources.memory.limit: writing \"1\" to {}: Device or resource busy",
            f.display()
        )
    );
}

#[test]
fn missing_controller_only_matters_when_set() {
    if skip_unless_root("missing_controller_only_matters_when_set") {
        return;
    }
    let g = Guard::new();
    let has_hugetlb = match mode() {
        Mode::Legacy => std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(",hugetlb"),
        Mode::Unified => std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap()
            .contains("hugetlb"),
    };
    if has_hugetlb {
        crate::testing::skip(
            "missing_controller_only_matters_when_set",
            "this host has hugetlb",
        );
        return;
    }
    // unset (empty list): fine
    let r = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![])
        .build()
        .unwrap();
    g.mgr.update(&r).unwrap();
    // set: an error naming the field
    let r = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(1 << 21)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    let e = g.mgr.update(&r).unwrap_err().to_string();
    assert!(e.starts_with("linux.resources.hugepageLimits"), "{e}");

    // net_cls: v1 errors when it is set and not mounted (runc); v2 has no such controller and
    // runc's fs2 driver ignores the field
    let net_cls_mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(",net_cls");
    let r = LinuxResourcesBuilder::default()
        .network(
            oci_spec::runtime::LinuxNetworkBuilder::default()
                .class_id(0x100001u32)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    match (mode(), net_cls_mounted) {
        (Mode::Legacy, false) => {
            let e = g.mgr.update(&r).unwrap_err().to_string();
            assert!(
                e.starts_with("linux.resources.network.classID: cannot set net_cls"),
                "{e}"
            );
        }
        (Mode::Legacy, true) => {
            g.mgr.update(&r).unwrap();
            assert_eq!(read(&leaf(&g, "net_cls"), "net_cls.classid"), "1048577");
        }
        (Mode::Unified, _) => g.mgr.update(&r).unwrap(),
    }
}

#[test]
fn update_leaves_devices_and_other_values() {
    if skip_unless_root("update_leaves_devices_and_other_values") {
        return;
    }
    let g = Guard::new();
    g.mgr.apply(&basic_resources()).unwrap();
    let r = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(-1i64).build().unwrap())
        .build()
        .unwrap();
    g.mgr.update(&r).unwrap();
    match mode() {
        Mode::Legacy => {
            assert_eq!(read(&leaf(&g, "pids"), "pids.max"), "max");
            assert_eq!(
                read(&leaf(&g, "memory"), "memory.limit_in_bytes"),
                "67108864"
            );
            let list = read(&leaf(&g, "devices"), "devices.list");
            assert!(!list.lines().any(|l| l == "a *:* rwm"), "{list}");
        }
        Mode::Unified => {
            let d = leaf(&g, "");
            assert_eq!(read(&d, "pids.max"), "max");
            assert_eq!(read(&d, "memory.max"), "67108864");
        }
    }
    // devices on update: the new rule joins the defaults (v1: by transition, no reset)
    let kmsg_read = oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(oci_spec::runtime::LinuxDeviceType::C)
        .major(1i64)
        .minor(11i64)
        .access("r")
        .build()
        .unwrap();
    let r = LinuxResourcesBuilder::default()
        .devices(vec![kmsg_read])
        .build()
        .unwrap();
    g.mgr.update(&r).unwrap();
    if mode() == Mode::Legacy {
        let list = read(&leaf(&g, "devices"), "devices.list");
        let mut got: Vec<&str> = list.lines().collect();
        got.sort();
        let mut want = vec![
            "b *:* m",
            "c *:* m",
            "c 1:11 r",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 10:200 rwm",
            "c 136:* rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
        ];
        want.sort();
        assert_eq!(got, want);
    }

    // unified is v2 only
    let mut u = HashMap::new();
    u.insert("pids.max".to_string(), "7".to_string());
    let r = LinuxResourcesBuilder::default().unified(u).build().unwrap();
    match mode() {
        Mode::Legacy => {
            let e = g.mgr.update(&r).unwrap_err().to_string();
            assert!(e.starts_with("linux.resources.unified"), "{e}");
        }
        Mode::Unified => {
            g.mgr.update(&r).unwrap();
            assert_eq!(read(&leaf(&g, ""), "pids.max"), "7");
            // several lines are written one by one; a missing controller is named
            let mut u = HashMap::new();
            u.insert("memory.high".to_string(), "50000000\n".to_string());
            u.insert("hugetlb.2MB.max".to_string(), "0".to_string());
            let r = LinuxResourcesBuilder::default().unified(u).build().unwrap();
            let e = g.mgr.update(&r).unwrap_err().to_string();
            assert!(
                e.starts_with("linux.resources.unified.\"hugetlb.2MB.max\": writing \"0\"")
                    && e.ends_with("(controller \"hugetlb\" not available in this cgroup)"),
                "{e}"
            );
            let mut u = HashMap::new();
            u.insert("memory.high".to_string(), "50000000\n".to_string());
            let r = LinuxResourcesBuilder::default().unified(u).build().unwrap();
            g.mgr.update(&r).unwrap();
            assert_eq!(read(&leaf(&g, ""), "memory.high"), "49999872");
            let mut u = HashMap::new();
            u.insert("../x".to_string(), "1".to_string());
            let r = LinuxResourcesBuilder::default().unified(u).build().unwrap();
            assert!(g.mgr.update(&r).is_err());
        }
    }
}

#[test]
fn swap_and_io_translations_land_in_files() {
    if skip_unless_root("swap_and_io_translations_land_in_files") {
        return;
    }
    let g = Guard::new();
    let mem = LinuxMemoryBuilder::default()
        .limit(64 << 20)
        .swap(96 << 20)
        .build()
        .unwrap();
    // a throttle on the device backing / if it is a block device we can name
    let dev = std::fs::metadata("/").map(|m| {
        use std::os::unix::fs::MetadataExt;
        let d = m.dev();
        (libc::major(d) as i64, libc::minor(d) as i64)
    });
    let r = LinuxResourcesBuilder::default()
        .memory(mem)
        .build()
        .unwrap();
    let swap_ok = match g.mgr.apply(&r) {
        Ok(()) => true,
        Err(e) => {
            // no swap accounting on this host: the error must still name the field
            let e = e.to_string();
            assert!(e.starts_with("linux.resources.memory.swap"), "{e}");
            false
        }
    };
    if swap_ok {
        match mode() {
            Mode::Legacy => assert_eq!(
                read(&leaf(&g, "memory"), "memory.memsw.limit_in_bytes"),
                (96u64 << 20).to_string()
            ),
            Mode::Unified => assert_eq!(
                read(&leaf(&g, ""), "memory.swap.max"),
                (32u64 << 20).to_string()
            ),
        }
    }
    if let Ok((maj, min)) = dev {
        let r = LinuxResourcesBuilder::default()
            .block_io(
                LinuxBlockIoBuilder::default()
                    .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                        .major(maj)
                        .minor(min)
                        .rate(1_048_576u64)
                        .build()
                        .unwrap()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        match g.mgr.update(&r) {
            Ok(()) => {
                let (dir, file) = match mode() {
                    Mode::Legacy => (leaf(&g, "blkio"), "blkio.throttle.read_bps_device"),
                    Mode::Unified => (leaf(&g, ""), "io.max"),
                };
                let v = read(&dir, file);
                assert!(v.contains(&format!("{maj}:{min}")), "{file}: {v}");
            }
            // / on an overlay or a virtual fs has no block device to throttle
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.starts_with("linux.resources.blockIO.throttleReadBpsDevice[0]"),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn state_roundtrip_finds_the_same_cgroup() {
    if skip_unless_root("state_roundtrip_finds_the_same_cgroup") {
        return;
    }
    let mut g = Guard::new();
    let st = g.mgr.state();
    assert_eq!(st.path, format!("{}/c", g.top));
    let json = serde_json::to_string(&st).unwrap();
    let m2 = from_state(&serde_json::from_str(&json).unwrap()).unwrap();
    let i = g.spawn_waiting("exec sleep 100");
    g.mgr.place(g.pid(i)).unwrap();
    assert_eq!(m2.pids().unwrap(), vec![g.pid(i)]);
    if mode() == Mode::Unified {
        // exec into an existing container: the fd is opened on demand
        let fd = m2.clone_into_fd().expect("clone_into_fd from state");
        assert_eq!(
            std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap(),
            leaf(&g, "")
        );
    } else {
        assert_eq!(m2.clone_into_fd(), None);
    }
    m2.kill_all(Signal::SIGKILL).unwrap();
    g.release(i);
    // the manager from the state removes the leaf (it did not create the parent)
    m2.destroy().unwrap();
    match mode() {
        Mode::Legacy => {
            assert!(!leaf(&g, "devices").exists());
            assert!(!leaf(&g, "memory").exists());
        }
        Mode::Unified => assert!(!leaf(&g, "").exists()),
    }
}

#[test]
fn oom_kill_is_counted() {
    if skip_unless_root("oom_kill_is_counted") {
        return;
    }
    let mut g = Guard::new();
    // swap == limit: no swap to escape to (v1 memsw, v2 memory.swap.max 0)
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(16 << 20)
                .swap(16 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.mgr.apply(&r).unwrap();
    assert_eq!(g.mgr.oom_kill_count().unwrap(), 0);
    let i = g.spawn_waiting("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived");
    g.mgr.place(g.pid(i)).unwrap();
    let out = g.release(i);
    assert!(!out.contains("survived"), "{out}");
    assert!(g.mgr.oom_kill_count().unwrap() >= 1);
}

#[test]
fn v2_device_program_is_replaced_not_stacked() {
    if skip_unless_root("v2_device_program_is_replaced_not_stacked") {
        return;
    }
    if mode() != Mode::Unified {
        crate::testing::skip(
            "v2_device_program_is_replaced_not_stacked",
            "cgroup v1 host",
        );
        return;
    }
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;
    use std::os::fd::AsFd;
    let g = Guard::new();
    let count = || {
        let fd = nix::fcntl::open(
            &leaf(&g, ""),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        super::devices::attached_count(fd.as_fd()).unwrap()
    };
    assert_eq!(count(), 0);
    g.mgr.apply(&LinuxResources::default()).unwrap();
    assert_eq!(count(), 1);
    let deny = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let r = LinuxResourcesBuilder::default()
        .devices(vec![deny])
        .build()
        .unwrap();
    g.mgr.update(&r).unwrap();
    assert_eq!(count(), 1);
    g.mgr.update(&r).unwrap();
    assert_eq!(count(), 1);
    // an update without devices leaves the program alone
    g.mgr
        .update(&LinuxResourcesBuilder::default().build().unwrap())
        .unwrap();
    assert_eq!(count(), 1);
}

#[test]
fn v2_default_path_is_below_the_parent_of_the_own_cgroup() {
    if skip_unless_root("v2_default_path_is_below_the_parent_of_the_own_cgroup") {
        return;
    }
    if mode() != Mode::Unified {
        // on v1 the own cgroups belong to the host's services; the relative resolution is
        // covered by the v1 unit tests instead
        crate::testing::skip(
            "v2_default_path_is_below_the_parent_of_the_own_cgroup",
            "cgroup v1 host",
        );
        return;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    let parent = Path::new(&own)
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let id = format!("husk-test-{}-default", std::process::id());
    let mgr = new_manager(None, &id, false).unwrap();
    let want = parent.join(&id);
    assert_eq!(mgr.state().path, want.to_string_lossy());
    mgr.create().unwrap();
    let dir = util::join_under(Path::new(util::CGROUP_ROOT), &want.to_string_lossy());
    let existed = dir.exists();
    mgr.destroy().unwrap();
    assert!(existed);
    assert!(!dir.exists());
}

#[test]
fn nested_cgroups_are_seen_killed_and_removed() {
    if skip_unless_root("nested_cgroups_are_seen_killed_and_removed") {
        return;
    }
    let mut g = Guard::new();
    // what a container with its own cgroup namespace might do: a child cgroup with a process
    let sub = leaf(&g, "devices").join("inner");
    std::fs::create_dir(&sub).unwrap();
    let i = g.spawn_waiting("exec sleep 100");
    let pid = g.pid(i);
    g.mgr.place(pid).unwrap();
    util::write_pid(&sub, pid).unwrap();
    assert_eq!(g.mgr.pids().unwrap(), vec![pid]);
    g.mgr.kill_all(Signal::SIGKILL).unwrap();
    g.release(i);
    g.mgr.destroy().unwrap();
    assert!(!sub.exists());
    for d in g.all_dirs() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
}

#[test]
fn shared_parent_survives_the_first_destroy() {
    if skip_unless_root("shared_parent_survives_the_first_destroy") {
        return;
    }
    // two containers below one new parent, in one process: the first destroy must not wait
    // for or fail on the parent the second still uses
    let a = Guard::new();
    let b_mgr = new_manager(Some(&format!("{}/d", a.top)), "unused", false).unwrap();
    b_mgr.create().unwrap();
    let t = std::time::Instant::now();
    a.mgr.destroy().unwrap();
    assert!(t.elapsed() < std::time::Duration::from_millis(500));
    assert!(leaf(&a, "devices").parent().unwrap().join("d").exists());
    b_mgr.destroy().unwrap();
    // the parent belongs to a's manager; its Drop removes it
}

#[test]
fn cpu_realtime_and_idle_follow_runc() {
    if skip_unless_root("cpu_realtime_and_idle_follow_runc") {
        return;
    }
    let g = Guard::new();
    let d = leaf(&g, "cpu");
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .idle(1i64)
                .realtime_period(100_000u64)
                .realtime_runtime(5000i64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    match mode() {
        Mode::Unified => {
            if !d.join("cpu.idle").exists() {
                crate::testing::skip(
                    "cpu_realtime_and_idle_follow_runc",
                    "no cpu.idle in this kernel",
                );
                return;
            }
            // runc's fs2 setCPU: the real-time fields are ignored (no such files on v2), and
            // cpu.weight is not written for an idle group (the kernel refuses it with EINVAL)
            g.mgr.update(&r).unwrap();
            assert_eq!(read(&d, "cpu.idle"), "1");
        }
        Mode::Legacy => {
            if !d.join("cpu.idle").exists() {
                crate::testing::skip(
                    "cpu_realtime_and_idle_follow_runc",
                    "no cpu.idle in this kernel",
                );
                return;
            }
            // the real-time limits need a budget in every ancestor (the test cgroup is nested
            // below one without): they are read back in a container, tests/cgroups.rs
            let r = LinuxResourcesBuilder::default()
                .cpu(
                    LinuxCpuBuilder::default()
                        .shares(512u64)
                        .idle(1i64)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap();
            g.mgr.update(&r).unwrap();
            assert_eq!(read(&d, "cpu.idle"), "1");
        }
    }
}

#[test]
fn memory_use_hierarchy_is_ignored_as_runc() {
    if skip_unless_root("memory_use_hierarchy_is_ignored_as_runc") {
        return;
    }
    let g = Guard::new();
    // runc has no such field; kernels >= 5.16 would refuse "0" if it were written
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .use_hierarchy(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.mgr.update(&r).unwrap();
    let (d, f) = match mode() {
        Mode::Unified => (leaf(&g, "memory"), "memory.max"),
        Mode::Legacy => (leaf(&g, "memory"), "memory.limit_in_bytes"),
    };
    assert_eq!(read(&d, f), (64u64 << 20).to_string());
}

/// `util::cgroup_mounts` keeps its parse while the mount table stays as it was, and reads
/// again after a mount or an unmount: a cgroup hierarchy bound elsewhere appears and goes. In a
/// child of its own mount namespace (nothing of the machine's is mounted or unmounted).
#[test]
fn cgroup_mounts_follow_the_mount_table() {
    let name = concat!(module_path!(), "::cgroup_mounts_follow_the_mount_table");
    if skip_unless_root(name) {
        return;
    }
    crate::security::test_support::in_child(name, || {
        use anyhow::{ensure, Context};
        use nix::mount::{mount, umount, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        let none: Option<&str> = None;
        mount(none, "/", none, MsFlags::MS_PRIVATE | MsFlags::MS_REC, none)?;
        let first = util::cgroup_mounts()?;
        let again = util::cgroup_mounts()?;
        ensure!(
            std::sync::Arc::ptr_eq(&first, &again),
            "unchanged table read again"
        );
        let some = first.first().context("no cgroup mount")?.mountpoint.clone();
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("bound");
        std::fs::create_dir(&target)?;
        mount(Some(&some), &target, none, MsFlags::MS_BIND, none)?;
        let bound = util::cgroup_mounts()?;
        ensure!(
            bound.iter().any(|m| m.mountpoint == target),
            "{} (bound from {}) missing after the mount: {bound:?}",
            target.display(),
            some.display()
        );
        ensure!(std::sync::Arc::ptr_eq(&bound, &util::cgroup_mounts()?));
        umount(&target)?;
        let after = util::cgroup_mounts()?;
        ensure!(
            !after.iter().any(|m| m.mountpoint == target) && *after == *first,
            "after the unmount: {after:?}"
        );
        Ok(())
    });
}
