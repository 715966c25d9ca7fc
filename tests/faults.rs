//! Fault injection: husk killed with SIGKILL in the middle of each operation (create, start,
//! exec, delete, run, kill, pause, resume, update), as an engine's timeout or the OOM killer
//! would, and then `delete --force`, which must leave no process, mount, cgroup (any
//! hierarchy), state entry or namespace held by a process.
//!
//! Two kinds of injection, seeded (the seed is printed; `HUSK_FAULT_SEED` replays):
//! - at each named step boundary: a debug build of husk kills itself at its Nth step when
//!   `HUSK_FAULT_STEP=N` is set (`src/fault.rs`); every N from 1 until the operation completes;
//! - at random moments: SIGKILL 0-5 ms or 0-50 ms after husk starts.
//!
//! `HUSK_FAULTS` sets the number of injections (default 270, 30 per operation; `make soak` runs
//! 3,600); `HUSK_FAULT_OPS=pause,delete` limits them to some operations;
//! `HUSK_FAULT_TIME_SCALE=N` multiplies the time limits (a hang: 30 s; `delete --force`: 5 s),
//! for a slow machine. With `HUSK_TEST_SYSTEMD_CGROUP=1` (tests/common) the containers use the
//! systemd driver, and their `husk-ID.scope` units must be gone too: the systemd guest of
//! `make vm-test` runs it so (integration/vm/guest-checks.sh).
mod common;
use common::*;
use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const OPS: [&str; 9] = [
    "create", "start", "exec", "delete", "run", "kill", "pause", "resume", "update",
];

/// A container in the state `op` needs: nothing yet for create and run, created for start,
/// paused for resume, running otherwise.
fn prepare(op: &str) -> Ctr {
    let mut c = Ctr::new("flt", "default");
    if op == "run" {
        c.args(&["/probe", "exit", "0"]);
    } else {
        c.args(&["/probe", "sleep", "300"]);
    }
    c.write_config();
    if matches!(op, "create" | "run") {
        return c;
    }
    c.create_ok(&[]);
    if op == "start" {
        return c;
    }
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    if op == "resume" {
        let o = c.rt(&["pause", &c.id]);
        assert!(o.status.success(), "pause: {}", text(&o.stderr));
    }
    c
}

fn op_args(op: &str, c: &Ctr) -> Vec<String> {
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let v: Vec<&str> = match op {
        "create" => vec!["create", "--bundle", &b, &id],
        "run" => vec!["run", "--bundle", &b, &id],
        "start" => vec!["start", &id],
        "exec" => vec!["exec", "--detach", &id, "/probe", "sleep", "300"],
        "delete" => vec!["delete", "--force", &id],
        "kill" => vec!["kill", &id, "KILL"],
        "pause" => vec!["pause", &id],
        "resume" => vec!["resume", &id],
        "update" => vec!["update", "--memory", "64m", "--pids-limit", "100", &id],
        _ => unreachable!(),
    };
    v.into_iter().map(String::from).collect()
}

/// The namespaces of `pid` that the test process does not share ("net:[4026...]").
fn own_namespaces(pid: i32) -> HashSet<String> {
    let mine: HashSet<String> = ns_links("self");
    ns_links(&pid.to_string())
        .into_iter()
        .filter(|n| !mine.contains(n))
        .collect()
}

fn ns_links(pid: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(l) = std::fs::read_link(format!("/proc/{pid}/ns/{n}")) {
            out.insert(l.to_string_lossy().into_owned());
        }
    }
    out
}

/// Processes that still belong to the container: their cwd or root is under the work dir (the
/// rootfs copy, or the dir husk runs in), or they hold one of `nss` (as a namespace or an open
/// fd).
fn stray_processes(work: &Path, nss: &HashSet<String>) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        if !pid_alive(pid.parse().unwrap()) {
            continue;
        }
        for l in ["cwd", "root"] {
            if let Ok(t) = std::fs::read_link(format!("/proc/{pid}/{l}")) {
                if t.starts_with(work) {
                    out.push(format!("pid {pid} ({l} {})", t.display()));
                }
            }
        }
        if nss.is_empty() {
            continue;
        }
        // a freed namespace's inode number can be reused by a new one (another test's
        // container): a process counts as the container's only when it is in all of them
        let theirs = ns_links(&pid);
        if nss.iter().all(|n| theirs.contains(n)) {
            out.push(format!("pid {pid} in the container's namespaces {nss:?}"));
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(t) = std::fs::read_link(fd.path()) {
                    let t = t.to_string_lossy().into_owned();
                    if nss.contains(&t) {
                        out.push(format!("pid {pid} holds {t}"));
                    }
                }
            }
        }
    }
    out
}

/// `HUSK_FAULT_TIME_SCALE` (at least 1) times `secs`.
fn limit(secs: u64) -> Duration {
    let scale: u64 = std::env::var("HUSK_FAULT_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    Duration::from_secs(secs * scale)
}

/// Under the systemd driver: every unit of this test run's containers (ids `ht-flt-PID-N`)
/// that systemd still knows, scope or slice, in any state.
fn units_left() -> Vec<String> {
    if !systemd_driver() {
        return Vec::new();
    }
    let pattern = format!("husk-ht-flt-{}-*", std::process::id());
    match std::process::Command::new("systemctl")
        .args(["list-units", "--all", "--plain", "--no-legend"])
        .args(["--type=scope,slice", &pattern])
        .output()
    {
        Ok(o) if o.status.success() => text(&o.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("unit {}", l.trim()))
            .collect(),
        Ok(o) => vec![format!("systemctl list-units failed: {}", text(&o.stderr))],
        Err(e) => vec![format!("systemctl: {e}")],
    }
}

enum Inject {
    Step(u32),
    DelayUs(u64),
}

/// One injection: returns whether husk was killed (false: the operation ran to its end).
fn inject(op: &str, how: &Inject, problems: &mut Vec<String>) -> bool {
    let mut c = prepare(op);
    let mut nss = HashSet::new();
    if let Some(&p) = c.pids.first() {
        nss = own_namespaces(p);
    }
    let mut cmd = c.cmd();
    cmd.args(op_args(op, &c))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let tag = match how {
        Inject::Step(n) => {
            cmd.env("HUSK_FAULT_STEP", n.to_string());
            format!("{op} killed at step {n}")
        }
        Inject::DelayUs(us) => format!("{op} killed after {us} us"),
    };
    let mut child = cmd.spawn().expect("spawn husk");
    if let Inject::DelayUs(us) = how {
        std::thread::sleep(Duration::from_micros(*us));
        let _ = child.kill();
    }
    let st = match try_wait_child(&mut child, limit(30)) {
        Some(st) => st,
        None => {
            problems.push(format!("{tag}: husk hung for {:?}", limit(30)));
            return true;
        }
    };
    let killed = code(&st) == 128 + libc::SIGKILL;
    // what the state says now (a create may have got as far as recording a pid)
    if let Some(p) = c.state().and_then(|s| s["pid"].as_i64()) {
        if p > 0 && !c.pids.contains(&(p as i32)) {
            c.pids.push(p as i32);
            if nss.is_empty() && pid_alive(p as i32) {
                nss = own_namespaces(p as i32);
            }
        }
    }
    let t = Instant::now();
    let d = c.delete(true);
    if !d.status.success() {
        problems.push(format!(
            "{tag}: delete --force failed: {}",
            text(&d.stderr).trim()
        ));
    } else if t.elapsed() > limit(5) {
        problems.push(format!("{tag}: delete --force took {:?}", t.elapsed()));
    }
    // processes take a moment to be reaped
    let deadline = Instant::now() + limit(3);
    let mut stray = stray_processes(&c.work, &nss);
    while !stray.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        stray = stray_processes(&c.work, &nss);
    }
    let mut left = c.leftovers();
    left.extend(stray);
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    left.extend(
        mi.lines()
            .filter(|l| l.contains(&c.id))
            .map(|l| format!("mount {l}")),
    );
    if !left.is_empty() {
        problems.push(format!("{tag}: left behind {left:?}"));
    }
    // remove whatever is left (reported above) by pid, mount point and path; the guard's own
    // check would only repeat what was just checked
    c.force_cleanup();
    std::mem::forget(c);
    killed
}

#[test]
fn sigkill_at_every_step_and_random_moments_leaves_nothing() {
    if !require_root("sigkill_at_every_step_and_random_moments_leaves_nothing") {
        return;
    }
    if is_runc() || is_crun() {
        // the step switch is husk's (debug build); random kills alone still run
        skip_part(
            "sigkill_at_every_step_and_random_moments_leaves_nothing/steps",
            "step injection is husk's debug switch: random kills only",
        );
    }
    let total: usize = std::env::var("HUSK_FAULTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(270);
    let seed = seed_from_env("HUSK_FAULT_SEED");
    let driver = if systemd_driver() {
        "systemd"
    } else {
        "cgroupfs"
    };
    eprintln!(
        "faults: seed {seed} (HUSK_FAULT_SEED={seed} replays), {total} injections, {driver} driver"
    );
    let mut rng = Rng(seed);
    let only: Option<Vec<String>> = std::env::var("HUSK_FAULT_OPS")
        .ok()
        .map(|s| s.split(',').map(String::from).collect());
    let ops: Vec<&str> = OPS
        .into_iter()
        .filter(|o| only.as_ref().is_none_or(|l| l.iter().any(|x| x == o)))
        .collect();
    let per_op = total.div_ceil(ops.len());
    let steps = !is_runc() && !is_crun();
    let mut problems = Vec::new();
    let mut counts = Vec::new();
    for op in ops {
        let mut n = 0;
        let mut step_kills = 0;
        if steps {
            for k in 1..=40 {
                if n >= per_op {
                    break;
                }
                n += 1;
                if !inject(op, &Inject::Step(k), &mut problems) {
                    break; // the operation ran past its last step
                }
                step_kills += 1;
            }
        }
        while n < per_op {
            n += 1;
            let us = if rng.below(2) == 0 {
                rng.below(5_000)
            } else {
                rng.below(50_000)
            };
            inject(op, &Inject::DelayUs(us), &mut problems);
        }
        counts.push(format!("{op}: {n} ({step_kills} at steps)"));
    }
    eprintln!("faults: {}", counts.join(", "));
    let units = units_left();
    if !units.is_empty() {
        problems.push(format!("systemd still has {units:?}"));
    }
    assert_no_problems(Some(seed), &problems);
}

/// The fault switch itself: a debug husk killed at step 3 of `create` dies by SIGKILL, and one
/// with the step log writes the names of the steps it passed.
#[test]
fn fault_step_switch_kills_at_the_named_step() {
    if !require_root("fault_step_switch_kills_at_the_named_step") {
        return;
    }
    if is_runc() || is_crun() {
        skip(
            "fault_step_switch_kills_at_the_named_step",
            "husk's debug switch",
        );
        return;
    }
    let c = prepare("create");
    let log = c.work.join("steps.log");
    let b = c.bundle.to_string_lossy().into_owned();
    let mut cmd = c.cmd();
    cmd.args(["create", "--bundle", &b, &c.id])
        .env("HUSK_FAULT_STEP", "3")
        .env("HUSK_FAULT_LOG", &log);
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    assert_eq!(code(&o.status), 128 + libc::SIGKILL, "{o:?}");
    let steps = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        steps.lines().collect::<Vec<_>>(),
        [
            "1 create: private state dir made",
            "2 create: config saved",
            "3 create: cgroup made"
        ]
    );
    assert!(
        !cgroup_dirs(&c.id).is_empty(),
        "killed after the cgroup was made"
    );
}

/// Run `a` and `b` (runtime arguments) from `n` threads at once, alternating, all released
/// together; returns (args, exit code, stderr) of each. A hang, a panic or an exit other than
/// 0 and 1 (255 for `exec`, runc's failure code there) is a problem.
fn race(
    c: &Ctr,
    a: &[String],
    b: &[String],
    n: usize,
    problems: &mut Vec<String>,
) -> Vec<(bool, i32)> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let args = if i % 2 == 0 { a.to_vec() } else { b.to_vec() };
            let mut cmd = c.cmd();
            cmd.args(&args);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (
                    i % 2 == 0,
                    args,
                    try_run_timeout(&mut cmd, Duration::from_secs(30)),
                )
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        let (first, args, r) = h.join().unwrap();
        match r {
            Err(e) => problems.push(format!("{args:?}: {e}")),
            Ok(o) => {
                let err = text(&o.stderr);
                let code = code(&o.status);
                let failed = if args[0] == "exec" { 255 } else { 1 };
                if !(code == 0 || code == failed) || err.contains("panicked") {
                    problems.push(format!("{args:?}: exit {code}: {err}"));
                }
                out.push((first, code));
            }
        }
    }
    out
}

/// Every pair of operations on one id, 20 racers each: each command ends (0 or 1, no panic, no
/// hang), the final state is one of the legal ones, and after `delete --force` nothing is left.
#[test]
fn concurrent_operation_pairs_end_in_a_legal_state() {
    if !require_root("concurrent_operation_pairs_end_in_a_legal_state") {
        return;
    }
    const RACERS: usize = 20;
    let mut problems = Vec::new();
    for (a_op, b_op) in [
        ("create", "delete"),
        ("start", "kill"),
        ("exec", "delete"),
        ("pause", "delete"),
        ("update", "delete"),
    ] {
        let prep = match a_op {
            "create" => "create",
            "start" => "start",
            _ => "kill", // running
        };
        let mut c = prepare(prep);
        let a = op_args(a_op, &c);
        let b = match b_op {
            "kill" => op_args("kill", &c),
            _ => op_args("delete", &c),
        };
        let tag = format!("{a_op} vs {b_op}");
        let mut p = Vec::new();
        let res = race(&c, &a, &b, RACERS, &mut p);
        problems.extend(p.into_iter().map(|x| format!("{tag}: {x}")));
        let wins = |first: bool| {
            res.iter()
                .filter(|(f, code)| *f == first && *code == 0)
                .count()
        };
        let status = c.status();
        match (a_op, b_op) {
            ("start", "kill") => {
                if wins(true) > 1 {
                    problems.push(format!("{tag}: {} starts succeeded", wins(true)));
                }
                if wins(false) > 0 && !c.wait_status("stopped", Duration::from_secs(5)) {
                    problems.push(format!("{tag}: killed, yet {:?}", c.status()));
                }
                if !matches!(status.as_deref(), Some("stopped" | "running")) {
                    problems.push(format!("{tag}: final status {status:?}"));
                }
            }
            ("create", _) => {
                if !matches!(status.as_deref(), None | Some("created")) {
                    problems.push(format!("{tag}: final status {status:?}"));
                }
            }
            (_, "delete") => {
                // every delete --force succeeds; the container is gone
                if wins(false) != RACERS / 2 {
                    problems.push(format!(
                        "{tag}: {} of {} delete --force failed",
                        RACERS / 2 - wins(false),
                        RACERS / 2
                    ));
                }
                if status.is_some() {
                    problems.push(format!("{tag}: container still there: {status:?}"));
                }
            }
            _ => unreachable!(),
        }
        if let Some(p) = c.state().and_then(|s| s["pid"].as_i64()) {
            if p > 0 && !c.pids.contains(&(p as i32)) {
                c.pids.push(p as i32);
            }
        }
        let d = c.delete(true);
        if !d.status.success() {
            problems.push(format!("{tag}: final delete --force: {}", text(&d.stderr)));
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut stray = stray_processes(&c.work, &HashSet::new());
        while !stray.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            stray = stray_processes(&c.work, &HashSet::new());
        }
        let mut left = c.leftovers();
        left.extend(stray);
        if !left.is_empty() {
            problems.push(format!("{tag}: left behind {left:?}"));
        }
        c.force_cleanup();
        std::mem::forget(c);
    }
    assert_no_problems(None, &problems);
}

/// `create` against `delete --force` of one id, round after round (each round starts from a
/// created container): no command hangs, and after each round's final delete nothing is left.
/// A delete that waited for the lock of a container deleted meanwhile, and then took a new
/// create's half-made directory for the remains of a killed create, removed its cgroup under
/// it; that create then waited forever for an init waiting for it.
#[test]
fn create_racing_delete_force_round_after_round() {
    if !require_root("create_racing_delete_force_round_after_round") {
        return;
    }
    const ROUNDS: usize = 25;
    let mut problems = Vec::new();
    for round in 0..ROUNDS {
        let mut c = prepare("create");
        let a = op_args("create", &c);
        let b = op_args("delete", &c);
        c.create_ok(&[]);
        let mut p = Vec::new();
        let res = race(&c, &a, &b, 20, &mut p);
        problems.extend(p.into_iter().map(|x| format!("round {round}: {x}")));
        let deletes_ok = res.iter().filter(|(f, code)| !*f && *code == 0).count();
        if deletes_ok != 10 {
            problems.push(format!(
                "round {round}: {} of 10 delete --force failed",
                10 - deletes_ok
            ));
        }
        if let Some(p) = c.state().and_then(|s| s["pid"].as_i64()) {
            if p > 0 && !c.pids.contains(&(p as i32)) {
                c.pids.push(p as i32);
            }
        }
        let d = c.delete(true);
        if !d.status.success() {
            problems.push(format!(
                "round {round}: final delete --force: {}",
                text(&d.stderr)
            ));
        }
        let mut left = c.leftovers();
        left.extend(stray_processes(&c.work, &HashSet::new()));
        if !left.is_empty() {
            problems.push(format!("round {round}: left behind {left:?}"));
        }
        c.force_cleanup();
        std::mem::forget(c);
        if !problems.is_empty() {
            break;
        }
    }
    assert_no_problems(None, &problems);
}
