//! What an engine meets after husk (or someone) was interrupted: a cgroup frozen behind husk's
//! back, processes left in the cgroup of a stopped container, a state.json that lies or cannot
//! be read, a cgroup that cannot be removed. `state`, `resume`, `list` and `delete` trust the
//! cgroup over state.json, and `delete` always removes the state entry.
mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The file that freezes the container's cgroup (cgroupsPath is `/ID` in the harness) and the
/// values that freeze and thaw it: v1 `freezer.state`, v2 `cgroup.freeze`.
fn freezer(id: &str) -> (PathBuf, &'static str, &'static str) {
    let v1 = PathBuf::from("/sys/fs/cgroup/freezer").join(id);
    if v1.is_dir() {
        return (v1.join("freezer.state"), "FROZEN", "THAWED");
    }
    (
        PathBuf::from("/sys/fs/cgroup")
            .join(id)
            .join("cgroup.freeze"),
        "1",
        "0",
    )
}

/// Freeze the container's cgroup by hand (what a `pause` killed after its freeze leaves) and
/// wait until the kernel reports it frozen.
fn freeze_by_hand(id: &str) {
    let (f, frozen, _) = freezer(id);
    std::fs::write(&f, frozen).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let done = if f.ends_with("freezer.state") {
            std::fs::read_to_string(&f).unwrap().trim() == "FROZEN"
        } else {
            std::fs::read_to_string(f.with_file_name("cgroup.events"))
                .unwrap()
                .lines()
                .any(|l| l == "frozen 1")
        };
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "cgroup of {id} did not freeze");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn thaw_by_hand(id: &str) {
    let (f, _, thawed) = freezer(id);
    let _ = std::fs::write(f, thawed);
}

/// Thaws the cgroup on drop (declared after the container, so it runs before the container's
/// guard): a failing test must not leave a frozen cgroup that nothing can clean.
struct Thaw(String);
impl Drop for Thaw {
    fn drop(&mut self) {
        thaw_by_hand(&self.0);
    }
}

/// A running container whose program counts: `/probe sleep` would do, but the test needs to
/// see that a resumed container runs again, so it writes a counter to a file in its rootfs.
fn counting(tag: &str) -> Ctr {
    let mut c = Ctr::new(tag, "default");
    c.config["root"]["readonly"] = false.into();
    c.args(&[
        "/bin/sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done",
    ]);
    c.create_ok(&[]);
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    c
}

fn count(c: &Ctr) -> u64 {
    std::fs::read_to_string(c.rootfs().join("tmp/count"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

fn state_file(c: &Ctr) -> PathBuf {
    c.root.join(&c.id).join("state.json")
}

/// A `pause` killed after it froze the cgroup but before it recorded it: state, list, resume
/// and delete --force read the freezer itself.
#[test]
fn cgroup_frozen_behind_husks_back() {
    if !require_root("cgroup_frozen_behind_husks_back") {
        return;
    }
    let c = counting("frozen");
    let _thaw = Thaw(c.id.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&c) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(count(&c) >= 2, "precondition: the counter runs");
    freeze_by_hand(&c.id);
    assert_eq!(
        c.status().as_deref(),
        Some("paused"),
        "state must read the freezer"
    );
    let l: Value = serde_json::from_slice(&c.rt(&["list", "--format", "json"]).stdout).unwrap();
    assert_eq!(l[0]["status"], "paused", "list must read the freezer: {l}");
    let o = c.rt(&["resume", &c.id]);
    assert!(
        o.status.success(),
        "resume of a cgroup frozen by hand: {}",
        text(&o.stderr)
    );
    assert_eq!(c.status().as_deref(), Some("running"));
    let before = count(&c);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        count(&c) > before,
        "the container does not run after resume"
    );

    // frozen again; delete --force thaws, kills and removes everything, quickly
    freeze_by_hand(&c.id);
    let t = Instant::now();
    let o = c.delete(true);
    let took = t.elapsed();
    assert!(
        o.status.success(),
        "delete --force of a frozen cgroup: {}",
        text(&o.stderr)
    );
    assert!(
        took < Duration::from_secs(3),
        "delete --force took {took:?}"
    );
    assert!(c.state().is_none(), "state entry left");
    // the guard checks that no process, mount or cgroup is left
}

/// What the container's own freezer says: "THAWED", "FREEZING" or "FROZEN" (v2: from
/// `cgroup.freeze` and `cgroup.events`, in the same words).
fn freezer_now(id: &str) -> String {
    let (f, _, _) = freezer(id);
    if f.ends_with("freezer.state") {
        return std::fs::read_to_string(&f)
            .unwrap_or_default()
            .trim()
            .to_string();
    }
    let asked = std::fs::read_to_string(&f).unwrap_or_default().trim() == "1";
    let frozen = std::fs::read_to_string(f.with_file_name("cgroup.events"))
        .unwrap_or_default()
        .lines()
        .any(|l| l == "frozen 1");
    match (asked, frozen) {
        (false, _) => "THAWED",
        (true, false) => "FREEZING",
        (true, true) => "FROZEN",
    }
    .to_string()
}

/// The container's processes (its cgroup's, in the freezer hierarchy or the v2 tree).
fn cgroup_procs(id: &str) -> Vec<i32> {
    let (f, _, _) = freezer(id);
    std::fs::read_to_string(f.with_file_name("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Ask the freezer to freeze and check that it stays half way: FREEZING a second later.
fn freeze_stuck(id: &str) -> Result<(), String> {
    let (f, frozen, _) = freezer(id);
    std::fs::write(&f, frozen).map_err(|e| format!("{}: {e}", f.display()))?;
    std::thread::sleep(Duration::from_secs(1));
    match freezer_now(id).as_str() {
        "FREEZING" => Ok(()),
        other => Err(format!("freezer is {other} a second after the freeze")),
    }
}

/// A cgroup whose freezer is stuck half way (v1 `FREEZING`; v2 `cgroup.freeze` 1 while
/// `cgroup.events` says `frozen 0`): what a `pause` killed mid-way leaves when one task cannot
/// be frozen. Here that task waits in the kernel for an answer from a FUSE server that never
/// reads its request (`/probe fuse-hang`, the container's init, which itself freezes). `state`
/// says paused (the freezer was asked to freeze), `resume` thaws it, and `delete --force`
/// thaws before it kills — the tasks already frozen die only once thawed — and removes
/// everything, quickly.
#[test]
fn cgroup_stuck_freezing() {
    stuck_freezing("cgroup_stuck_freezing", true);
}

/// The same without a pid namespace of the container's own: the kernel does not end the
/// other processes with the init, so delete's sweep of the cgroup must, and its kill must not
/// wait for a freeze that cannot finish.
#[test]
fn cgroup_stuck_freezing_without_pid_namespace() {
    stuck_freezing("cgroup_stuck_freezing_without_pid_namespace", false);
}

fn stuck_freezing(test: &str, own_pidns: bool) {
    if !require_root(test) {
        return;
    }
    if !std::path::Path::new("/dev/fuse").exists() {
        skip(test, "no /dev/fuse: this kernel has no FUSE");
        return;
    }
    let mut c = Ctr::new("freezing", "default");
    if !own_pidns {
        let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    }
    for set in ["bounding", "effective", "permitted"] {
        c.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_ADMIN".into());
    }
    c.config["linux"]["devices"] =
        serde_json::json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
    c.config["linux"]["resources"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
    c.args(&["/probe", "fuse-hang", "/mnt"]);
    c.create_ok(&[]);
    let _thaw = Thaw(c.id.clone());
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));

    // the init, its holder and the child that is to wait for the FUSE answer
    let deadline = Instant::now() + Duration::from_secs(20);
    while cgroup_procs(&c.id).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the container's probe did not start its children; procs {:?}, log {}",
            cgroup_procs(&c.id),
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // a freeze before the child's lookup freezes it all: thawed and tried again
    loop {
        match freeze_stuck(&c.id) {
            Ok(()) => break,
            Err(e) => {
                thaw_by_hand(&c.id);
                if Instant::now() > deadline {
                    // a kernel whose FUSE waits are freezable: nothing here reaches FREEZING
                    skip(
                        test,
                        &format!(
                            "a task waiting on FUSE does not keep the freezer half way here ({e})"
                        ),
                    );
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    c.pids.extend(cgroup_procs(&c.id));
    assert_eq!(
        c.status().as_deref(),
        Some("paused"),
        "state of a cgroup stuck freezing"
    );
    let t = Instant::now();
    let o = c.rt(&["resume", &c.id]);
    assert!(
        o.status.success(),
        "resume of a cgroup stuck freezing: {}",
        text(&o.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "resume took {:?}",
        t.elapsed()
    );
    assert_eq!(freezer_now(&c.id), "THAWED", "resume must thaw");
    assert_eq!(c.status().as_deref(), Some("running"));

    // stuck half way again; delete --force thaws, kills and removes everything, quickly
    freeze_stuck(&c.id).unwrap();
    let t = Instant::now();
    let o = c.delete(true);
    let took = t.elapsed();
    assert!(
        o.status.success(),
        "delete --force of a cgroup stuck freezing: {}",
        text(&o.stderr)
    );
    assert!(
        took < Duration::from_secs(3),
        "delete --force took {took:?}"
    );
    assert!(c.state().is_none(), "state entry left");
    // the guard checks that no process (the init, its stuck child), mount or cgroup is left
}

/// A container without its own pid namespace whose init exits while a child lives: it is
/// stopped, and a plain `delete` kills what is left in its cgroup and removes it.
#[test]
fn delete_of_stopped_container_sweeps_its_cgroup() {
    if !require_root("delete_of_stopped_container_sweeps_its_cgroup") {
        return;
    }
    let mut c = Ctr::new("sweep", "default");
    let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    c.args(&[
        "/bin/sh",
        "-c",
        "sleep 300 </dev/null >/dev/null 2>&1 & exit 0",
    ]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    assert!(
        c.wait_status("stopped", Duration::from_secs(10)),
        "{:?}",
        c.state()
    );
    // the sleep is still in the container's cgroup
    let procs = cgroup_dirs(&c.id)
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .unwrap_or_default();
    let left: Vec<i32> = procs
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        !left.is_empty(),
        "precondition: a process outlives the init"
    );
    c.pids.extend(&left);
    let t = Instant::now();
    let o = c.delete(false);
    assert!(o.status.success(), "delete: {}", text(&o.stderr));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "delete took {:?}",
        t.elapsed()
    );
    for p in left {
        assert!(!pid_alive(p), "pid {p} of the cgroup survived delete");
    }
}

/// A state.json whose pid is 0, -1 or another live process: the container reads as stopped,
/// delete kills what is in its cgroup (never the process the pid now names) and removes it.
#[test]
fn delete_trusts_the_cgroup_over_a_wrong_pid() {
    if !require_root("delete_trusts_the_cgroup_over_a_wrong_pid") {
        return;
    }
    for bad in ["0", "-1", "reused"] {
        let mut c = Ctr::new("badpid", "default");
        c.args(&["/probe", "sleep", "300"]);
        c.create_ok(&[]);
        assert!(c.start().status.success());
        let init = c.pids[0];
        // a live process outside the container, standing for a reused pid
        let other = Helper(
            std::process::Command::new("sleep")
                .arg("300")
                .spawn()
                .unwrap(),
        );
        let f = state_file(&c);
        let mut st: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        st["pid"] = match bad {
            "0" => 0.into(),
            "-1" => (-1).into(),
            _ => other.pid().into(),
        };
        std::fs::write(&f, serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(c.status().as_deref(), Some("stopped"), "pid {bad}");
        let o = c.delete(false);
        assert!(o.status.success(), "pid {bad}: delete: {}", text(&o.stderr));
        let deadline = Instant::now() + Duration::from_secs(3);
        while pid_alive(init) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!pid_alive(init), "pid {bad}: the container's init survived");
        assert!(
            pid_alive(other.pid()),
            "pid {bad}: delete killed the process the recorded pid names"
        );
        assert!(cgroup_dirs(&c.id).is_empty(), "pid {bad}: cgroup left");
    }
}

/// `list` shows a container whose state.json cannot be parsed (its process still runs), with
/// the reason on stderr; `delete --force` then removes everything.
#[test]
fn list_shows_unreadable_state_and_delete_force_cleans() {
    if !require_root("list_shows_unreadable_state_and_delete_force_cleans") {
        return;
    }
    let mut c = Ctr::new("badstate", "default");
    c.args(&["/probe", "sleep", "300"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    std::fs::write(state_file(&c), b"{\"ociVersion\": \"1.2.0\", \"id\": tru").unwrap();
    let o = c.rt(&["list"]);
    assert!(o.status.success(), "list: {}", text(&o.stderr));
    let row = text(&o.stdout)
        .lines()
        .find(|l| l.starts_with(&c.id))
        .map(String::from);
    let row = row.unwrap_or_else(|| panic!("list hides the container:\n{}", text(&o.stdout)));
    assert!(row.contains("unknown"), "status: {row}");
    let err = text(&o.stderr);
    assert!(
        err.contains(&c.id) && err.contains("state.json"),
        "stderr must name the container and the reason: {err}"
    );
    let j: Value = serde_json::from_slice(&c.rt(&["list", "--format", "json"]).stdout).unwrap();
    assert_eq!(j[0]["id"], c.id.as_str());
    assert_eq!(j[0]["status"], "unknown");
    let q = text(&c.rt(&["list", "-q"]).stdout);
    assert_eq!(q.trim(), c.id);
    let o = c.delete(true);
    assert!(o.status.success(), "delete --force: {}", text(&o.stderr));
    // the guard checks the init, the state dir and the cgroup are gone
}

/// A cgroup that cannot be removed (here a mount on a child cgroup: EBUSY): `delete --force`
/// fails saying so, naming the cgroup, and the state entry is gone anyway.
#[test]
fn delete_removes_state_even_when_cgroup_stays() {
    if !require_root("delete_removes_state_even_when_cgroup_stays") {
        return;
    }
    let mut c = Ctr::new("cgstays", "default");
    c.args(&["/probe", "sleep", "300"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let dir = cgroup_dirs(&c.id)
        .into_iter()
        .next()
        .expect("the container's cgroup");
    let held = dir.join("held");
    std::fs::create_dir(&held).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4k", "none"])
        .arg(&held)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs on {}", held.display());
    let o = c.delete(true);
    let umount = std::process::Command::new("umount")
        .arg(&held)
        .status()
        .unwrap();
    assert!(umount.success());
    let _ = std::fs::remove_dir(&held);
    assert!(!o.status.success(), "delete must report the cgroup it left");
    let err = text(&o.stderr);
    assert!(
        err.contains("cgroup could not be removed") && err.contains(&c.id),
        "the error must say the cgroup stays: {err}"
    );
    assert!(
        !c.root.join(&c.id).exists(),
        "the state entry must be removed even when the cgroup cannot be"
    );
    assert!(c.state().is_none());
    // what the delete left (the cgroup dirs) is what the test made unremovable: remove it
    for d in cgroup_dirs(&c.id) {
        let _ = std::fs::remove_dir(&d);
    }
    assert!(cgroup_dirs(&c.id).is_empty(), "{:?}", cgroup_dirs(&c.id));
}

/// Corrupted state files: `state` and `list` end without a panic, `list` still shows the
/// container, and `delete --force` removes its process, cgroup and state entry.
#[test]
fn corrupted_state_files_leave_nothing() {
    if !require_root("corrupted_state_files_leave_nothing") {
        return;
    }
    type Corrupt = fn(&mut Value) -> Option<Vec<u8>>;
    let cases: [(&str, Corrupt); 9] = [
        ("empty file", |_| Some(Vec::new())),
        ("truncated", |v| {
            let b = serde_json::to_vec(v).unwrap();
            Some(b[..b.len() / 2].to_vec())
        }),
        ("null", |_| Some(b"null".to_vec())),
        ("pid of the wrong type", |v| {
            v["pid"] = "x".into();
            None
        }),
        ("pid that names no process", |v| {
            v["pid"] = 2147483647.into();
            None
        }),
        ("unknown cgroup driver", |v| {
            v["cgroup"]["driver"] = "nope".into();
            None
        }),
        ("cgroup path /", |v| {
            v["cgroup"]["path"] = "/".into();
            None
        }),
        ("cgroup missing", |v| {
            v.as_object_mut().unwrap().remove("cgroup");
            None
        }),
        ("binary garbage", |_| Some(vec![0xff, 0, 0x7b, 0x22, 0xfe])),
    ];
    for (what, corrupt) in cases {
        let mut c = Ctr::new("corrupt", "default");
        c.args(&["/probe", "sleep", "300"]);
        c.create_ok(&[]);
        assert!(c.start().status.success());
        let f = state_file(&c);
        let mut v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let bytes = corrupt(&mut v).unwrap_or_else(|| serde_json::to_vec(&v).unwrap());
        std::fs::write(&f, bytes).unwrap();
        for args in [vec!["state", c.id.as_str()], vec!["list"]] {
            let o = c.rt(&args);
            let err = text(&o.stderr);
            assert!(
                matches!(code(&o.status), 0 | 1) && !err.contains("panicked"),
                "{what}: {args:?}: {:?} {err}",
                o.status
            );
        }
        let l = text(&c.rt(&["list", "-q"]).stdout);
        assert!(l.lines().any(|l| l == c.id), "{what}: list hides it: {l}");
        let o = c.delete(true);
        assert!(
            o.status.success(),
            "{what}: delete --force: {}",
            text(&o.stderr)
        );
        let left = c.leftovers();
        assert!(left.is_empty(), "{what}: left behind {left:?}");
    }
}

/// A nested cgroupsPath whose parents did not exist: delete removes the parents create made,
/// and only those (a parent that existed before in one hierarchy stays there).
#[test]
fn delete_removes_the_cgroup_parents_create_made() {
    if !require_root("delete_removes_the_cgroup_parents_create_made") {
        return;
    }
    let mut c = Ctr::new("nest", "default");
    c.args(&["/probe", "sleep", "300"]);
    let top = format!("{}-top", c.id);
    c.config["linux"]["cgroupsPath"] = format!("/{top}/mid/{}", c.id).into();
    // made by someone else, in one hierarchy only
    let mut theirs = None;
    for h in ["pids", "memory", "cpu"] {
        let p = PathBuf::from("/sys/fs/cgroup").join(h);
        if p.join("cgroup.procs").exists() {
            let d = p.join(&top);
            std::fs::create_dir(&d).unwrap();
            theirs = Some(d);
            break;
        }
    }
    if theirs.is_none() {
        let d = PathBuf::from("/sys/fs/cgroup").join(&top);
        std::fs::create_dir(&d).unwrap();
        theirs = Some(d);
    }
    let theirs = theirs.unwrap();
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let made: Vec<PathBuf> = cgroup_dirs(&c.id)
        .into_iter()
        .filter(|d| *d != theirs)
        .collect();
    assert!(!made.is_empty(), "precondition: create made parents");
    let o = c.delete(true);
    assert!(o.status.success(), "delete --force: {}", text(&o.stderr));
    let left: Vec<PathBuf> = cgroup_dirs(&c.id);
    let kept = theirs.is_dir();
    let _ = std::fs::remove_dir(&theirs);
    assert!(
        kept,
        "delete removed {} which it did not make",
        theirs.display()
    );
    assert_eq!(left, vec![theirs], "delete left the parents it made");
}
