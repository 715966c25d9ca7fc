//! Container-level cgroup tests on the host (cgroupfs driver; v1/hybrid or v2, whichever the
//! host is): values given in config.json read back from inside the container, resources the
//! host lacks are refused by name, `update` changes live values, pause/resume freeze the
//! processes, `events --stats` reports usage in runc's schema.
//!
//! The cgroup v2 and systemd variants of these checks run in User-mode Linux guests
//! (`integration/vm/run.sh`, `make vm-test`).
mod common;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

macro_rules! root_or_skip {
    ($name:expr) => {
        if !require_root($name) {
            return;
        }
    };
}

fn unified() -> bool {
    // statfs magic is not reachable without libc here; the v2 root has cgroup.controllers
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Whether the host has a v1 hierarchy for `controller` mounted (or it is in v2's root).
fn host_has(controller: &str) -> bool {
    if unified() {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == controller)
    } else {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" - cgroup "))
            .any(|l| {
                l.rsplit(' ')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .any(|o| o == controller)
            })
    }
}

/// A v1 controller file path inside the container, or the v2 one.
fn cg_file(v1_ctrl: &str, v1: &str, v2: &str) -> String {
    if unified() {
        format!("/sys/fs/cgroup/{v2}")
    } else {
        format!("/sys/fs/cgroup/{v1_ctrl}/{v1}")
    }
}

/// The probe reporting `files` (plus its defaults) from inside the container.
fn probe_files(c: &mut Ctr, files: &[String]) -> Value {
    let mut args = vec!["/probe".to_string()];
    for f in files {
        args.push("--cgroup-file".into());
        args.push(f.clone());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    c.args(&a);
    c.run_probe()["cgroup_files"].clone()
}

#[test]
fn limits_read_back_inside() {
    root_or_skip!("limits_read_back_inside");
    let mut c = Ctr::new("cglimits", "cgroups");
    let r = &mut c.config["linux"]["resources"];
    r["memory"] = json!({"limit": 100 << 20, "reservation": 50 << 20});
    r["pids"] = json!({"limit": 42});
    r["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    let mut want: Vec<(String, String)> = Vec::new();
    let v2 = unified();
    want.push((
        cg_file("memory", "memory.limit_in_bytes", "memory.max"),
        (100u64 << 20).to_string(),
    ));
    want.push((
        cg_file("memory", "memory.soft_limit_in_bytes", "memory.low"),
        (50u64 << 20).to_string(),
    ));
    want.push((cg_file("pids", "pids.max", "pids.max"), "42".into()));
    if v2 {
        want.push((cg_file("cpu", "", "cpu.weight"), "59".into()));
        want.push((cg_file("cpu", "", "cpu.max"), "50000 100000".into()));
    } else {
        want.push((cg_file("cpu", "cpu.shares", ""), "512".into()));
        want.push((cg_file("cpu", "cpu.cfs_quota_us", ""), "50000".into()));
        want.push((cg_file("cpu", "cpu.cfs_period_us", ""), "100000".into()));
    }
    if host_has("cpuset") {
        r["cpu"]["cpus"] = json!("0");
        r["cpu"]["mems"] = json!("0");
        want.push((cg_file("cpuset", "cpuset.cpus", "cpuset.cpus"), "0".into()));
        want.push((cg_file("cpuset", "cpuset.mems", "cpuset.mems"), "0".into()));
    } else {
        skip(
            "limits_read_back_inside/cpuset",
            "host has no cpuset controller",
        );
    }
    // blkio weight needs a weight file (CFQ/BFQ on v1, io.weight or io.bfq.weight on v2)
    let blkio_weight = if v2 {
        ["io.weight", "io.bfq.weight"]
            .into_iter()
            .find(|f| Path::new("/sys/fs/cgroup").join(f).exists() || host_has("io"))
            .map(|_| {
                (
                    "/sys/fs/cgroup/io.weight".to_string(),
                    "default 4950".to_string(),
                )
            })
    } else {
        ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| Path::new("/sys/fs/cgroup/blkio").join(f).exists())
            .map(|f| (format!("/sys/fs/cgroup/blkio/{f}"), "500".to_string()))
    };
    match blkio_weight {
        Some(w) => {
            r["blockIO"] = json!({"weight": 500});
            want.push(w);
        }
        None => skip(
            "limits_read_back_inside/blkio.weight",
            "the host's blkio controller has no weight file (no CFQ/BFQ scheduler)",
        ),
    }
    let files: Vec<String> = want.iter().map(|(f, _)| f.clone()).collect();
    let got = probe_files(&mut c, &files);
    for (f, v) in &want {
        // io.weight reads "default N"; memory.soft_limit is page-aligned already
        assert_eq!(
            got[f].as_str(),
            Some(v.as_str()),
            "{f} inside the container: {got}"
        );
    }
}

#[test]
fn hugetlb_without_controller_is_refused_by_name() {
    root_or_skip!("hugetlb_without_controller_is_refused_by_name");
    if host_has("hugetlb") {
        skip(
            "hugetlb_without_controller_is_refused_by_name",
            "the host has a hugetlb controller",
        );
        return;
    }
    let mut c = Ctr::new("cghuge", "cgroups");
    c.config["linux"]["resources"]["hugepageLimits"] =
        json!([{"pageSize": "2MB", "limit": 2097152}]);
    c.args(&["/bin/true"]);
    let o = c.run();
    assert!(
        !o.status.success(),
        "hugetlb limit accepted on a host without hugetlb"
    );
    let msg = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(
        msg.contains("hugepageLimits") || msg.contains("hugetlb"),
        "error does not name the resource: {msg}"
    );
}

/// A detached container running a counter loop into /tmp/c of its rootfs.
fn counter(tag: &str) -> Ctr {
    let mut c = Ctr::new(tag, "cgroups");
    c.config["root"]["readonly"] = json!(false);
    c.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    c.config["linux"]["resources"]["pids"] = json!({"limit": 32});
    c.args(&[
        "/bin/sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i >/tmp/c; sleep 0.05; done",
    ]);
    c.write_config();
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt(&["run", "-d", "--bundle", &b, &id]);
    assert!(
        o.status.success(),
        "run -d failed: {}\n{}",
        text(&o.stderr),
        c.log_text()
    );
    if let Some(p) = c.state().and_then(|s| s["pid"].as_i64()) {
        c.pids.push(p as i32);
    }
    c
}

fn read_counter(c: &Ctr) -> Option<u64> {
    std::fs::read_to_string(c.rootfs().join("tmp/c"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn exec_cat(c: &Ctr, file: &str) -> String {
    let o = c.rt(&["exec", &c.id, "cat", file]);
    assert!(o.status.success(), "exec cat {file}: {}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

#[test]
fn update_changes_live_values() {
    root_or_skip!("update_changes_live_values");
    let c = counter("cgupdate");
    let mem = cg_file("memory", "memory.limit_in_bytes", "memory.max");
    let pids = cg_file("pids", "pids.max", "pids.max");
    assert_eq!(exec_cat(&c, &mem), (64u64 << 20).to_string());
    let o = c.rt(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "100000",
        &c.id,
    ]);
    assert!(o.status.success(), "update: {}", text(&o.stderr));
    assert_eq!(exec_cat(&c, &mem), (128u64 << 20).to_string());
    assert_eq!(exec_cat(&c, &pids), "50");
    if unified() {
        assert_eq!(exec_cat(&c, "/sys/fs/cgroup/cpu.max"), "30000 100000");
    } else {
        assert_eq!(exec_cat(&c, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "30000");
    }
    // a resources file (runc's -r) works too
    let r = c.work.join("resources.json");
    std::fs::write(&r, r#"{"pids": {"limit": 60}}"#).unwrap();
    let o = c.rt(&["update", "-r", &r.to_string_lossy(), &c.id]);
    assert!(o.status.success(), "update -r: {}", text(&o.stderr));
    assert_eq!(exec_cat(&c, &pids), "60");
    // unchanged by the second update
    assert_eq!(exec_cat(&c, &mem), (128u64 << 20).to_string());
}

#[test]
fn pause_freezes_and_resume_thaws() {
    root_or_skip!("pause_freezes_and_resume_thaws");
    let c = counter("cgpause");
    assert!(
        wait_until(Duration::from_secs(10), || read_counter(&c).is_some()),
        "counter never started"
    );
    let o = c.rt(&["pause", &c.id]);
    assert!(o.status.success(), "pause: {}", text(&o.stderr));
    assert_eq!(c.status().as_deref(), Some("paused"));
    let a = read_counter(&c);
    std::thread::sleep(Duration::from_millis(500));
    let b = read_counter(&c);
    assert_eq!(a, b, "the counter ran while paused");
    let o = c.rt(&["resume", &c.id]);
    assert!(o.status.success(), "resume: {}", text(&o.stderr));
    assert_eq!(c.status().as_deref(), Some("running"));
    assert!(
        wait_until(Duration::from_secs(10), || read_counter(&c) != b),
        "the counter did not run again after resume"
    );
}

#[test]
fn events_stats_has_usage_in_runc_schema() {
    root_or_skip!("events_stats_has_usage_in_runc_schema");
    let c = counter("cgstats");
    assert!(wait_until(Duration::from_secs(10), || read_counter(&c)
        .is_some_and(|n| n > 3)));
    let o = c.rt(&["events", "--stats", &c.id]);
    assert!(o.status.success(), "events --stats: {}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("events --stats is JSON");
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], c.id.as_str(), "{v}");
    let d = &v["data"];
    let n = |p: &str| d.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    assert!(n("/cpu/usage/total") > 0, "cpu.usage.total: {d}");
    assert!(n("/memory/usage/usage") > 0, "memory.usage.usage: {d}");
    assert_eq!(
        n("/memory/usage/limit"),
        64 << 20,
        "memory.usage.limit: {d}"
    );
    assert!(n("/pids/current") >= 1, "pids.current: {d}");
    assert_eq!(n("/pids/limit"), 32, "pids.limit: {d}");
}

#[test]
fn systemd_driver_without_systemd_fails_cleanly() {
    root_or_skip!("systemd_driver_without_systemd_fails_cleanly");
    if Path::new("/run/systemd/private").exists()
        || Path::new("/run/dbus/system_bus_socket").exists()
    {
        skip(
            "systemd_driver_without_systemd_fails_cleanly",
            "this host runs systemd/D-Bus (the systemd driver is tested in the systemd guest, make vm-test)",
        );
        return;
    }
    let mut c = Ctr::new("cgnosd", "cgroups");
    c.global_args.push("--systemd-cgroup".into());
    c.config["linux"]["cgroupsPath"] = json!(format!("system.slice:husk:{}", c.id));
    c.args(&["/bin/true"]);
    let o = c.run();
    assert!(
        !o.status.success(),
        "--systemd-cgroup succeeded without systemd"
    );
    let msg = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(msg.contains("systemd"), "error does not say systemd: {msg}");
    assert!(c.state().is_none(), "a failed create left a container");
}
