//! Command-line flags checked from inside real containers: --preserve-fds, --no-pivot,
//! --no-new-keyring, signal forwarding of a foreground run, run --keep, kill --all,
//! --pidfd-socket, hook timeouts, `spec --rootless` and --debug.
mod common;
use common::*;
use serde_json::Value;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every JSON object the container printed, one per stdout line.
fn json_lines(o: &Output) -> Vec<Value> {
    text(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// The runtime command line of `c.cmd()` run through `sh`, which opens `files` read-only as fds
/// 3, 4, ... before it execs the runtime (so the runtime inherits them, no unsafe needed).
fn rt_with_fds(c: &Ctr, files: &[PathBuf], args: &[&str]) -> Output {
    let redirs: Vec<String> = (0..files.len())
        .map(|i| format!("{}<\"${{F{i}}}\"", i + 3))
        .collect();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("exec \"$@\" {}", redirs.join(" ")))
        .arg("sh")
        .arg(runtime())
        .arg("--root")
        .arg(&c.root)
        .arg("--log")
        .arg(&c.log)
        .args(["--log-format", "json"])
        .args(&c.global_args)
        .args(args)
        .current_dir(&c.work);
    for (i, f) in files.iter().enumerate() {
        cmd.env(format!("F{i}"), f);
    }
    run_timeout(&mut cmd, CMD_TIMEOUT)
}

/// Files in the container's /tmp (so the container can name them), one per name.
fn fd_files(c: &Ctr, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = c.rootfs().join("tmp").join(n);
            std::fs::write(&p, n).unwrap();
            p
        })
        .collect()
}

/// The fds the probe saw beyond stdio, without the probe's own open of /proc/self/fd.
fn extra_fds(v: &Value) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = v["fds"]
        .as_object()
        .unwrap_or_else(|| panic!("no fds in probe: {v}"))
        .iter()
        .map(|(k, t)| (k.parse().unwrap(), t.as_str().unwrap_or("").to_string()))
        .filter(|(fd, t)| *fd > 2 && !(t.starts_with("/proc/") && t.ends_with("/fd")))
        .collect();
    out.sort();
    out
}

fn assert_preserved(v: &Value, names: &[&str], what: &str) {
    let fds = extra_fds(v);
    let want: Vec<i32> = (3..3 + names.len() as i32).collect();
    let got: Vec<i32> = fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(got, want, "{what}: extra fds in the container: {fds:?}");
    for ((fd, t), n) in fds.iter().zip(names) {
        assert!(
            t.ends_with(&format!("/tmp/{n}")),
            "{what}: fd {fd} points at {t:?}, want the caller's /tmp/{n}"
        );
    }
}

#[test]
fn preserve_fds_run_and_exec() {
    root_or_skip!("preserve_fds_run_and_exec");
    let mut c = Ctr::new("pfds", "default");
    c.args(&["/probe", "report"]);
    c.write_config();
    // the caller has three extra fds open; --preserve-fds 2 passes 3 and 4, never 5
    let files = fd_files(&c, &["pf-a", "pf-b", "pf-c"]);
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = rt_with_fds(
        &c,
        &files,
        &["run", "--preserve-fds", "2", "--bundle", &b, &id],
    );
    assert!(
        o.status.success(),
        "run --preserve-fds 2: {}\n{}",
        text(&o.stderr),
        c.log_text()
    );
    assert_preserved(&probe_json(&o), &["pf-a", "pf-b"], "run --preserve-fds 2");
    // without the flag only stdio reaches the container
    let o = rt_with_fds(&c, &files, &["run", "--bundle", &b, &id]);
    assert!(o.status.success(), "run: {}", text(&o.stderr));
    assert_preserved(&probe_json(&o), &[], "run without --preserve-fds");

    // exec into a running container
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let o = rt_with_fds(
        &c,
        &files,
        &["exec", "--preserve-fds", "1", &id, "/probe", "report"],
    );
    assert!(
        o.status.success(),
        "exec --preserve-fds 1: {}\n{}",
        text(&o.stderr),
        c.log_text()
    );
    assert_preserved(&probe_json(&o), &["pf-a"], "exec --preserve-fds 1");
    let o = rt_with_fds(&c, &files, &["exec", &id, "/probe", "report"]);
    assert!(o.status.success(), "exec: {}", text(&o.stderr));
    assert_preserved(&probe_json(&o), &[], "exec without --preserve-fds");
}

#[test]
fn preserve_fds_create() {
    root_or_skip!("preserve_fds_create");
    let mut c = Ctr::new("pfdc", "default");
    c.config["root"]["readonly"] = false.into();
    // create's stdout is gone by the time the program runs: the report goes to a file
    c.args(&["/bin/sh", "-c", "exec /probe report > /report.json"]);
    c.write_config();
    let files = fd_files(&c, &["pc-a", "pc-b"]);
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = rt_with_fds(
        &c,
        &files,
        &["create", "--preserve-fds", "1", "--bundle", &b, &id],
    );
    assert!(
        o.status.success(),
        "create --preserve-fds 1: {}\n{}",
        text(&o.stderr),
        c.log_text()
    );
    if let Some(p) = c.state().and_then(|s| s["pid"].as_i64()) {
        c.pids.push(p as i32);
    }
    assert!(c.start().status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    let raw = std::fs::read_to_string(c.rootfs().join("report.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(raw.trim())
        .unwrap_or_else(|e| panic!("no probe report ({e}): {raw:?}"));
    assert_preserved(&v, &["pc-a"], "create --preserve-fds 1");
}

/// Mount points (field 5) of the probe's mountinfo, sorted.
fn mount_points(v: &Value) -> Vec<String> {
    let mut m: Vec<String> = v["mountinfo"]
        .as_array()
        .unwrap_or_else(|| panic!("no mountinfo: {v}"))
        .iter()
        .filter_map(|l| l.as_str()?.split(' ').nth(4).map(String::from))
        .collect();
    m.sort();
    m
}

/// `--no-pivot` leaves the host's mounts below the moved root; the full procfs and sysfs among
/// them must be gone (runc's msMoveRoot), or a new procfs could be mounted from a new user and
/// pid namespace. As with pivot_root, such a mount is refused, while creating the namespaces
/// works and the container's own /proc is intact.
#[test]
fn no_pivot_new_procfs_refused_as_with_pivot_root() {
    root_or_skip!("no_pivot_new_procfs_refused_as_with_pivot_root");
    let mut c = Ctr::new("nopivproc", "default");
    // uid 1000 maps itself to root of the new user namespace (no CAP_SETFCAP needed)
    c.config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    c.args(&[
        "/bin/sh",
        "-c",
        "unshare -mrpf true && echo userns-ok; \
         unshare -mrpf sh -c 'mount -t proc none /proc && echo proc-mounted'; \
         /probe read /proc/self/comm",
    ]);
    c.write_config();
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    for flags in [&[][..], &["--no-pivot"][..]] {
        let mut a = vec!["run"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["--bundle", &b, &id]);
        let o = c.rt(&a);
        let out = text(&o.stdout);
        assert!(o.status.success(), "run {flags:?}: {}", text(&o.stderr));
        assert!(
            out.contains("userns-ok"),
            "run {flags:?}: no user namespace inside, nothing tested: {out}"
        );
        assert!(
            !out.contains("proc-mounted"),
            "run {flags:?}: a new procfs was mounted from inside: {out}"
        );
        let comm = json_lines(&o);
        assert_eq!(
            comm.last().map(|v| v["data"].clone()),
            Some("probe\n".into()),
            "{out}"
        );
    }
}

#[test]
fn no_pivot_run() {
    root_or_skip!("no_pivot_run");
    let mut c = Ctr::new("nopivot", "default");
    std::fs::write(c.rootfs().join("marker"), "own-rootfs").unwrap();
    c.args(&[
        "/bin/sh",
        "-c",
        "/probe read /marker; /probe ls /; /probe ls /..; /probe report",
    ]);
    c.write_config();
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let with_pivot = c.rt(&["run", "--bundle", &b, &id]);
    assert!(with_pivot.status.success(), "{}", text(&with_pivot.stderr));
    let o = c.rt(&["run", "--no-pivot", "--bundle", &b, &id]);
    assert!(
        o.status.success(),
        "run --no-pivot: {}\n{}",
        text(&o.stderr),
        c.log_text()
    );
    let l = json_lines(&o);
    assert_eq!(l.len(), 4, "probe output: {}", text(&o.stdout));
    assert_eq!(
        l[0]["data"], "own-rootfs",
        "not the bundle's rootfs: {}",
        l[0]
    );
    assert_eq!(l[1]["ok"], true, "{}", l[1]);
    assert_eq!(l[1]["entries"], l[2]["entries"], "/.. is not /");
    assert_eq!(
        mount_points(&l[3]),
        mount_points(&json_lines(&with_pivot)[3]),
        "--no-pivot sees other mount points than pivot_root"
    );
    assert!(c.state().is_none(), "run --no-pivot left its state");
    // Drop checks that no mount, cgroup or process is left
}

#[test]
fn session_keyring_default_and_no_new_keyring() {
    root_or_skip!("session_keyring_default_and_no_new_keyring");
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // the test's own session keyring (0: do not create one), which the runtime inherits
    let ours = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0 as libc::c_long,
        )
    };
    if ours < 0 {
        skip(
            "session_keyring_default_and_no_new_keyring",
            &format!("no keyrings here: {}", std::io::Error::last_os_error()),
        );
        return;
    }
    let mut c = Ctr::new("keyring", "default");
    c.args(&["/probe", "report"]);
    let v = c.run_probe();
    let k = &v["session_keyring"];
    assert!(
        k["id"].as_i64().is_some_and(|i| i != ours),
        "the container kept the caller's session keyring {ours}: {k}"
    );
    assert!(
        k["desc"]
            .as_str()
            .is_some_and(|d| d.starts_with("keyring;") && d.ends_with(&format!(";_ses.{}", c.id))),
        "session keyring is not _ses.{}: {k}",
        c.id
    );

    c.write_config();
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt(&["run", "--no-new-keyring", "--bundle", &b, &id]);
    assert!(
        o.status.success(),
        "run --no-new-keyring: {}\n{}",
        text(&o.stderr),
        c.log_text()
    );
    let k = &probe_json(&o)["session_keyring"];
    assert_eq!(
        k["id"].as_i64(),
        Some(ours),
        "--no-new-keyring: not the caller's session keyring: {k}"
    );
}

/// Poll `f` until it is true or `timeout` passes.
fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_forwards_signals_to_init() {
    root_or_skip!("run_forwards_signals_to_init");
    let mut c = Ctr::new("sigfwd", "default");
    c.args(&[
        "/bin/sh",
        "-c",
        "trap 'echo got-hup' HUP; trap 'echo got-usr1' USR1; trap 'exit 42' TERM; \
         echo ready; while :; do sleep 0.1; done",
    ]);
    c.write_config();
    let out = c.work.join("run.out");
    let mut cmd = c.cmd();
    cmd.args(["run", "--bundle"])
        .arg(&c.bundle)
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null());
    // A shell cannot trap a signal that was ignored when it started, and the disposition is
    // inherited through husk (as through runc): a suite run under `nohup` would hand SIG_IGN
    // for SIGHUP to the container. The runtime starts with the default disposition here.
    // SAFETY: signal(2) in the forked child before exec; async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    // dropped before `c`: kills the runtime by pid if the test fails half way
    let mut run = Helper(cmd.spawn().expect("spawn run"));
    let said = |w: &str| {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains(w)
    };
    assert!(
        wait_for(Duration::from_secs(10), || said("ready")),
        "container did not start: {}",
        c.log_text()
    );
    if let Some(p) = c.state().and_then(|s| s["pid"].as_i64()) {
        c.pids.push(p as i32);
    }
    let husk = run.pid();
    for (sig, word) in [(libc::SIGHUP, "got-hup"), (libc::SIGUSR1, "got-usr1")] {
        unsafe { libc::kill(husk, sig) };
        assert!(
            wait_for(Duration::from_secs(10), || said(word)),
            "signal {sig} sent to `run` did not reach the container's init"
        );
    }
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "run exited on a forwarded signal"
    );
    unsafe { libc::kill(husk, libc::SIGTERM) };
    let st = wait_child(&mut run.0, Duration::from_secs(10));
    assert_eq!(
        code(&st),
        42,
        "run must exit with the container's status after a forwarded SIGTERM"
    );
    assert!(c.state().is_none(), "run left its state behind");
}

#[test]
fn run_keep_leaves_stopped_state() {
    root_or_skip!("run_keep_leaves_stopped_state");
    let mut c = Ctr::new("keep", "default");
    c.args(&["/probe", "exit", "3"]);
    c.write_config();
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt(&["run", "--keep", "--bundle", &b, &id]);
    assert_eq!(code(&o.status), 3, "run --keep: {}", text(&o.stderr));
    let s = c.state().expect("run --keep removed the container's state");
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(s["id"], id.as_str());
    let o = c.delete(false);
    assert!(o.status.success(), "delete: {}", text(&o.stderr));
    assert!(c.state().is_none(), "delete left the state");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
    // without --keep the state is gone when run returns
    let o = c.rt(&["run", "--bundle", &b, &id]);
    assert_eq!(code(&o.status), 3, "run: {}", text(&o.stderr));
    assert!(c.state().is_none(), "run without --keep kept the state");
}

/// The `level` of every JSON record in the container's log.
fn log_levels(c: &Ctr) -> Vec<(String, String)> {
    c.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["level"].as_str().unwrap_or("").to_string(),
                v["msg"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `--debug` adds level=debug records to the log: the cgroup, init's pid, hooks, the exit; a
/// run without it writes none.
#[test]
fn debug_flag_logs_the_steps() {
    root_or_skip!("debug_flag_logs_the_steps");
    let mut c = Ctr::new("debug", "default");
    c.args(&["/probe", "exit", "0"]);
    c.config["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/true"}]});
    c.run_ok();
    assert!(
        log_levels(&c).iter().all(|(l, _)| l != "debug"),
        "debug records without --debug: {}",
        c.log_text()
    );
    c.global_args = vec!["--debug".into()];
    c.run_ok();
    let debug: Vec<String> = log_levels(&c)
        .into_iter()
        .filter(|(l, _)| l == "debug")
        .map(|(_, m)| m)
        .collect();
    if is_runc() || is_crun() {
        assert!(!debug.is_empty(), "no debug records: {}", c.log_text());
        return;
    }
    for want in [
        "cgroup",
        "pid",
        "hooks.createRuntime[0]",
        "exited, status 0",
    ] {
        assert!(
            debug.iter().any(|m| m.contains(want)),
            "no debug record mentioning {want:?}: {debug:#?}"
        );
    }
}

/// Host pids of the container's processes whose command line is `args` (from `ps --format json`).
fn pids_running(c: &Ctr, args: &[&str]) -> Vec<i32> {
    let o = c.rt(&["ps", "--format", "json", &c.id]);
    assert!(o.status.success(), "ps: {}", text(&o.stderr));
    let all: Vec<i32> = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("ps --format json ({e}): {}", text(&o.stdout)));
    let want = args.join("\0") + "\0";
    all.into_iter()
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

#[test]
fn kill_all_signals_every_process() {
    root_or_skip!("kill_all_signals_every_process");
    let mut c = Ctr::new("killall", "default");
    c.config["root"]["readonly"] = false.into();
    // init traps USR1 (so it survives), its two children do not
    c.args(&[
        "/bin/sh",
        "-c",
        "trap 'echo usr1 >> /tmp/init-sigs' USR1; sleep 1000 & sleep 1000 & \
         touch /tmp/ready; while :; do sleep 0.1; done",
    ]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    assert!(
        wait_for(Duration::from_secs(10), || c
            .rootfs()
            .join("tmp/ready")
            .exists()),
        "container did not start"
    );
    // `/tmp/ready` can come before the second background child has exec'd sleep
    let mut sleepers = pids_running(&c, &["sleep", "1000"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleepers.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        sleepers = pids_running(&c, &["sleep", "1000"]);
    }
    assert_eq!(sleepers.len(), 2, "want two sleep 1000 in ps");
    c.pids.extend(&sleepers);
    let init_sigs = || {
        std::fs::read_to_string(c.rootfs().join("tmp/init-sigs"))
            .unwrap_or_default()
            .lines()
            .count()
    };

    let o = c.kill("USR1");
    assert!(o.status.success(), "kill USR1: {}", text(&o.stderr));
    assert!(
        wait_for(Duration::from_secs(10), || init_sigs() == 1),
        "init did not get SIGUSR1"
    );
    std::thread::sleep(Duration::from_millis(300));
    for &p in &sleepers {
        assert!(
            pid_alive(p),
            "kill without --all reached {p}, not only init"
        );
    }

    let o = c.rt(&["kill", "--all", &c.id, "USR1"]);
    assert!(o.status.success(), "kill --all USR1: {}", text(&o.stderr));
    assert!(
        wait_for(Duration::from_secs(10), || sleepers
            .iter()
            .all(|&p| !pid_alive(p))),
        "kill --all did not reach every process: {:?} still alive",
        sleepers
            .iter()
            .filter(|&&p| pid_alive(p))
            .collect::<Vec<_>>()
    );
    assert!(
        wait_for(Duration::from_secs(10), || init_sigs() == 2),
        "kill --all did not reach init"
    );
    assert_eq!(c.status().as_deref(), Some("running"));
}

/// Receive one fd on a unix socket at `dir/console.sock` on a thread while `f` runs.
fn with_fd_receiver(dir: &Path, f: impl FnOnce(&str)) -> OwnedFd {
    std::fs::create_dir_all(dir).unwrap();
    let rx = ConsoleReceiver::new(dir);
    let sock = rx.path.to_string_lossy().into_owned();
    let t = std::thread::spawn(move || rx.receive(Duration::from_secs(30)));
    f(&sock);
    t.join().expect("no fd received on the socket")
}

/// The pid (in our pid namespace) a pidfd refers to, from /proc/self/fdinfo.
fn pidfd_pid(fd: &OwnedFd) -> i64 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap_or_else(|| panic!("not a pidfd: {info}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn pidfd_socket_create_run_exec() {
    root_or_skip!("pidfd_socket_create_run_exec");
    if is_runc() {
        skip(
            "pidfd_socket_create_run_exec",
            "runc 1.1 has no --pidfd-socket (runc 1.2 added it)",
        );
        return;
    }
    let mut c = Ctr::new("pidfd", "default");
    c.args(&["/probe", "sleep", "60"]);
    let fd = with_fd_receiver(&c.work.join("create"), |s| {
        c.create_ok(&["--pidfd-socket", s]);
    });
    let pid = c.state().unwrap()["pid"].as_i64().unwrap();
    assert_eq!(
        pidfd_pid(&fd),
        pid,
        "create: pidfd is not the container's init"
    );
    assert!(c.start().status.success());

    let pf = c.work.join("exec.pid");
    let id = c.id.clone();
    let fd = with_fd_receiver(&c.work.join("exec"), |s| {
        let o = c.rt(&[
            "exec",
            "-d",
            "--pid-file",
            pf.to_str().unwrap(),
            "--pidfd-socket",
            s,
            &id,
            "/probe",
            "sleep",
            "60",
        ]);
        assert!(
            o.status.success(),
            "exec --pidfd-socket: {}",
            text(&o.stderr)
        );
    });
    let epid: i64 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    c.pids.push(epid as i32);
    assert_ne!(epid, pid);
    assert_eq!(
        pidfd_pid(&fd),
        epid,
        "exec: pidfd is not the exec'd process"
    );
    assert_eq!(c.delete(true).status.code(), Some(0));

    // run -d takes the flag too (runc 1.2)
    let mut r = Ctr::new("pidfdrun", "default");
    r.args(&["/probe", "sleep", "60"]);
    r.write_config();
    let b = r.bundle.to_string_lossy().into_owned();
    let rid = r.id.clone();
    let fd = with_fd_receiver(&r.work.join("run"), |s| {
        let o = r.rt(&["run", "-d", "--pidfd-socket", s, "--bundle", &b, &rid]);
        assert!(
            o.status.success(),
            "run -d --pidfd-socket: {}",
            text(&o.stderr)
        );
    });
    let pid = r.state().unwrap()["pid"].as_i64().unwrap();
    r.pids.push(pid as i32);
    assert_eq!(
        pidfd_pid(&fd),
        pid,
        "run: pidfd is not the container's init"
    );
}

/// A hook that sleeps (with an argument unique to this test process, so it can be found).
fn sleeping_hook(secs: &str, timeout: i64) -> Value {
    serde_json::json!([{"path": "/bin/sleep", "args": ["sleep", secs], "timeout": timeout}])
}

fn sleepers_with(arg: &str) -> Vec<i32> {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

/// Kill (by pid) hooks a runtime left running; true if there were any.
fn reap_sleepers(arg: &str) -> bool {
    let left = sleepers_with(arg);
    for &p in &left {
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    !left.is_empty()
}

/// Kills (by pid) the hooks still sleeping with its argument when the test ends, also on failure.
struct ReapSleepers(String);
impl Drop for ReapSleepers {
    fn drop(&mut self) {
        reap_sleepers(&self.0);
    }
}

#[test]
fn hook_timeout_fails_create() {
    root_or_skip!("hook_timeout_fails_create");
    let arg = format!("30.{}1", std::process::id());
    let _reap = ReapSleepers(arg.clone());
    let mut c = Ctr::new("hooktmo", "default");
    c.args(&["/probe", "exit", "0"]);
    c.config["hooks"] = serde_json::json!({"createRuntime": sleeping_hook(&arg, 1)});
    let t0 = Instant::now();
    let o = c.create(&[]);
    let took = t0.elapsed();
    let left = reap_sleepers(&arg);
    assert!(
        !o.status.success(),
        "create must fail when a hook times out"
    );
    assert!(took < Duration::from_secs(10), "create took {took:?}");
    let err = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(
        err.contains("createRuntime") && (err.contains("timed out") || err.contains("timeout")),
        "error does not name the hook and its timeout: {err}"
    );
    assert!(!left, "the timed-out hook was left running");
    assert!(c.state().is_none(), "failed create left state behind");
    // Drop checks that no process, mount, cgroup or state dir remains
}

#[test]
fn hook_timeout_poststart_warns() {
    root_or_skip!("hook_timeout_poststart_warns");
    let arg = format!("30.{}2", std::process::id());
    let _reap = ReapSleepers(arg.clone());
    let mut c = Ctr::new("posttmo", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.config["hooks"] = serde_json::json!({"poststart": sleeping_hook(&arg, 1)});
    c.create_ok(&[]);
    let t0 = Instant::now();
    let o = c.start();
    let took = t0.elapsed();
    let left = reap_sleepers(&arg);
    let err = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(took < Duration::from_secs(10), "start took {took:?}");
    assert!(!left, "the timed-out hook was left running");
    assert!(
        err.contains("poststart") && (err.contains("timed out") || err.contains("timeout")),
        "the timed-out poststart hook must be reported: {err}"
    );
    assert!(
        o.status.success(),
        "start must succeed (warn only) when poststart times out: {err}"
    );
    assert_eq!(
        c.status().as_deref(),
        Some("running"),
        "the container must keep running"
    );
}

fn spec_rootless_as(uid: u32, gid: u32) -> Value {
    let dir = tempfile::Builder::new()
        .prefix("husk-test-specrl-")
        .tempdir()
        .unwrap();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    let mut cmd = if uid == 0 {
        Command::new(runtime())
    } else {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
        ])
        .arg(runtime());
        c
    };
    cmd.args(["spec", "--rootless"]).current_dir(dir.path());
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    assert!(
        o.status.success(),
        "spec --rootless as {uid}:{gid}: {}",
        text(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap()
}

#[test]
fn spec_rootless_config() {
    root_or_skip!("spec_rootless_config");
    let mut ids = vec![(0, 0)];
    // as an ordinary user too, when that user can reach the runtime binary
    let reachable = Command::new("setpriv")
        .args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "test",
            "-x",
        ])
        .arg(runtime())
        .status()
        .is_ok_and(|s| s.success());
    if reachable {
        ids.push((1000, 1000));
    } else {
        skip_part(
            "spec_rootless_config/uid-1000",
            "uid 1000 cannot run the runtime binary; checked as root only",
        );
    }
    for (uid, gid) in ids {
        let c = spec_rootless_as(uid, gid);
        let l = &c["linux"];
        let ns: Vec<&str> = l["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert!(ns.contains(&"user"), "no user namespace: {ns:?}");
        assert!(
            !ns.contains(&"network"),
            "rootless keeps the network namespace: {ns:?}"
        );
        for want in ["pid", "ipc", "uts", "mount"] {
            assert!(
                ns.contains(&want),
                "rootless lost the {want} namespace: {ns:?}"
            );
        }
        assert_eq!(
            l["uidMappings"],
            serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]),
            "uidMappings for caller {uid}"
        );
        assert_eq!(
            l["gidMappings"],
            serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]),
            "gidMappings for caller gid {gid}"
        );
        assert!(
            l.get("resources").is_none(),
            "rootless config keeps linux.resources: {}",
            l["resources"]
        );
        for m in c["mounts"].as_array().unwrap() {
            let opts = match m.get("options") {
                None => Vec::new(),
                Some(Value::Array(a)) => a.iter().filter_map(|o| o.as_str()).collect(),
                Some(other) => panic!("mount options must be an array or absent: {m} ({other})"),
            };
            assert!(
                !opts
                    .iter()
                    .any(|o| o.starts_with("uid=") || o.starts_with("gid=")),
                "rootless mount keeps uid=/gid=: {m}"
            );
            if m["destination"] == "/sys" {
                assert_eq!(m["type"], "none", "/sys: {m}");
                assert_eq!(m["source"], "/sys", "/sys: {m}");
                assert!(opts.contains(&"rbind") && opts.contains(&"ro"), "/sys: {m}");
            }
        }
    }
}
