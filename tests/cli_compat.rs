//! runc's command line and output as its callers use them: negative `update` values and
//! `--cpu-share`, `kill ID 0`, `exec --cgroup`, `husk spec`'s cgroup namespace, the init's
//! debug records in `--log`, `events` key order, and a closed stdout.
mod common;
use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

fn exec_cat(c: &Ctr, file: &str) -> String {
    let o = c.rt(&["exec", &c.id, "cat", file]);
    assert!(o.status.success(), "exec cat {file}: {}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

/// A running container: `sleep`, with a memory limit and swap so `update` has something to
/// change.
fn sleeper(tag: &str) -> Ctr {
    let mut c = Ctr::new(tag, "default");
    c.args(&["/probe", "sleep", "60"]);
    c.config["linux"]["resources"]["memory"] =
        serde_json::json!({"limit": 64 << 20, "swap": 96 << 20});
    c.config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 40});
    c.config["linux"]["resources"]["cpu"] = serde_json::json!({"quota": 20000, "period": 100000});
    c.create_ok(&[]);
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    c
}

fn unified() -> bool {
    nix_statfs_is_cgroup2("/sys/fs/cgroup")
}

fn nix_statfs_is_cgroup2(p: &str) -> bool {
    let c = std::ffi::CString::new(p).unwrap();
    // SAFETY: statfs into a zeroed struct we own.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type == libc::CGROUP2_SUPER_MAGIC
    }
}

/// `update --memory-swap -1` and the other negative values runc's update takes (`-1` for the
/// sizes, any integer for `--cpu-quota`, `--pids-limit`, `--cpu-rt-runtime`, `--cpu-idle`), and
/// runc's `--cpu-share` spelling; each read back inside the container.
#[test]
fn update_negative_values_and_cpu_share() {
    root_or_skip!("update_negative_values_and_cpu_share");
    let c = sleeper("updneg");
    let o = c.rt(&[
        "update",
        "--memory-swap",
        "-1",
        "--cpu-quota",
        "-1",
        "--pids-limit",
        "-1",
        "--cpu-share",
        "512",
        &c.id,
    ]);
    assert!(
        o.status.success(),
        "update with negative values: {}",
        text(&o.stderr)
    );
    if unified() {
        assert_eq!(exec_cat(&c, "/sys/fs/cgroup/memory.swap.max"), "max");
        assert_eq!(exec_cat(&c, "/sys/fs/cgroup/pids.max"), "max");
        assert!(exec_cat(&c, "/sys/fs/cgroup/cpu.max").starts_with("max "));
    } else {
        let memsw = exec_cat(&c, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes");
        assert!(
            memsw.parse::<u64>().unwrap() > 1 << 60,
            "memory.memsw.limit_in_bytes after --memory-swap -1: {memsw}"
        );
        assert_eq!(exec_cat(&c, "/sys/fs/cgroup/pids/pids.max"), "max");
        assert_eq!(exec_cat(&c, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "-1");
        assert_eq!(exec_cat(&c, "/sys/fs/cgroup/cpu/cpu.shares"), "512");
    }
    // the `=` form, and a negative size other than -1 is refused naming the flag's value
    let o = c.rt(&["update", "--memory-swap=-1", &c.id]);
    assert!(o.status.success(), "--memory-swap=-1: {}", text(&o.stderr));
    let o = c.rt(&["update", "--memory", "-5", &c.id]);
    assert_eq!(code(&o.status), 1, "--memory -5 must fail");
    assert!(text(&o.stderr).contains("-5"), "{}", text(&o.stderr));
}

/// `kill --all ID KILL` of a stopped container whose cgroup is gone succeeds (runc alike): with
/// the systemd driver the container's cgroup is its scope's, which systemd removes with its last
/// process, and containerd's shim sends `kill --all` when it deletes the exited task (on an
/// error containerd never finishes stopping the pod). The cgroup is removed here by hand, as
/// systemd would; `delete` then leaves nothing.
#[test]
fn kill_all_of_a_stopped_container_without_its_cgroup() {
    root_or_skip!("kill_all_of_a_stopped_container_without_its_cgroup");
    let mut c = Ctr::new("killallgone", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    assert!(c.kill("KILL").status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    // the container's cgroup is still there while it exists (a directory of it at least)
    let mut dirs = cgroup_dirs(&c.id);
    assert!(!dirs.is_empty(), "no cgroup of {} before its removal", c.id);
    // deepest first
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in &dirs {
        std::fs::remove_dir(d).unwrap_or_else(|e| panic!("rmdir {}: {e}", d.display()));
    }
    let o = c.rt(&["kill", "--all", &c.id, "KILL"]);
    assert!(
        o.status.success(),
        "kill --all of a stopped container whose cgroup is gone: {}",
        text(&o.stderr)
    );
    let o = c.delete(false);
    assert!(o.status.success(), "delete: {}", text(&o.stderr));
    assert!(
        cgroup_dirs(&c.id).is_empty(),
        "cgroup left: {:?}",
        cgroup_dirs(&c.id)
    );
}

/// `kill ID 0`: kill(2)'s null signal as an existence probe, as runc takes it: exit 0 while the
/// init exists (created, running), "not running" once stopped, "does not exist" when missing;
/// it sends nothing.
#[test]
fn kill_zero_probes_existence() {
    root_or_skip!("kill_zero_probes_existence");
    let mut c = Ctr::new("kill0", "default");
    c.args(&["/probe", "sleep", "60"]);
    let o = c.kill("0");
    assert_eq!(code(&o.status), 1);
    assert!(
        text(&o.stderr).contains("does not exist"),
        "{}",
        text(&o.stderr)
    );
    c.create_ok(&[]);
    let o = c.kill("0");
    assert!(o.status.success(), "kill 0 (created): {}", text(&o.stderr));
    assert_eq!(c.status().as_deref(), Some("created"));
    let o = c.rt(&["kill", "--all", &c.id, "0"]);
    assert!(
        o.status.success(),
        "kill --all 0 (created): {}",
        text(&o.stderr)
    );
    assert!(c.start().status.success());
    let o = c.kill("0");
    assert!(o.status.success(), "kill 0 (running): {}", text(&o.stderr));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.status().as_deref(), Some("running"));
    assert!(c.kill("KILL").status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    let o = c.kill("0");
    assert_eq!(code(&o.status), 1, "kill 0 (stopped) must fail");
    assert!(
        text(&o.stderr).contains("not running"),
        "{}",
        text(&o.stderr)
    );
}

struct Rm(Vec<std::path::PathBuf>);
impl Drop for Rm {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A `sub` cgroup below the container's directory in each of its hierarchies (from the init's
/// /proc/PID/cgroup); removed on drop.
fn make_subs(pid: i64) -> Rm {
    let mut made = Vec::new();
    let lines = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in lines.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let mp = mounts.lines().find_map(|m| {
            let (pre, post) = m.split_once(" - ")?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let opts = post.nth(1)?;
            let mp = pre.split(' ').nth(4)?;
            let ok = if ctrls.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && ctrls.split(',').all(|c| opts.split(',').any(|o| o == c))
            };
            (ok && mp.starts_with("/sys/fs/cgroup")).then(|| mp.to_string())
        });
        if let Some(mp) = mp {
            let d = std::path::Path::new(&mp)
                .join(path.trim_start_matches('/'))
                .join("sub");
            if d.parent().unwrap().is_dir() && !d.exists() {
                std::fs::create_dir(&d).unwrap();
                // a v1 cpuset cgroup starts empty: give it its parent's cpus and mems
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    if let Ok(v) = std::fs::read_to_string(d.parent().unwrap().join(f)) {
                        std::fs::write(d.join(f), v.trim()).unwrap();
                    }
                }
                made.push(d);
            }
        }
    }
    assert!(!made.is_empty());
    Rm(made)
}

/// For each line of /proc/self/cgroup: the hierarchy's controllers and whether the path ends
/// in the sub-cgroup.
fn placement(out: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _ = f.next()?;
            Some((f.next()?.to_string(), f.next()?.ends_with("/sub")))
        })
        .collect();
    v.sort();
    v
}

/// `exec --cgroup SUB` runs the process in an existing sub-cgroup of the container's cgroup
/// (every hierarchy), `exec --cgroup pids:SUB` in that controller's hierarchy only; a missing
/// sub-cgroup or one outside the container's cgroup is refused and nothing runs.
#[test]
fn exec_cgroup_runs_in_a_sub_cgroup() {
    root_or_skip!("exec_cgroup_runs_in_a_sub_cgroup");
    let c = sleeper("execcg");
    let pid = c.state().unwrap()["pid"].as_i64().unwrap();
    let _rm = make_subs(pid);
    let o = c.rt(&["exec", "--cgroup", "sub", &c.id, "cat", "/proc/self/cgroup"]);
    assert!(o.status.success(), "exec --cgroup sub: {}", text(&o.stderr));
    let inside = text(&o.stdout);
    for l in inside.lines() {
        assert!(l.ends_with("/sub"), "not in the sub-cgroup: {l}\n{inside}");
    }
    if !unified() {
        let o = c.rt(&[
            "exec",
            "--cgroup",
            "pids:sub",
            &c.id,
            "cat",
            "/proc/self/cgroup",
        ]);
        assert!(
            o.status.success(),
            "exec --cgroup pids:sub: {}",
            text(&o.stderr)
        );
        let inside = text(&o.stdout);
        for l in inside.lines() {
            let pids = l.split(':').nth(1) == Some("pids");
            assert_eq!(l.ends_with("/sub"), pids, "{l}\n{inside}");
        }
    }
    for bad in ["nope", "../x", "a:b:c"] {
        let o = c.rt(&["exec", "--cgroup", bad, &c.id, "true"]);
        assert!(!o.status.success(), "exec --cgroup {bad} must fail");
        assert!(
            text(&o.stderr).contains("--cgroup"),
            "{bad}: {}",
            text(&o.stderr)
        );
    }
    // `ps` still lists only the container's processes (the exec'd ones have exited)
    drop(c);
}

/// `husk spec` adds a cgroup namespace only on a unified (pure cgroup v2) host, as runc.
#[test]
fn spec_cgroup_namespace_only_on_unified() {
    let dir = tempfile::Builder::new()
        .prefix("husk-test-spec-")
        .tempdir()
        .unwrap();
    let o = run_timeout(
        Command::new(runtime()).arg("spec").current_dir(dir.path()),
        CMD_TIMEOUT,
    );
    assert!(o.status.success(), "spec: {}", text(&o.stderr));
    let c: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let has = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup");
    assert_eq!(
        has,
        unified(),
        "cgroup namespace in `spec` on a unified={} host",
        unified()
    );
    // the same namespaces, in the same order, as `runc spec` on this host
    let runc = std::path::Path::new("/usr/sbin/runc");
    if runc.exists() && !is_runc() {
        let d2 = tempfile::Builder::new()
            .prefix("husk-test-spec-")
            .tempdir()
            .unwrap();
        let o = run_timeout(
            Command::new(runc).arg("spec").current_dir(d2.path()),
            CMD_TIMEOUT,
        );
        assert!(o.status.success(), "runc spec: {}", text(&o.stderr));
        let r: Value =
            serde_json::from_slice(&std::fs::read(d2.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(c["linux"]["namespaces"], r["linux"]["namespaces"]);
    }
}

/// With `--log FILE --debug`, the container's init writes its debug records into the log,
/// also those after pivot_root.
#[test]
fn debug_log_has_the_init_records() {
    root_or_skip!("debug_log_has_the_init_records");
    let mut c = Ctr::new("dbginit", "default");
    c.args(&["/probe", "exit", "0"]);
    c.global_args = vec!["--debug".into()];
    c.run_ok();
    let log = c.log_text();
    let msgs: Vec<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "debug")
        .map(|v| v["msg"].as_str().unwrap_or("").to_string())
        .collect();
    if is_runc() {
        assert!(
            msgs.iter()
                .any(|m| m.contains("nsexec") || m.contains("init")),
            "{log}"
        );
        return;
    }
    for want in ["pivot_root", "close inherited fds", "execve \"/probe\""] {
        assert!(
            msgs.iter().any(|m| m.contains(want)),
            "no debug record of the init mentioning {want:?}:\n{log}"
        );
    }
    // nothing of it reached the container's rootfs
    assert!(!c.rootfs().join(c.log.strip_prefix("/").unwrap()).exists());
}

/// `events --stats` prints runc's key order: `type`, `id`, `data`, and `data` in the order of
/// runc's `types.Stats` (cpu, cpuset, memory, pids, blkio, hugetlb, intel_rdt,
/// network_interfaces).
#[test]
fn events_keys_in_runc_order() {
    root_or_skip!("events_keys_in_runc_order");
    let c = sleeper("evorder");
    let o = c.rt(&["events", "--stats", &c.id]);
    assert!(o.status.success(), "events --stats: {}", text(&o.stderr));
    let line = text(&o.stdout);
    let head = format!(
        "{{\"type\":\"stats\",\"id\":\"{}\",\"data\":{{\"cpu\":",
        c.id
    );
    assert!(line.starts_with(&head), "want {head}...; got {line}");
    let keys = [
        "\"cpu\":",
        "\"cpuset\":",
        "\"memory\":",
        "\"pids\":",
        "\"blkio\":",
        "\"hugetlb\":",
        "\"intel_rdt\":",
        "\"network_interfaces\":",
    ];
    let data = &line[head.len() - "\"cpu\":".len()..];
    let mut at = 0;
    for k in keys {
        let p = data[at..]
            .find(k)
            .unwrap_or_else(|| panic!("{k} missing or out of order: {data}"));
        at += p + k.len();
    }
}

/// Run `args` with stdout a pipe whose reading end is already closed.
fn into_closed_pipe(c: &Ctr, args: &[&str]) -> std::process::Output {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just made and are owned here.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(r);
    let mut cmd = c.cmd();
    cmd.args(args).stdout(Stdio::from(w)).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    child.wait_with_output().unwrap()
}

/// `features | head -1`, `list`, `ps`, `state`, `events --stats`, `--version` into a closed
/// pipe end quietly, as runc does (SIGPIPE): no panic, nothing on stderr, no error in the log.
#[test]
fn closed_stdout_ends_quietly() {
    root_or_skip!("closed_stdout_ends_quietly");
    let c = sleeper("epipe");
    let id = c.id.clone();
    for args in [
        vec!["features"],
        vec!["list"],
        vec!["list", "--format", "json"],
        vec!["ps", id.as_str()],
        vec!["ps", "--format", "json", id.as_str()],
        vec!["state", id.as_str()],
        vec!["events", "--stats", id.as_str()],
        vec!["--version"],
    ] {
        let before = c.log_text();
        let o = into_closed_pipe(&c, &args);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?} into a closed pipe: {:?}, stderr: {}",
            o.status,
            text(&o.stderr)
        );
        assert!(o.stderr.is_empty(), "{args:?}: stderr {}", text(&o.stderr));
        assert_eq!(c.log_text(), before, "{args:?} wrote to the log");
    }
}

/// Under `--debug`, a container process writes no record once its seccomp filter is in: a
/// profile that kills on a long write(2) (without noNewPrivileges, so the filter comes before
/// the last steps) must not kill the init because of husk's own logging.
#[test]
fn debug_records_stop_at_the_seccomp_filter() {
    root_or_skip!("debug_records_stop_at_the_seccomp_filter");
    let mut c = Ctr::new("dbgsecc", "default");
    c.args(&["/probe", "exit", "7"]);
    c.config["process"]["noNewPrivileges"] = false.into();
    c.config["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        // long writes only: husk's sync messages are short, a log record is not
        "syscalls": [{"names": ["write"], "action": "SCMP_ACT_KILL_PROCESS",
                      "args": [{"index": 2, "value": 48, "op": "SCMP_CMP_GE"}]}]
    });
    let o = c.run();
    assert_eq!(code(&o.status), 7, "without --debug: {}", text(&o.stderr));
    c.global_args = vec!["--debug".into()];
    let o = c.run();
    assert_eq!(
        code(&o.status),
        7,
        "the program did not run to its exit: {:?}\n{}\n{}",
        o.status,
        text(&o.stderr),
        c.log_text()
    );
}

/// Every key of a JSON text, as paths in document order (the first element of arrays only;
/// `memory.raw`, a map both print sorted, left out).
fn key_paths(text: &str) -> Vec<String> {
    fn walk(t: &[u8], i: &mut usize, path: &str, out: &mut Vec<String>) {
        let skip_ws = |i: &mut usize| {
            while *i < t.len() && t[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        skip_ws(i);
        match t.get(*i) {
            Some(b'{') => {
                *i += 1;
                loop {
                    skip_ws(i);
                    if t.get(*i) == Some(&b'}') {
                        *i += 1;
                        return;
                    }
                    let start = *i + 1;
                    *i = start;
                    while t[*i] != b'"' {
                        *i += 1;
                    }
                    let k = std::str::from_utf8(&t[start..*i]).unwrap();
                    *i += 1;
                    skip_ws(i);
                    *i += 1; // ':'
                    let p = format!("{path}/{k}");
                    if !path.ends_with("/memory/raw") {
                        out.push(p.clone());
                    }
                    walk(t, i, &p, out);
                    skip_ws(i);
                    if t.get(*i) == Some(&b',') {
                        *i += 1;
                    }
                }
            }
            Some(b'[') => {
                *i += 1;
                let mut first = true;
                loop {
                    skip_ws(i);
                    if t.get(*i) == Some(&b']') {
                        *i += 1;
                        return;
                    }
                    let mut sink = Vec::new();
                    walk(
                        t,
                        i,
                        &format!("{path}[]"),
                        if first { out } else { &mut sink },
                    );
                    first = false;
                    skip_ws(i);
                    if t.get(*i) == Some(&b',') {
                        *i += 1;
                    }
                }
            }
            Some(b'"') => {
                *i += 1;
                while t[*i] != b'"' {
                    if t[*i] == b'\\' {
                        *i += 1;
                    }
                    *i += 1;
                }
                *i += 1;
            }
            _ => {
                while *i < t.len() && !b",}]".contains(&t[*i]) {
                    *i += 1;
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(text.trim().as_bytes(), &mut 0, "", &mut out);
    out
}

/// runc 1.1.5 running a copy of a husk test container's config (its own root, id and absolute
/// cgroup), for side-by-side comparisons; deleted with its cgroups on drop.
struct RuncCtr {
    root: std::path::PathBuf,
    id: String,
}

impl RuncCtr {
    fn run_like(c: &Ctr, tag: &str) -> RuncCtr {
        let r = RuncCtr {
            root: c.work.join("runc-root"),
            id: unique_id(tag),
        };
        let rb = c.work.join("runc-bundle");
        std::fs::create_dir(&rb).unwrap();
        let mut cfg = c.config.clone();
        cfg["linux"]["cgroupsPath"] = format!("/{}", r.id).into();
        cfg["root"]["path"] = c.rootfs().to_string_lossy().into_owned().into();
        std::fs::write(rb.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        let o = r.cmd(&["run", "-d", "--bundle", &rb.to_string_lossy(), &r.id]);
        assert!(o.status.success(), "runc run -d: {}", text(&o.stderr));
        r
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        run_timeout(
            Command::new("/usr/sbin/runc")
                .arg("--root")
                .arg(&self.root)
                .args(args),
            CMD_TIMEOUT,
        )
    }
}

impl Drop for RuncCtr {
    fn drop(&mut self) {
        let _ = self.cmd(&["delete", "-f", &self.id]);
        for d in cgroup_dirs(&self.id) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `events --stats` against runc 1.1.5 on the same bundle: the same keys in the same order
/// (values differ, keys that only one prints are compared by their common order).
#[test]
fn events_stats_key_order_matches_runc() {
    root_or_skip!("events_stats_key_order_matches_runc");
    let runc = std::path::Path::new("/usr/sbin/runc");
    if !runc.exists() || is_runc() {
        skip(
            "events_stats_key_order_matches_runc",
            "needs /usr/sbin/runc as the reference",
        );
        return;
    }
    let c = sleeper("evrunc");
    let o = c.rt(&["events", "--stats", &c.id]);
    assert!(o.status.success(), "events --stats: {}", text(&o.stderr));
    let ours = key_paths(&text(&o.stdout));

    // runc on a copy of the bundle's config with its own id and cgroup
    let r = RuncCtr::run_like(&c, "evrunc-ref");
    let runc_cmd = |args: &[&str]| r.cmd(args);
    let o = runc_cmd(&["events", "--stats", &r.id]);
    assert!(
        o.status.success(),
        "runc events --stats: {}",
        text(&o.stderr)
    );
    let theirs = key_paths(&text(&o.stdout));
    assert_eq!(&ours[..3], &["/type", "/id", "/data"]);
    assert_eq!(&theirs[..3], &["/type", "/id", "/data"]);
    let common_ours: Vec<&String> = ours.iter().filter(|k| theirs.contains(k)).collect();
    let common_theirs: Vec<&String> = theirs.iter().filter(|k| ours.contains(k)).collect();
    assert_eq!(common_ours, common_theirs, "key order differs from runc's");
    assert!(common_ours.len() > 30, "few common keys: {common_ours:?}");
    drop(r);
}

/// `exec --cgroup` against runc 1.1.5 on the same bundle: the same placement for `sub` and
/// `pids:sub`, and both refuse a missing sub-cgroup.
#[test]
fn exec_cgroup_matches_runc() {
    root_or_skip!("exec_cgroup_matches_runc");
    let runc = std::path::Path::new("/usr/sbin/runc");
    if !runc.exists() || is_runc() || unified() {
        skip(
            "exec_cgroup_matches_runc",
            "needs /usr/sbin/runc and a v1 host",
        );
        return;
    }
    let c = sleeper("execcgr");
    let r = RuncCtr::run_like(&c, "execcgr-ref");
    let runc_cmd = |args: &[&str]| r.cmd(args);
    let st = runc_cmd(&["state", &r.id]);
    let rpid = serde_json::from_slice::<Value>(&st.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    let hpid = c.state().unwrap()["pid"].as_i64().unwrap();
    let _rm_runc = make_subs(rpid);
    let _rm_husk = make_subs(hpid);
    for arg in ["sub", "pids:sub", "memory,pids:sub"] {
        let ours = c.rt(&["exec", "--cgroup", arg, &c.id, "cat", "/proc/self/cgroup"]);
        let theirs = runc_cmd(&["exec", "--cgroup", arg, &r.id, "cat", "/proc/self/cgroup"]);
        assert!(
            ours.status.success(),
            "husk exec --cgroup {arg}: {}",
            text(&ours.stderr)
        );
        assert!(
            theirs.status.success(),
            "runc exec --cgroup {arg}: {}",
            text(&theirs.stderr)
        );
        assert_eq!(
            placement(&text(&ours.stdout)),
            placement(&text(&theirs.stdout)),
            "--cgroup {arg}: husk and runc place the process differently"
        );
    }
    let ours = c.rt(&["exec", "--cgroup", "nope", &c.id, "true"]);
    let theirs = runc_cmd(&["exec", "--cgroup", "nope", &r.id, "true"]);
    assert!(!ours.status.success() && !theirs.status.success());
    drop(r);
}
