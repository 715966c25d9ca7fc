//! Conformance: config.md, config-linux.md and runtime-linux.md requirements not already
//! covered by the other root tests. Each `// req:` line names the requirement ids
//! (docs/requirements.txt) the next test checks; docs/conformance.md is generated from them.
mod common;
use common::*;
use std::time::Duration;

macro_rules! root_or_skip {
    ($name:expr) => {
        if !require_root($name) {
            return;
        }
    };
}

/// `create` of an invalid fixture fails with exit 1, names one of the fixture's expect-error
/// words, and leaves nothing (the guard checks processes, state, mounts, cgroups).
fn invalid_fixture_fails(name: &str) {
    let words: Vec<String> = std::fs::read_to_string(
        std::path::Path::new(MANIFEST_DIR)
            .join("spec-fixtures")
            .join(name)
            .join("expect-error"),
    )
    .unwrap_or_else(|e| panic!("{name}/expect-error: {e}"))
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| l.trim().to_lowercase())
    .collect();
    let holder = ns_holder(&["--uts"], "true");
    let mut c = Ctr::new("inv", name);
    c.substitute("@NS_UTS@", &format!("/proc/{}/ns/uts", holder.pid()));
    let o = c.create(&[]);
    let err = format!("{}\n{}", text(&o.stderr), c.log_text());
    assert_eq!(
        code(&o.status),
        1,
        "{name}: create must fail with exit 1: {err}"
    );
    assert!(
        words.iter().any(|w| err.to_lowercase().contains(w)),
        "{name}: the error must name the field ({words:?}): {err}"
    );
    assert!(c.state().is_none(), "{name}: a container was left");
}

// req: CFG-OCIVERSION
#[test]
fn missing_oci_version_is_refused() {
    root_or_skip!("missing_oci_version_is_refused");
    invalid_fixture_fails("invalid-missing-ociversion");
}

// req: CFG-ARGS-REQUIRED
#[test]
fn empty_args_is_refused() {
    root_or_skip!("empty_args_is_refused");
    invalid_fixture_fails("invalid-empty-args");
}

// req: CFG-HOOK-PATH-ABS
#[test]
fn relative_hook_path_is_refused() {
    root_or_skip!("relative_hook_path_is_refused");
    invalid_fixture_fails("invalid-relative-hook-path");
}

// req: CFG-HOOK-TIMEOUT
#[test]
fn zero_hook_timeout_is_refused() {
    root_or_skip!("zero_hook_timeout_is_refused");
    invalid_fixture_fails("invalid-hook-timeout-zero");
}

// req: CFG-RLIMIT-INVALID
#[test]
fn unknown_rlimit_is_refused() {
    root_or_skip!("unknown_rlimit_is_refused");
    invalid_fixture_fails("invalid-unknown-rlimit");
}

// req: CFG-RLIMIT-DUP
#[test]
fn duplicate_rlimit_is_refused() {
    root_or_skip!("duplicate_rlimit_is_refused");
    invalid_fixture_fails("invalid-duplicate-rlimit");
}

// req: LNX-NS-PATH-ABS
#[test]
fn relative_namespace_path_is_refused() {
    root_or_skip!("relative_namespace_path_is_refused");
    invalid_fixture_fails("invalid-relative-ns-path");
}

// req: LNX-NS-PATH-TYPE
#[test]
fn namespace_path_of_wrong_type_is_refused() {
    root_or_skip!("namespace_path_of_wrong_type_is_refused");
    invalid_fixture_fails("invalid-ns-path-wrong-type");
}

// req: LNX-NS-PATH-TYPE
#[test]
fn missing_namespace_path_is_refused() {
    root_or_skip!("missing_namespace_path_is_refused");
    invalid_fixture_fails("invalid-bad-ns-path");
}

// req: LNX-NS-DUP
#[test]
fn duplicate_namespace_is_refused() {
    root_or_skip!("duplicate_namespace_is_refused");
    invalid_fixture_fails("invalid-duplicate-ns");
}

// req: LNX-MASKED-ABS
#[test]
fn relative_masked_path_is_refused() {
    root_or_skip!("relative_masked_path_is_refused");
    invalid_fixture_fails("invalid-relative-masked-path");
}

// req: LNX-SECCOMP-ERRNO
#[test]
fn seccomp_errno_on_allow_is_refused() {
    root_or_skip!("seccomp_errno_on_allow_is_refused");
    invalid_fixture_fails("invalid-seccomp-errno-on-allow");
}

// req: CFG-VALID-VALUES
#[test]
fn invalid_values_are_refused() {
    root_or_skip!("invalid_values_are_refused");
    for f in [
        "invalid-seccomp-bad-action",
        "invalid-bad-device-type",
        "invalid-bad-propagation",
        "invalid-unknown-ns-type",
        "invalid-negative-uid",
        "invalid-bad-mount-type",
        "invalid-unknown-sysctl",
    ] {
        invalid_fixture_fails(f);
    }
}

// req: LNX-UNIFIED-ERROR
#[test]
fn unified_on_cgroup_v1_is_refused() {
    root_or_skip!("unified_on_cgroup_v1_is_refused");
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        skip(
            "unified_on_cgroup_v1_is_refused",
            "cgroup v2 host: linux.resources.unified is valid here",
        );
        return;
    }
    invalid_fixture_fails("invalid-unified-on-v1");
}

// req: CFG-UNKNOWN-PROPS CFG-ANNOTATIONS RT-STATE-FIELDS
#[test]
fn unknown_properties_ignored_and_annotations_in_state() {
    root_or_skip!("unknown_properties_ignored_and_annotations_in_state");
    let mut c = Ctr::new("annot", "annotations");
    c.create_ok(&[]);
    let s = c.state().unwrap();
    assert_eq!(s["annotations"]["org.example.key"], "value", "{s}");
    assert_eq!(s["annotations"]["com.example.other"], "x=y", "{s}");
}

// req: CFG-MOUNT-ORDER
#[test]
fn mounts_are_made_in_the_listed_order() {
    root_or_skip!("mounts_are_made_in_the_listed_order");
    // /mnt/a then /mnt/a/b: b is on top of a. Reversed: a hides b.
    for reversed in [false, true] {
        let mut c = Ctr::new("morder", "default");
        let a = serde_json::json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs",
            "options": ["size=1m"]});
        let b = serde_json::json!({"destination": "/mnt/a/b", "type": "tmpfs", "source": "tmpfs",
            "options": ["size=2m"]});
        std::fs::create_dir_all(c.rootfs().join("mnt/a/b")).unwrap();
        let m = c.config["mounts"].as_array_mut().unwrap();
        if reversed {
            m.push(b);
            m.push(a);
        } else {
            m.push(a);
            m.push(b);
        }
        let v = c.run_probe();
        let lines: Vec<&str> = v["mountinfo"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        let pos = |d: &str| lines.iter().position(|l| l.split(' ').nth(4) == Some(d));
        let (pa, pb) = (pos("/mnt/a"), pos("/mnt/a/b"));
        if reversed {
            // b was mounted first and is now hidden below a: not reachable, or listed first
            assert!(
                pb.is_none() || pb < pa,
                "reversed order not honoured: {lines:?}"
            );
        } else {
            assert!(pa.is_some() && pb.is_some() && pa < pb, "order: {lines:?}");
        }
    }
}

// req: CFG-ARGS-PATH RT-LIFECYCLE-CONFIG
#[test]
fn relative_executable_is_found_on_path() {
    root_or_skip!("relative_executable_is_found_on_path");
    let mut c = Ctr::new("argpath", "relative-args");
    let v = c.run_probe();
    assert_eq!(
        v["pid"], 1,
        "the probe did not run as the container process: {v}"
    );
}

// req: LNX-NS-INHERIT
#[test]
fn unlisted_namespaces_are_inherited() {
    root_or_skip!("unlisted_namespaces_are_inherited");
    let mut c = Ctr::new("nsinherit", "default");
    let v = c.run_probe();
    for t in ["user", "cgroup", "time"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{t}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if host.is_empty() {
            continue;
        }
        assert_eq!(
            v["ns"][t].as_str(),
            Some(host.as_str()),
            "{t} namespace not listed in config, must be the runtime's: {v}"
        );
    }
}

// req: LNX-DEVICE-MISMATCH
#[test]
fn device_path_holding_another_file_is_an_error() {
    root_or_skip!("device_path_holding_another_file_is_an_error");
    let mut c = Ctr::new("devmis", "default");
    c.config["root"]["readonly"] = false.into();
    std::fs::write(c.rootfs().join("mnt/notadev"), "regular file").unwrap();
    c.config["linux"]["devices"] = serde_json::json!([
        {"path": "/mnt/notadev", "type": "c", "major": 1, "minor": 3, "fileMode": 438}
    ]);
    let o = c.create(&[]);
    assert!(
        !o.status.success(),
        "a regular file at a device's path must be an error (config-linux.md Devices)"
    );
    assert_eq!(
        std::fs::read_to_string(c.rootfs().join("mnt/notadev")).unwrap_or_default(),
        "regular file",
        "the existing file was replaced"
    );
}

// req: LNX-DEVICE-MISMATCH LNX-DEVICES
#[test]
fn device_outside_dev_is_created() {
    root_or_skip!("device_outside_dev_is_created");
    let mut c = Ctr::new("devout", "default");
    c.config["root"]["readonly"] = false.into();
    c.config["linux"]["devices"] = serde_json::json!([
        {"path": "/mnt/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 438}
    ]);
    c.args(&["/probe", "stat", "/mnt/mynull"]);
    let o = c.run();
    let out = text(&o.stdout);
    assert!(o.status.success(), "run: {out} {}", text(&o.stderr));
    assert!(
        out.contains("\"char\"") || out.contains("\"type\":\"c") || out.contains("char"),
        "/mnt/mynull is not a char device: {out}"
    );
}

// req: LNX-PERSONALITY RT-LIFECYCLE-CONFIG
#[test]
fn personality_linux32() {
    root_or_skip!("personality_linux32");
    let mut c = Ctr::new("pers", "personality");
    let v = c.run_probe();
    assert_eq!(
        v["personality"].as_i64().map(|p| p & 0xff),
        Some(8),
        "PER_LINUX32: {v}"
    );
}

// req: RT-LIFECYCLE-CONFIG
#[test]
fn scheduler_and_io_priority() {
    root_or_skip!("scheduler_and_io_priority");
    let mut c = Ctr::new("sched", "sched-ioprio");
    let v = c.run_probe();
    assert_eq!(v["sched"]["policy"], 3, "SCHED_BATCH: {v}");
    assert_eq!(v["sched"]["nice"], 7, "{v}");
    assert_eq!(v["ioprio"]["class"], 2, "IOPRIO_CLASS_BE: {v}");
    assert_eq!(v["ioprio"]["level"], 6, "{v}");
}

// req: LNX-PROPAGATION
#[test]
fn rootfs_propagation() {
    root_or_skip!("rootfs_propagation");
    for (prop, want_shared) in [("private", false), ("shared", true)] {
        let mut c = Ctr::new("prop", "default");
        c.config["linux"]["rootfsPropagation"] = prop.into();
        let v = c.run_probe();
        let l = mount_line(&v, "/").unwrap_or_else(|| panic!("no / in mountinfo: {v}"));
        // optional fields sit between the mount options (field 6) and "-"
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-").unwrap();
        let shared = f[6..sep].iter().any(|o| o.starts_with("shared:"));
        assert_eq!(shared, want_shared, "rootfsPropagation {prop}: {l}");
    }
}

// req: LNX-USERNS-NOCHOWN
#[test]
fn user_namespace_does_not_chown_the_rootfs() {
    root_or_skip!("user_namespace_does_not_chown_the_rootfs");
    use std::os::unix::fs::MetadataExt;
    let mut c = Ctr::new("nochown", "userns");
    let before = std::fs::metadata(c.rootfs().join("probe")).unwrap().uid();
    let _ = c.run_probe();
    let after = std::fs::metadata(c.rootfs().join("probe")).unwrap().uid();
    assert_eq!(before, after, "the runtime changed the rootfs ownership");
    let bin = std::fs::symlink_metadata(c.rootfs().join("bin"))
        .unwrap()
        .uid();
    assert_eq!(bin, 0, "rootfs /bin ownership changed");
}

// req: LNX-CGROUPS-PATH
#[test]
fn absolute_cgroups_path_is_relative_to_the_mount_point() {
    root_or_skip!("absolute_cgroups_path_is_relative_to_the_mount_point");
    let mut c = Ctr::new("cgpath", "cgroups");
    c.create_ok(&[]);
    let pid = c.state().unwrap()["pid"].as_i64().unwrap();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let dir = if v2 {
        format!("/sys/fs/cgroup/{}", c.id)
    } else {
        format!("/sys/fs/cgroup/pids/{}", c.id)
    };
    let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs"))
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    assert!(
        procs.split_whitespace().any(|p| p == pid.to_string()),
        "pid {pid} not in {dir}: {procs}"
    );
}

// req: LNX-INTELRDT-ERROR
#[test]
fn intel_rdt_without_resctrl_is_an_error() {
    root_or_skip!("intel_rdt_without_resctrl_is_an_error");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(2) == Some("resctrl"))
    {
        skip(
            "intel_rdt_without_resctrl_is_an_error",
            "resctrl is mounted on this host",
        );
        return;
    }
    let mut c = Ctr::new("rdt", "default");
    c.config["linux"]["intelRdt"] = serde_json::json!({"closID": "husk-test"});
    let o = c.create(&[]);
    assert!(
        !o.status.success(),
        "intelRdt set and no resctrl mounted must be an error"
    );
}

// req: LNX-DEFAULT-FS
#[test]
fn default_filesystems_present() {
    root_or_skip!("default_filesystems_present");
    let mut c = Ctr::new("deffs", "default");
    let v = c.run_probe();
    for (dest, fstype) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
    ] {
        let (_, t, _) = mount_info(&v, dest).unwrap_or_else(|| panic!("{dest} not mounted: {v}"));
        assert_eq!(t, fstype, "{dest}");
    }
}

// req: RTL-DEV-SYMLINKS
#[test]
fn dev_symlinks() {
    root_or_skip!("dev_symlinks");
    let mut c = Ctr::new("devlinks", "default");
    c.args(&[
        "/bin/sh",
        "-c",
        "for l in fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done",
    ]);
    let o = c.run();
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out} {}", text(&o.stderr));
    for want in [
        "fd=/proc/self/fd",
        "stdin=/proc/self/fd/0",
        "stdout=/proc/self/fd/1",
        "stderr=/proc/self/fd/2",
    ] {
        assert!(out.lines().any(|l| l == want), "missing {want}: {out}");
    }
}

// req: RTL-FDS
#[test]
fn only_stdio_is_open() {
    root_or_skip!("only_stdio_is_open");
    let mut c = Ctr::new("fds", "default");
    let v = c.run_probe();
    let fds = v["fds"].as_object().expect("fds in probe");
    for (fd, target) in fds {
        let n: i32 = fd.parse().unwrap();
        // the probe's own directory fd on /proc/1/fd is the only extra one
        assert!(
            n <= 2 || target.as_str().is_some_and(|t| t.ends_with("/fd")),
            "fd {n} ({target}) leaked into the container: {fds:?}"
        );
    }
}

// req: RT-START-RUNS
#[test]
fn start_runs_the_process() {
    root_or_skip!("start_runs_the_process");
    let mut c = Ctr::new("startruns", "default");
    c.config["root"]["readonly"] = false.into();
    c.args(&["/probe", "write", "/tmp/ran", "yes"]);
    c.create_ok(&[]);
    assert!(!c.rootfs().join("tmp/ran").exists(), "ran before start");
    assert!(c.start().status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    assert_eq!(
        std::fs::read_to_string(c.rootfs().join("tmp/ran")).unwrap_or_default(),
        "yes"
    );
}
