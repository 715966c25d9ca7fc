//! Security regressions (published runtime escapes): each test performs the attack, or
//! its essential step, and shows it fails.
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

/// Positive control for the "fails closed or stays safe" tests: the runtime does run containers,
/// so a refusal below is a real refusal, not a runtime that runs nothing.
fn control_runs(tag: &str) {
    let mut c = Ctr::new(&format!("{tag}ctl"), "root-rw");
    let v = c.run_probe();
    assert_eq!(
        v["pid"], 1,
        "control container did not run the probe as pid 1"
    );
}

fn lines_json(o: &std::process::Output) -> Vec<Value> {
    text(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

fn sha_of(p: &Path) -> Vec<u8> {
    // a cheap content fingerprint is enough: any write changes bytes
    std::fs::read(p).unwrap_or_default()
}

/// A created (blocked-before-exec) victim and an attacker container joining its pid namespace.
fn victim_and_attacker(tag: &str, attack: &[&str]) -> (Ctr, Ctr, std::process::Output) {
    let mut victim = Ctr::new(&format!("{tag}v"), "default");
    victim.args(&["/probe", "sleep", "60"]);
    victim.create_ok(&[]);
    let vpid = victim.pids[0];
    let mut attacker = Ctr::new(&format!("{tag}a"), "default");
    for n in attacker.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
    {
        if n["type"] == "pid" {
            n["path"] = Value::String(format!("/proc/{vpid}/ns/pid"));
        }
    }
    attacker.args(attack);
    let o = attacker.run();
    (victim, attacker, o)
}

/// The attacker's two probe results (JSON lines of its output).
fn attack_results(o: &std::process::Output) -> Vec<Value> {
    let v = lines_json(o);
    assert_eq!(
        v.len(),
        2,
        "attacker output: {} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    v
}

/// CVE-2016-9962: the runtime's init, still holding host fds, must not be ptrace-able.
#[test]
fn cve_2016_9962_ptrace_runtime_init() {
    root_or_skip!("cve_2016_9962_ptrace_runtime_init");
    let (victim, _a, o) = victim_and_attacker(
        "ptrace",
        &[
            "/bin/sh",
            "-c",
            "/probe stat /proc/1/exe; /probe ptrace-attach 1",
        ],
    );
    // whatever ptrace says, the blocked init must hold no directory fd outside its rootfs
    let vpid = victim.pids[0];
    let rootfs = victim.rootfs();
    for e in std::fs::read_dir(format!("/proc/{vpid}/fd"))
        .unwrap()
        .flatten()
    {
        let p = e.path();
        if std::fs::metadata(&p).map(|m| m.is_dir()).unwrap_or(false) {
            let t = std::fs::read_link(&p).unwrap();
            assert!(
                t.starts_with(&rootfs),
                "the runtime's init holds host directory fd {} -> {}",
                p.display(),
                t.display()
            );
        }
    }
    let v = attack_results(&o);
    assert_eq!(
        v[1]["ok"], false,
        "ptrace attach to the runtime's init succeeded: {}",
        v[1]
    );
    assert_eq!(
        victim.status().as_deref(),
        Some("created"),
        "victim disturbed"
    );
}

/// CVE-2019-5736: /proc/<init>/exe of the runtime's process can never be opened for writing.
#[test]
fn cve_2019_5736_overwrite_runtime_binary() {
    root_or_skip!("cve_2019_5736_overwrite_runtime_binary");
    let rt = runtime();
    let before = sha_of(&rt);
    let (_victim, _a, o) = victim_and_attacker(
        "exe",
        // open for writing only (no O_TRUNC): the essential step, harmless if it succeeded
        &[
            "/bin/sh",
            "-c",
            "/probe open-write /proc/1/exe; /probe open-write /proc/self/exe",
        ],
    );
    let v = attack_results(&o);
    assert_eq!(
        v[0]["ok"], false,
        "/proc/1/exe opened for writing: {}",
        v[0]
    );
    assert_eq!(
        v[1]["ok"], false,
        "a running program opened its own exe for writing (ETXTBSY expected): {}",
        v[1]
    );
    assert!(sha_of(&rt) == before, "the runtime binary changed!");
    // and through exec into a running container
    let mut c = Ctr::new("exe2", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let o = c.rt(&[
        "exec",
        &c.id,
        "/bin/sh",
        "-c",
        "for p in /proc/[0-9]*; do /probe open-write $p/exe; done",
    ]);
    for v in lines_json(&o) {
        assert_eq!(
            v["ok"], false,
            "an exe of a process in the container opened for writing: {v}"
        );
    }
    assert!(sha_of(&rt) == before, "the runtime binary changed!");
}

/// CVE-2019-16884 / CVE-2019-19921 / CVE-2023-27561 / CVE-2023-28642: /proc (or /sys) a symlink.
#[test]
fn cve_2019_16884_proc_symlink_refused() {
    root_or_skip!("cve_2019_16884_proc_symlink_refused");
    for dir in ["proc", "sys"] {
        let mut c = Ctr::new("procsym", "root-rw");
        let p = c.rootfs().join(dir);
        std::fs::remove_dir(&p).unwrap();
        symlink("tmp", &p).unwrap();
        c.args(&["/probe", "stat", "/tmp"]);
        let o = c.create(&[]);
        let err = format!("{}{}", text(&o.stderr), c.log_text());
        assert!(
            !o.status.success(),
            "/{dir} -> /tmp in the rootfs must be refused"
        );
        assert!(err.contains(dir), "error must name /{dir}: {err}");
        assert!(
            c.rootfs().join("tmp").read_dir().unwrap().next().is_none(),
            "something was created in /tmp through the /{dir} symlink"
        );
    }
}

/// CVE-2021-30465 / CVE-2024-45310: a mount destination (or its parent) that is a symlink out of
/// the rootfs stays inside the rootfs; nothing is created or mounted on the host.
#[test]
fn cve_2021_30465_mount_destination_symlink_stays_inside() {
    root_or_skip!("cve_2021_30465_mount_destination_symlink_stays_inside");
    control_runs("2021");
    let mut c = Ctr::new("mntsym", "root-rw");
    let outside = c.work.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("marker"), "host").unwrap();
    let abs = c.rootfs().join("mnt/abs");
    symlink(&outside, &abs).unwrap(); // absolute host path
    let rel = c.rootfs().join("mnt/rel");
    symlink(
        format!("../../../../../../../../../../..{}", outside.display()),
        &rel,
    )
    .unwrap();
    symlink("/", c.rootfs().join("mnt/root")).unwrap();
    let escaped = format!("/husk-escape-{}", c.id);
    let root_dest = format!("/mnt/root{escaped}");
    let mounts = c.config["mounts"].as_array_mut().unwrap();
    for d in ["/mnt/abs", "/mnt/rel/sub", root_dest.as_str()] {
        mounts.push(
            json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}),
        );
    }
    c.args(&[
        "/bin/sh",
        "-c",
        "/probe write /mnt/abs/pwned x; /probe write /mnt/rel/sub/pwned x; /probe",
    ]);
    let o = c.run();
    let entries: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("marker")],
        "the runtime created or wrote on the host through a symlinked mount destination"
    );
    let host_escaped = Path::new(&escaped).exists();
    let _ = std::fs::remove_dir(&escaped);
    assert!(
        !host_escaped,
        "created {escaped} on the host through a symlink to /"
    );
    // if the container ran, its tmpfs mounts must be visible inside it (they landed in the rootfs)
    if o.status.success() {
        let v = lines_json(&o).pop().unwrap();
        let tmpfs_inside = v["mountinfo"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l.as_str())
            .filter(|l| {
                l.contains(" - tmpfs ")
                    && (l.contains(outside.to_str().unwrap())
                        || l.contains("/mnt/")
                        || l.contains(escaped.as_str()))
            })
            .count();
        assert!(
            tmpfs_inside >= 3,
            "the symlinked mounts are not inside the container: {}",
            v["mountinfo"]
        );
    }
}

/// CVE-2021-43784: oversized config data changes nothing but size.
#[test]
fn cve_2021_43784_oversized_annotation_and_env() {
    root_or_skip!("cve_2021_43784_oversized_annotation_and_env");
    let big_ann = "a".repeat(1 << 20);
    let big_env = format!("BIG={}", "e".repeat(100 * 1024)); // < MAX_ARG_STRLEN (128 KiB)
    let mut c = Ctr::new("big", "default");
    c.config["annotations"] = json!({"big": big_ann});
    c.config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(big_env.clone().into());
    let v = c.run_probe();
    let env: Vec<&str> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        env.contains(&big_env.as_str()),
        "the big env var did not arrive intact"
    );
    assert_eq!(v["pid"], 1);
    let mut c = Ctr::new("bigst", "default");
    c.config["annotations"] = json!({"big": big_ann});
    c.create_ok(&[]);
    let s = c.state().unwrap();
    assert_eq!(
        s["annotations"]["big"].as_str().map(str::len),
        Some(1 << 20),
        "annotation not intact in state"
    );
}

/// CVE-2022-29162: inheritable (and, unless asked, ambient) capabilities empty, in run and exec.
#[test]
fn cve_2022_29162_no_inheritable_caps() {
    root_or_skip!("cve_2022_29162_no_inheritable_caps");
    let mut c = Ctr::new("capinh", "default");
    let v = c.run_probe();
    assert_eq!(cap_mask(&v, "CapInh"), 0, "run: {}", v["caps"]);
    let mut c = Ctr::new("capinhx", "capabilities");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    for extra in [&[][..], &["--cap", "CAP_SYS_ADMIN"][..]] {
        let mut a = vec!["exec"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&[&c.id, "/probe"]);
        let o = c.rt(&a);
        assert!(o.status.success(), "exec {extra:?}: {}", text(&o.stderr));
        let v = probe_json(&o);
        assert_eq!(cap_mask(&v, "CapInh"), 0, "exec {extra:?}: {}", v["caps"]);
        assert_eq!(cap_mask(&v, "CapAmb"), 0, "exec {extra:?}: {}", v["caps"]);
    }
}

/// CVE-2023-25809: without a cgroup namespace, the host cgroup tree is not writable.
#[test]
fn cve_2023_25809_cgroup_tree_readonly() {
    root_or_skip!("cve_2023_25809_cgroup_tree_readonly");
    let files = [
        "/sys/fs/cgroup/pids/pids.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/unified/cgroup.procs",
        "/sys/fs/cgroup/pids.max",
    ];
    let mut c = Ctr::new("cgro", "default");
    // open for writing without O_CREAT/O_TRUNC: succeeding on a real cgroup file is the escape
    let script = files
        .iter()
        .map(|f| format!("/probe open-write {f}"))
        .collect::<Vec<_>>()
        .join("; ");
    c.args(&["/bin/sh", "-c", &script]);
    let v = lines_json(&c.run());
    assert_eq!(v.len(), files.len());
    let mut seen = 0;
    for (f, r) in files.iter().zip(&v) {
        assert_eq!(r["ok"], false, "wrote {f} from inside: {r}");
        if r["errno"] != libc::ENOENT {
            seen += 1;
        }
    }
    assert!(
        seen > 0,
        "no cgroup file was even visible; the test proved nothing: {v:?}"
    );
}

/// CVE-2024-21626: cwd through a leaked fd fails; the container sees only fds 0-2.
#[test]
fn cve_2024_21626_leaked_fd_cwd() {
    root_or_skip!("cve_2024_21626_leaked_fd_cwd");
    control_runs("2024");
    for n in 3..=9 {
        let mut c = Ctr::new("fdcwd", "default");
        c.config["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
        let o = c.run();
        if o.status.success() {
            let v = probe_json(&o);
            let cwd = v["cwd"].as_str().unwrap_or("(unreachable)");
            assert!(
                !cwd.starts_with("(unreachable)") && !cwd.is_empty(),
                "cwd /proc/self/fd/{n} reached outside the rootfs: {cwd}"
            );
        }
    }
    let mut c = Ctr::new("fds", "default");
    let v = c.run_probe();
    for (fd, target) in v["fds"].as_object().unwrap() {
        let fd: i32 = fd.parse().unwrap();
        let t = target.as_str().unwrap();
        // the probe's own open of /proc/self/fd shows up as one extra fd
        let own = t.starts_with("/proc/") && t.ends_with("/fd");
        assert!(fd <= 2 || own, "leaked fd {fd} -> {t}");
    }
}

fn config_without_dev_mounts(c: &mut Ctr) {
    let m = c.config["mounts"].as_array_mut().unwrap();
    m.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
}

/// CVE-2025-31133: /dev/null a symlink: masking must not bind a host file writable.
///
/// The symlink points at a host file the test owns (never a real host file such as
/// core_pattern: against a vulnerable runtime this attack really writes through).
#[test]
fn cve_2025_31133_dev_null_symlink() {
    root_or_skip!("cve_2025_31133_dev_null_symlink");
    control_runs("2025");
    let mut c = Ctr::new("devnull", "root-rw");
    config_without_dev_mounts(&mut c);
    let target = c.work.join("host-file");
    std::fs::write(&target, "host-content").unwrap();
    symlink(&target, c.rootfs().join("dev/null")).unwrap();
    c.args(&["/bin/sh", "-c", "/probe write /proc/timer_list pwned >/tmp/out1; /probe read /proc/timer_list >/tmp/out2; /probe stat /dev/null >/tmp/out3"]);
    let o = c.run();
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "host-content",
        "a host file became writable through the masked path (run: {:?})",
        o.status
    );
    if o.status.success() {
        let r = |n: &str| -> Value {
            serde_json::from_str(
                &std::fs::read_to_string(c.rootfs().join(format!("tmp/{n}"))).unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            r("out1")["ok"],
            false,
            "masked /proc/timer_list writable: {}",
            r("out1")
        );
        let rd = r("out2");
        assert!(
            rd["ok"] == false || rd["data"] == "",
            "masked /proc/timer_list readable: {rd}"
        );
        assert!(
            !rd["data"].as_str().unwrap_or("").contains("host-content"),
            "the mask exposes a host file: {rd}"
        );
    }
}

/// CVE-2025-52565: a symlinked /dev/console must not redirect the console bind mount.
#[test]
fn cve_2025_52565_console_symlink() {
    root_or_skip!("cve_2025_52565_console_symlink");
    control_runs("2025");
    let mut c = Ctr::new("consym", "root-rw");
    config_without_dev_mounts(&mut c);
    symlink("/etc/passwd", c.rootfs().join("dev/console")).unwrap();
    let passwd = std::fs::read(c.rootfs().join("etc/passwd")).unwrap();
    c.config["process"]["terminal"] = true.into();
    c.args(&[
        "/bin/sh",
        "-c",
        "/probe stat /etc/passwd; /probe stat /dev/console",
    ]);
    let rx = ConsoleReceiver::new(&c.work);
    let sock = rx.path.to_str().unwrap().to_string();
    let recv = std::thread::spawn(move || {
        std::panic::catch_unwind(|| rx.receive(Duration::from_secs(15)))
    });
    let o = c.create(&["--console-socket", &sock]);
    let master = recv.join().unwrap();
    if o.status.success() {
        let master = master.expect("console fd");
        assert!(c.start().status.success());
        let out = read_pty(&master, Duration::from_secs(10));
        let v: Vec<Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .collect();
        assert_eq!(v.len(), 2, "{out:?}");
        assert_eq!(
            v[0]["type"], "file",
            "/etc/passwd was replaced by the console: {}",
            v[0]
        );
    }
    assert_eq!(
        std::fs::read(c.rootfs().join("etc/passwd")).unwrap(),
        passwd
    );
}

/// CVE-2025-52881: an overmounted procfs file must not receive the runtime's sysctl write.
#[test]
fn cve_2025_52881_overmounted_sysctl() {
    root_or_skip!("cve_2025_52881_overmounted_sysctl");
    control_runs("2025");
    let mut c = Ctr::new("sysover", "default");
    let fake = c.bundle.join("fake");
    std::fs::write(&fake, "original").unwrap();
    c.config["linux"]["sysctl"] = json!({"kernel.shm_rmid_forced": "1"});
    c.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/kernel/shm_rmid_forced", "type": "bind",
        "source": fake.to_str().unwrap(), "options": ["bind", "rw"]}));
    let _ = c.run();
    assert_eq!(
        std::fs::read_to_string(&fake).unwrap(),
        "original",
        "the sysctl write landed in the overmounting file"
    );
}

/// Image /dev symlink advisories: rootfs/dev -> a host path: nothing is created outside.
#[test]
fn image_dev_symlink_creates_nothing_outside() {
    root_or_skip!("image_dev_symlink_creates_nothing_outside");
    control_runs("dev");
    for keep_dev_tmpfs in [false, true] {
        let mut c = Ctr::new("devsym", "root-rw");
        if !keep_dev_tmpfs {
            config_without_dev_mounts(&mut c);
        }
        let hostdev = c.work.join("hostdev");
        std::fs::create_dir_all(&hostdev).unwrap();
        std::fs::remove_dir(c.rootfs().join("dev")).unwrap();
        symlink(&hostdev, c.rootfs().join("dev")).unwrap();
        let _ = c.run();
        let entries: Vec<_> = std::fs::read_dir(&hostdev)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            entries.is_empty(),
            "device setup wrote on the host (dev tmpfs {keep_dev_tmpfs}): {entries:?}"
        );
    }
}

/// exec -u parsing: malformed users are rejected, a good one works.
#[test]
fn exec_user_strict_parsing() {
    root_or_skip!("exec_user_strict_parsing");
    let mut c = Ctr::new("execu", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    for bad in [
        "1000:",
        ":1000",
        "10a0",
        "1000:1000:1000",
        "-1",
        "1000:-5",
        "1000:abc",
        " 1000",
    ] {
        let o = c.rt(&["exec", "--user", bad, &c.id, "/probe"]);
        if o.status.success() {
            let v = probe_json(&o);
            panic!(
                "exec --user {bad:?} accepted; ran as uid {} gid {}",
                v["uid"], v["gid"]
            );
        }
    }
    let o = c.rt(&["exec", "--user", "1000:1001", &c.id, "/probe"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v = probe_json(&o);
    assert_eq!(
        (v["uid"].as_i64(), v["gid"].as_i64()),
        (Some(1000), Some(1001))
    );
}

/// A `linux.devices` entry is a node, not a permission: with `linux.resources.devices`
/// denying everything, a container given nodes for the host's kernel log and first disk must
/// not open either for writing (the devices cgroup refuses: EPERM). Opening with O_WRONLY
/// writes nothing, so a failure of this test leaves the host untouched.
#[test]
fn device_node_without_cgroup_rule_is_unusable() {
    root_or_skip!("device_node_without_cgroup_rule_is_unusable");
    let mut nodes = vec![("/dev/kmsg".to_string(), "c", 1u64, 11u64)];
    let disk = std::fs::read_dir("/sys/block").ok().and_then(|rd| {
        let mut v: Vec<(String, String)> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let d = std::fs::read_to_string(e.path().join("dev")).ok()?;
                (!["loop", "ram", "zram", "nbd"]
                    .iter()
                    .any(|p| n.starts_with(p)))
                .then(|| (n, d.trim().to_string()))
            })
            .collect();
        v.sort();
        v.into_iter().next()
    });
    if let Some((name, dev)) = disk {
        if let Some((a, b)) = dev.split_once(':') {
            nodes.push((
                format!("/dev/{name}"),
                "b",
                a.parse().unwrap(),
                b.parse().unwrap(),
            ));
        }
    }
    let mut c = Ctr::new("devnode", "default");
    c.config["linux"]["devices"] = nodes
        .iter()
        .map(|(p, t, ma, mi)| json!({"path": p, "type": t, "major": ma, "minor": mi}))
        .collect();
    c.config["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    let script = nodes
        .iter()
        .map(|(p, ..)| format!("/probe stat {p}; /probe open-write {p}"))
        .collect::<Vec<_>>()
        .join("; ");
    c.args(&["/bin/sh", "-c", &script]);
    let v = lines_json(&c.run());
    assert_eq!(v.len(), 2 * nodes.len(), "{v:?}");
    for (i, (p, ..)) in nodes.iter().enumerate() {
        let (st, open) = (&v[2 * i], &v[2 * i + 1]);
        assert!(
            st["type"] == "char" || st["type"] == "block",
            "{p} was not created, the attack proves nothing: {st}"
        );
        assert_eq!(
            open["ok"], false,
            "{p} opened for writing from inside: {open}"
        );
        assert_eq!(open["errno"], libc::EPERM, "{p}: {open}");
    }
}

/// A startContainer hook runs inside the container and must be held by the container's seccomp
/// filter: a profile that kills `mkdir`/`mkdirat` kills the hook that calls it (so `start`
/// fails), and nothing after that call in the hook runs.
#[test]
fn start_container_hook_cannot_escape_seccomp() {
    root_or_skip!("start_container_hook_cannot_escape_seccomp");
    let mut c = Ctr::new("hookkill", "default");
    c.config["root"]["readonly"] = false.into();
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    c.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "/probe syscall mkdir && touch /escaped"
    ]}]});
    c.args(&["/probe", "exit", "0"]);
    let o = c.run();
    assert!(
        !c.rootfs().join("escaped").exists(),
        "a startContainer hook called a syscall the profile kills"
    );
    assert!(
        !o.status.success(),
        "run succeeded although its startContainer hook was killed: {}",
        text(&o.stderr)
    );
    // positive control: without the killing rule the same hook completes
    let mut ok = Ctr::new("hookkillctl", "default");
    ok.config["root"]["readonly"] = false.into();
    ok.config["hooks"] = c.config["hooks"].clone();
    ok.args(&["/probe", "exit", "0"]);
    ok.run_ok();
    assert!(
        ok.rootfs().join("escaped").exists(),
        "the control hook did not run"
    );
}

/// Under `--no-pivot` the host's own procfs and sysfs stay in the container's mount namespace
/// below the moved root unless the runtime removes them (runc's msMoveRoot); with them there,
/// a container user can mount a fresh, unmasked procfs (and a sysfs) from a new user, pid and
/// net namespace, since the kernel then finds a fully visible instance. Both must be refused,
/// also when the container has a user namespace of its own.
#[test]
fn no_pivot_host_procfs_cannot_be_remounted() {
    root_or_skip!("no_pivot_host_procfs_cannot_be_remounted");
    // with a user namespace of its own the host's mounts are locked: they are covered instead
    for fixture in ["default", "userns"] {
        let mut c = Ctr::new("nopivatk", fixture);
        c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c.args(&[
            "/bin/sh",
            "-c",
            "unshare -mrpfn true && echo userns-ok; \
         unshare -mrpf sh -c 'mount -t proc none /proc && echo proc-mounted'; \
         unshare -mrpfn sh -c 'mount -t sysfs none /sys && echo sysfs-mounted'; exit 0",
        ]);
        c.write_config();
        let b = c.bundle.to_string_lossy().into_owned();
        let id = c.id.clone();
        let o = c.rt(&["run", "--no-pivot", "--bundle", &b, &id]);
        let out = text(&o.stdout);
        assert!(
            o.status.success(),
            "{fixture}: run --no-pivot: {}",
            text(&o.stderr)
        );
        assert!(
            out.contains("userns-ok"),
            "{fixture}: no user namespace inside, the attack proves nothing: {out}"
        );
        assert!(
            !out.contains("proc-mounted"),
            "{fixture}: mounted a new procfs: {out}"
        );
        assert!(
            !out.contains("sysfs-mounted"),
            "{fixture}: mounted a new sysfs: {out}"
        );
    }
}
