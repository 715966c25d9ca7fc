//! Conformance: config.md, config-linux.md and runtime-linux.md requirements not already
//! covered by the other root tests. Each `// req:` line names the requirement ids
//! (docs/requirements.txt) the next test checks; docs/conformance.md is generated from them.
mod common;
use common::*;
use std::time::Duration;

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

// req: RT-LIFECYCLE-CONFIG CFG-SCHEDULER CFG-IOPRIORITY
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

// ---- runtime-spec 1.2 walk: config.md ----

/// `create` must fail with exit 1, an error naming one of `words`, and leave no container.
fn create_fails_naming(c: &mut Ctr, words: &[&str]) {
    let o = c.create(&[]);
    let err = format!("{}\n{}", text(&o.stderr), c.log_text());
    assert_eq!(code(&o.status), 1, "create must fail with exit 1: {err}");
    assert!(
        words.iter().any(|w| err.contains(w)),
        "the error must name one of {words:?}: {err}"
    );
    assert!(c.state().is_none(), "a container was left: {err}");
}

// req: CFG-ROOT-REQUIRED
#[test]
fn missing_root_is_refused() {
    root_or_skip!("missing_root_is_refused");
    let mut c = Ctr::new("noroot", "default");
    c.config.as_object_mut().unwrap().remove("root");
    create_fails_naming(&mut c, &["root"]);
}

// req: CFG-PROCESS-REQUIRED
#[test]
fn missing_process_is_refused() {
    root_or_skip!("missing_process_is_refused");
    let mut c = Ctr::new("noproc", "default");
    c.config.as_object_mut().unwrap().remove("process");
    let o = c.create(&[]);
    if o.status.success() {
        // a runtime may accept it at create; start then MUST fail
        let s = c.start();
        assert!(
            !s.status.success(),
            "start of a container without process must fail"
        );
    } else {
        let err = format!("{}\n{}", text(&o.stderr), c.log_text());
        assert!(err.contains("process"), "error must name process: {err}");
        assert!(c.state().is_none(), "a container was left: {err}");
    }
}

// req: CFG-MOUNT-DEST-RELATIVE
#[test]
fn relative_mount_destination_is_relative_to_root() {
    root_or_skip!("relative_mount_destination_is_relative_to_root");
    let mut c = Ctr::new("reldest", "default");
    std::fs::create_dir_all(c.rootfs().join("mnt/rel")).unwrap();
    c.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"destination": "mnt/rel", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        ));
    let v = c.run_probe();
    let (_, fstype, sopts) = mount_info(&v, "/mnt/rel")
        .unwrap_or_else(|| panic!("no mount at /mnt/rel: {:?}", v["mountinfo"]));
    assert_eq!(fstype, "tmpfs");
    assert!(sopts.iter().any(|o| o == "size=1024k"), "{sopts:?}");
}

// req: CFG-MOUNT-SOURCE-RELATIVE
#[test]
fn relative_bind_source_is_relative_to_the_bundle() {
    root_or_skip!("relative_bind_source_is_relative_to_the_bundle");
    let mut c = Ctr::new("relsrc", "default");
    std::fs::create_dir_all(c.bundle.join("data")).unwrap();
    std::fs::write(c.bundle.join("data/marker"), "from-the-bundle").unwrap();
    c.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"destination": "/mnt", "type": "bind", "source": "data", "options": ["rbind", "ro"]}
        ));
    c.args(&["/probe", "read", "/mnt/marker"]);
    let v = c.run_probe();
    assert_eq!(v["data"], "from-the-bundle", "{v}");
}

/// `husk features` (or the reference's) as JSON.
/// config.md "Linux mount options": the MUST rows of the table.
const MUST_MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

// req: CFG-MOUNT-OPTIONS-MUST CFG-MOUNT-OPTIONS-FS FEAT-MOUNT-OPTIONS
#[test]
fn mount_options_are_recognized_and_applied() {
    root_or_skip!("mount_options_are_recognized_and_applied");
    let f = features();
    let listed: Vec<String> = f["mountOptions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for o in &listed {
        assert!(
            !o.contains('='),
            "features.mountOptions SHOULD NOT list filesystem-specific options: {o}"
        );
    }
    let mut all: Vec<String> = MUST_MOUNT_OPTIONS.iter().map(|s| s.to_string()).collect();
    for o in &listed {
        if !all.contains(o) {
            all.push(o.clone());
        }
    }
    for o in MUST_MOUNT_OPTIONS {
        assert!(
            listed.iter().any(|l| l == o),
            "MUST option {o} is not in features.mountOptions"
        );
    }
    // one container, one mount per option (each on its own tmpfs, bind options on a bind)
    let mut c = Ctr::new("mopts", "default");
    std::fs::create_dir_all(c.bundle.join("data")).unwrap();
    let src = c.bundle.join("data").to_string_lossy().into_owned();
    let mut dests = Vec::new();
    for (i, o) in all.iter().enumerate() {
        let dest = format!("/mnt/o{i}");
        std::fs::create_dir_all(c.rootfs().join(&dest[1..])).unwrap();
        let m = match o.as_str() {
            "bind" | "rbind" => {
                serde_json::json!({"destination": dest, "type": "bind", "source": src, "options": [o]})
            }
            // remount changes an existing mount: the bind made just before
            "remount" => serde_json::json!({"destination": dest, "type": "bind", "source": src,
                "options": ["rbind", "remount", "ro"]}),
            // id mappings apply to bind mounts only and need mappings (no user namespace here)
            "idmap" | "ridmap" => {
                let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                serde_json::json!({"destination": dest, "type": "bind", "source": src,
                    "options": ["rbind", o], "uidMappings": map, "gidMappings": map})
            }
            _ => serde_json::json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                "options": [o]}),
        };
        c.config["mounts"].as_array_mut().unwrap().push(m);
        dests.push((o.clone(), dest));
    }
    // unknown options are filesystem data
    std::fs::create_dir_all(c.rootfs().join("mnt/fsdata")).unwrap();
    c.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"destination": "/mnt/fsdata", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "size=2m", "nr_inodes=1k", "mode=700"]}
        ));
    let v = c.run_probe();
    let info = |d: &str| {
        mount_info(&v, d).unwrap_or_else(|| panic!("no mount at {d}: {:?}", v["mountinfo"]))
    };
    let optional = |d: &str| -> Vec<String> {
        let l = mount_line(&v, d).unwrap();
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-").unwrap();
        f[6..sep].iter().map(|s| s.to_string()).collect()
    };
    for (o, d) in &dests {
        let (mo, fstype, so) = info(d);
        let has = |v: &[String], x: &str| v.iter().any(|y| y == x);
        match o.as_str() {
            "ro" => assert!(has(&mo, "ro"), "{o}: {mo:?}"),
            "rw" | "defaults" | "async" | "nolazytime" | "loud" => {
                assert!(has(&mo, "rw"), "{o}: {mo:?}")
            }
            "nosuid" | "nodev" | "noexec" | "noatime" | "nodiratime" | "relatime"
            | "nosymfollow" => assert!(has(&mo, o), "{o}: {mo:?}"),
            "suid" | "dev" | "exec" | "diratime" => {
                assert!(!has(&mo, &format!("no{o}")), "{o}: {mo:?}")
            }
            "strictatime" => assert!(!has(&mo, "relatime") && !has(&mo, "noatime"), "{o}: {mo:?}"),
            "atime" => assert!(!has(&mo, "noatime"), "{o}: {mo:?}"),
            "sync" | "dirsync" | "lazytime" => assert!(has(&so, o), "{o}: {so:?}"),
            "bind" | "rbind" => assert_ne!(fstype, "tmpfs", "{o}: not a bind mount"),
            "remount" => assert!(has(&mo, "ro"), "{o}: remount,ro not applied: {mo:?}"),
            "idmap" | "ridmap" => assert!(has(&mo, "idmapped"), "{o}: {mo:?}"),
            "shared" | "rshared" => assert!(
                optional(d).iter().any(|x| x.starts_with("shared:")),
                "{o}: {:?}",
                optional(d)
            ),
            "unbindable" | "runbindable" => assert!(
                optional(d).iter().any(|x| x == "unbindable"),
                "{o}: {:?}",
                optional(d)
            ),
            "private" | "rprivate" | "slave" | "rslave" => assert!(
                !optional(d).iter().any(|x| x.starts_with("shared:")),
                "{o}: {:?}",
                optional(d)
            ),
            // accepted (the mount exists); no effect visible in mountinfo
            _ => assert_eq!(fstype, "tmpfs", "{o}"),
        }
    }
    let (mo, _, so) = info("/mnt/fsdata");
    assert!(mo.iter().any(|o| o == "nosuid"), "{mo:?}");
    for want in ["size=2048k", "nr_inodes=1024", "mode=700"] {
        assert!(
            so.iter().any(|o| o == want),
            "filesystem data {want} not passed: {so:?}"
        );
    }
}

// req: CFG-MOUNT-OPTIONS-RECURSIVE
#[test]
fn recursive_mount_options_reach_submounts() {
    root_or_skip!("recursive_mount_options_reach_submounts");
    let mut c = Ctr::new("rmopts", "default");
    let src = c.work.join("rsrc");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(src.join("sub"))
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs below the bind source");
    c.test_mounts.push(src.join("sub"));
    c.config["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/mnt", "type": "bind", "source": src,
         "options": ["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow"]}
    ));
    let v = c.run_probe();
    for d in ["/mnt", "/mnt/sub"] {
        let (mo, _, _) =
            mount_info(&v, d).unwrap_or_else(|| panic!("no mount at {d}: {:?}", v["mountinfo"]));
        for want in ["ro", "nosuid", "nodev", "noexec", "noatime", "nosymfollow"] {
            assert!(mo.iter().any(|o| o == want), "{d}: {want} missing: {mo:?}");
        }
    }
}

// req: CFG-IDMAP-ERROR
#[test]
fn idmap_without_mappings_or_user_namespace_is_an_error() {
    root_or_skip!("idmap_without_mappings_or_user_namespace_is_an_error");
    for opt in ["idmap", "ridmap"] {
        let mut c = Ctr::new("idmaperr", "default");
        let src = c.bundle.to_string_lossy().into_owned();
        c.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
                {"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", opt]}
            ));
        create_fails_naming(&mut c, &[opt]);
    }
}

/// Owners as `stat -c %n:%u:%g` prints them inside the container, one entry per path.
fn owners_inside(c: &mut Ctr, paths: &[&str]) -> std::collections::HashMap<String, String> {
    let script = format!("stat -c %n:%u:%g {}", paths.join(" "));
    c.args(&["/bin/sh", "-c", &script]);
    let o = c.run_ok();
    text(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(p, ids)| (p.to_string(), ids.to_string()))
        .collect()
}

fn touch_owned(dir: &std::path::Path, name: &str, uid: u32, gid: u32) {
    let p = dir.join(name);
    std::fs::write(&p, name).unwrap();
    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
}

/// config.md: mounts[].uidMappings/gidMappings with `idmap` (or without an option: runc 1.2
/// takes that as `idmap`) give the bind mount that id mapping, in the container's view: a file
/// owned by `containerID` on disk shows as `hostID` (runc's "simple idmap mount [no userns]").
/// A plain bind of the same directory is unchanged. The container has no user namespace.
// req: CFG-IDMAP
#[test]
fn id_mapped_bind_mounts_show_mapped_owners() {
    root_or_skip!("id_mapped_bind_mounts_show_mapped_owners");
    assert_eq!(
        features()["linux"]["mountExtensions"]["idmap"]["enabled"].as_bool(),
        Some(true),
        "features must report id-mapped mounts"
    );
    let mut c = Ctr::new("idmapok", "default");
    let src = c.work.join("idsrc");
    std::fs::create_dir(&src).unwrap();
    touch_owned(&src, "root", 0, 0);
    touch_owned(&src, "one", 1, 2);
    touch_owned(&src, "high", 100000, 100000);
    let s = src.to_string_lossy().into_owned();
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let back = serde_json::json!([{"containerID": 100000, "hostID": 0, "size": 1}]);
    for m in [
        serde_json::json!({"destination": "/a", "type": "bind", "source": s,
            "options": ["rbind", "idmap"], "uidMappings": map, "gidMappings": map}),
        // mappings without an option: idmap
        serde_json::json!({"destination": "/b", "type": "bind", "source": s,
            "options": ["bind"], "uidMappings": back, "gidMappings": back}),
        serde_json::json!({"destination": "/c", "type": "bind", "source": s,
            "options": ["rbind", "ro"]}),
    ] {
        c.config["mounts"].as_array_mut().unwrap().push(m);
    }
    let got = owners_inside(
        &mut c,
        &[
            "/a/root", "/a/one", "/b/high", "/b/root", "/c/root", "/c/one",
        ],
    );
    let want = [
        ("/a/root", "100000:100000"),
        ("/a/one", "100001:100002"),
        ("/b/high", "0:0"),
        // unmapped on the mount: the overflow id
        ("/b/root", "65534:65534"),
        ("/c/root", "0:0"),
        ("/c/one", "1:2"),
    ];
    for (p, ids) in want {
        assert_eq!(got.get(p).map(String::as_str), Some(ids), "{p}: {got:?}");
    }
    // the files on disk are untouched
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(src.join("root")).unwrap().uid(), 0);
}

/// `ridmap` id-maps the submounts of an rbind too; `idmap` only the top mount.
// req: CFG-IDMAP
#[test]
fn ridmap_maps_submounts_and_idmap_does_not() {
    root_or_skip!("ridmap_maps_submounts_and_idmap_does_not");
    let mut c = Ctr::new("ridmap", "default");
    let src = c.work.join("rsrc");
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    touch_owned(&src, "top", 1, 1);
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "idtest"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs on {sub:?}");
    c.test_mounts.push(sub.clone());
    touch_owned(&sub, "inner", 2, 2);
    let s = src.to_string_lossy().into_owned();
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    for (dest, opt) in [("/r", "ridmap"), ("/n", "idmap")] {
        c.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
                {"destination": dest, "type": "bind", "source": s,
                 "options": ["rbind", opt], "uidMappings": map, "gidMappings": map}
            ));
    }
    let got = owners_inside(
        &mut c,
        &["/r/top", "/r/sub/inner", "/n/top", "/n/sub/inner"],
    );
    let want = [
        ("/r/top", "100001:100001"),
        ("/r/sub/inner", "100002:100002"),
        ("/n/top", "100001:100001"),
        ("/n/sub/inner", "2:2"),
    ];
    for (p, ids) in want {
        assert_eq!(got.get(p).map(String::as_str), Some(ids), "{p}: {got:?}");
    }
}

/// `idmap` without mount mappings takes the mappings of the container's user namespace: a file
/// owned by root on disk is owned by root inside a container whose root is host uid 100000.
// req: CFG-IDMAP
#[test]
fn idmap_without_mount_mappings_uses_the_user_namespace() {
    root_or_skip!("idmap_without_mount_mappings_uses_the_user_namespace");
    let mut c = Ctr::new("idmapns", "userns");
    let src = c.work.join("nsrc");
    std::fs::create_dir(&src).unwrap();
    touch_owned(&src, "root", 0, 0);
    touch_owned(&src, "five", 5, 5);
    let s = src.to_string_lossy().into_owned();
    // the init runs as the mapped root: the mount points must exist already
    for d in ["i", "p"] {
        std::fs::create_dir(c.rootfs().join(d)).unwrap();
    }
    for (dest, opts) in [
        ("/i", serde_json::json!(["rbind", "idmap"])),
        ("/p", serde_json::json!(["rbind"])),
    ] {
        c.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
                {"destination": dest, "type": "bind", "source": s, "options": opts}
            ));
    }
    let uid0 = c.config["linux"]["uidMappings"][0]["hostID"]
        .as_u64()
        .unwrap();
    assert_ne!(uid0, 0, "the userns fixture must map root elsewhere");
    let got = owners_inside(&mut c, &["/i/root", "/i/five", "/p/root"]);
    let want = [
        ("/i/root", "0:0"),
        ("/i/five", "5:5"),
        // a plain bind: host root is unmapped in the container
        ("/p/root", "65534:65534"),
    ];
    for (p, ids) in want {
        assert_eq!(got.get(p).map(String::as_str), Some(ids), "{p}: {got:?}");
    }
}

/// The same with a user namespace the container joins by path: the mount takes that
/// namespace's mappings.
// req: CFG-IDMAP
#[test]
fn idmap_with_a_joined_user_namespace_uses_its_mappings() {
    root_or_skip!("idmap_with_a_joined_user_namespace_uses_its_mappings");
    let holder = ns_holder(&["--user"], "true");
    // root stays root, every other id is shifted by 100000
    for f in ["uid_map", "gid_map"] {
        std::fs::write(
            format!("/proc/{}/{f}", holder.pid()),
            "0 0 1\n1 100001 65535\n",
        )
        .unwrap();
    }
    let mut c = Ctr::new("idmapjoin", "default");
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(
            serde_json::json!({"type": "user", "path": format!("/proc/{}/ns/user", holder.pid())}),
        );
    let src = c.work.join("jsrc");
    std::fs::create_dir(&src).unwrap();
    touch_owned(&src, "seven", 7, 8);
    std::fs::create_dir(c.rootfs().join("j")).unwrap();
    c.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"destination": "/j", "type": "bind", "source": src.to_string_lossy(),
             "options": ["rbind", "ridmap"]}
        ));
    let got = owners_inside(&mut c, &["/j/seven"]);
    assert_eq!(
        got.get("/j/seven").map(String::as_str),
        Some("7:8"),
        "{got:?}"
    );
}

/// Only bind mounts can be id-mapped (runc 1.2 refuses the others): the error names the mount,
/// and nothing is left behind.
// req: CFG-IDMAP
#[test]
fn idmap_on_a_non_bind_mount_is_refused() {
    root_or_skip!("idmap_on_a_non_bind_mount_is_refused");
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    for m in [
        serde_json::json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
            "options": ["idmap"], "uidMappings": map, "gidMappings": map}),
        serde_json::json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
            "uidMappings": map, "gidMappings": map}),
    ] {
        let mut c = Ctr::new("idmaptmp", "default");
        c.config["mounts"].as_array_mut().unwrap().push(m);
        let n = c.config["mounts"].as_array().unwrap().len() - 1;
        let o = c.create(&[]);
        let err = format!("{}\n{}", text(&o.stderr), c.log_text());
        assert_eq!(code(&o.status), 1, "create must fail: {err}");
        assert!(
            err.contains(&format!("mounts[{n}]")) && err.contains("only bind mounts"),
            "{err}"
        );
        assert!(c.state().is_none(), "a container was left: {err}");
    }
}

/// A failure after the id-mapped trees were made (a source that cannot be id-mapped, or an
/// init that fails later) leaves no process, mount or state behind.
// req: CFG-IDMAP
#[test]
fn failed_idmap_create_leaves_nothing_behind() {
    root_or_skip!("failed_idmap_create_leaves_nothing_behind");
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // 1: an id-mapped mount, then a mount that fails in the init
    let mut c = Ctr::new("idmapfail", "default");
    let s = c.bundle.to_string_lossy().into_owned();
    for m in [
        serde_json::json!({"destination": "/a", "type": "bind", "source": s,
            "options": ["rbind", "idmap"], "uidMappings": map, "gidMappings": map}),
        serde_json::json!({"destination": "/b", "type": "bind", "source": "/nonexistent-idmap",
            "options": ["rbind"]}),
    ] {
        c.config["mounts"].as_array_mut().unwrap().push(m);
    }
    create_fails_naming(&mut c, &["/nonexistent-idmap"]);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
    // 2: a bad mapping (overlapping ranges) is refused by the kernel on the host side
    let mut c = Ctr::new("idmapbad", "default");
    let bad = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 10},
                                 {"containerID": 5, "hostID": 200000, "size": 10}]);
    c.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"destination": "/a", "type": "bind", "source": s,
             "options": ["rbind", "idmap"], "uidMappings": bad, "gidMappings": map}
        ));
    let n = c.config["mounts"].as_array().unwrap().len() - 1;
    create_fails_naming(&mut c, &[&format!("mounts[{n}]")]);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

// req: CFG-CONSOLESIZE-IGNORED
#[test]
fn console_size_is_ignored_without_a_terminal() {
    root_or_skip!("console_size_is_ignored_without_a_terminal");
    for terminal in [Some(false), None] {
        let mut c = Ctr::new("consz", "default");
        match terminal {
            Some(t) => c.config["process"]["terminal"] = t.into(),
            None => {
                c.config["process"]
                    .as_object_mut()
                    .unwrap()
                    .remove("terminal");
            }
        }
        c.config["process"]["consoleSize"] = serde_json::json!({"height": 0, "width": 0});
        let v = c.run_probe();
        assert_eq!(v["tty"]["isatty0"], false, "{v}");
        assert_eq!(v["tty"]["isatty1"], false, "{v}");
    }
}

// req: CFG-OOM-UNSET
#[test]
fn unset_oom_score_adj_is_left_alone() {
    root_or_skip!("unset_oom_score_adj_is_left_alone");
    let c = Ctr::new("oomunset", "default");
    assert!(c.config["process"].get("oomScoreAdj").is_none());
    c.write_config();
    // the runtime starts with oom_score_adj 321: the container must keep it
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("echo 321 > /proc/self/oom_score_adj && exec \"$@\"")
        .arg("sh")
        .arg(runtime())
        .arg("--root")
        .arg(&c.root)
        .arg("--log")
        .arg(&c.log)
        .arg("--log-format")
        .arg("json")
        .args(["run", "--bundle"])
        .arg(&c.bundle)
        .arg(&c.id)
        .current_dir(&c.work);
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    assert!(o.status.success(), "run: {}", text(&o.stderr));
    let v = probe_json(&o);
    assert_eq!(v["oom_score_adj"], 321, "{v}");
}

// req: LNX-CGROUPS-PATH-SAME
#[test]
fn same_cgroups_path_same_cgroup() {
    root_or_skip!("same_cgroups_path_same_cgroup");
    let mut a = Ctr::new("cgsame", "default");
    let path = a.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string();
    let va = a.run_probe();
    let mut b = Ctr::new("cgsame", "default");
    b.config["linux"]["cgroupsPath"] = path.clone().into();
    let vb = b.run_probe();
    assert_eq!(
        va["cgroup"], vb["cgroup"],
        "two containers with cgroupsPath {path} are in different cgroups"
    );
    assert!(
        va["cgroup"].to_string().contains(&path),
        "cgroupsPath {path} not in {}",
        va["cgroup"]
    );
}

// req: LNX-CGROUPS-PATH-INVALID
#[test]
fn invalid_cgroups_path_is_an_error() {
    root_or_skip!("invalid_cgroups_path_is_an_error");
    for p in ["/", "/.."] {
        let mut c = Ctr::new("cginval", "default");
        c.config["linux"]["cgroupsPath"] = p.into();
        create_fails_naming(&mut c, &["cgroupsPath"]);
    }
}

/// The systemd form `slice:prefix:name` without `--systemd-cgroup` (an engine configured for
/// cgroupfs while its client, e.g. kubelet, assumed systemd): runc takes it as an ordinary path
/// relative to its own cgroup and runs the container; husk does too, and warns, naming the
/// mismatch.
#[test]
fn systemd_form_cgroups_path_without_systemd_driver_is_a_relative_path() {
    root_or_skip!("systemd_form_cgroups_path_without_systemd_driver_is_a_relative_path");
    let mut c = Ctr::new("cgsdform", "default");
    let path = format!("husk-test.slice:cri:{}", c.id);
    c.config["linux"]["cgroupsPath"] = path.clone().into();
    let v = c.run_probe();
    let lines = cgroup_lines(&v);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("memory") && l.ends_with(&format!("/{path}"))),
        "the container is not in the relative cgroup {path}: {lines:?}"
    );
    if !is_runc() {
        let log = c.log_text();
        assert!(
            log.contains("systemd form") && log.contains("--systemd-cgroup"),
            "no warning naming the mismatch in the log: {log}"
        );
    }
}

// req: LNX-CGROUP-OWNER-V1
#[test]
fn cgroup_v1_ownership_is_not_changed() {
    root_or_skip!("cgroup_v1_ownership_is_not_changed");
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        skip("cgroup_v1_ownership_is_not_changed", "host is cgroup v2");
        return;
    }
    // every condition under which husk delegates on cgroup v2 holds: a new user namespace (the
    // userns fixture maps 0 -> 100000), a new cgroup namespace and a read-write /sys/fs/cgroup
    let mut c = Ctr::new("cgown", "userns");
    c.config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "cgroup"}));
    for m in c.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/sys/fs/cgroup" {
            m["options"] = serde_json::json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
        }
    }
    c.args(&["/probe", "sleep", "30"]);
    c.create_ok(&[]);
    let dirs = cgroup_dirs(&c.id);
    assert!(!dirs.is_empty(), "no cgroup dirs for {}", c.id);
    use std::os::unix::fs::MetadataExt;
    for d in &dirs {
        for f in ["", "cgroup.procs", "tasks"] {
            let p = d.join(f);
            if let Ok(m) = std::fs::metadata(&p) {
                assert_eq!(m.uid(), 0, "{} owner changed on cgroup v1", p.display());
            }
        }
    }
}

// req: LNX-MEMORY-CHECK-BEFORE-UPDATE
#[test]
fn check_before_update_rejects_a_limit_below_usage() {
    root_or_skip!("check_before_update_rejects_a_limit_below_usage");
    let mut c = Ctr::new("cbu", "default");
    c.config["linux"]["resources"]["memory"] = serde_json::json!({"limit": 268435456});
    // tmpfs pages stay charged to the container's memory cgroup (this host has no swap)
    c.args(&[
        "/bin/sh",
        "-c",
        "head -c 33554432 /dev/zero > /dev/shm/fill && exec /probe sleep 60",
    ]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    assert!(c.wait_status("running", Duration::from_secs(5)));
    let cg = cgroup_dirs(&c.id)
        .into_iter()
        .find(|d| d.join("memory.usage_in_bytes").exists() || d.join("memory.current").exists())
        .expect("the container's memory cgroup");
    let usage_file = if cg.join("memory.usage_in_bytes").exists() {
        "memory.usage_in_bytes"
    } else {
        "memory.current"
    };
    let limit_file = if cg.join("memory.limit_in_bytes").exists() {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    let usage = || -> u64 {
        std::fs::read_to_string(cg.join(usage_file))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while usage() < 8 << 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        usage() >= 8 << 20,
        "the process did not allocate: {}",
        usage()
    );
    let before = std::fs::read_to_string(cg.join(limit_file)).unwrap();
    let res = c.work.join("res.json");
    std::fs::write(
        &res,
        r#"{"memory": {"limit": 4194304, "checkBeforeUpdate": true}}"#,
    )
    .unwrap();
    let o = c.rt(&["update", "-r", res.to_str().unwrap(), &c.id]);
    assert!(
        !o.status.success(),
        "a limit below the usage with checkBeforeUpdate must be rejected"
    );
    assert_eq!(
        std::fs::read_to_string(cg.join(limit_file)).unwrap(),
        before,
        "the limit changed"
    );
    assert_eq!(c.status().as_deref(), Some("running"));
}
