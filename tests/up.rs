//! `husk up` and `husk rm`: an image in a store (the test rootfs as one layer, written as the
//! OCI layout the store is) run as a container with docker run's flags, each flag's effect seen
//! from inside; what is left after `--rm`, after `husk rm`, and after each refused command.
mod common;
use common::images::sha;
use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

const IMAGE: &str = "husk-up-test";
const REF: &str = "docker.io/library/husk-up-test:latest";

/// A temp dir with a store holding the test rootfs as the image `husk-up-test` (config: `Env`,
/// `Cmd ["/probe"]`), and the runtime's `--root`.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(tag: &str) -> Env {
        Env::with_image(tag, json!({}), None)
    }

    /// An Env whose image also has the keys of `config` in its config's `config` and, when
    /// given, a second layer (a tar) on top of the test rootfs.
    fn with_image(tag: &str, config: serde_json::Value, extra_layer: Option<Vec<u8>>) -> Env {
        let dir = tempfile::Builder::new()
            .prefix(&format!("husk-test-up-{tag}-"))
            .tempdir_in("/tmp")
            .unwrap();
        let store = dir.path().join("store");
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", testroot()).unwrap();
        let mut layers = vec![b.into_inner().unwrap()];
        layers.extend(extra_layer);
        let mut c = json!({"Env": ["PATH=/bin:/sbin", "FROM_IMAGE=1"], "Cmd": ["/probe"],
                           "ExposedPorts": {"8000/tcp": {}}});
        for (k, v) in config.as_object().unwrap() {
            c[k] = v.clone();
        }
        let cfg = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": c,
            "rootfs": {"type": "layers",
                       "diff_ids": layers.iter().map(|l| sha(l)).collect::<Vec<_>>()},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(&cfg), "size": cfg.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha(l), "size": l.len()})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let blobs = store.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        for b in layers.iter().chain([&cfg, &manifest]) {
            std::fs::write(blobs.join(&sha(b)[7..]), b).unwrap();
        }
        std::fs::write(
            store.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let idx = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": REF}
        }]});
        std::fs::write(store.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
        Env { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn husk(&self, args: &[&str]) -> Output {
        let mut c = Command::new(runtime());
        c.arg("--root").arg(self.root()).args(args);
        run_timeout(&mut c, Duration::from_secs(60))
    }

    /// `husk up` in the machine's network namespace: `--network none` unless `args` name a
    /// network (the default network would make its bridge and rules there; it is tested in a
    /// namespace of the test's own, `up_default_network_*`).
    fn up(&self, args: &[&str]) -> Output {
        let store = self.store();
        let mut a = vec!["up", "--store", store.to_str().unwrap(), "--pull", "never"];
        a.extend_from_slice(no_default_network(args));
        a.extend_from_slice(args);
        self.husk(&a)
    }

    fn bundles(&self) -> Vec<String> {
        std::fs::read_dir(self.store().join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The volumes under the store (`husk volume ls -q`'s view of the directory).
    fn volumes(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.store().join("volumes"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".lock")
            .collect();
        v.sort();
        v
    }

    fn containers(&self) -> Vec<String> {
        let o = self.husk(&["list", "-q"]);
        text(&o.stdout).lines().map(str::to_string).collect()
    }

    /// Nothing of any container left: no state, no bundle, no process, mount or cgroup.
    fn assert_clean(&self, what: &str) {
        assert!(
            self.containers().is_empty(),
            "{what}: state left: {:?}",
            self.containers()
        );
        assert!(
            self.bundles().is_empty(),
            "{what}: bundles left: {:?}",
            self.bundles()
        );
        let mounts = mounts_under(self.dir.path());
        assert!(mounts.is_empty(), "{what}: mounts left: {mounts:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // whatever a failed test left: monitors (husk processes naming this dir), containers
        // by their ids, then the mounts
        for (pid, _) in procs_naming(self.dir.path()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        for id in self.containers() {
            let _ = self.husk(&["delete", "-f", &id]);
        }
        for m in mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Processes whose command line names `dir` (the monitors of an Env's containers: husk with
/// `--root DIR/root`), other than this test.
fn procs_naming(dir: &std::path::Path) -> Vec<(i32, String)> {
    let want = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != me && pid_alive(p))
        .filter_map(|p| {
            let c = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let c = text(&c).replace('\0', " ");
            c.contains(&want).then_some((p, c))
        })
        .collect()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn need_root(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if is_runc() || is_crun() {
        skip(
            test,
            "husk up is husk's own command (the runtime under test is not husk)",
        );
        return false;
    }
    true
}

#[test]
fn up_rm_runs_the_image_and_passes_the_exit_status_through() {
    if !need_root("up_rm_runs_the_image_and_passes_the_exit_status_through") {
        return;
    }
    let e = Env::new("status");
    // the image's Cmd: the probe's JSON report, with the image's Env
    let v: serde_json::Value = serde_json::from_str(&ok(&e.up(&["--rm", IMAGE]), "up")).unwrap();
    let env = v["env"].to_string();
    assert!(env.contains("FROM_IMAGE=1"), "image Env missing: {env}");
    e.assert_clean("after up --rm");
    let o = e.up(&["--rm", IMAGE, "sh", "-c", "exit 7"]);
    assert_eq!(code(&o.status), 7, "stderr: {}", text(&o.stderr));
    e.assert_clean("after a non-zero exit");
    // everything after the image is the command's, up's own flags included (docker run's rule)
    let out = ok(
        &e.up(&[
            "--rm",
            "--entrypoint",
            "sh",
            IMAGE,
            "-c",
            "echo \"$0 $1 $2\"",
            "-v",
            "-m",
            "--rm",
        ]),
        "up with flags after the image",
    );
    assert_eq!(out.trim(), "-v -m --rm", "the command's arguments");
    e.assert_clean("after flags for the command");
}

#[test]
fn up_flags_reach_the_container() {
    if !need_root("up_flags_reach_the_container") {
        return;
    }
    let e = Env::new("flags");
    let envfile = e.dir.path().join("env");
    std::fs::write(&envfile, "# a comment\n\nFROM_FILE=f\n").unwrap();
    let out = ok(
        &e.up(&[
            "--rm",
            "-e",
            "A=1",
            "-e",
            "FROM_IMAGE=over",
            "--env-file",
            envfile.to_str().unwrap(),
            "-w",
            "/etc",
            "-u",
            "1000",
            "-h",
            "upbox",
            "--entrypoint",
            "/bin/sh",
            IMAGE,
            "-c",
            "echo A=$A FROM_IMAGE=$FROM_IMAGE FROM_FILE=$FROM_FILE; pwd; id -u; hostname; \
             read line || echo stdin-empty",
        ]),
        "up with flags",
    );
    let want = "A=1 FROM_IMAGE=over FROM_FILE=f\n/etc\n1000\nupbox\nstdin-empty\n";
    assert_eq!(out, want);
    let rw = e.up(&["--rm", "--entrypoint", "", IMAGE, "/bin/touch", "/y"]);
    ok(&rw, "touch /y on a writable root");
    let ro = e.up(&[
        "--rm",
        "--read-only",
        "--entrypoint",
        "",
        IMAGE,
        "/bin/touch",
        "/y",
    ]);
    assert!(
        !ro.status.success(),
        "a read-only root let touch /y succeed"
    );
    e.assert_clean("after the flag runs");
}

/// The probe's report of `husk up --rm FLAGS IMAGE /probe ARGS`.
fn report(e: &Env, flags: &[&str], args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--rm"];
    a.extend_from_slice(flags);
    a.extend_from_slice(&[IMAGE, "/probe"]);
    a.extend_from_slice(args);
    let out = ok(&e.up(&a), &format!("up {flags:?} probe"));
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("probe report {out:?}: {err}"))
}

/// The mount points of a report's mountinfo, in order, each with its per-mount flags.
fn mounts_of(v: &serde_json::Value) -> Vec<(String, String)> {
    v["mountinfo"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.as_str()?.split(' ').collect();
            Some((f.get(4)?.to_string(), f.get(5)?.to_string()))
        })
        .collect()
}

/// The process and the defaults as `docker run` makes them (moby's daemon environment,
/// `getUser`, default spec and sysctls): HOSTNAME set, TERM only with -t (unless the image or
/// -e sets them); the primary group among the supplementary ones, the image's /etc/group
/// memberships only when -u names no group; /proc nosuid,nodev,noexec; the default mounts in
/// Docker's order; no rlimit of husk's choosing; unprivileged ports and ping in a network
/// namespace of its own; the container's /etc files read-only with --read-only.
#[test]
fn up_process_and_defaults_as_docker() {
    if !need_root("up_process_and_defaults_as_docker") {
        return;
    }
    let e = Env::new("asdocker");
    let sysctls = [
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start",
        "--sysctl",
        "net.ipv4.ping_group_range",
    ];
    let v = report(&e, &["-h", "box"], &sysctls);
    let env: Vec<&str> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(env.contains(&"HOSTNAME=box"), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("TERM=")), "{env:?}");
    assert_eq!(v["groups"], json!([0]), "root's supplementary groups");
    assert_eq!(v["sysctl"]["net.ipv4.ip_unprivileged_port_start"], "0");
    assert_eq!(v["sysctl"]["net.ipv4.ping_group_range"], "0\t2147483647");
    let nofile =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert_eq!(
        (
            &v["rlimits"]["RLIMIT_NOFILE"]["soft"],
            &v["rlimits"]["RLIMIT_NOFILE"]["hard"]
        ),
        (&json!(nofile.0), &json!(nofile.1)),
        "the open files limit is husk's caller's"
    );
    let m = mounts_of(&v);
    let at = |p: &str| {
        m.iter()
            .position(|(d, _)| d == p)
            .unwrap_or_else(|| panic!("no mount at {p}: {m:?}"))
    };
    let proc_flags = &m[at("/proc")].1;
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(proc_flags.split(',').any(|x| x == f), "/proc {proc_flags}");
    }
    assert!(at("/sys/fs/cgroup") < at("/dev/mqueue") && at("/dev/mqueue") < at("/dev/shm"));
    assert!(at("/etc/resolv.conf") < at("/etc/hostname") && at("/etc/hostname") < at("/etc/hosts"));
    assert!(m[at("/etc/hosts")].1.starts_with("rw"), "{m:?}");

    // -t: TERM=xterm; the image's or -e's TERM and HOSTNAME are kept
    let v = report(&e, &["-t"], &[]);
    assert!(
        v["env"].to_string().contains("\"TERM=xterm\""),
        "{}",
        v["env"]
    );
    let v = report(&e, &["-e", "TERM=vt100", "-e", "HOSTNAME=mine"], &[]);
    let env = v["env"].to_string();
    assert!(
        env.contains("\"TERM=vt100\"") && env.contains("\"HOSTNAME=mine\""),
        "{env}"
    );
    assert_eq!(env.matches("HOSTNAME=").count(), 1, "{env}");

    // groups: user 1000 is listed in group extra (1001) of the test rootfs's /etc/group
    assert_eq!(
        report(&e, &["-u", "1000"], &[])["groups"],
        json!([1000, 1001])
    );
    assert_eq!(
        report(&e, &["-u", "user"], &[])["groups"],
        json!([1000, 1001])
    );
    assert_eq!(
        report(&e, &["-u", "1000:1000"], &[])["groups"],
        json!([1000])
    );

    let m = mounts_of(&report(&e, &["--read-only"], &[]));
    for p in ["/", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"] {
        let f = &m.iter().find(|(d, _)| d == p).unwrap().1;
        assert!(f.starts_with("ro,"), "{p} with --read-only: {f}");
    }
    e.assert_clean("after the runs");
}

/// Without -h the hostname is the first 12 characters of the container's id, as Docker's: in
/// `hostname` and /etc/hostname; a --name is the id; --network host keeps the host's name.
#[test]
fn up_hostname_is_the_ids_first_12_characters() {
    if !need_root("up_hostname_is_the_ids_first_12_characters") {
        return;
    }
    let e = Env::new("hostname");
    let store = e.store();
    let script = "hostname; cat /etc/hostname";
    // a generated id (kept, so that husk list names it)
    let out = ok(&e.up(&[IMAGE, "sh", "-c", script]), "up");
    let ids = e.containers();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let short = &ids[0][..12];
    assert_eq!(out, format!("{short}\n{short}\n"), "id {}", ids[0]);
    ok(
        &e.husk(&["rm", "--store", store.to_str().unwrap(), &ids[0]]),
        "rm",
    );
    // a name is the id
    let name = format!("hostname-test-{}", std::process::id());
    let out = sh(&e, &["--name", &name], "hostname");
    assert_eq!(out, format!("{}\n", &name[..12]));
    // -h wins; --network host: the host's name
    assert_eq!(sh(&e, &["-h", "box"], "hostname"), "box\n");
    let host = nix::unistd::gethostname().unwrap();
    assert_eq!(
        sh(&e, &["--network", "host"], "hostname"),
        format!("{}\n", host.to_string_lossy())
    );
    e.assert_clean("after the hostname runs");
}

#[test]
fn up_network_none_and_host() {
    if !need_root("up_network_none_and_host") {
        return;
    }
    let e = Env::new("net");
    let links = |args: &[&str]| {
        let mut a = vec!["--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[IMAGE, "cat", "/proc/net/dev"]);
        ok(&e.up(&a), "up")
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        links(&["--network", "none"]),
        ["lo"],
        "--network none: loopback only"
    );
    let host: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect();
    let mut got = links(&["--network", "host"]);
    let mut want = host;
    got.sort();
    want.sort();
    assert_eq!(got, want, "--network host sees the host's links");
    e.assert_clean("after the network runs");
}

#[test]
fn up_without_rm_keeps_the_container_until_husk_rm() {
    if !need_root("up_without_rm_keeps_the_container_until_husk_rm") {
        return;
    }
    let e = Env::new("keep");
    let name = format!("kept-{}", std::process::id());
    ok(&e.up(&["--name", &name, IMAGE, "true"]), "up --name");
    assert_eq!(e.containers(), vec![name.clone()]);
    assert_eq!(e.bundles(), vec![name.clone()]);
    let st = ok(&e.husk(&["state", &name]), "state");
    assert!(st.contains("\"stopped\""), "{st}");
    let again = e.up(&["--name", &name, IMAGE, "true"]);
    assert!(
        !again.status.success(),
        "a second container took the same name"
    );
    assert!(
        text(&again.stderr).contains(&name),
        "{}",
        text(&again.stderr)
    );
    let store = e.store();
    ok(
        &e.husk(&["rm", "--store", store.to_str().unwrap(), &name]),
        "rm",
    );
    e.assert_clean("after husk rm");
    let gone = e.husk(&["rm", "--store", store.to_str().unwrap(), &name]);
    assert!(!gone.status.success());
    assert!(
        text(&gone.stderr).contains("no such container"),
        "{}",
        text(&gone.stderr)
    );
}

#[test]
fn up_bad_input_is_refused_by_name_and_leaves_nothing() {
    if !need_root("up_bad_input_is_refused_by_name_and_leaves_nothing") {
        return;
    }
    let e = Env::new("bad");
    let store = e.store();
    let cases: &[(&[&str], &str)] = &[
        (&["--rm", "nosuchimage", "true"], "nosuchimage"),
        (&["--rm", "--network", "", IMAGE, "true"], "--network"),
        (&["--rm", "-w", "relative", IMAGE, "true"], "-w"),
        (&["--rm", "--name", "../escape", IMAGE, "true"], "--name"),
        (&["--rm", "-e", "=x", IMAGE, "true"], "-e"),
        (&["--rm", "-u", "nosuchuser", IMAGE, "true"], "nosuchuser"),
        (&["--rm", IMAGE, "/no/such/program"], "/no/such/program"),
    ];
    for (args, want) in cases {
        let o = e.up(args);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(want),
            "{args:?}: the error must name {want:?}: {err}"
        );
        e.assert_clean(&format!("after {args:?}"));
    }
    let o = e.husk(&[
        "up",
        "--store",
        store.to_str().unwrap(),
        "--pull",
        "sometimes",
        IMAGE,
    ]);
    assert!(text(&o.stderr).contains("--pull"), "{}", text(&o.stderr));
}

/// `sh -c SCRIPT` in a `--rm` container with `flags`; its stdout.
fn sh(e: &Env, flags: &[&str], script: &str) -> String {
    let mut a = vec!["--rm"];
    a.extend_from_slice(flags);
    a.extend_from_slice(&[IMAGE, "sh", "-c", script]);
    ok(&e.up(&a), &format!("up {flags:?} sh -c {script:?}"))
}

/// The `/proc/mounts` line of the mount at `dir` inside a container with `flags`.
fn mount_line(e: &Env, flags: &[&str], dir: &str) -> String {
    sh(e, flags, &format!("grep ' {dir} ' /proc/mounts"))
}

/// -v (bind ro and rw, a named volume kept across two runs, an anonymous one removed with
/// --rm), --mount and --tmpfs, each seen from inside.
#[test]
fn up_volumes_mounts_and_tmpfs() {
    if !need_root("up_volumes_mounts_and_tmpfs") {
        return;
    }
    let e = Env::new("vol");
    let host = e.dir.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "from-host\n").unwrap();
    let h = host.to_str().unwrap();
    // read-only bind: readable, not writable
    let ro = format!("{h}:/data:ro");
    let out = sh(
        &e,
        &["-v", &ro],
        "cat /data/f; touch /data/x 2>/dev/null && echo wrote || echo refused",
    );
    assert_eq!(out, "from-host\nrefused\n");
    assert!(!host.join("x").exists());
    // read-write bind: the file lands on the host
    let rw = format!("{h}:/data");
    sh(&e, &["-v", &rw], "echo from-ctr > /data/new");
    assert_eq!(
        std::fs::read_to_string(host.join("new")).unwrap(),
        "from-ctr\n"
    );
    // --mount type=bind,readonly
    let m = format!("type=bind,source={h},target=/m,readonly");
    let line = mount_line(&e, &["--mount", &m], "/m");
    assert!(line.contains(" ro,") || line.contains(" ro "), "{line}");
    // a named volume: written by one container, read by the next
    sh(&e, &["-v", "keep1:/v"], "echo persisted > /v/f");
    let data = e.store().join("volumes/keep1/_data");
    assert_eq!(
        std::fs::read_to_string(data.join("f")).unwrap(),
        "persisted\n"
    );
    assert_eq!(sh(&e, &["-v", "keep1:/v:ro"], "cat /v/f"), "persisted\n");
    // a new volume gets the image's files at its mount point (owner kept), unless nocopy
    assert_eq!(
        sh(&e, &["-v", "home1:/home"], "stat -c '%n %u' /home/user"),
        "/home/user 1000\n"
    );
    assert_eq!(sh(&e, &["-v", "home2:/home:nocopy"], "ls -A /home"), "");
    for v in ["home1", "home2"] {
        ok(
            &e.husk(&["volume", "--store", e.store().to_str().unwrap(), "rm", v]),
            "volume rm",
        );
    }
    // an anonymous volume goes with --rm; the named one stays
    sh(&e, &["-v", "/anon"], "echo x > /anon/f");
    let vols: Vec<_> = std::fs::read_dir(e.store().join("volumes"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    assert_eq!(vols, ["keep1"], "volumes after an anonymous one with --rm");
    // --tmpfs: a tmpfs with docker's noexec,nosuid,nodev and the size asked for
    let line = mount_line(&e, &["--tmpfs", "/scratch:size=1m"], "/scratch");
    assert!(line.starts_with("tmpfs /scratch tmpfs"), "{line}");
    for want in ["nosuid", "nodev", "noexec", "size=1024k"] {
        assert!(line.contains(want), "--tmpfs: {want} missing: {line}");
    }
    let line = mount_line(&e, &["--mount", "type=tmpfs,target=/t,tmpfs-size=2m"], "/t");
    assert!(line.contains("size=2048k"), "{line}");
    e.assert_clean("after the volume runs");
    // husk volume: a volume in use is kept; prune takes the anonymous ones no container uses
    let store = e.store();
    let st = store.to_str().unwrap();
    let vol = |args: &[&str]| {
        let mut a = vec!["volume", "--store", st];
        a.extend_from_slice(args);
        e.husk(&a)
    };
    let holder = format!("holder-{}", std::process::id());
    ok(
        &e.up(&[
            "--name", &holder, "-v", "keep1:/v", "-v", "/anon2", IMAGE, "true",
        ]),
        "up keeping two volumes",
    );
    let names = ok(&vol(&["ls", "-q"]), "volume ls");
    assert_eq!(names.lines().count(), 2, "{names}");
    assert!(names.lines().any(|l| l == "keep1"), "{names}");
    let o = vol(&["rm", "keep1"]);
    assert!(!o.status.success(), "a volume in use was removed");
    assert!(text(&o.stderr).contains(&holder), "{}", text(&o.stderr));
    let pruned = ok(&vol(&["prune"]), "volume prune while in use");
    assert!(pruned.starts_with("Total reclaimed space"), "{pruned}");
    ok(&e.husk(&["rm", "--store", st, &holder]), "rm the holder");
    let pruned = ok(&vol(&["prune"]), "volume prune");
    assert_eq!(
        pruned.lines().count(),
        2,
        "the anonymous volume and the total: {pruned}"
    );
    assert_eq!(ok(&vol(&["ls", "-q"]), "volume ls"), "keep1\n");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&vol(&["inspect", "keep1"]), "inspect")).unwrap();
    assert_eq!(v[0]["Mountpoint"], json!(store.join("volumes/keep1/_data")));
    ok(&vol(&["rm", "keep1"]), "volume rm");
    assert_eq!(ok(&vol(&["ls", "-q"]), "volume ls"), "");
    e.assert_clean("after husk volume");
}

/// -m, --cpus, --pids-limit, --ulimit read back inside (cgroup v1 files on a v1 or hybrid
/// host, v2 ones on a unified host).
#[test]
fn up_resource_limits() {
    if !need_root("up_resource_limits") {
        return;
    }
    let e = Env::new("res");
    let v2 = !std::path::Path::new("/sys/fs/cgroup/memory").exists();
    let (mem, cpu, pids) = if v2 {
        (
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/cpu.max",
            "/sys/fs/cgroup/pids.max",
        )
    } else {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
            "/sys/fs/cgroup/pids/pids.max",
        )
    };
    let out = sh(
        &e,
        &["-m", "64m", "--cpus", "0.5", "--pids-limit", "20"],
        &format!("cat {mem}; cat {cpu}; cat {pids}"),
    );
    let want = if v2 {
        "67108864\n50000 100000\n20\n"
    } else {
        "67108864\n50000\n100000\n20\n"
    };
    assert_eq!(out, want);
    let limits = sh(
        &e,
        &["--ulimit", "nofile=100:200"],
        "grep 'Max open files' /proc/self/limits",
    );
    let f: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(f[3..5], ["100", "200"], "{limits}");
    e.assert_clean("after the resource runs");
}

/// CapEff of the container's process: docker's 14 by default, none after --cap-drop ALL, one
/// added back, everything with --privileged (with writable /sys, no read-only /proc/sys and
/// the host's devices); NoNewPrivs from --security-opt.
#[test]
fn up_capabilities_privileged_and_security_opts() {
    if !need_root("up_capabilities_privileged_and_security_opts") {
        return;
    }
    let e = Env::new("caps");
    let status = |flags: &[&str], key: &str| {
        let out = sh(&e, flags, &format!("grep '^{key}:' /proc/self/status"));
        out.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
    // SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert_eq!(status(&[], "CapEff"), "00000000a80425fb");
    assert_eq!(status(&["--cap-drop", "ALL"], "CapEff"), "0000000000000000");
    assert_eq!(
        status(&["--cap-drop", "ALL", "--cap-add", "net_admin"], "CapEff"),
        "0000000000001000"
    );
    assert_eq!(
        status(
            &["--cap-drop", "chown", "--cap-add", "CAP_SYS_TIME"],
            "CapEff"
        ),
        format!("{:016x}", 0xa80425fbu64 & !1 | 1 << 25)
    );
    // every capability husk has itself (its bounding set; a restricted host may lack some)
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(status(&["--privileged"], "CapEff"), all);
    assert_eq!(status(&[], "NoNewPrivs"), "0");
    assert_eq!(
        status(&["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    // --privileged: /sys read-write, /proc/sys not remounted read-only, host devices present
    let sys = mount_line(&e, &["--privileged"], "/sys");
    assert!(sys.contains(" rw,"), "{sys}");
    assert!(mount_line(&e, &[], "/sys").contains(" ro,"));
    let procsys = "grep -c ' /proc/sys ' /proc/mounts || true";
    assert_eq!(sh(&e, &["--privileged"], procsys).trim(), "0");
    assert_eq!(sh(&e, &[], procsys).trim(), "1");
    let dev = "/dev/kmsg";
    if std::path::Path::new(dev).exists() {
        let probe = format!("test -c {dev} && echo yes || echo no");
        assert_eq!(sh(&e, &["--privileged"], &probe), "yes\n");
        assert_eq!(sh(&e, &[], &probe), "no\n");
    }
    // --security-opt seccomp=FILE in Docker's profile format: mkdir refused with EPERM
    let profile = e.dir.path().join("seccomp.json");
    std::fs::write(
        &profile,
        serde_json::to_vec(&json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1, "comment": "no new directories"},
                         {"names": ["reboot"], "action": "SCMP_ACT_ERRNO",
                          "includes": {"caps": ["CAP_SYS_BOOT"]}}]
        }))
        .unwrap(),
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = sh(
        &e,
        &["--security-opt", &opt],
        "mkdir /tmp/d 2>&1 || true; touch /tmp/f && echo touched",
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("touched\n"), "{out}");
    // --device: a host node under another name, usable
    let out = sh(
        &e,
        &["--device", "/dev/null:/dev/mynull"],
        "echo x > /dev/mynull && echo written",
    );
    assert_eq!(out, "written\n");
    e.assert_clean("after the capability runs");
}

/// Docker's default seccomp profile, seen from inside: a filter is on (`Seccomp: 2`), calls it
/// leaves out are refused with EPERM (keyctl; unshare and mount, which need CAP_SYS_ADMIN),
/// clone3 answers ENOSYS, ordinary programs run; `--cap-add SYS_ADMIN` brings its calls in
/// while keyctl stays refused; `--privileged` and `seccomp=unconfined` run without a filter.
#[test]
fn up_default_seccomp_profile() {
    if !need_root("up_default_seccomp_profile") {
        return;
    }
    let e = Env::new("seccomp");
    // the filter mode of the container's process and the probe's answers, in one run
    let run = |flags: &[&str]| -> (String, serde_json::Value) {
        let out = sh(
            &e,
            flags,
            "grep '^Seccomp:' /proc/self/status; /probe syscalls keyctl unshare mount getpid \
             mkdir:755 personality:0 personality:40000",
        );
        let (mode, json) = out.split_once('\n').unwrap();
        let mode = mode
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        (mode, v["results"].clone())
    };
    let (mode, r) = run(&[]);
    assert_eq!(mode, "2", "no seccomp filter by default: {r}");
    for (call, want) in [
        ("keyctl", "errno 1"),
        ("unshare", "errno 1"),
        ("mount", "errno 1"),
        ("getpid", "ok"),
        ("mkdir:755", "ok"),
        ("personality:0", "ok"),
        // not one of the personalities Docker allows
        ("personality:40000", "errno 1"),
    ] {
        assert_eq!(r[call], want, "{call} under the default profile: {r}");
    }
    // with CAP_SYS_ADMIN its calls come in (the filter is still on: keyctl refused)
    let (mode, r) = run(&["--cap-add", "SYS_ADMIN"]);
    assert_eq!(mode, "2");
    assert_eq!(r["unshare"], "ok", "{r}");
    assert_eq!(r["mount"], "ok", "{r}");
    assert_eq!(r["keyctl"], "errno 1", "{r}");
    // no filter at all
    for flags in [
        &["--privileged"][..],
        &["--security-opt", "seccomp=unconfined"],
    ] {
        let (mode, r) = run(flags);
        assert_eq!(mode, "0", "{flags:?}: {r}");
        assert_ne!(r["keyctl"], "errno 1", "{flags:?}: {r}");
        assert_eq!(r["personality:40000"], "ok", "{flags:?}: {r}");
    }
    // ordinary programs run under it: a pipeline of busybox tools, a fork and exec each
    assert_eq!(
        sh(&e, &[], "echo one two | tr ' ' '\\n' | sort -r | head -n1"),
        "two\n"
    );
    e.assert_clean("after the seccomp runs");
}

/// A layer of `(path, mode, uid, contents)`: a directory where contents is None.
fn layer(entries: &[(&str, u32, u64, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, uid, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(0);
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, path, d.as_bytes()).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// The image's VOLUMEs: each gets an anonymous volume filled with the image's files (owner and
/// mode kept), removed with --rm (foreground and -d), kept by a container without --rm (and
/// collected by husk volume prune once it is removed); a -v, --mount or --tmpfs at the path
/// replaces it; a VOLUME over a file is refused by name with nothing left.
#[test]
fn up_image_volumes() {
    if !need_root("up_image_volumes") {
        return;
    }
    let seed = layer(&[
        ("srv", 0o755, 0, None),
        ("srv/data", 0o750, 1000, None),
        ("srv/data/seed", 0o640, 1000, Some("from the image\n")),
    ]);
    let e = Env::with_image(
        "imgvol",
        json!({"Volumes": {"/srv/data": {}, "/var/cache/app": {}}}),
        Some(seed),
    );
    let store = e.store();
    let store_s = store.to_str().unwrap();
    let script = "grep -c -e ' /srv/data ' -e ' /var/cache/app ' /proc/mounts; \
                  cat /srv/data/seed; stat -c '%u %a' /srv/data /srv/data/seed; \
                  echo new > /srv/data/new && ls /srv/data | tr '\\n' ' '";
    let want = "2\nfrom the image\n1000 750\n1000 640\nnew seed ";
    assert_eq!(sh(&e, &[], script), want);
    assert!(e.volumes().is_empty(), "--rm left {:?}", e.volumes());
    e.assert_clean("after up --rm");
    // kept without --rm: two anonymous volumes, with what the container wrote
    let out = ok(&e.up(&[IMAGE, "sh", "-c", script]), "up without --rm");
    assert_eq!(out, want);
    let vols = e.volumes();
    assert_eq!(vols.len(), 2, "{vols:?}");
    let new_file = vols
        .iter()
        .map(|v| store.join("volumes").join(v).join("_data/new"))
        .filter(|p| p.exists())
        .collect::<Vec<_>>();
    assert_eq!(new_file.len(), 1, "{vols:?}");
    assert!(vols
        .iter()
        .all(|v| store.join("volumes").join(v).join("anonymous").exists()));
    let id = e.containers().pop().unwrap();
    // in use: prune keeps them; after husk rm (as docker rm without -v) they stay until prune
    ok(&e.husk(&["volume", "--store", store_s, "prune"]), "prune");
    assert_eq!(e.volumes(), vols);
    ok(&e.husk(&["rm", "--store", store_s, &id]), "rm");
    assert_eq!(e.volumes(), vols);
    ok(&e.husk(&["volume", "--store", store_s, "prune"]), "prune");
    assert!(e.volumes().is_empty(), "{:?}", e.volumes());
    // a -v, --mount or --tmpfs at the path replaces the image's volume there
    let named = format!("named-{}", std::process::id());
    let out = sh(
        &e,
        &[
            "-v",
            &format!("{named}:/srv/data"),
            "--tmpfs",
            "/var/cache/app",
        ],
        "grep ' /var/cache/app ' /proc/mounts | cut -d' ' -f3; cat /srv/data/seed",
    );
    assert_eq!(out, "tmpfs\nfrom the image\n");
    assert_eq!(e.volumes(), vec![named.clone()], "only the named volume");
    ok(
        &e.husk(&["volume", "--store", store_s, "rm", &named]),
        "volume rm",
    );
    // -d --rm: the monitor removes them at the exit
    let o = e.up(&["-d", "--rm", IMAGE, "sh", "-c", "test -f /srv/data/seed"]);
    ok(&o, "up -d --rm");
    assert!(
        wait_until(Duration::from_secs(20), &|| e.bundles().is_empty()
            && e.volumes().is_empty()),
        "-d --rm left {:?} {:?}",
        e.bundles(),
        e.volumes()
    );
    e.assert_clean("after the image-volume runs");
    // a VOLUME over a file of the image: refused by name, nothing left
    let bad = Env::with_image("imgvolbad", json!({"Volumes": {"/probe": {}}}), None);
    let o = bad.up(&["--rm", IMAGE, "true"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("the image's VOLUME") && err.contains("/probe") && err.contains("a file"),
        "{err}"
    );
    assert!(bad.volumes().is_empty(), "{:?}", bad.volumes());
    bad.assert_clean("after the refused VOLUME");
}

/// --dns, --dns-search, --dns-option and --add-host in the container's resolv.conf and hosts;
/// --label in the bundle's annotations.
#[test]
fn up_names_and_labels() {
    if !need_root("up_names_and_labels") {
        return;
    }
    let e = Env::new("dns");
    let name = format!("names-{}", std::process::id());
    let out = ok(
        &e.up(&[
            "--name",
            &name,
            "-h",
            "box",
            "--dns",
            "10.1.2.3",
            "--dns-search",
            "corp.example",
            "--dns-option",
            "ndots:3",
            "--add-host",
            "db:10.9.8.7",
            "--label",
            "com.example.team=web",
            IMAGE,
            "sh",
            "-c",
            "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; cat /etc/hostname",
        ]),
        "up with names",
    );
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(
        parts[0], "nameserver 10.1.2.3\nsearch corp.example\noptions ndots:3\n",
        "{out}"
    );
    assert!(parts[1].starts_with("127.0.0.1\tlocalhost\n"), "{out}");
    assert!(parts[1].ends_with("10.9.8.7\tdb\n"), "{out}");
    assert_eq!(parts[2], "box\n");
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.store().join("containers").join(&name).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["annotations"]["com.example.team"], "web");
    let store = e.store();
    ok(
        &e.husk(&["rm", "--store", store.to_str().unwrap(), &name]),
        "rm",
    );
    e.assert_clean("after the names run");
}

/// Bad values of the configuration flags are refused by name before anything is made: no
/// state, no bundle, no volume.
#[test]
fn up_bad_config_flags_leave_nothing() {
    if !need_root("up_bad_config_flags_leave_nothing") {
        return;
    }
    let e = Env::new("badcfg");
    let missing = e.dir.path().join("no-such-dir");
    let bind = format!("{}:/x", missing.display());
    let missing_s = missing.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["-m", "12q"], "-m \"12q\""),
        (&["--cpus", "-1"], "--cpus \"-1\""),
        (&["--cpus", "0"], "--cpus \"0\""),
        (&["-v", "newvol:/n", "-v", &bind], &missing_s),
        (&["--cap-add", "FLY"], "--cap-add \"FLY\""),
        (&["--ulimit", "nofile=9:1"], "--ulimit"),
        (&["--tmpfs", "/t:colour=red"], "--tmpfs"),
        (&["--security-opt", "turbo"], "--security-opt"),
        (&["--device", "/dev/no-such-device"], "/dev/no-such-device"),
        (&["--add-host", "db"], "--add-host"),
    ];
    for (flags, want) in cases {
        let mut a = vec!["--rm"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[IMAGE, "true"]);
        let o = e.up(&a);
        // (the log's msg="…" escapes the quotes)
        let err = text(&o.stderr).replace("\\\"", "\"");
        assert!(!o.status.success(), "{flags:?} succeeded");
        assert!(
            err.contains(want),
            "{flags:?}: the error must name {want:?}: {err}"
        );
        e.assert_clean(&format!("after {flags:?}"));
        assert!(
            !e.store().join("volumes").exists(),
            "{flags:?}: a volume was made"
        );
    }
}

/// `["--network", "none"]` for a `husk up` run in the machine's network namespace whose
/// `args` name no network, so it never gets the default network's bridge and rules there.
fn no_default_network(args: &[&str]) -> &'static [&'static str] {
    if args
        .iter()
        .any(|a| *a == "--network" || a.starts_with("--network="))
    {
        &[]
    } else {
        &["--network", "none"]
    }
}

/// A network namespace of the test's own, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        // tests run side by side in one process: the pid alone is not unique
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("hk-up-{}-{seq}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        let n = Netns(name);
        let o = run_timeout(
            Command::new("ip").args(["-n", &n.0, "link", "set", "lo", "up"]),
            CMD_TIMEOUT,
        );
        assert!(o.status.success());
        n
    }

    /// `prog` run in the namespace (network only).
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.0)).arg(prog);
        c
    }
}

impl Netns {
    /// GET /index.html from 127.0.0.1:`port` in the namespace until it answers (10 s at most).
    fn fetch(&self, port: u16) -> String {
        self.fetch_from("127.0.0.1", port)
    }

    /// [`Netns::fetch`] from `host` (an IPv6 one in brackets).
    fn fetch_from(&self, host: &str, port: u16) -> String {
        let mut got = String::new();
        for _ in 0..100 {
            let o = self
                .cmd("busybox")
                // (no -T: Debian's busybox 1.35 wget crashes with it)
                .args([
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    &format!("http://{host}:{port}/index.html"),
                ])
                .output()
                .unwrap();
            got = text(&o.stdout);
            if o.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        got
    }
}

/// A container command serving `page` on port 8000 until SIGTERM.
fn web(page: &str) -> String {
    format!("trap 'exit 0' TERM; echo {page} > /tmp/index.html; httpd -f -p 8000 -h /tmp & wait")
}

/// SIGTERM to a foreground `husk up` (forwarded to the container), then its exit status.
fn stop(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    );
    wait_child(child, Duration::from_secs(30))
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `husk up --network NAME -p`: inside a network namespace the test makes, a network of `husk
/// network create`, a web server in the container answering on the published port from the
/// namespace's loopback; after the container ends (SIGTERM to `husk up`, forwarded), its
/// attachment, veth and per-container rules are gone with it.
#[test]
fn up_network_named_with_a_published_port() {
    if !need_root("up_network_named_with_a_published_port") {
        return;
    }
    let n = NetEnv::new("pub");
    let (e, ns) = (&n.e, &n.ns);
    let dirs = e.dir.path();
    let husk_in_ns = |args: &[&str]| husk_in_netns(ns, &e.root(), dirs, args);
    let o = run_timeout(
        &mut husk_in_ns(&["network", "create", "--subnet", "10.89.77.0/24", "upweb"]),
        CMD_TIMEOUT,
    );
    ok(&o, "network create");
    let links_before = text(&ns.cmd("ip").args(["-o", "link"]).output().unwrap().stdout);
    let store = e.store();
    // the page counts the container's own address in its /etc/hosts (written after the attach)
    let script = web("hello-from-up-$(grep -c '^10[.]89[.]77[.][0-9]*\t' /etc/hosts)");
    let mut up = n.up_command(&[
        "--rm",
        "--name",
        "web",
        "--network",
        "upweb",
        "-p",
        "8080:8000",
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    let mut child = up
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let got = ns.fetch(8080);
    let st = stop(&mut child);
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut err);
    }
    assert_eq!(
        got, "hello-from-up-1\n",
        "the published port did not answer; husk up: {err}"
    );
    assert_eq!(
        code(&st),
        0,
        "husk up's status (SIGTERM forwarded, trapped): {err}"
    );
    e.assert_clean("after up --rm on a network");
    let links_after = text(&ns.cmd("ip").args(["-o", "link"]).output().unwrap().stdout);
    let count = |t: &str| t.lines().filter(|l| l.contains("veth")).count();
    assert_eq!(
        count(&links_after),
        count(&links_before),
        "a veth was left: {links_after}"
    );
    // (records are under attachments/ID)
    let records: Vec<_> = std::fs::read_dir(dirs.join("netrun/attachments"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(records.is_empty(), "attachment records left: {records:?}");
    let rules = text(&ns.cmd("iptables-save").output().unwrap().stdout);
    assert!(!rules.contains("8080"), "port rules left: {rules}");
    // -P: the exposed 8000/tcp on a free host port, which husk up names on stderr
    let script = web("hello-from-P");
    let mut up = n.up_command(&[
        "--rm",
        "--network",
        "upweb",
        "-P",
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    let mut child = up
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(child.stderr.take().unwrap());
        while line.is_empty() || !line.contains("published") {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
        }
    }
    // "husk up: published 0.0.0.0:PORT->8000/tcp"
    let port: Option<u16> = line
        .split("0.0.0.0:")
        .nth(1)
        .and_then(|r| r.split("->").next())
        .and_then(|p| p.parse().ok());
    let got = port.map(|p| ns.fetch(p)).unwrap_or_default();
    let st = stop(&mut child);
    assert!(
        line.contains("->8000/tcp"),
        "husk up -P did not name the port: {line:?}"
    );
    assert_eq!(got, "hello-from-P\n", "the -P port {port:?} did not answer");
    assert_eq!(code(&st), 0);
    e.assert_clean("after up -P");
    // -d: the monitor attaches the network before the start and releases it at the exit
    let script = web("hello-from-d");
    let o = run_timeout(
        &mut n.up_command(&[
            "-d",
            "--name",
            "dweb",
            "--network",
            "upweb",
            "-p",
            "8081:8000",
            IMAGE,
            "sh",
            "-c",
            &script,
        ]),
        CMD_TIMEOUT,
    );
    ok(&o, "up -d on a network");
    let got = ns.fetch(8081);
    let record = dirs.join("netrun/attachments/dweb");
    assert!(
        record.exists(),
        "no attachment record at {}",
        record.display()
    );
    let stop = run_timeout(
        &mut husk_in_ns(&["stop", "--store", store.to_str().unwrap(), "dweb"]),
        CMD_TIMEOUT,
    );
    ok(&stop, "stop");
    assert_eq!(
        got, "hello-from-d\n",
        "the port of the -d container did not answer"
    );
    assert_eq!(e.status("dweb")["exitCode"], 0, "SIGTERM trapped");
    assert!(
        !record.exists(),
        "the attachment record was left after stop"
    );
    ok(&e.cmd("rm", &["dweb"]), "rm");
    e.assert_all_gone("after up -d on a network");
    // -p without a network to publish on is refused by name
    let o = e.up(&["--rm", "--network", "none", "-p", "8080:80", IMAGE, "true"]);
    assert!(text(&o.stderr).contains("-p"), "{}", text(&o.stderr));
    e.assert_clean("after a refused -p");
}

/// An Env and a network namespace of the test's, husk run in it with the Env's network dirs
/// (`netconf`, `cni`, `netrun`): for the tests that make networks and containers on them.
/// (The namespace is dropped before the Env, as it was declared after it.)
struct NetEnv {
    ns: Netns,
    e: Env,
}

impl NetEnv {
    fn new(tag: &str) -> NetEnv {
        let e = Env::new(tag);
        NetEnv {
            ns: Netns::new(),
            e,
        }
    }

    /// `husk --root ROOT ARGS` in the namespace (120 s at most).
    fn husk(&self, args: &[&str]) -> Output {
        run_timeout(
            &mut husk_in_netns(&self.ns, &self.e.root(), self.e.dir.path(), args),
            Duration::from_secs(120),
        )
    }

    /// `husk up --store STORE --pull never ARGS` in the namespace, not started.
    fn up_command(&self, args: &[&str]) -> Command {
        let store = self.e.store_arg();
        let mut a = vec!["up", "--store", &store, "--pull", "never"];
        a.extend_from_slice(args);
        husk_in_netns(&self.ns, &self.e.root(), self.e.dir.path(), &a)
    }

    /// [`NetEnv::up_command`] run (120 s at most).
    fn up(&self, args: &[&str]) -> Output {
        run_timeout(&mut self.up_command(args), Duration::from_secs(120))
    }

    /// `husk rm -f IDS` in the namespace (the attachments are released there), then nothing
    /// left of any container ([`Env::assert_all_gone`]) nor of the networks ([`network_leaks`]).
    fn rm_all_gone(&self, ids: &[&str], what: &str) {
        let store = self.e.store_arg();
        let mut a = vec!["rm", "--store", &store, "-f"];
        a.extend_from_slice(ids);
        ok(&self.husk(&a), &format!("rm -f {}", ids.join(" ")));
        self.e.assert_all_gone(what);
        let leaks = network_leaks(&self.ns, &self.e.dir.path().join("netrun"));
        assert!(leaks.is_empty(), "{what}: left behind: {leaks:?}");
    }
}

/// What the network run dir `run` and the namespace `ns` hold once nothing is attached: a veth,
/// a `husk-*` nftables table, a host-local allocation, an attachment record or a pin.
fn network_leaks(ns: &Netns, run: &std::path::Path) -> Vec<String> {
    let mut l = Vec::new();
    let links = text(&ns.cmd("ip").args(["-o", "link"]).output().unwrap().stdout);
    l.extend(
        links
            .lines()
            .filter(|x| x.contains("veth"))
            .map(|x| format!("link {x}")),
    );
    let nft = ns.cmd("nft").args(["list", "tables"]).output().unwrap();
    l.extend(
        text(&nft.stdout)
            .lines()
            .filter(|t| t.contains(" husk-"))
            .map(|t| format!("nftables {t}")),
    );
    for net in std::fs::read_dir(run.join("ipam"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = f.file_name().to_string_lossy().into_owned();
            if n != "lock" && !n.starts_with("last_reserved_ip") {
                l.push(format!("host-local allocation {}", f.path().display()));
            }
        }
    }
    for sub in ["attachments", "netns"] {
        for e in std::fs::read_dir(run.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            l.push(format!("{sub} {}", e.path().display()));
        }
    }
    l
}

/// Containers on one network of `husk network create` know each other by name (their
/// `--name`, their `--network-alias`) through the /etc/hosts husk keeps for each: `ping` by
/// name both ways, no names across networks, a removed container's line gone from the others;
/// then 20 containers started at once on one network, whose every hosts file lists all the
/// others. Everything in a network namespace of the test's; nothing left after.
#[test]
fn up_containers_on_a_network_know_each_other_by_name() {
    let name = "up_containers_on_a_network_know_each_other_by_name";
    if !need_root(name) {
        return;
    }
    let n = NetEnv::new("names");
    let (e, ns) = (&n.e, &n.ns);
    let dirs = e.dir.path();
    let run = dirs.join("netrun");
    let husk_in_ns = |args: &[&str]| n.husk(args);
    let store = e.store_arg();
    let up_d = |name: &str, net: &str, extra: &[&str]| {
        let mut a = vec!["-d", "--name", name, "--network", net];
        a.extend_from_slice(extra);
        a.extend_from_slice(&[IMAGE, "sleep", "600"]);
        n.up(&a)
    };
    // (othernet is internal: no default route, so a container can be on both networks)
    ok(
        &husk_in_ns(&["network", "create", "--subnet", "10.89.81.0/24", "mynet"]),
        "network create mynet",
    );
    ok(
        &husk_in_ns(&[
            "network",
            "create",
            "--internal",
            "--subnet",
            "10.89.82.0/24",
            "othernet",
        ]),
        "network create othernet",
    );
    let hosts = |c: &str| {
        std::fs::read_to_string(e.store().join("containers").join(c).join("hosts"))
            .unwrap_or_default()
    };
    // a line of `hosts` naming `n` (names are the words after the address)
    let names = |h: &str, n: &str| {
        h.lines()
            .any(|l| l.split_whitespace().skip(1).any(|w| w == n))
    };
    let ping = |from: &str, to: &str| {
        e.husk(&["exec", from, "ping", "-c1", "-W2", to])
            .status
            .success()
    };
    ok(&up_d("a", "mynet", &[]), "up a");
    ok(&up_d("b", "mynet", &["--network-alias", "bee"]), "up b");
    ok(&up_d("c", "othernet", &[]), "up c");
    let (ha, hb, hc) = (hosts("a"), hosts("b"), hosts("c"));
    assert!(names(&ha, "b") && names(&ha, "bee"), "a's hosts: {ha}");
    assert!(names(&hb, "a") && names(&hb, "bee"), "b's hosts: {hb}");
    assert!(
        !names(&ha, "c") && !names(&hc, "a") && !names(&hc, "b"),
        "{ha}\n{hc}"
    );
    // from inside, through the bound /etc/hosts
    let inside = text(&e.husk(&["exec", "a", "cat", "/etc/hosts"]).stdout);
    assert_eq!(inside, ha, "a's /etc/hosts is the bundle's file");
    assert!(ping("a", "b"), "a cannot ping b by name; a's hosts: {ha}");
    assert!(ping("a", "bee"), "a cannot ping b by its alias");
    assert!(ping("b", "a"), "b cannot ping a by name; b's hosts: {hb}");
    assert!(ping("a", "a"), "a cannot ping itself by name");
    assert!(!ping("c", "a"), "c, on another network, resolved a: {hc}");
    // a joins c's network too (husk network attach): the two see each other there, and a's
    // file keeps what its first attach recorded
    ok(
        &husk_in_ns(&["network", "attach", "othernet", "a"]),
        "network attach a othernet",
    );
    let (ha, hc) = (hosts("a"), hosts("c"));
    assert!(
        names(&ha, "b") && names(&ha, "c") && names(&hc, "a"),
        "{ha}\n{hc}"
    );
    assert!(!names(&hc, "b"), "c sees b through a: {hc}");
    assert!(
        ping("a", "c") && ping("c", "a"),
        "a and c by name on othernet"
    );
    ok(
        &husk_in_ns(&["network", "detach", "othernet", "a"]),
        "network detach a othernet",
    );
    let (ha, hc) = (hosts("a"), hosts("c"));
    assert!(
        names(&ha, "b") && !names(&ha, "c") && !names(&hc, "a"),
        "{ha}\n{hc}"
    );
    // a bundle of the user's attached with husk network attach: its id and --alias go into
    // the hosts files husk keeps; its own /etc/hosts (husk does not manage it) is left alone
    let mut bun = Ctr::new("names-bundle", "default");
    bun.args(&["sleep", "600"]);
    bun.write_config();
    bun.create_ok(&[]);
    let own_before = std::fs::read(bun.rootfs().join("etc/hosts")).ok();
    let mut c = ns.cmd(runtime().to_str().unwrap());
    c.arg("--root")
        .arg(&bun.root)
        .args(["network", "attach", "--alias", "bun", "mynet", &bun.id])
        .env("HUSK_NETWORK_DIR", dirs.join("netconf"))
        .env("HUSK_CNI_CONFIG_DIR", dirs.join("cni"))
        .env("HUSK_NETWORK_RUN_DIR", &run);
    ok(
        &run_timeout(&mut c, CMD_TIMEOUT),
        "network attach of a bundle",
    );
    let ha = hosts("a");
    assert!(
        names(&ha, &bun.id) && names(&ha, "bun"),
        "the bundle's container is not in a's hosts: {ha}"
    );
    assert_eq!(
        std::fs::read(bun.rootfs().join("etc/hosts")).ok(),
        own_before,
        "the bundle's own /etc/hosts was written"
    );
    ok(
        &husk_in_ns(&["network", "detach", "mynet", &bun.id]),
        "network detach of the bundle",
    );
    assert!(!names(&hosts("a"), "bun"), "detached, still in a's hosts");
    drop(bun);
    // removed: its lines go from the others' files
    ok(
        &husk_in_ns(&["rm", "--store", &store, "-f", "b"]),
        "rm -f b",
    );
    let ha = hosts("a");
    assert!(
        !names(&ha, "b") && !names(&ha, "bee"),
        "b is still in a's hosts: {ha}"
    );
    assert!(!ping("a", "b"), "a still resolves b after its removal");
    // stopped (the monitor releases the attachment at the exit): its line goes at once, not at
    // the next gc
    ok(&up_d("s", "mynet", &[]), "up s");
    assert!(names(&hosts("a"), "s"), "s is not in a's hosts");
    ok(
        &husk_in_ns(&["stop", "--store", &store, "-t", "1", "s"]),
        "stop s",
    );
    let ha = hosts("a");
    assert!(!names(&ha, "s"), "s stopped, still in a's hosts: {ha}");
    ok(&husk_in_ns(&["rm", "--store", &store, "s"]), "rm s");
    // a foreground --rm container: its line goes when it ends
    let mut fg = n.up_command(&[
        "--rm",
        "--name",
        "fg",
        "--network",
        "mynet",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 600 & wait",
    ]);
    let mut child = fg
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let joined = wait_until(Duration::from_secs(20), &|| names(&hosts("a"), "fg"));
    let st = stop(&mut child);
    assert!(joined, "fg never appeared in a's hosts: {}", hosts("a"));
    assert_eq!(code(&st), 0, "fg's status");
    let ha = hosts("a");
    assert!(!names(&ha, "fg"), "fg removed, still in a's hosts: {ha}");
    // bad input, refused by name with nothing made
    for (args, want) in [
        (vec!["--network-alias", "a b"], "expected a host name"),
        (
            vec!["--network-alias", "x", "--network", "none"],
            "aliases need a network",
        ),
        (
            vec!["--network-alias", "x", "--network", "husk"],
            "default network, which gives no names",
        ),
    ] {
        let mut a = vec!["up", "--store", &store, "--pull", "never", "--name", "bad"];
        a.extend(args);
        a.extend([IMAGE, "true"]);
        let o = husk_in_ns(&a);
        assert!(
            !o.status.success()
                && text(&o.stderr).contains("--network-alias")
                && text(&o.stderr).contains(want),
            "{want}: {}",
            text(&o.stderr)
        );
        assert!(
            !e.store().join("containers/bad").exists(),
            "{want}: a bundle was made"
        );
    }
    ok(
        &husk_in_ns(&["rm", "--store", &store, "-f", "a", "c"]),
        "rm -f a c",
    );
    // 20 attaches at once to one network: each hosts file names the 19 others
    let ids: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    let outs: Vec<Output> = std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .map(|id| s.spawn(|| up_d(id, "mynet", &[])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (id, o) in ids.iter().zip(&outs) {
        ok(o, &format!("up {id}"));
    }
    let mut addrs = std::collections::HashSet::new();
    for id in &ids {
        let h = hosts(id);
        for other in ids.iter().filter(|o| *o != id) {
            assert!(names(&h, other), "{id}'s hosts lacks {other}:\n{h}");
        }
        let own: Vec<&str> = h.lines().filter(|l| l.starts_with("10.89.81.")).collect();
        assert_eq!(own.len(), 20, "{id}: one line per container:\n{h}");
        for l in own {
            addrs.insert(l.to_string());
        }
    }
    assert_eq!(addrs.len(), 20, "20 distinct address lines: {addrs:?}");
    assert!(ping("n0", "n19") && ping("n19", "n0"), "n0 and n19 by name");
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    n.rm_all_gone(&ids, "after the named containers");
}

/// Without `--network`, a container of `husk up` is on the default network (`husk`, created on
/// first use), as docker run's is on Docker's default bridge: an eth0 with an address in the
/// network's subnet and a default route via its gateway, a listener in another container of the
/// default network reached at its address (and from the namespace, through the bridge); no
/// names between them, as on Docker's default bridge; `--network none` still loopback only. In
/// a network namespace of the test's, with its own network dirs; nothing left after.
#[test]
fn up_default_network_is_the_default_bridge() {
    let name = "up_default_network_is_the_default_bridge";
    if !need_root(name) {
        return;
    }
    let n = NetEnv::new("defnet");
    let (e, ns) = (&n.e, &n.ns);
    let dirs = e.dir.path();
    let up = |extra: &[&str]| n.up(extra);
    ok(
        &up(&[
            "-d",
            "--name",
            "srv",
            IMAGE,
            "sh",
            "-c",
            &web("hello-default"),
        ]),
        "up -d srv (no --network)",
    );
    // the default network, made on first use in the test's network config dir
    let conf: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dirs.join("netconf/husk.conflist")).expect("no default network made"),
    )
    .unwrap();
    let range = &conf["plugins"][0]["ipam"]["ranges"][0][0];
    let subnet = range["subnet"].as_str().unwrap().to_string();
    let gateway = range["gateway"].as_str().unwrap().to_string();
    let (net, prefix) = subnet.split_once('/').unwrap();
    let net: std::net::Ipv4Addr = net.parse().unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    let in_subnet = |ip: &str| {
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        let mask = u32::MAX << (32 - prefix);
        u32::from(ip) & mask == u32::from(net) & mask
    };
    // eth0's address (`inet A/P` of `ip -4 -o addr show dev eth0`)
    let inet = |out: &str| -> Option<String> {
        out.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .map(str::to_string)
    };
    let srv_out = ok(
        &e.husk(&[
            "exec", "srv", "ip", "-4", "-o", "addr", "show", "dev", "eth0",
        ]),
        "srv's eth0",
    );
    let srv_ip = inet(&srv_out).unwrap_or_else(|| panic!("srv has no eth0 address: {srv_out}"));
    assert!(
        in_subnet(&srv_ip),
        "srv's {srv_ip} is not in the default network's {subnet}"
    );
    // from the namespace, through the bridge, until httpd answers
    let mut from_ns = String::new();
    for _ in 0..100 {
        let o = ns
            .cmd("busybox")
            .args(["wget", "-q", "-O", "-"])
            .arg(format!("http://{srv_ip}:8000/index.html"))
            .output()
            .unwrap();
        from_ns = text(&o.stdout);
        if o.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(from_ns, "hello-default\n", "srv did not answer at {srv_ip}");
    // a second default container: its address, its route, srv's page, and no name for srv
    let script = format!(
        "ip -4 -o addr show dev eth0; ip route; wget -q -O - http://{srv_ip}:8000/index.html; \
         if ping -c1 -W1 srv >/dev/null 2>&1; then echo srv-resolved; fi; \
         grep -c srv /etc/hosts || true"
    );
    let out = ok(
        &up(&["--rm", IMAGE, "sh", "-c", &script]),
        "up --rm (no --network)",
    );
    let ip = inet(&out).unwrap_or_else(|| panic!("no eth0 address: {out}"));
    assert!(
        in_subnet(&ip) && ip != srv_ip,
        "{ip}: not a second address of {subnet}: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("default via {gateway} "))),
        "no default route via {gateway}: {out}"
    );
    assert!(
        out.contains("hello-default\n"),
        "srv's listener not reached from the other container: {out}"
    );
    assert!(
        !out.contains("srv-resolved") && out.trim_end().ends_with('0'),
        "names on the default network (Docker's default bridge gives none): {out}"
    );
    let hs = std::fs::read_to_string(e.store().join("containers/srv/hosts")).unwrap();
    assert!(
        hs.lines().any(|l| l.starts_with(&format!("{srv_ip}\t"))),
        "srv's own address is not in its hosts: {hs}"
    );
    // --network none: loopback only, also where a default network exists
    let out = ok(
        &up(&["--rm", "--network", "none", IMAGE, "cat", "/proc/net/dev"]),
        "up --network none",
    );
    let links: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    assert_eq!(links, ["lo"], "--network none: {out}");
    // a network that does not exist: refused by name, nothing left
    let o = up(&["--name", "nonet", "--network", "nosuch", IMAGE, "true"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("network nosuch not found"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !e.store().join("containers/nonet").exists(),
        "a bundle was left for an unknown network"
    );
    n.rm_all_gone(&["srv"], "after the default network's containers");
}

/// On a dual-stack network (`husk network create --ipv6`), a container of `husk up` has both
/// addresses, and the others' hosts files list both under its name; they reach it over IPv6.
/// In a network namespace of the test's; nothing left after.
#[test]
fn up_dual_stack_network_lists_both_addresses() {
    let name = "up_dual_stack_network_lists_both_addresses";
    if !need_root(name) {
        return;
    }
    let n = NetEnv::new("dual");
    let (e, ns) = (&n.e, &n.ns);
    ok(
        &n.husk(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd00:89:83::/64",
            "--subnet",
            "10.89.83.0/24",
            "dual",
        ]),
        "network create --ipv6",
    );
    let up = |extra: &[&str]| {
        let mut a = vec!["--network", "dual"];
        a.extend_from_slice(extra);
        n.up(&a)
    };
    // a published port of a dual-stack network answers on both loopbacks ([::1] through the
    // attachment's proxy, a child of a's monitor, ended by rm -f)
    ok(
        &up(&[
            "-d",
            "--name",
            "a",
            "-p",
            "18095:8000",
            IMAGE,
            "sh",
            "-c",
            &web("dual-a"),
        ]),
        "up -d a",
    );
    assert_eq!(ns.fetch(18095).trim(), "dual-a");
    assert_eq!(ns.fetch_from("[::1]", 18095).trim(), "dual-a");
    let ha = std::fs::read_to_string(e.store().join("containers/a/hosts")).unwrap();
    let a6 = ha
        .lines()
        .find(|l| l.starts_with("fd00:89:83::") && l.ends_with("\ta"))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("a's own IPv6 line: {ha}"))
        .to_string();
    let out = ok(
        &up(&[
            "--rm",
            "--name",
            "b",
            IMAGE,
            "sh",
            "-c",
            &format!("cat /etc/hosts; ping -c1 -W2 {a6} >/dev/null && echo pinged-a6"),
        ]),
        "up b",
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("10.89.83.") && l.ends_with("\ta"))
            && out.lines().any(|l| l == format!("{a6}\ta")),
        "b's hosts lacks one of a's addresses: {out}"
    );
    assert!(out.contains("pinged-a6"), "b cannot reach a at {a6}: {out}");
    n.rm_all_gone(&["a"], "after the dual-stack containers");
}

impl Env {
    fn store_arg(&self) -> String {
        self.store().to_string_lossy().into_owned()
    }

    /// `husk logs|stop|restart|rm --store STORE ARGS…`
    fn cmd(&self, cmd: &str, args: &[&str]) -> Output {
        let store = self.store_arg();
        let mut a = vec![cmd, "--store", &store];
        a.extend_from_slice(args);
        self.husk(&a)
    }

    /// The monitor's record of container `name`.
    fn status(&self, name: &str) -> serde_json::Value {
        let p = self
            .store()
            .join("containers")
            .join(name)
            .join("status.json");
        let t = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_slice(&t).unwrap()
    }

    /// Nothing left of any container, no monitor either. (husk's network code leaves the
    /// kernel's slow frees to grandchildren that end a moment after the command that started
    /// them: a process still naming the dir after 10 s is a leak.)
    fn assert_all_gone(&self, what: &str) {
        self.assert_clean(what);
        wait_until(Duration::from_secs(10), &|| {
            procs_naming(self.dir.path()).is_empty()
        });
        let left = procs_naming(self.dir.path());
        assert!(left.is_empty(), "{what}: processes left: {left:?}");
    }
}

fn wait_until(limit: Duration, f: &dyn Fn() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// `husk up -d`: the id printed, the output in Docker's json-file log read back by `husk
/// logs` (-f until the exit, --tail, -t), the exit code recorded; a generated id.
#[test]
fn up_detached_logs() {
    if !need_root("up_detached_logs") {
        return;
    }
    let e = Env::new("detach");
    let out = ok(
        &e.up(&[
            "-d",
            "--name",
            "d1",
            IMAGE,
            "sh",
            "-c",
            // (the pauses order the lines of the two pipes)
            "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three",
        ]),
        "up -d",
    );
    assert_eq!(out, "d1\n");
    let o = e.cmd("logs", &["-f", "d1"]);
    assert_eq!(ok(&o, "logs -f"), "one\nthree\n");
    assert_eq!(text(&o.stderr), "two\n");
    let file = e.store().join("containers/d1/d1-json.log");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1]["log"], "two\n");
    assert_eq!(lines[1]["stream"], "stderr");
    let t = lines[0]["time"].as_str().unwrap();
    assert!(
        t.len() > 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
        "{t}"
    );
    assert_eq!(e.status("d1")["exitCode"], 0);
    assert_eq!(
        ok(&e.cmd("logs", &["--tail", "1", "d1"]), "tail"),
        "three\n"
    );
    assert_eq!(ok(&e.cmd("logs", &["--tail", "0", "d1"]), "tail 0"), "");
    let ts = ok(&e.cmd("logs", &["-t", "--tail", "1", "d1"]), "logs -t");
    let (time, line) = ts.split_once(' ').unwrap();
    assert_eq!(line, "three\n");
    assert_eq!(time, lines[2]["time"].as_str().unwrap());
    let later = e.cmd("logs", &["--since", "2999-01-01T00:00:00Z", "d1"]);
    assert_eq!(ok(&later, "since"), "");
    ok(&e.cmd("rm", &["d1"]), "rm");
    // a generated id, 64 hex digits, and -t: a terminal's output is logged as stdout
    let id = ok(
        &e.up(&["-d", "-t", IMAGE, "sh", "-c", "tty; echo x >&2"]),
        "up -d -t",
    );
    let id = id.trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let o = e.cmd("logs", &["-f", id]);
    assert_eq!(ok(&o, "logs of -t"), "/dev/pts/0\r\nx\r\n");
    ok(&e.cmd("rm", &[id]), "rm");
    e.assert_all_gone("after rm");
}

/// `--log-opt max-size=… --log-opt max-file=…`: the log rotates at that size and keeps that
/// many files, also after `husk restart`; `--log-driver none` keeps no log and `husk logs` says
/// so.
#[test]
fn up_detached_log_options() {
    if !need_root("up_detached_log_options") {
        return;
    }
    let e = Env::new("logopt");
    // 60 lines of 40 bytes: about 100 bytes a json-file entry, so about 6 KB of log
    let script = "for i in $(seq 100 159); do echo line-$i-abcdefghijklmnopqrstuvwxyz012; done";
    ok(
        &e.up(&[
            "-d",
            "--name",
            "l1",
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=2",
            IMAGE,
            "sh",
            "-c",
            script,
        ]),
        "up -d --log-opt",
    );
    let dir = e.store().join("containers/l1");
    let check = |what: &str| {
        ok(&e.cmd("logs", &["-f", "l1"]), "logs -f");
        let current = dir.join("l1-json.log");
        let older = dir.join("l1-json.log.1");
        assert!(
            !dir.join("l1-json.log.2").exists(),
            "{what}: max-file=2 kept a third file"
        );
        let mut n = Vec::new();
        for f in [&older, &current] {
            let t = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{what}: {f:?}: {e}"));
            // (a rotated file is full: the next entry would have passed 1000 bytes)
            assert!(
                t.len() <= 1000 && (f == &current || t.len() > 800),
                "{what}: {f:?} is {} bytes, not about max-size=1k (1000)",
                t.len()
            );
            for l in t.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let log = v["log"].as_str().unwrap();
                n.push(log[5..8].parse::<u32>().unwrap());
            }
        }
        // the newest lines, in order, the last one kept
        assert_eq!(n.last(), Some(&159), "{what}: {n:?}");
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{what}: {n:?}");
        assert!(n.len() < 60, "{what}: nothing rotated out: {n:?}");
        ok(&e.cmd("logs", &["l1"]), "logs")
    };
    let first = check("first run");
    assert!(first.ends_with("line-159-abcdefghijklmnopqrstuvwxyz012\n"));
    ok(&e.cmd("restart", &["l1"]), "restart");
    check("after husk restart");

    // --log-driver none: no log file, and husk logs says why there is nothing
    ok(
        &e.up(&[
            "-d",
            "--name",
            "l2",
            "--log-driver",
            "none",
            IMAGE,
            "sh",
            "-c",
            "echo hidden",
        ]),
        "up -d --log-driver none",
    );
    assert!(wait_until(Duration::from_secs(10), &|| e.status("l2")
        ["exitCode"]
        .is_i64()));
    let o = e.cmd("logs", &["l2"]);
    assert!(!o.status.success(), "logs of --log-driver none succeeded");
    assert!(
        text(&o.stderr).contains("l2: its log driver is none"),
        "{}",
        text(&o.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(e.store().join("containers/l2"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("json.log"))
        .collect();
    assert!(left.is_empty(), "--log-driver none wrote {left:?}");
    ok(&e.cmd("rm", &["l1", "l2"]), "rm");
    e.assert_all_gone("after rm");
}

/// `husk stop`: SIGTERM ends a container that traps it well within the grace time; one that
/// ignores it gets SIGKILL after `-t 1`; `--stop-signal` replaces SIGTERM; `husk restart`
/// runs it again.
#[test]
fn up_detached_stop_and_restart() {
    if !need_root("up_detached_stop_and_restart") {
        return;
    }
    let e = Env::new("stop");
    let ready = |name: &str, n: usize| {
        wait_until(Duration::from_secs(10), &|| {
            text(&e.cmd("logs", &[name]).stdout)
                .matches("ready")
                .count()
                >= n
        })
    };
    let term = "trap 'echo got-term; exit 0' TERM; echo ready; sleep 100 & wait";
    ok(
        &e.up(&["-d", "--name", "s1", IMAGE, "sh", "-c", term]),
        "up -d",
    );
    assert!(ready("s1", 1), "s1 never got ready");
    let t0 = std::time::Instant::now();
    assert_eq!(ok(&e.cmd("stop", &["s1"]), "stop"), "s1\n");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(e.status("s1")["exitCode"], 0);
    assert!(text(&e.cmd("logs", &["s1"]).stdout).contains("got-term"));
    let st = ok(&e.husk(&["state", "s1"]), "state");
    assert!(st.contains("\"stopped\""), "{st}");
    // restart: the same container again, its log continued
    assert_eq!(ok(&e.cmd("restart", &["s1"]), "restart"), "s1\n");
    assert!(ready("s1", 2), "s1 did not run again");
    let st = ok(&e.husk(&["state", "s1"]), "state");
    assert!(st.contains("\"running\""), "{st}");
    ok(&e.cmd("stop", &["s1"]), "second stop");

    let deaf = "trap '' TERM; echo ready; sleep 100 & wait";
    ok(
        &e.up(&["-d", "--name", "s2", IMAGE, "sh", "-c", deaf]),
        "up -d",
    );
    assert!(ready("s2", 1));
    let t0 = std::time::Instant::now();
    ok(&e.cmd("stop", &["-t", "1", "s2"]), "stop -t 1");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(e.status("s2")["exitCode"], 137, "SIGKILL");

    let usr = "trap 'exit 3' USR1; echo ready; sleep 100 & wait";
    ok(
        &e.up(&[
            "-d",
            "--name",
            "s3",
            "--stop-signal",
            "SIGUSR1",
            IMAGE,
            "sh",
            "-c",
            usr,
        ]),
        "up -d --stop-signal",
    );
    assert!(ready("s3", 1));
    ok(&e.cmd("stop", &["s3"]), "stop");
    assert_eq!(e.status("s3")["exitCode"], 3, "--stop-signal USR1");
    // --stop-timeout 1: the grace time without -t
    ok(
        &e.up(&[
            "-d",
            "--name",
            "s4",
            "--stop-timeout",
            "1",
            IMAGE,
            "sh",
            "-c",
            deaf,
        ]),
        "up -d --stop-timeout",
    );
    assert!(ready("s4", 1));
    let t0 = std::time::Instant::now();
    ok(&e.cmd("stop", &["s4"]), "stop");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(e.status("s4")["exitCode"], 137);
    // a container run in the foreground and kept: husk restart runs it detached
    ok(
        &e.up(&["--name", "s5", IMAGE, "echo", "fg"]),
        "up in the foreground",
    );
    let o = e.cmd("logs", &["s5"]);
    assert!(text(&o.stderr).contains("no logs"), "{}", text(&o.stderr));
    ok(
        &e.cmd("restart", &["s5"]),
        "restart of a foreground container",
    );
    assert_eq!(ok(&e.cmd("logs", &["-f", "s5"]), "logs"), "fg\n");
    ok(&e.cmd("rm", &["s1", "s2", "s3", "s4", "s5"]), "rm");
    e.assert_all_gone("after rm");
}

/// Once its container runs, a monitor idles as a fresh `husk up-monitor-pump` (same pid, so
/// `status.json` still names it): it holds `-i`'s stdin open (`cat` keeps running), logs, and
/// records the exit when `husk stop` ends the container.
#[test]
fn up_detached_monitor_idles_as_its_pump() {
    if !need_root("up_detached_monitor_idles_as_its_pump") {
        return;
    }
    let e = Env::new("pump");
    ok(
        &e.up(&[
            "-d",
            "-i",
            "--name",
            "p1",
            IMAGE,
            "sh",
            "-c",
            "echo up; cat",
        ]),
        "up -d -i",
    );
    let monitor = e.status("p1")["monitorPid"].as_i64().unwrap() as i32;
    let cmdline = || {
        std::fs::read(format!("/proc/{monitor}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(5), &|| cmdline()
            .starts_with("husk\0up-monitor-pump\0")),
        "{:?}",
        cmdline()
    );
    // the pump names itself right after the exec: a moment after its cmdline changed
    let comm = || std::fs::read_to_string(format!("/proc/{monitor}/comm")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(5), &|| comm().trim() == "husk-monitor"),
        "comm {:?}",
        comm()
    );
    assert!(
        wait_until(Duration::from_secs(5), &|| text(
            &e.cmd("logs", &["p1"]).stdout
        ) == "up\n"),
        "logs: {:?}",
        e.cmd("logs", &["p1"])
    );
    std::thread::sleep(Duration::from_millis(300));
    let st = e.husk(&["state", "p1"]);
    assert!(
        text(&st.stdout).contains("\"running\""),
        "cat ended: {st:?}"
    );
    ok(&e.cmd("stop", &["-t", "1", "p1"]), "stop");
    assert!(!pid_alive(monitor), "the monitor outlived husk stop");
    let status = e.status("p1");
    assert!(
        status["exitCode"].is_i64() && status["finishedAt"].is_string(),
        "{status}"
    );
    ok(&e.cmd("rm", &["p1"]), "rm");
    e.assert_all_gone("after rm");
}

/// `--restart on-failure:2`: a failing container runs three times (two restarts), then the
/// monitor gives up with the last exit code.
#[test]
fn up_detached_restart_on_failure() {
    if !need_root("up_detached_restart_on_failure") {
        return;
    }
    let e = Env::new("restart");
    ok(
        &e.up(&[
            "-d",
            "--name",
            "r1",
            "--restart",
            "on-failure:2",
            IMAGE,
            "sh",
            "-c",
            "echo run; exit 3",
        ]),
        "up -d --restart",
    );
    let logs = ok(&e.cmd("logs", &["-f", "r1"]), "logs -f");
    assert_eq!(logs, "run\nrun\nrun\n");
    let st = e.status("r1");
    assert_eq!(st["restartCount"], 2, "{st}");
    assert_eq!(st["exitCode"], 3, "{st}");
    // --restart always: restarted until husk stop, which ends the restarts (and the monitor)
    ok(
        &e.up(&[
            "-d",
            "--name",
            "r2",
            "--restart",
            "always",
            IMAGE,
            "sh",
            "-c",
            "echo run; exit 0",
        ]),
        "up -d --restart always",
    );
    let runs = || text(&e.cmd("logs", &["r2"]).stdout).matches("run").count();
    assert!(
        wait_until(Duration::from_secs(10), &|| runs() >= 3),
        "{}",
        runs()
    );
    ok(&e.cmd("stop", &["r2"]), "stop");
    let monitor = e.status("r2")["monitorPid"].as_i64().unwrap() as i32;
    assert!(!pid_alive(monitor), "the monitor outlived husk stop");
    let after = runs();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(runs(), after, "restarted after husk stop");
    ok(&e.cmd("rm", &["r1", "r2"]), "rm");
    e.assert_all_gone("after rm");
}

/// `--rm -d`: at the exit the monitor removes state, bundle and itself.
#[test]
fn up_detached_rm_leaves_nothing() {
    if !need_root("up_detached_rm_leaves_nothing") {
        return;
    }
    let e = Env::new("drm");
    ok(
        &e.up(&["-d", "--rm", "--name", "g1", IMAGE, "sh", "-c", "echo bye"]),
        "up -d --rm",
    );
    let gone = wait_until(Duration::from_secs(10), &|| {
        e.bundles().is_empty() && e.containers().is_empty() && procs_naming(e.dir.path()).is_empty()
    });
    assert!(
        gone,
        "left: {:?} {:?}",
        e.bundles(),
        procs_naming(e.dir.path())
    );
    e.assert_all_gone("after the exit of a --rm -d container");
    // husk restart keeps a --rm container; its own exit (here husk stop) removes it
    let term = "trap 'exit 0' TERM; echo ready; sleep 100 & wait";
    ok(
        &e.up(&["-d", "--rm", "--name", "g2", IMAGE, "sh", "-c", term]),
        "up -d --rm",
    );
    let readies = || {
        text(&e.cmd("logs", &["g2"]).stdout)
            .matches("ready")
            .count()
    };
    assert!(wait_until(Duration::from_secs(10), &|| readies() == 1));
    ok(&e.cmd("restart", &["g2"]), "restart of a --rm container");
    assert!(
        wait_until(Duration::from_secs(10), &|| readies() == 2),
        "{}",
        readies()
    );
    ok(&e.cmd("stop", &["g2"]), "stop");
    let gone = wait_until(Duration::from_secs(10), &|| e.bundles().is_empty());
    assert!(gone, "left: {:?}", e.bundles());
    e.assert_all_gone("after husk stop of a --rm -d container");
}

/// Two `husk up -d --name X` at once, round after round: one makes the container, the other
/// is refused naming the name, and the winner's container runs from a whole bundle (the
/// loser's clean-up once removed the winner's bundle).
#[test]
fn up_same_name_at_once_one_wins() {
    if !need_root("up_same_name_at_once_one_wins") {
        return;
    }
    let e = Env::new("samename");
    for round in 0..6 {
        let name = format!("same{round}");
        let barrier = std::sync::Barrier::new(2);
        let outs: Vec<Output> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    sc.spawn(|| {
                        barrier.wait();
                        e.up(&["-d", "--name", &name, IMAGE, "sleep", "100"])
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: {outs:?}");
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        let err = text(&lost.stderr);
        assert!(
            err.contains(&format!("--name \\\"{name}\\\"")) && err.contains("exists"),
            "round {round}: {err}"
        );
        let bundle = e.store().join("containers").join(&name);
        assert!(
            bundle.join("config.json").exists(),
            "round {round}: the winner's bundle lost its config.json"
        );
        let running = e.husk(&["state", &name]);
        assert!(
            text(&running.stdout).contains("\"running\""),
            "round {round}: {running:?}"
        );
        ok(&e.cmd("rm", &["-f", &name]), "rm -f");
    }
    e.assert_all_gone("after the same-name rounds");
}

/// Two stores (each with its own state root) may each hold a container of one name: they get
/// cgroups of their own, named after the store (both used to take the cgroup `<name>`, and the
/// second found the first's processes in it).
#[test]
fn up_same_name_in_two_stores_own_cgroups() {
    if !need_root("up_same_name_in_two_stores_own_cgroups") {
        return;
    }
    let (a, b) = (Env::new("twostores-a"), Env::new("twostores-b"));
    let name = format!("twin{}", std::process::id());
    for e in [&a, &b] {
        ok(
            &e.up(&["-d", "--name", &name, IMAGE, "sleep", "100"]),
            "up -d",
        );
    }
    let cgroup_of = |e: &Env| {
        let st: serde_json::Value =
            serde_json::from_str(&ok(&e.husk(&["state", &name]), "state")).unwrap();
        assert_eq!(st["status"], "running", "{st}");
        let pid = st["pid"].as_i64().unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
    };
    let (ca, cb) = (cgroup_of(&a), cgroup_of(&b));
    assert_ne!(ca, cb, "both containers named {name} share their cgroups");
    assert!(
        ca.contains(&name) && cb.contains(&name),
        "the cgroup names the container: {ca} / {cb}"
    );
    for e in [&a, &b] {
        ok(&e.cmd("rm", &["-f", &name]), "rm -f");
        e.assert_all_gone("after rm -f");
    }
    let left = cgroup_dirs(&name);
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

/// The monitor killed with SIGKILL: `husk rm` refuses the running container, `rm -f` kills
/// it by its state and removes everything.
#[test]
fn up_detached_monitor_killed_then_rm_force() {
    if !need_root("up_detached_monitor_killed_then_rm_force") {
        return;
    }
    let e = Env::new("mkill");
    ok(
        &e.up(&["-d", "--name", "k1", IMAGE, "sleep", "1000"]),
        "up -d",
    );
    let monitor = e.status("k1")["monitorPid"].as_i64().unwrap() as i32;
    let st: serde_json::Value =
        serde_json::from_str(&ok(&e.husk(&["state", "k1"]), "state")).unwrap();
    let init = st["pid"].as_i64().unwrap() as i32;
    assert!(pid_alive(monitor) && pid_alive(init));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), &|| !pid_alive(monitor)));
    assert!(pid_alive(init), "the container died with its monitor");
    let o = e.cmd("rm", &["k1"]);
    assert!(
        !o.status.success(),
        "rm without -f removed a running container"
    );
    assert_eq!(e.bundles(), ["k1"]);
    ok(&e.cmd("rm", &["-f", "k1"]), "rm -f");
    assert!(
        wait_until(Duration::from_secs(5), &|| !pid_alive(init)),
        "the container lives"
    );
    e.assert_all_gone("after rm -f");
    // rm -f with the monitor alive: the monitor goes too, nothing restarts
    ok(
        &e.up(&[
            "-d",
            "--name",
            "k2",
            "--restart",
            "always",
            IMAGE,
            "sleep",
            "1000",
        ]),
        "up -d --restart always",
    );
    let o = e.cmd("rm", &["k2"]);
    assert!(text(&o.stderr).contains("monitor"), "{}", text(&o.stderr));
    ok(&e.cmd("rm", &["-f", "k2"]), "rm -f");
    e.assert_all_gone("after rm -f of a monitored container");
}

#[test]
fn up_detached_bad_input_is_refused_by_name() {
    if !need_root("up_detached_bad_input_is_refused_by_name") {
        return;
    }
    let e = Env::new("dbad");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["-d", "--rm", "--restart", "always", IMAGE, "true"],
            &["--restart always", "--rm"],
        ),
        (
            &["-d", "--restart", "bogus", IMAGE, "true"],
            &["--restart", "bogus"],
        ),
        (
            &["-d", "--restart", "on-failure:x", IMAGE, "true"],
            &["on-failure:x"],
        ),
        (
            &["-d", "--stop-signal", "SIGNOPE", IMAGE, "true"],
            &["--stop-signal"],
        ),
        (&["-d", IMAGE, "/no/such/program"], &["/no/such/program"]),
        (
            &["-d", "--log-opt", "max-file=0", IMAGE, "true"],
            &["--log-opt", "max-file=0", "less than 1"],
        ),
        (
            &["-d", "--log-opt", "max-size=abc", IMAGE, "true"],
            &["--log-opt", "max-size=abc", "invalid size"],
        ),
        (
            &["-d", "--log-opt", "compress=true", IMAGE, "true"],
            &["--log-opt", "compress=true", "unknown log opt"],
        ),
        (
            &["-d", "--log-driver", "journald", IMAGE, "true"],
            &["--log-driver", "journald"],
        ),
    ];
    for (args, want) in cases {
        let o = e.up(args);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        for w in *want {
            assert!(
                err.contains(w),
                "{args:?}: the error must name {w:?}: {err}"
            );
        }
        e.assert_all_gone(&format!("after {args:?}"));
    }
    for cmd in ["logs", "stop", "restart"] {
        let o = e.cmd(cmd, &["nosuch"]);
        assert!(!o.status.success());
        let err = text(&o.stderr);
        assert!(err.contains("nosuch: no such container"), "{cmd}: {err}");
    }
    let o = e.cmd("logs", &["--tail", "x", "nosuch"]);
    assert!(text(&o.stderr).contains("--tail"), "{}", text(&o.stderr));
}

/// kill -9 of a foreground `husk up` at seeded random moments (unpack, create, start, the
/// wait; `HUSK_FAULT_SEED` replays), then `husk rm -f NAME`: whatever the moment, nothing of the
/// container is left — no state, bundle, process, mount or cgroup.
#[test]
fn up_killed_at_random_moments_then_rm_force_leaves_nothing() {
    if !need_root("up_killed_at_random_moments_then_rm_force_leaves_nothing") {
        return;
    }
    let seed = seed_from_env("HUSK_FAULT_SEED");
    eprintln!("up kill: seed {seed} (HUSK_FAULT_SEED={seed} replays)");
    let e = Env::new("kill");
    let problems = kill_rounds(&e, seed, 30, &[], None);
    assert_no_problems(Some(seed), &problems);
}

/// `rounds` runs of `husk up FLAGS IMAGE sleep 100` (with `$HUSK_SUBID_USER` set to
/// `subid_user`) SIGKILLed after a random delay, each followed by `husk rm -f`; what each
/// round left (state, bundle, cgroup, mount).
fn kill_rounds(
    e: &Env,
    seed: u64,
    rounds: usize,
    flags: &[&str],
    subid_user: Option<&str>,
) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut below = |n: u64| rng.below(n);
    let store = e.store();
    let root = e.root();
    let mut problems = Vec::new();
    for i in 0..rounds {
        let name = format!("hk{}k{i}", std::process::id());
        let delay = Duration::from_millis(below(250));
        let mut c = Command::new(runtime());
        if let Some(u) = subid_user {
            c.env("HUSK_SUBID_USER", u);
        }
        c.arg("--root")
            .arg(&root)
            .args(["up", "--store", store.to_str().unwrap(), "--pull", "never"])
            .args(["--name", &name])
            .args(no_default_network(flags))
            .args(flags)
            .args([IMAGE, "sleep", "100"]);
        kill_after(&mut c, delay);
        let o = e.husk(&["rm", "--store", store.to_str().unwrap(), "-f", &name]);
        let err = text(&o.stderr);
        // killed before its bundle existed: nothing to remove, said so
        if !o.status.success() && !err.contains("no such container") {
            problems.push(format!("{name} (killed after {delay:?}): rm -f: {err}"));
        }
        let mut left: Vec<String> = cgroup_dirs(&name)
            .into_iter()
            .map(|d| format!("cgroup {}", d.display()))
            .collect();
        if e.containers().contains(&name) {
            left.push("state".into());
        }
        if e.bundles().contains(&name) {
            left.push("bundle".into());
        }
        left.extend(
            mounts_under(e.dir.path())
                .into_iter()
                .map(|m| format!("mount {}", m.display())),
        );
        if !left.is_empty() {
            problems.push(format!("{name} (killed after {delay:?}): left {left:?}"));
        }
    }
    problems
}

/// `c` spawned with nothing on its stdin, stdout and stderr, SIGKILLed after `delay` (wherever
/// it got to) and reaped.
fn kill_after(c: &mut Command, delay: Duration) {
    let mut child = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

/// The mount at `path` in this process's mount table: its fs type, if mounted there.
fn mount_type_at(path: &std::path::Path) -> Option<String> {
    let want = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            (f.get(4) == Some(&want.as_str())).then(|| f[sep + 1].to_string())
        })
}

/// `husk up` stacks the image's layers as overlayfs snapshots made once and shared: the
/// container's rootfs is an overlay mount in its bundle, two containers write apart, a second
/// layer's whiteouts and opaque directory hide what the first made (as a copy does), `husk rm`
/// unmounts, and `husk image prune` removes snapshots only once no image and no bundle uses them.
#[test]
fn up_rootfs_is_an_overlay_of_shared_layer_snapshots() {
    if !need_root("up_rootfs_is_an_overlay_of_shared_layer_snapshots") {
        return;
    }
    let e = Env::new("ovl");
    let store = e.store();
    let s = store.to_str().unwrap();
    // a second image: the test image's layer plus one that removes the directory /var/tmp and
    // empties /home (opaque) but for a new file
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| std::fs::read(store.join("blobs/sha256").join(&d[7..])).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&blob(idx["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&blob(m["config"]["digest"].as_str().unwrap())).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("var/.wh.tmp", &b""[..]),
        ("home/.wh..wh..opq", b""),
        ("home/new", b"from layer 2\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let layer2 = b.into_inner().unwrap();
    cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(sha(&layer2)));
    let cfg = serde_json::to_vec(&cfg).unwrap();
    let mut m2 = m.clone();
    m2["config"] = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": sha(&cfg), "size": cfg.len()});
    m2["layers"].as_array_mut().unwrap().push(
        json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
               "digest": sha(&layer2), "size": layer2.len()}),
    );
    let m2 = serde_json::to_vec(&m2).unwrap();
    for b in [&layer2, &cfg, &m2] {
        std::fs::write(store.join("blobs/sha256").join(&sha(b)[7..]), b).unwrap();
    }
    let mut idx2 = idx.clone();
    idx2["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha(&m2), "size": m2.len(),
        "annotations": {"org.opencontainers.image.ref.name": "docker.io/library/two:latest"}
    }));
    std::fs::write(store.join("index.json"), serde_json::to_vec(&idx2).unwrap()).unwrap();

    let snapshots = || -> usize {
        std::fs::read_dir(store.join("snapshots"))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    let (a, b) = (
        format!("ovla{}", std::process::id()),
        format!("ovlb{}", std::process::id()),
    );
    ok(
        &e.up(&["-d", "--name", &a, IMAGE, "sleep", "100"]),
        "up -d a",
    );
    ok(
        &e.up(&["-d", "--name", &b, IMAGE, "sleep", "100"]),
        "up -d b",
    );
    for n in [&a, &b] {
        let rootfs = store.join("containers").join(n).join("rootfs");
        assert_eq!(
            mount_type_at(&rootfs).as_deref(),
            Some("overlay"),
            "{n}'s rootfs is not an overlay mount"
        );
    }
    assert_eq!(
        snapshots(),
        1,
        "two containers of one image share its snapshot"
    );
    ok(
        &e.husk(&["exec", &a, "sh", "-c", "echo a > /written"]),
        "write in a",
    );
    let o = e.husk(&["exec", &b, "cat", "/written"]);
    assert!(!o.status.success(), "b sees a's file");
    // whiteouts and an opaque directory of the second layer
    let out = ok(
        &e.up(&[
            "--rm",
            "two",
            "sh",
            "-c",
            "ls /home; [ -e /var/tmp ] && echo var-tmp || echo no-var-tmp",
        ]),
        "up two",
    );
    assert_eq!(out, "new\nno-var-tmp\n");
    assert_eq!(snapshots(), 2, "the second image adds one snapshot");
    // the same image unpacked as a copy gives the same tree there
    let copy = e.dir.path().join("copy");
    ok(
        &e.husk(&[
            "image",
            "--store",
            s,
            "unpack",
            "two",
            copy.to_str().unwrap(),
        ]),
        "image unpack",
    );
    assert!(!copy.join("rootfs/var/tmp").exists());
    let home: Vec<String> = std::fs::read_dir(copy.join("rootfs/home"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(home, ["new"]);
    // prune keeps what images and bundles use; image rm removes the snapshot only it used
    ok(&e.husk(&["image", "--store", s, "prune"]), "prune");
    assert_eq!(snapshots(), 2, "prune keeps the snapshots images use");
    ok(
        &e.husk(&["image", "--store", s, "rm", "two"]),
        "image rm two",
    );
    assert_eq!(
        snapshots(),
        1,
        "image rm removes the snapshot no image or bundle uses"
    );
    for n in [&a, &b] {
        ok(&e.husk(&["rm", "--store", s, "-f", n]), "rm -f");
        let rootfs = store.join("containers").join(n).join("rootfs");
        assert_eq!(
            mount_type_at(&rootfs),
            None,
            "{n}: the overlay stays mounted"
        );
    }
    e.assert_clean("after rm");
    assert_eq!(snapshots(), 1, "the image's snapshot stays with the image");
}

/// The layer `--init` needs in the test image when the husk under test is dynamically linked
/// (a debug build): its loader and libraries at their host paths, as `ldd` names them. None
/// for a static husk (what `make release` ships); Err when a dynamic one's libraries cannot be
/// listed.
fn init_libs_layer() -> Result<Option<Vec<u8>>, String> {
    let o = Command::new("ldd")
        .arg(runtime())
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let out = text(&o.stdout) + &text(&o.stderr);
    if out.contains("not a dynamic executable") || out.contains("statically linked") {
        return Ok(None);
    }
    if !o.status.success() {
        return Err(format!("ldd {}: {out}", runtime().display()));
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    for line in out.lines() {
        let path = match line.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        let mut parent = std::path::Path::new(rel).parent();
        let mut new_dirs = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            new_dirs.push(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
        for d in new_dirs.into_iter().rev() {
            if !dirs.contains(&d) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                b.append_data(&mut h, &d, std::io::empty()).unwrap();
                dirs.push(d);
            }
        }
        let data = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, rel, &data[..]).unwrap();
    }
    Ok(Some(b.into_inner().unwrap()))
}

/// The pids of host processes whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<i32> {
    let want = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

/// `--init`: husk's own init is pid 1 (bound read-only at /sbin/husk-init, also on a read-only
/// root), the command's process group has the terminal with -t, its exit status passes through (128+N for a signal, 127 for a missing command), orphans' zombies are
/// reaped (without it they stay), SIGTERM reaches a command that has no handler for it (as
/// pid 1 it would be ignored), and nothing is left afterwards.
#[test]
fn up_init_reaps_forwards_and_passes_the_status() {
    if !need_root("up_init_reaps_forwards_and_passes_the_status") {
        return;
    }
    let libs = match init_libs_layer() {
        Ok(l) => l,
        Err(why) => {
            return skip(
                "up_init_reaps_forwards_and_passes_the_status",
                &format!("the dynamically linked husk's libraries cannot be listed: {why}"),
            )
        }
    };
    if libs.is_some() {
        // a dynamic husk and an image without its loader: refused by name, nothing left
        let plain = Env::new("initdyn");
        let o = plain.up(&["--rm", "--init", IMAGE, "true"]);
        assert!(!o.status.success());
        assert!(
            text(&o.stderr).contains("dynamically linked"),
            "{}",
            text(&o.stderr)
        );
        plain.assert_clean("after the refused --init");
    }
    let e = Env::with_image("init", json!({}), libs);
    let store = e.store();
    let store_s = store.to_str().unwrap();
    // pid 1, its mount, the command not pid 1
    let out = sh(
        &e,
        &["--init"],
        "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$; grep ' /sbin/husk-init ' /proc/mounts",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("/sbin/husk-init init-reaper -- sh -c "),
        "{out}"
    );
    assert_ne!(lines[1], "1", "{out}");
    assert!(lines[2].contains(" ro,"), "{out}");
    // a read-only root gets it too
    assert_eq!(sh(&e, &["--init", "--read-only"], "echo ok"), "ok\n");
    // with a terminal the command's process group (not pid 1's) is its foreground group
    let out = sh(
        &e,
        &["-t", "--init"],
        "tty; cut -d' ' -f5,8 /proc/self/stat",
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    let ids: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(ids[0], ids[1], "pgrp and the terminal's tpgid: {out:?}");
    assert_ne!(ids[0], "1", "{out:?}");
    // exit status
    let o = e.up(&["--rm", "--init", IMAGE, "sh", "-c", "exit 7"]);
    assert_eq!(code(&o.status), 7, "{}", text(&o.stderr));
    let o = e.up(&["--rm", "--init", IMAGE, "sh", "-c", "kill -KILL $$"]);
    assert_eq!(code(&o.status), 137, "{}", text(&o.stderr));
    let o = e.up(&["--rm", "--init", IMAGE, "no-such-command"]);
    assert_eq!(code(&o.status), 127);
    assert!(
        text(&o.stderr).contains("husk-init: exec no-such-command"),
        "{}",
        text(&o.stderr)
    );
    e.assert_clean("after the --init status runs");
    // zombies: an orphan exits while the command (the probe, which never waits) runs
    let zombies = |flags: &[&str]| -> usize {
        let mut a = vec!["-d"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[IMAGE, "sh", "-c", "(sleep 0.2 &); exec /probe sleep 30"]);
        let id = ok(&e.up(&a), "up -d").trim().to_string();
        std::thread::sleep(Duration::from_millis(1200));
        let stats = ok(
            &e.husk(&["exec", &id, "sh", "-c", "cat /proc/[0-9]*/stat"]),
            "exec",
        );
        ok(&e.husk(&["rm", "-f", "--store", store_s, &id]), "rm -f");
        stats
            .lines()
            .filter(|l| {
                l.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .count()
    };
    assert_eq!(zombies(&["--init"]), 0, "--init left a zombie");
    assert_eq!(zombies(&[]), 1, "without --init the orphan stays a zombie");
    // SIGTERM to husk up, forwarded to the init, which forwards it to the probe (no handler)
    let term = |flags: &[&str], secs: &str| -> (i32, Duration) {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(e.root())
            .args(["up", "--store", store_s, "--pull", "never", "--rm"])
            .args(no_default_network(flags))
            .args(flags)
            .args([IMAGE, "/probe", "sleep", secs])
            .stdout(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let argv = ["/probe", "sleep", secs];
        assert!(
            wait_until(Duration::from_secs(20), &|| !pids_running(&argv).is_empty()),
            "the probe never started"
        );
        let t = std::time::Instant::now();
        let st = stop(&mut child);
        (code(&st), t.elapsed())
    };
    let (status, took) = term(&["--init"], "31");
    assert_eq!(status, 143, "SIGTERM did not end the command");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // as pid 1 the probe ignores it and sleeps its time out
    let (status, took) = term(&[], "2");
    assert_eq!(status, 0);
    assert!(took > Duration::from_millis(1000), "{took:?}");
    e.assert_clean("after the --init runs");
}

#[test]
fn up_cdi_device_edits_reach_the_container() {
    if !need_root("up_cdi_device_edits_reach_the_container") {
        return;
    }
    let e = Env::new("edits");
    let specs = e.dir.path().join("cdi");
    let share = e.dir.path().join("share");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("hello"), "from the host\n").unwrap();
    std::fs::write(
        specs.join("test.yaml"),
        format!(
            "cdiVersion: \"0.6.0\"\n\
             kind: test.example/dev\n\
             containerEdits:\n  env: [CDI_SPEC=spec]\n\
             devices:\n\
             - name: nul\n  containerEdits:\n\
             \x20   env: [CDI_DEV=nul]\n\
             \x20   deviceNodes:\n\
             \x20   - path: /dev/cdi-null\n      hostPath: /dev/null\n      permissions: rw\n\
             \x20   mounts:\n\
             \x20   - hostPath: {}\n      containerPath: /mnt/cdi\n      type: bind\n\
             \x20     options: [rbind, ro]\n\
             - name: other\n  containerEdits:\n    env: [CDI_OTHER=1]\n",
            share.display()
        ),
    )
    .unwrap();
    let script = "stat -c '%F %t:%T' /dev/cdi-null; echo \"$CDI_SPEC $CDI_DEV ${CDI_OTHER:-none}\"; \
                  cat /mnt/cdi/hello; grep ' /mnt/cdi ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
                  echo x > /dev/cdi-null && echo written; test -e /dev/null.cdi || echo alone";
    let o = e.up(&[
        "--rm",
        "--cdi-spec-dir",
        specs.to_str().unwrap(),
        "--device",
        "test.example/dev=nul",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert!(
        o.status.success(),
        "up: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "character special file 1:3",
            "spec nul none",
            "from the host",
            "ro",
            "written",
            "alone"
        ],
        "stderr: {}",
        text(&o.stderr)
    );
    e.assert_clean("after up --rm with a CDI device");
}

#[test]
fn up_cdi_unknown_device_is_refused_by_name_and_leaves_nothing() {
    if !need_root("up_cdi_unknown_device_is_refused_by_name_and_leaves_nothing") {
        return;
    }
    let e = Env::new("bad");
    let specs = e.dir.path().join("cdi");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(
        specs.join("test.json"),
        r#"{"cdiVersion": "0.6.0", "kind": "test.example/dev",
            "devices": [{"name": "nul", "containerEdits": {"env": ["A=1"]}}]}"#,
    )
    .unwrap();
    let dir = specs.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--cdi-spec-dir", dir, "--device", "test.example/dev=nope"],
            &["test.example/dev=nope", dir, "test.example/dev has: nul"],
        ),
        (
            &["--device", "test.example/dev=nope"],
            &["test.example/dev=nope", "/etc/cdi, /var/run/cdi"],
        ),
        (
            &["--cdi-spec-dir", dir, "--device", "test example/dev=x"],
            &["test example/dev=x", "not a CDI device name"],
        ),
        (
            &[
                "--cdi-spec-dir",
                "relative",
                "--device",
                "test.example/dev=nul",
            ],
            &["--cdi-spec-dir relative"],
        ),
    ];
    for (flags, wants) in cases {
        let mut a = vec!["--rm"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[IMAGE, "true"]);
        let o = e.up(&a);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{flags:?} succeeded");
        for w in *wants {
            assert!(
                err.contains(w),
                "{flags:?}: the error must name {w:?}: {err}"
            );
        }
        e.assert_clean(&format!("after {flags:?}"));
    }
}

/// `husk --root ROOT ARGS` in the test's network namespace, its network config, CNI config and
/// run dirs under `dirs` (`netconf`, `cni`, `netrun`), Debian's CNI plugins.
fn husk_in_netns(
    ns: &Netns,
    root: &std::path::Path,
    dirs: &std::path::Path,
    args: &[&str],
) -> Command {
    let mut c = ns.cmd(runtime().to_str().unwrap());
    c.arg("--root")
        .arg(root)
        .args(args)
        .env("HUSK_NETWORK_DIR", dirs.join("netconf"))
        .env("HUSK_CNI_CONFIG_DIR", dirs.join("cni"))
        .env("HUSK_NETWORK_RUN_DIR", dirs.join("netrun"))
        .env("CNI_PATH", "/usr/lib/cni");
    c
}

/// Lines of /etc/subuid and /etc/subgid for a user name of this test (`husk up --userns=auto`
/// reads the ranges of `$HUSK_SUBID_USER`); on drop only those lines are removed, and a file
/// the test made is removed again once empty. Each edit holds the file's flock, so tests
/// running at once keep each other's lines.
struct Subids {
    line: String,
}

/// The files a `Subids` of this process made (removed by the last one out, once empty).
static SUBIDS_MADE: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

impl Subids {
    fn add(user: &str, start: u64, count: u64) -> Subids {
        let line = format!("{user}:{start}:{count}");
        for f in ["/etc/subuid", "/etc/subgid"] {
            {
                let mut made = SUBIDS_MADE.lock().unwrap_or_else(|e| e.into_inner());
                if !std::path::Path::new(f).exists() && !made.contains(&f) {
                    made.push(f);
                }
            }
            Subids::edit(f, &|lines: &mut Vec<String>| lines.push(line.clone()));
        }
        Subids { line }
    }

    fn edit(path: &str, f: &dyn Fn(&mut Vec<String>)) {
        use std::io::{Read, Seek, Write};
        // shadow's lock of the file (usermod --add-subuids, other tests) — PATH.lock, a hard
        // link to a file naming our pid — besides the flock of tests editing as this one does
        let _shadow = ShadowLock::take(path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        f(&mut lines);
        let mut out = lines.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        file.set_len(0).unwrap();
        file.rewind().unwrap();
        file.write_all(out.as_bytes()).unwrap();
    }
}

/// shadow's `PATH.lock` (lckpwdf's convention: a file of our pid hard-linked to the lock's
/// name), held until dropped; one whose pid is gone is taken over.
struct ShadowLock {
    lock: String,
}

impl ShadowLock {
    fn take(path: &str) -> ShadowLock {
        let lock = format!("{path}.lock");
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // (one name per taker: tests of this process take it from several threads)
        let mine = format!("{path}.{}.{seq}", std::process::id());
        std::fs::write(&mine, std::process::id().to_string()).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match std::fs::hard_link(&mine, &lock) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                    let gone = holder.trim().parse::<i32>().is_ok_and(|p| !pid_alive(p));
                    if gone {
                        let _ = std::fs::remove_file(&lock);
                        continue;
                    }
                    assert!(std::time::Instant::now() < end, "{lock} held by {holder}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{lock}: {e}"),
            }
        }
        let _ = std::fs::remove_file(&mine);
        ShadowLock { lock }
    }
}

impl Drop for ShadowLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

impl Drop for Subids {
    fn drop(&mut self) {
        for f in ["/etc/subuid", "/etc/subgid"] {
            let line = self.line.clone();
            Subids::edit(f, &move |lines: &mut Vec<String>| {
                if let Some(i) = lines.iter().position(|l| *l == line) {
                    lines.remove(i);
                }
            });
            let made = SUBIDS_MADE.lock().unwrap_or_else(|e| e.into_inner());
            if made.contains(&f) && std::fs::metadata(f).is_ok_and(|m| m.len() == 0) {
                let _shadow = ShadowLock::take(f);
                if std::fs::metadata(f).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
    }
}

impl Env {
    /// `husk up` with the subordinate ids of `user`.
    fn up_as(&self, user: &str, args: &[&str]) -> Output {
        let store = self.store();
        let mut c = Command::new(runtime());
        c.env("HUSK_SUBID_USER", user)
            .arg("--root")
            .arg(self.root())
            .args(["up", "--store", store.to_str().unwrap(), "--pull", "never"])
            .args(no_default_network(args))
            .args(args);
        run_timeout(&mut c, Duration::from_secs(60))
    }

    /// The user namespace ranges recorded in the store.
    fn userns_records(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.store().join("userns"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }
}

/// The first line of a uid_map/gid_map: (inside, outside, count).
fn first_map(text: &str) -> (u64, u64, u64) {
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(f.len(), 3, "map {text:?}");
    (f[0], f[1], f[2])
}

/// `--userns=auto`: a user namespace of the container's own on a range of the subordinate ids
/// no other container holds; the image's files keep their owners inside (an overlay of
/// id-mapped snapshots), the process is root inside and the range's first id outside; the
/// range is released with the container, and by `husk image prune` when its `husk up` died
/// before making the bundle. `host` has none; keep-id and bad values are refused by name.
#[test]
fn up_userns_auto_and_host() {
    if !need_root("up_userns_auto_and_host") {
        return;
    }
    let e = Env::new("userns");
    let user = format!("husk-test-userns-{}", std::process::id());
    // room for two ranges of 65536 and not three
    let start: u64 = 3_000_000_000 + (std::process::id() as u64 % 1000) * 1_000_000;
    let _subids = Subids::add(&user, start, 140_000);

    // one container: the maps, the owners of the image's files, the user inside
    let script = "cat /proc/self/uid_map; cat /proc/self/gid_map; \
                  stat -c %u:%g /bin/busybox /; id -u; id -g; touch /made-inside";
    let out = ok(
        &e.up_as(
            &user,
            &["--name", "u1", "--userns=auto", IMAGE, "sh", "-c", script],
        ),
        "up --userns=auto",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    // the size podman estimates: the image's highest id (the test rootfs's nobody, 65534) + 1
    assert_eq!(first_map(lines[0]), (0, start, 65535), "uid_map {out}");
    assert_eq!(first_map(lines[1]), (0, start, 65535), "gid_map {out}");
    assert_eq!(lines[2], "0:0", "/bin/busybox inside: {out}");
    assert_eq!(lines[3], "0:0", "/ inside: {out}");
    assert_eq!((lines[4], lines[5]), ("0", "0"), "the process's ids: {out}");
    // on the host: the container's root is the range's first id (its new file in the upper
    // dir), the image's files are untouched in the shared snapshot
    use std::os::unix::fs::MetadataExt;
    let made = e.store().join("containers/u1/overlay/upper/made-inside");
    let md = std::fs::metadata(&made).unwrap();
    assert_eq!((md.uid() as u64, md.gid() as u64), (start, start));
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.store().join("containers/u1/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], json!(start));
    assert_eq!(e.userns_records(), vec!["u1.json"]);
    // -d --rm: the monitor gives the range back at the exit
    ok(
        &e.up_as(
            &user,
            &["-d", "--rm", "--name", "d1", "--userns=auto", IMAGE, "true"],
        ),
        "up -d --rm --userns=auto",
    );
    let gone = wait_until(Duration::from_secs(10), &|| {
        !e.bundles().contains(&"d1".to_string())
            && !e.userns_records().contains(&"d1.json".to_string())
    });
    assert!(gone, "d1 left: {:?} {:?}", e.bundles(), e.userns_records());
    // the rootfs unmounted (as after a reboot): husk restart mounts it again, id-mapped
    let rootfs = e.store().join("containers/u1/rootfs");
    nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).unwrap();
    ok(&e.cmd("restart", &["u1"]), "restart u1");
    let ended = wait_until(Duration::from_secs(10), &|| {
        e.status("u1")["exitCode"].is_number()
    });
    assert!(ended, "u1 did not end after its restart");
    let logs = ok(&e.cmd("logs", &["u1"]), "logs u1");
    assert!(
        logs.lines().filter(|l| *l == "0:0").count() == 2,
        "owners after the remount: {logs}"
    );
    ok(&e.cmd("rm", &["u1"]), "rm u1");
    assert!(e.userns_records().is_empty(), "range kept after rm");
    e.assert_all_gone("after rm of a --userns=auto container");

    // two at once: disjoint ranges; a third finds no room, is refused and leaves nothing
    let up_d = |name: &str| {
        e.up_as(
            &user,
            &[
                "-d", "--name", name, "--userns", "auto", IMAGE, "sleep", "100",
            ],
        )
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| up_d("a1"));
        let b = s.spawn(|| up_d("a2"));
        (a.join().unwrap(), b.join().unwrap())
    });
    ok(&a, "up -d a1");
    ok(&b, "up -d a2");
    let map_of = |name: &str| {
        let st: serde_json::Value =
            serde_json::from_str(&ok(&e.husk(&["state", name]), "state")).unwrap();
        let pid = st["pid"].as_i64().unwrap();
        first_map(&std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap())
    };
    let (m1, m2) = (map_of("a1"), map_of("a2"));
    assert_eq!((m1.2, m2.2), (65535, 65535));
    assert!(
        m1.1 + m1.2 <= m2.1 || m2.1 + m2.2 <= m1.1,
        "overlapping ranges {m1:?} {m2:?}"
    );
    for m in [m1, m2] {
        assert!(m.1 >= start && m.1 + m.2 <= start + 140_000, "{m:?}");
    }
    let full = e.up_as(
        &user,
        &["--rm", "--name", "a3", "--userns=auto", IMAGE, "true"],
    );
    assert!(!full.status.success(), "a third range of 65536 fitted");
    assert!(
        text(&full.stderr).contains("no free range of 65535 uids"),
        "{}",
        text(&full.stderr)
    );
    assert!(!e.bundles().contains(&"a3".to_string()));
    assert_eq!(e.userns_records(), vec!["a1.json", "a2.json"]);
    // a smaller one still fits
    let small = ok(
        &e.up_as(
            &user,
            &[
                "--rm",
                "--userns=auto:size=1000",
                IMAGE,
                "cat",
                "/proc/self/uid_map",
            ],
        ),
        "up --userns=auto:size=1000",
    );
    let m3 = first_map(&small);
    assert_eq!(m3.2, 1000);
    assert!(
        m3.1 >= (m1.1 + m1.2).max(m2.1 + m2.2),
        "{m3:?} overlaps {m1:?} or {m2:?}"
    );
    ok(&e.cmd("rm", &["-f", "a1", "a2"]), "rm -f a1 a2");
    assert!(e.userns_records().is_empty(), "ranges kept after rm -f");
    e.assert_all_gone("after rm -f of two --userns=auto containers");

    // a record whose husk up died before its bundle existed: released by husk image prune
    std::fs::write(
        e.store().join("userns/ghost.json"),
        json!({"container": "ghost", "uid": {"start": start, "size": 65536},
               "gid": {"start": start, "size": 65536}, "pid": i32::MAX,
               "pid_start_time": 1})
        .to_string(),
    )
    .unwrap();
    let store = e.store_arg();
    ok(
        &e.husk(&["image", "prune", "--store", &store]),
        "image prune",
    );
    assert!(e.userns_records().is_empty(), "a stale range kept");

    // binds are not id-mapped (a host root's file is nobody's inside, not writable); a new
    // named volume is the container root's; --privileged's host devices are bound, /dev/ptmx
    // still the container's pts
    let src = e.dir.path().join("bindsrc");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    let bind = format!("{}:/b", src.display());
    let out = ok(
        &e.up_as(
            &user,
            &[
                "--rm", "--userns=auto", "--privileged", "-v", &bind, "-v", "uvol:/n", IMAGE,
                "sh", "-c",
                "stat -c %u /b/f; touch /b/g 2>/dev/null || echo bind-refused; \
                 touch /n/h && echo volume-written; readlink /dev/ptmx; test -c /dev/null && echo null",
            ],
        ),
        "up --userns=auto --privileged with a bind and a volume",
    );
    assert_eq!(
        out, "65534\nbind-refused\nvolume-written\npts/ptmx\nnull\n",
        "binds, volumes and devices in a user namespace"
    );
    let vol = e.store().join("volumes/uvol/_data");
    assert_eq!(std::fs::metadata(&vol).unwrap().uid() as u64, start);
    ok(
        &e.husk(&["volume", "--store", &e.store_arg(), "rm", "uvol"]),
        "volume rm",
    );
    assert!(e.userns_records().is_empty(), "range kept after --rm");
    e.assert_all_gone("after the privileged run");

    // an image with an id beyond podman's largest estimate: refused unless size= covers it
    let big = Env::with_image(
        "userns-big",
        json!({}),
        Some(layer(&[("big", 0o644, 100_000, Some("x"))])),
    );
    let o = big.up_as(&user, &["--rm", "--userns=auto", IMAGE, "true"]);
    assert!(!o.status.success(), "an image with id 100000 in 65536 ids");
    assert!(
        text(&o.stderr).contains("the image uses id 100000"),
        "{}",
        text(&o.stderr)
    );
    big.assert_all_gone("the refused big image");
    assert!(big.userns_records().is_empty());
    let out = ok(
        &big.up_as(
            &user,
            &[
                "--rm",
                "--userns=auto:size=100001",
                IMAGE,
                "stat",
                "-c",
                "%u",
                "/big",
            ],
        ),
        "up --userns=auto:size=100001",
    );
    assert_eq!(out.trim(), "100000");
    big.assert_all_gone("the big image with size=");

    // a layer that cannot be a snapshot (a hardlink into the layer below): the rootfs is a
    // copy with its owners shifted into the range, and 65536 ids (no snapshots to estimate from)
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o755);
    b.append_link(&mut h, "bin/hardlinked", "bin/busybox")
        .unwrap();
    let copied = Env::with_image("userns-copy", json!({}), Some(b.into_inner().unwrap()));
    let out = ok(
        &copied.up_as(
            &user,
            &[
                "--name",
                "c1",
                "--userns=auto",
                IMAGE,
                "sh",
                "-c",
                "stat -c %u:%g /bin/busybox /bin/hardlinked; cat /proc/self/uid_map",
            ],
        ),
        "up --userns=auto of a copied rootfs",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["0:0", "0:0"], "{out}");
    assert_eq!(first_map(lines[2]), (0, start, 65536), "{out}");
    let c1 = copied.store().join("containers/c1");
    assert!(!c1.join("overlay").exists(), "not a copy");
    let md = std::fs::metadata(c1.join("rootfs/bin/busybox")).unwrap();
    assert_eq!((md.uid() as u64, md.gid() as u64), (start, start));
    ok(&copied.cmd("rm", &["c1"]), "rm c1");
    copied.assert_all_gone("after the copied rootfs");
    assert!(copied.userns_records().is_empty());

    // host: the host's ids, no user namespace of its own
    let out = sh(&e, &["--userns=host"], "cat /proc/self/uid_map");
    assert_eq!(first_map(&out), (0, 0, 4294967295));

    // refused by name, nothing made
    // (the error is a quoted logfmt value on stderr: the parts are checked one by one)
    for (flag, want) in [
        (
            "--userns=keep-id",
            ["keep-id", "keep-id is only supported in rootless mode"],
        ),
        (
            "--userns=nomap",
            ["nomap", "nomap is only supported in rootless mode"],
        ),
        (
            "--userns=auto:size=0",
            ["auto:size=0", "is not a number of ids from 1"],
        ),
        (
            "--userns=bogus",
            ["bogus", "expected host or auto[:size=N]"],
        ),
    ] {
        let o = e.up_as(&user, &["--rm", flag, IMAGE, "true"]);
        assert!(!o.status.success(), "{flag} accepted");
        let err = text(&o.stderr);
        assert!(err.contains("--userns "), "{flag}: the flag unnamed: {err}");
        for w in want {
            assert!(err.contains(w), "{flag}: {err}");
        }
        e.assert_all_gone(flag);
        assert!(e.userns_records().is_empty(), "{flag}: a range recorded");
    }
    // a user the range does not hold: refused by name, the range given back
    let o = e.up_as(
        &user,
        &[
            "--rm",
            "--userns=auto:size=1000",
            "-u",
            "5000",
            IMAGE,
            "true",
        ],
    );
    assert!(!o.status.success(), "-u 5000 in 1000 ids");
    assert!(
        text(&o.stderr).contains("uid 5000 is outside the container's user namespace"),
        "{}",
        text(&o.stderr)
    );
    e.assert_all_gone("-u outside the range");
    assert!(
        e.userns_records().is_empty(),
        "-u outside: a range recorded"
    );
    // no range for the user: refused naming the file and the user
    let o = e.up_as(
        "husk-test-no-such-subid-user",
        &["--rm", "--userns=auto", IMAGE, "true"],
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("/etc/subuid has no range for the user"),
        "{}",
        text(&o.stderr)
    );
    e.assert_all_gone("no subordinate ids");
}

/// `husk up --userns=auto` SIGKILLed at random moments: `husk rm -f` releases the range of a
/// container whose bundle exists, `husk image prune` the ranges of those killed before it
/// (their `husk up` gone); no range, state, bundle, cgroup or mount is left.
#[test]
fn up_userns_killed_at_random_moments_leaves_no_range() {
    if !need_root("up_userns_killed_at_random_moments_leaves_no_range") {
        return;
    }
    let seed = seed_from_env("HUSK_FAULT_SEED");
    eprintln!("up userns kill: seed {seed} (HUSK_FAULT_SEED={seed} replays)");
    let e = Env::new("userns-kill");
    let user = format!("husk-test-userns-kill-{}", std::process::id());
    let start: u64 = 3_100_000_000 + (std::process::id() as u64 % 1000) * 100_000;
    let _subids = Subids::add(&user, start, 65536);
    let mut problems = kill_rounds(&e, seed, 15, &["--userns=auto"], Some(&user));
    let store = e.store_arg();
    ok(
        &e.husk(&["image", "prune", "--store", &store]),
        "image prune",
    );
    if !e.userns_records().is_empty() {
        problems.push(format!("ranges left: {:?}", e.userns_records()));
    }
    assert_no_problems(Some(seed), &problems);
    // the one range of the user fits again: nothing holds it
    ok(
        &e.up_as(&user, &["--rm", "--userns=auto", IMAGE, "true"]),
        "up --userns=auto after the kills",
    );
    e.assert_all_gone("after the kills");
    assert!(e.userns_records().is_empty());
}

/// `--userns=auto` on a network of `husk network create` (in a network namespace of the
/// test's): the container's network namespace, owned by its user namespace, is attached, has
/// its address, and nothing is left after `--rm`.
#[test]
fn up_userns_auto_on_a_named_network() {
    if !need_root("up_userns_auto_on_a_named_network") {
        return;
    }
    let e = Env::new("userns-net");
    let user = format!("husk-test-userns-net-{}", std::process::id());
    let start: u64 = 3_200_000_000 + (std::process::id() as u64 % 1000) * 100_000;
    let _subids = Subids::add(&user, start, 65536);
    let ns = Netns::new();
    let dirs = e.dir.path();
    let husk_in_ns = |args: &[&str]| {
        let mut c = husk_in_netns(&ns, &e.root(), dirs, args);
        c.env("HUSK_SUBID_USER", &user);
        run_timeout(&mut c, CMD_TIMEOUT)
    };
    ok(
        &husk_in_ns(&["network", "create", "--subnet", "10.89.78.0/24", "upns"]),
        "network create",
    );
    let store = e.store_arg();
    let out = ok(
        &husk_in_ns(&[
            "up",
            "--store",
            &store,
            "--pull",
            "never",
            "--rm",
            "--userns=auto",
            "--network",
            "upns",
            IMAGE,
            "sh",
            "-c",
            "ip -4 -o addr show | grep -c ' 10[.]89[.]78[.]'; cat /proc/self/uid_map",
        ]),
        "up --userns=auto --network upns",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"1"),
        "no address on the network: {out}"
    );
    assert_eq!(first_map(lines[1]), (0, start, 65535), "{out}");
    e.assert_clean("after up --rm --userns=auto on a network");
    assert!(e.userns_records().is_empty());
    let links = text(&ns.cmd("ip").args(["-o", "link"]).output().unwrap().stdout);
    assert!(!links.contains("veth"), "a veth was left: {links}");
    ok(&husk_in_ns(&["network", "rm", "upns"]), "network rm");
}

// ---- husk up run by a user without root: pasta or slirp4netns ----

/// The unprivileged user the rootless tests run `husk up` as (Debian's `nobody`).
const NOBODY: u32 = 65534;

impl Env {
    /// The Env's directory made `nobody`'s, so that a `husk up` of nobody's can use its store
    /// and `--root`.
    fn give_to_nobody(&self) {
        let st = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "chown the test dir to nobody");
    }

    /// `husk --root ROOT ARGS` as `nobody` in the test's network namespace `ns` (entered as
    /// root, then the ids dropped by setpriv), with `PATH` as given, in a private mount
    /// namespace: where the machine's /dev/net/tun is not open to every user (a machine without
    /// udev's rule, which makes it 0666), /dev/net is a tmpfs there with a 0666 tun node, as udev
    /// would make it; when the Env's directory holds a `resolv.conf`, it is bound over
    /// /etc/resolv.conf (the host's resolvers as husk and the helpers read them). The machine's
    /// own /dev and /etc are never changed.
    fn husk_rootless(&self, ns: &Netns, path: &str, args: &[&str]) -> Command {
        use std::os::unix::fs::PermissionsExt;
        let open_to_all = std::fs::metadata("/dev/net/tun")
            .is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006);
        let mut setup = String::from("set -e; ");
        if !open_to_all {
            setup.push_str(
                "/usr/bin/mount -t tmpfs -o size=16k,mode=0755 husk-test-tun /dev/net; \
                 /usr/bin/mknod -m 0666 /dev/net/tun c 10 200; ",
            );
        }
        let resolv = self.dir.path().join("resolv.conf");
        if resolv.exists() {
            setup.push_str(&format!(
                "/usr/bin/mount --bind '{}' /etc/resolv.conf; ",
                resolv.display()
            ));
        }
        setup.push_str("exec \"$@\"");
        let mut c = Command::new("/usr/bin/unshare");
        c.args(["-m", "--propagation", "private", "/usr/bin/sh", "-c"])
            .arg(setup)
            .args(["sh", "/usr/bin/nsenter"]);
        c.arg(format!("--net=/run/netns/{}", ns.0))
            .args([
                "/usr/bin/setpriv",
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
            ])
            .arg(runtime())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env_remove("XDG_RUNTIME_DIR");
        c
    }

    /// `husk up --store STORE --pull never ARGS` as nobody in `ns`.
    fn up_rootless(&self, ns: &Netns, path: &str, args: &[&str]) -> Output {
        self.up_rootless_env(ns, path, args, &[])
    }

    /// [`Env::up_rootless`] with `env` added to its environment.
    fn up_rootless_env(
        &self,
        ns: &Netns,
        path: &str,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Output {
        let store = self.store();
        let mut a = vec!["up", "--store", store.to_str().unwrap(), "--pull", "never"];
        a.extend_from_slice(args);
        let mut c = self.husk_rootless(ns, path, &a);
        c.envs(env.iter().copied());
        run_timeout(&mut c, Duration::from_secs(60))
    }

    /// The pid of the network helper recorded for container `id`.
    fn helper_pid(&self, id: &str) -> i32 {
        let p = self
            .store()
            .join("containers")
            .join(id)
            .join("network-helper.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        v["pid"].as_i64().unwrap() as i32
    }
}

/// Processes whose command line names `dir` or whose working directory is under it (a network
/// helper runs in its container's bundle), other than this test.
fn procs_in(dir: &std::path::Path) -> Vec<(i32, String)> {
    let mut found = procs_naming(dir);
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        if cwd.starts_with(dir) && !found.iter().any(|(p, _)| *p == pid) {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            found.push((pid, text(&c).replace('\0', " ")));
        }
    }
    found
}

/// The namespace's way out for pasta: a veth pair with an address and the default route (pasta
/// copies them into the container; its gateway address leads to the namespace's loopback).
const RL_ADDR: &str = "10.231.0.2/24";
const RL_GATEWAY: &str = "10.231.0.1";

fn rootless_netns() -> Netns {
    let ns = Netns::new();
    for args in [
        &["link", "add", "rl0", "type", "veth", "peer", "name", "rl1"][..],
        &["addr", "add", RL_ADDR, "dev", "rl0"],
        &["link", "set", "rl0", "up"],
        &["link", "set", "rl1", "up"],
        &["route", "add", "default", "via", RL_GATEWAY],
    ] {
        let o = run_timeout(
            Command::new("ip").arg("-n").arg(&ns.0).args(args),
            CMD_TIMEOUT,
        );
        assert!(o.status.success(), "ip {args:?}: {}", text(&o.stderr));
    }
    ns
}

/// `husk up` of a user without root with pasta or slirp4netns (`helper`): in a network
/// namespace of the test's, busybox httpd in the container on `-p 8080:80` answers from the
/// namespace's loopback a page the container fetched from a server on that loopback (reached
/// at pasta's gateway or slirp4netns's 10.0.2.2); the helper ends with the container on `husk
/// rm -f`, and by itself when the monitor is SIGKILLed; `-P` publishes the image's port on a
/// free host port; `--restart on-failure:2` runs three times, each run with a helper of its own,
/// none left after; a foreground `--rm` run leaves nothing; names are resolved through the
/// helper's DNS forwarder (`forwarder` in the container's resolv.conf) by a resolver on the
/// namespace's loopback (the host's resolv.conf as the test's mount namespace shows it), and
/// `--dns` wins; `husk up` (or with `-d` its monitor) SIGKILLed at each step of the helper's
/// start leaves no helper and nothing `rm -f` does not remove; a port in use and a helper not
/// installed are refused by name with nothing left.
fn rootless_network(test: &str, helper: &str, package: &str, gateway: &str, forwarder: &str) {
    if !need_root(test) {
        return;
    }
    if !installed_or_skip(test, helper, package) {
        return;
    }
    let e = Env::new(&format!("rl{}", &helper[..4]));
    e.give_to_nobody();
    let ns = rootless_netns();
    // the host's resolver on its loopback, as the resolv.conf of husk's mount namespace says
    std::fs::write(
        e.dir.path().join("resolv.conf"),
        "nameserver 127.0.0.1\nsearch husk-test.example\n",
    )
    .unwrap();
    let dns = DnsResponder::start(&ns.0, std::net::Ipv4Addr::new(10, 77, 0, 9));
    // the server on the namespace's loopback
    let www = e.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "from-the-host\n").unwrap();
    let server = KillOnDrop(
        ns.cmd("busybox")
            .args(["httpd", "-f", "-p", "127.0.0.1:9090", "-h"])
            .arg(&www)
            .spawn()
            .unwrap(),
    );
    let left = || -> Vec<(i32, String)> {
        procs_in(e.dir.path())
            .into_iter()
            .filter(|(p, _)| *p != server.0.id() as i32)
            .collect()
    };
    let path = "/usr/bin:/bin";
    let store = &e.store().to_string_lossy().into_owned();
    let net = ["--network", helper];

    // published and outbound, then rm -f with the monitor alive
    let script = format!(
        "wget -q -O /tmp/index.html http://{gateway}:9090/index.html || echo no-way-out > \
         /tmp/index.html; exec httpd -f -p 80 -h /tmp"
    );
    let mut args = vec!["-d", "--name", "a", "-p", "8080:80"];
    args.extend(net);
    args.extend([IMAGE, "sh", "-c", &script]);
    ok(&e.up_rootless(&ns, path, &args), "up -d -p 8080:80");
    let pid = e.helper_pid("a");
    assert!(pid_alive(pid), "{helper} (pid {pid}) does not run");
    assert_eq!(
        ns.fetch(8080).trim(),
        "from-the-host",
        "the page through {helper}"
    );
    // husk restart: the old helper ended, a new one for the new run
    std::fs::write(www.join("index.html"), "again\n").unwrap();
    ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["restart", "--store", store, "-t", "1", "a"]),
            CMD_TIMEOUT,
        ),
        "restart a",
    );
    assert!(
        wait_until(Duration::from_secs(5), &|| !pid_alive(pid)),
        "{helper} (pid {pid}) outlived the run it served"
    );
    let pid = e.helper_pid("a");
    assert!(
        pid_alive(pid),
        "{helper} (pid {pid}) of the new run does not run"
    );
    // (the container fetches the page as it starts: fetch until the new run has)
    let mut page = ns.fetch(8080);
    for _ in 0..50 {
        if page.trim() == "again" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        page = ns.fetch(8080);
    }
    assert_eq!(page.trim(), "again", "the page after husk restart");
    std::fs::write(www.join("index.html"), "from-the-host\n").unwrap();
    ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["rm", "--store", store, "-f", "a"]),
            CMD_TIMEOUT,
        ),
        "rm -f a",
    );
    assert!(
        wait_until(Duration::from_secs(5), &|| !pid_alive(pid)),
        "{helper} (pid {pid}) outlived husk rm -f"
    );
    e.assert_clean("after rm -f");

    // the monitor SIGKILLed: rm -f still ends the helper
    let mut args = vec!["-d", "--name", "b", "-p", "5353:5353/udp"];
    args.extend(net);
    args.extend([IMAGE, "/probe", "udp-echo", "5353"]);
    ok(&e.up_rootless(&ns, path, &args), "up -d b");
    let pid = e.helper_pid("b");
    // a udp port too
    assert_eq!(
        udp_roundtrip(&ns.0, 5353).as_deref(),
        Ok("echo:ping"),
        "udp through {helper}"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.store().join("containers/b/status.json")).unwrap())
            .unwrap();
    let monitor = status["monitorPid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), &|| !pid_alive(monitor)));
    // (the kernel's parent death signal: no husk command ran since)
    assert!(
        wait_until(Duration::from_secs(5), &|| !pid_alive(pid)),
        "{helper} (pid {pid}) outlived its monitor's SIGKILL"
    );
    ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["rm", "--store", store, "-f", "b"]),
            CMD_TIMEOUT,
        ),
        "rm -f b",
    );
    e.assert_clean("after the monitor's SIGKILL and rm -f");
    assert!(left().is_empty(), "left: {:?}", left());

    // -P: the image's exposed port (8000/tcp) on a free host port, through the helper
    let page = web("published-all");
    let mut args = vec!["-d", "--name", "p", "-P"];
    args.extend(net);
    args.extend([IMAGE, "sh", "-c", &page]);
    let o = e.up_rootless(&ns, path, &args);
    ok(&o, "up -d -P");
    let err = text(&o.stderr);
    let port: u16 = err
        .lines()
        .find_map(|l| l.strip_prefix("husk up: published 0.0.0.0:"))
        .and_then(|r| r.strip_suffix("->8000/tcp"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no published port in: {err}"));
    assert_eq!(
        ns.fetch(port).trim(),
        "published-all",
        "-P's port {port} through {helper}"
    );
    ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["rm", "--store", store, "-f", "p"]),
            CMD_TIMEOUT,
        ),
        "rm -f p",
    );
    e.assert_clean("after -P");

    // --restart on-failure:2: three runs, each reaching the host through a helper of its own
    let url = format!("http://{gateway}:9090/index.html");
    let script = format!("wget -q -O - {url}; exit 3");
    let mut args = vec!["-d", "--name", "r", "--restart", "on-failure:2"];
    args.extend(net);
    args.extend([IMAGE, "sh", "-c", &script]);
    ok(
        &e.up_rootless(&ns, path, &args),
        "up -d --restart on-failure:2",
    );
    let done = || {
        let p = e.store().join("containers/r/status.json");
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p).unwrap_or_default()).unwrap_or_default();
        s["restartCount"] == 2
            && s["exitCode"] == 3
            && !pid_alive(s["monitorPid"].as_i64().unwrap_or(0) as i32)
    };
    assert!(
        wait_until(Duration::from_secs(60), &done),
        "three runs did not end: {}",
        e.status("r")
    );
    let logs = ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["logs", "--store", store, "r"]),
            CMD_TIMEOUT,
        ),
        "logs r",
    );
    assert_eq!(
        logs.matches("from-the-host").count(),
        3,
        "each run's page through {helper}: {logs}"
    );
    assert!(
        !e.store().join("containers/r/network-helper.json").exists(),
        "a helper is recorded after the last exit"
    );
    assert!(left().is_empty(), "left after the runs: {:?}", left());
    ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["rm", "--store", store, "r"]),
            CMD_TIMEOUT,
        ),
        "rm r",
    );
    e.assert_clean("after --restart on-failure:2");

    // in the foreground with --rm
    let url = format!("http://{gateway}:9090/index.html");
    let mut args = vec!["--rm"];
    args.extend(net);
    args.extend([IMAGE, "wget", "-q", "-O", "-", &url]);
    let out = ok(&e.up_rootless(&ns, path, &args), "up --rm wget");
    assert_eq!(out.trim(), "from-the-host");
    e.assert_clean("after up --rm");
    assert!(left().is_empty(), "left: {:?}", left());

    // DNS: the helper's forwarder in resolv.conf (the host's search domain kept), answered by
    // the resolver on the namespace's loopback; --dns wins
    let mut args = vec!["--rm"];
    args.extend(net);
    let lookup = "cat /etc/resolv.conf; nslookup husk-dns.test; true";
    args.extend([IMAGE, "sh", "-c", lookup]);
    let out = ok(&e.up_rootless(&ns, path, &args), "up --rm nslookup");
    assert!(
        out.starts_with(&format!(
            "nameserver {forwarder}\nsearch husk-test.example\n"
        )) && out.matches("nameserver").count() == 1,
        "{out}"
    );
    assert!(
        out.contains("10.77.0.9"),
        "the name through {helper}'s DNS forwarder: {out}"
    );
    assert!(
        dns.asked().iter().any(|n| n == "husk-dns.test"),
        "asked: {:?}",
        dns.asked()
    );
    let mut args = vec!["--rm", "--dns", "10.9.9.9"];
    args.extend(net);
    args.extend([IMAGE, "cat", "/etc/resolv.conf"]);
    let out = ok(&e.up_rootless(&ns, path, &args), "up --rm --dns");
    assert!(
        out.starts_with("nameserver 10.9.9.9\n") && !out.contains(forwarder),
        "{out}"
    );
    e.assert_clean("after the DNS runs");

    // husk up, or with -d its monitor, SIGKILLed at each step of the helper's start (debug
    // builds): the helper and the namespace holder die with it, and rm -f leaves nothing
    let log = e.dir.path().join("fault.log");
    let mut args = vec!["--rm"];
    args.extend(net);
    args.extend([IMAGE, "true"]);
    let o = e.up_rootless_env(&ns, path, &args, &[("HUSK_FAULT_LOG", log.as_os_str())]);
    ok(&o, "up --rm true with HUSK_FAULT_LOG");
    let steps: Vec<(String, String)> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, name)| name.starts_with("usernet:"))
        .map(|(n, name)| (n.to_string(), name.to_string()))
        .collect();
    if steps.is_empty() {
        skip_part(
            &format!("{test}/killed-while-starting-the-helper"),
            "the runtime under test is a release build: it has no fault steps",
        );
    }
    // (the monitor is a fresh process that counts its own steps from 1, as husk up does: the
    // helper's start is the first work of both)
    for ((n, name), detach) in steps.iter().flat_map(|s| [(s, false), (s, true)]) {
        let id = format!("f{n}{}", if detach { "d" } else { "" });
        let mut args = vec!["--name", &id];
        if detach {
            args.push("-d");
        }
        args.extend(net);
        args.extend([IMAGE, "sleep", "30"]);
        let o = e.up_rootless_env(&ns, path, &args, &[("HUSK_FAULT_STEP", n.as_ref())]);
        let what = format!("killed at {name:?}{}", if detach { " (-d)" } else { "" });
        assert!(
            !o.status.success(),
            "{what}: husk up succeeded: {}",
            text(&o.stderr)
        );
        assert!(
            wait_until(Duration::from_secs(5), &|| left().is_empty()),
            "{what}: left {:?}",
            left()
        );
        // (with -d, husk up removed what it made once its monitor ended without a container)
        if !detach {
            ok(
                &run_timeout(
                    &mut e.husk_rootless(&ns, path, &["rm", "--store", store, "-f", &id]),
                    CMD_TIMEOUT,
                ),
                &format!("rm -f after {what}"),
            );
        }
        e.assert_clean(&format!("{what}, then rm -f"));
    }
    // none and host as for root: loopback only, the namespace's own links
    let links = |flags: &[&str]| {
        let mut a = vec!["--rm"];
        a.extend(flags);
        a.extend([IMAGE, "ip", "-o", "link"]);
        ok(&e.up_rootless(&ns, path, &a), &format!("up {flags:?}"))
    };
    let none = links(&["--network", "none"]);
    assert!(none.contains("lo:") && !none.contains("rl0"), "{none}");
    let host = links(&["--network", "host"]);
    assert!(host.contains("rl0"), "{host}");
    e.assert_clean("after none and host");
    // asked for by root: refused by name (root's containers use husk's networks)
    let mut a = vec!["up", "--store", store, "--pull", "never", "--rm"];
    a.extend(net);
    a.extend([IMAGE, "true"]);
    let mut c = ns.cmd(runtime().to_str().unwrap());
    c.arg("--root")
        .arg(e.dir.path().join("root-of-root"))
        .args(&a);
    let o = run_timeout(&mut c, Duration::from_secs(60));
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&format!("--network {helper}")),
        "{err}"
    );
    e.assert_clean("after up --network HELPER as root");

    // a published port in use (the test's server), then the helper missing
    let mut args = vec!["--rm", "-p", "127.0.0.1:9090:80"];
    args.extend(net);
    args.extend([IMAGE, "true"]);
    let o = e.up_rootless(&ns, path, &args);
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.contains("9090") && err.contains("in use"),
        "{err}"
    );
    e.assert_clean("after a port in use");
    let empty = e.dir.path().join("no-tools");
    std::fs::create_dir_all(&empty).unwrap();
    let o = e.up_rootless(
        &ns,
        empty.to_str().unwrap(),
        &[&net[..], &[IMAGE, "true"]].concat(),
    );
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.contains(helper) && err.contains(package),
        "{err}"
    );
    // without --network: pasta or slirp4netns, and the error names both
    let o = e.up_rootless(&ns, empty.to_str().unwrap(), &[IMAGE, "true"]);
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.contains("pasta") && err.contains("slirp4netns"),
        "{err}"
    );
    e.assert_clean("after a missing helper");
    assert!(left().is_empty(), "left: {:?}", left());
}

/// Send a datagram to 127.0.0.1:`port` from the namespace `ns` (a thread that joined it) and
/// return the reply.
fn udp_roundtrip(ns: &str, port: u16) -> Result<String, String> {
    use std::os::fd::AsFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns: {e}"))?;
        let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 256];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            s.send_to(b"ping", ("127.0.0.1", port))
                .map_err(|e| e.to_string())?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err("no reply".into())
    })
    .join()
    .unwrap()
}

/// A DNS server on 127.0.0.1:53 of the namespace `ns` (a thread that joined it): every A query
/// is answered with `answer`, any other with no record; the names asked are kept. Stopped on
/// drop.
struct DnsResponder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsResponder {
    fn start(ns: &str, answer: std::net::Ipv4Addr) -> DnsResponder {
        DnsResponder::start_at(ns, "127.0.0.1:53", answer)
    }

    /// [`DnsResponder::start`] on `at` (`[::1]:53`, say).
    fn start_at(ns: &str, at: &'static str, answer: std::net::Ipv4Addr) -> DnsResponder {
        use std::os::fd::AsFd;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let path = format!("/run/netns/{ns}");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop2, asked2) = (stop.clone(), asked.clone());
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = std::net::UdpSocket::bind(at);
            let s = match s {
                Ok(s) => {
                    tx.send(Ok(())).unwrap();
                    s
                }
                Err(e) => return tx.send(Err(e.to_string())).unwrap(),
            };
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 512];
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = s.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((name, reply)) = dns_reply(&buf[..n], answer) {
                    asked2.lock().unwrap().push(name);
                    let _ = s.send_to(&reply, from);
                }
            }
        });
        rx.recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("bind {at} in the test namespace: {e}"));
        DnsResponder {
            stop,
            asked,
            thread: Some(thread),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to one DNS query (RFC 1035: the header, the question copied, for type A one answer
/// of `answer`), and the name asked; None for what is not one query.
fn dns_reply(q: &[u8], answer: std::net::Ipv4Addr) -> Option<(String, Vec<u8>)> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).into_owned());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question = q.get(12..i + 4)?;
    let is_a = qtype == 1;
    let mut r = Vec::new();
    r.extend_from_slice(&q[0..2]);
    // a response, recursion desired (as asked) and available, no error
    r.extend_from_slice(&[0x80 | (q[2] & 0x01), 0x80]);
    r.extend_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    r.extend_from_slice(question);
    if is_a {
        // the name by pointer to the question's, IN, TTL 60, 4 bytes
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&answer.octets());
    }
    Some((labels.join("."), r))
}

/// A child of the test's, killed and reaped on drop (a failed test too).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn up_rootless_network_pasta() {
    rootless_network(
        "up_rootless_network_pasta",
        "pasta",
        "passt",
        RL_GATEWAY,
        "169.254.1.1",
    );
}

#[test]
fn up_rootless_network_slirp4netns() {
    rootless_network(
        "up_rootless_network_slirp4netns",
        "slirp4netns",
        "slirp4netns",
        "10.0.2.2",
        "10.0.2.3",
    );
}

/// `husk up` of a user without root with pasta where the namespace has IPv6 (a global address
/// and the default route, which pasta copies): the container's resolv.conf names pasta's IPv6
/// DNS forwarder after its IPv4 one, and a name asked there is answered by the host's IPv6
/// resolver (on the namespace's `::1`); without an IPv6 resolver in the host's resolv.conf, or
/// without the IPv6 default route, only the IPv4 forwarder is named; `-p '[::1]:P:80'` answers
/// on `[::1]` and not on `127.0.0.1`, `-p '[::]:P:80'` on `[::1]`; nothing is left after `rm -f`.
#[test]
fn up_rootless_ipv6_pasta() {
    let test = "up_rootless_ipv6_pasta";
    let Some((e, ns)) = rootless_ipv6_env(test, "pasta", "passt") else {
        return;
    };
    let path = "/usr/bin:/bin";
    let store = &e.store().to_string_lossy().into_owned();
    let v6 = DnsResponder::start_at(&ns.0, "[::1]:53", std::net::Ipv4Addr::new(10, 77, 0, 6));
    let _v4 = DnsResponder::start(&ns.0, std::net::Ipv4Addr::new(10, 77, 0, 9));
    let resolv = e.dir.path().join("resolv.conf");
    let lookup = "cat /etc/resolv.conf; nslookup husk-dns6.test 100::53; true";
    let run = |what: &str| {
        ok(
            &e.up_rootless(
                &ns,
                path,
                &["--rm", "--network", "pasta", IMAGE, "sh", "-c", lookup],
            ),
            what,
        )
    };
    std::fs::write(&resolv, "nameserver ::1\nnameserver 127.0.0.1\n").unwrap();
    let out = run("up --rm nslookup (IPv6)");
    assert!(
        out.starts_with("nameserver 169.254.1.1\nnameserver 100::53\n")
            && out.matches("nameserver").count() == 2,
        "{out}"
    );
    assert!(out.contains("10.77.0.6"), "the name through 100::53: {out}");
    assert!(
        v6.asked().iter().any(|n| n == "husk-dns6.test"),
        "asked: {:?}",
        v6.asked()
    );
    // no IPv6 resolver on the host: pasta would have nowhere to send them
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
    let out = run("up --rm (no IPv6 resolver)");
    assert!(
        out.starts_with("nameserver 169.254.1.1\n") && out.matches("nameserver").count() == 1,
        "{out}"
    );
    // no IPv6 default route: pasta gives the container no IPv6
    std::fs::write(&resolv, "nameserver ::1\nnameserver 127.0.0.1\n").unwrap();
    let o = ns_ip(&ns, &["-6", "route", "del", "default", "via", RL_GATEWAY6]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = run("up --rm (no IPv6 route)");
    assert!(
        out.starts_with("nameserver 169.254.1.1\n") && out.matches("nameserver").count() == 1,
        "{out}"
    );
    let o = ns_ip(&ns, &["-6", "route", "add", "default", "via", RL_GATEWAY6]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    e.assert_clean("after the DNS runs");

    // published on the IPv6 loopback alone, and on every IPv6 address
    let page = web("over-ipv6");
    let args = [
        "-d",
        "--name",
        "w6",
        "--network",
        "pasta",
        "-p",
        "[::1]:8086:8000",
        "-p",
        "[::]:8087:8000",
        IMAGE,
        "sh",
        "-c",
        &page,
    ];
    ok(&e.up_rootless(&ns, path, &args), "up -d -p [::1]:8086:8000");
    let pid = e.helper_pid("w6");
    assert_eq!(ns.fetch_from("[::1]", 8086).trim(), "over-ipv6");
    assert_eq!(ns.fetch_from("[::1]", 8087).trim(), "over-ipv6");
    let o = ns
        .cmd("busybox")
        .args(["wget", "-q", "-O", "-", "http://127.0.0.1:8086/index.html"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "8086 answered on IPv4: {}",
        text(&o.stdout)
    );
    ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["rm", "--store", store, "-f", "w6"]),
            CMD_TIMEOUT,
        ),
        "rm -f w6",
    );
    assert!(
        wait_until(Duration::from_secs(5), &|| !pid_alive(pid)),
        "pasta (pid {pid}) outlived husk rm -f"
    );
    e.assert_clean("after rm -f");
    assert!(
        procs_in(e.dir.path()).is_empty(),
        "{:?}",
        procs_in(e.dir.path())
    );
}

/// `husk up` of a user without root with slirp4netns and `-p '[::1]:P:80'`: where slirp4netns's
/// API refuses an IPv6 host address (Debian's 1.2.0 reads `host_addr` as IPv4 only) husk up
/// fails with an error naming the port, slirp4netns and pasta, leaving nothing; a slirp4netns
/// that takes it (given `--enable-ipv6`) must serve the port on `[::1]`.
#[test]
fn up_rootless_ipv6_port_slirp4netns() {
    let test = "up_rootless_ipv6_port_slirp4netns";
    let Some((e, ns)) = rootless_ipv6_env(test, "slirp4netns", "slirp4netns") else {
        return;
    };
    let path = "/usr/bin:/bin";
    let store = &e.store().to_string_lossy().into_owned();
    let page = web("over-ipv6");
    let args = [
        "-d",
        "--name",
        "s6",
        "--network",
        "slirp4netns",
        "-p",
        "[::1]:8088:8000",
        IMAGE,
        "sh",
        "-c",
        &page,
    ];
    let o = e.up_rootless(&ns, path, &args);
    if o.status.success() {
        assert_eq!(ns.fetch_from("[::1]", 8088).trim(), "over-ipv6");
        ok(
            &run_timeout(
                &mut e.husk_rootless(&ns, path, &["rm", "--store", store, "-f", "s6"]),
                CMD_TIMEOUT,
            ),
            "rm -f s6",
        );
    } else {
        let err = text(&o.stderr);
        eprintln!("{test}: refused: {err}");
        assert!(
            err.contains("-p [::1]:8088->8000/tcp")
                && err.contains("slirp4netns cannot forward a host port on an IPv6 address")
                && err.contains("pasta"),
            "{err}"
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), &|| procs_in(e.dir.path())
            .is_empty()),
        "{:?}",
        procs_in(e.dir.path())
    );
    e.assert_clean("after -p [::1]:8088:8000");
}

/// The IPv6 side of [`rootless_netns`]: its address on rl0 (usable at once) and the IPv6
/// default route.
const RL_ADDR6: &str = "fd00:231::2/64";
const RL_GATEWAY6: &str = "fd00:231::1";

fn ns_ip(ns: &Netns, args: &[&str]) -> Output {
    run_timeout(
        Command::new("ip").arg("-n").arg(&ns.0).args(args),
        CMD_TIMEOUT,
    )
}

/// Whether `/usr/bin/TOOL` is installed; if not, the test is skipped naming the package that
/// brings it. (make deps installs it: a CI run without it has not tested this, so under
/// `CI=true` that is a failure.)
fn installed_or_skip(test: &str, tool: &str, package: &str) -> bool {
    if std::path::Path::new("/usr/bin").join(tool).exists() {
        return true;
    }
    let why = format!("{tool} is not installed (package {package}: make deps)");
    assert!(
        std::env::var_os("CI").is_none_or(|v| v != "true"),
        "{test}: {why}, and under CI=true a root test that cannot run is a failure"
    );
    skip(test, &why);
    false
}

/// An Env given to nobody and a [`rootless_netns`] with IPv6 too, or None (the test skipped)
/// when not root or `helper` is not installed.
fn rootless_ipv6_env(test: &str, helper: &str, package: &str) -> Option<(Env, Netns)> {
    if !need_root(test) {
        return None;
    }
    if !installed_or_skip(test, helper, package) {
        return None;
    }
    let e = Env::new(&format!("r6{}", &helper[..4]));
    e.give_to_nobody();
    let ns = rootless_netns();
    for args in [
        &["addr", "add", RL_ADDR6, "dev", "rl0", "nodad"][..],
        &["-6", "route", "add", "default", "via", RL_GATEWAY6],
    ] {
        let o = ns_ip(&ns, args);
        assert!(o.status.success(), "ip {args:?}: {}", text(&o.stderr));
    }
    Some((e, ns))
}

/// A running `husk attach`: its stdout's lines as they come, its stderr kept.
struct Attach {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Attach {
    fn start(e: &Env, args: &[&str]) -> Attach {
        let store = e.store_arg();
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(e.root())
            .args(["attach", "--store", &store])
            .args(args);
        Attach::spawn(c)
    }

    fn spawn(mut c: Command) -> Attach {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Attach { child, lines }
    }

    fn write(&mut self, data: &[u8]) {
        use std::io::Write;
        let w = self.child.stdin.as_mut().unwrap();
        w.write_all(data).unwrap();
        w.flush().unwrap();
    }

    /// The next line of its stdout (within 10 s).
    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("no line from husk attach: {e}"))
    }

    /// Its exit code (within 10 s) and stderr.
    fn wait(mut self) -> (i32, String) {
        use std::io::Read;
        let st = wait_child(&mut self.child, Duration::from_secs(10));
        let mut err = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        (code(&st), err)
    }
}

/// `husk attach` to a `-d -i` container: what it is sent comes back (to each of several
/// clients at once, whoever sent it), and each one exits with the container's exit code; the
/// socket is gone then, and an attach to the stopped container, or an unknown one, is refused
/// by name.
#[test]
fn up_attach_stdin_output_and_exit_code() {
    if !need_root("up_attach_stdin_output_and_exit_code") {
        return;
    }
    let e = Env::new("attach");
    let script = "while read l; do [ \"$l\" = quit ] && exit 7; echo \"got $l\"; done";
    ok(
        &e.up(&["-d", "-i", "--name", "a1", IMAGE, "sh", "-c", script]),
        "up -d -i",
    );
    let sock = e.store().join("containers/a1/attach.sock");
    assert!(sock.exists(), "no attach socket once husk up -d returned");
    let mut first = Attach::start(&e, &["a1"]);
    first.write(b"hello\n");
    assert_eq!(first.line(), "got hello");
    let second = Attach::start(&e, &["--no-stdin", "a1"]);
    // (the second one is connected once it sees output: keep writing until it does)
    let mut seen = String::new();
    for i in 0..50 {
        first.write(format!("ping{i}\n").as_bytes());
        assert_eq!(first.line(), format!("got ping{i}"));
        if let Ok(l) = second.lines.recv_timeout(Duration::from_millis(200)) {
            seen = l;
            break;
        }
    }
    assert!(
        seen.starts_with("got ping"),
        "the second client saw {seen:?}"
    );
    first.write(b"both\n");
    assert_eq!(first.line(), "got both");
    assert_eq!(second.line(), "got both");
    first.write(b"quit\n");
    let (c1, err1) = first.wait();
    let (c2, err2) = second.wait();
    assert_eq!((c1, c2), (7, 7), "exit codes: {err1} {err2}");
    assert!(
        wait_until(Duration::from_secs(5), &|| e.status("a1")["exitCode"] == 7),
        "{}",
        e.status("a1")
    );
    assert!(!sock.exists(), "the attach socket outlived the container");
    let o = e.cmd("attach", &["a1"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("a1: cannot attach to a stopped container"),
        "{}",
        text(&o.stderr)
    );
    let o = e.cmd("attach", &["nosuch"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("nosuch: no such container"),
        "{}",
        text(&o.stderr)
    );
    let o = e.cmd("attach", &["--detach-keys", "ctrl-1", "a1"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--detach-keys") && text(&o.stderr).contains("ctrl-1"),
        "{}",
        text(&o.stderr)
    );
    // cat itself: what is written comes back; husk stop ends it, and husk attach exits with
    // the code the monitor records
    ok(
        &e.up(&["-d", "-i", "--name", "a2", IMAGE, "cat"]),
        "up -d -i cat",
    );
    let mut a = Attach::start(&e, &["a2"]);
    a.write(b"through cat\n");
    assert_eq!(a.line(), "through cat");
    ok(&e.cmd("stop", &["-t", "1", "a2"]), "stop");
    let (c, err) = a.wait();
    assert_eq!(
        serde_json::json!(c),
        e.status("a2")["exitCode"],
        "attach's exit code: {err}"
    );
    assert!(c > 128, "cat was stopped by a signal: {c}");
    ok(&e.cmd("rm", &["a1", "a2"]), "rm");
    e.assert_all_gone("after rm");
}

/// `husk attach` to a container printing a line a second sees its new lines (not those from
/// before); a signal husk attach gets reaches the container (`--sig-proxy`, the default), and
/// attach exits with the code the container exits with.
#[test]
fn up_attach_sees_new_output_and_proxies_signals() {
    if !need_root("up_attach_sees_new_output_and_proxies_signals") {
        return;
    }
    let e = Env::new("attach2");
    let script = "trap 'echo got-usr1; exit 5' USR1; i=0; \
                  while true; do echo tick-$i; i=$((i+1)); sleep 0.5 & wait; done";
    ok(
        &e.up(&["-d", "--name", "t1", IMAGE, "sh", "-c", script]),
        "up -d",
    );
    assert!(wait_until(Duration::from_secs(10), &|| text(
        &e.cmd("logs", &["t1"]).stdout
    )
    .contains("tick-3")));
    let a = Attach::start(&e, &["t1"]);
    let first = a.line();
    let n: u32 = first
        .strip_prefix("tick-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{first:?}"));
    assert!(n >= 4, "attach replayed old output: {first:?}");
    assert_eq!(a.line(), format!("tick-{}", n + 1));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.child.id() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let mut rest = Vec::new();
    while let Ok(l) = a.lines.recv_timeout(Duration::from_secs(10)) {
        rest.push(l);
        if rest.last().unwrap() == "got-usr1" {
            break;
        }
    }
    assert_eq!(
        rest.last().map(String::as_str),
        Some("got-usr1"),
        "{rest:?}"
    );
    let (c, err) = a.wait();
    assert_eq!(c, 5, "{err}");
    ok(&e.cmd("rm", &["t1"]), "rm");
    e.assert_all_gone("after rm");
}

/// With a terminal (`-t -i`), Ctrl-P Ctrl-Q (or `--detach-keys`) detaches: husk attach exits
/// 0, the container runs on, and the bytes before the sequence reached it.
#[test]
fn up_attach_detach_keys_on_a_terminal() {
    if !need_root("up_attach_detach_keys_on_a_terminal") {
        return;
    }
    let e = Env::new("attach3");
    ok(
        &e.up(&[
            "-d",
            "-t",
            "-i",
            "--name",
            "k1",
            IMAGE,
            "sh",
            "-c",
            "stty -echo; cat",
        ]),
        "up -d -t -i",
    );
    for (args, seq) in [
        (&["k1"][..], &b"\x10\x11"[..]),
        (&["--detach-keys", "ctrl-x,y", "k1"], b"\x18y"),
    ] {
        let mut a = Attach::start(&e, args);
        let mut line = String::new();
        for _ in 0..50 {
            a.write(b"typed\n");
            if let Ok(l) = a.lines.recv_timeout(Duration::from_millis(200)) {
                line = l;
                break;
            }
        }
        // (\r: a pty's onlcr)
        assert_eq!(line.trim_end_matches('\r'), "typed", "{args:?}");
        // a byte of the sequence that is not followed by the rest is passed on
        a.write(&[seq[0], b'z', b'\n']);
        let l = a.line();
        assert_eq!(
            l.trim_end_matches('\r').as_bytes(),
            [seq[0], b'z'],
            "{args:?}"
        );
        a.write(seq);
        let (c, err) = a.wait();
        assert_eq!(c, 0, "{args:?}: {err}");
        let st = ok(&e.husk(&["state", "k1"]), "state");
        assert!(st.contains("\"running\""), "{st}");
    }
    ok(&e.cmd("stop", &["-t", "1", "k1"]), "stop");
    ok(&e.cmd("rm", &["k1"]), "rm");
    e.assert_all_gone("after rm");
}

/// `husk attach` of a user without root to a container of its own `husk up -d -i`.
#[test]
fn up_attach_rootless() {
    if !need_root("up_attach_rootless") {
        return;
    }
    let e = Env::new("attachrl");
    e.give_to_nobody();
    let ns = rootless_netns();
    let path = "/usr/bin:/bin";
    let store = e.store_arg();
    let script = "while read l; do [ \"$l\" = quit ] && exit 7; echo \"got $l\"; done";
    ok(
        &e.up_rootless(
            &ns,
            path,
            &[
                "-d",
                "-i",
                "--network",
                "none",
                "--name",
                "r1",
                IMAGE,
                "sh",
                "-c",
                script,
            ],
        ),
        "up -d -i as nobody",
    );
    let mut a = Attach::spawn(e.husk_rootless(&ns, path, &["attach", "--store", &store, "r1"]));
    a.write(b"hello\n");
    assert_eq!(a.line(), "got hello");
    a.write(b"quit\n");
    let (c, err) = a.wait();
    assert_eq!(c, 7, "{err}");
    ok(
        &run_timeout(
            &mut e.husk_rootless(&ns, path, &["rm", "--store", &store, "r1"]),
            CMD_TIMEOUT,
        ),
        "rm r1",
    );
    e.assert_clean("after rm");
    assert!(
        wait_until(Duration::from_secs(10), &|| procs_in(e.dir.path())
            .is_empty()),
        "left: {:?}",
        procs_in(e.dir.path())
    );
}

/// `husk up --privileged` of a user without root: root of the container's user namespace with
/// the caller's whole bounding set, no seccomp filter, /sys writable, the host's devices bound
/// (the runtime binds device nodes in a user namespace) — all but /dev/ptmx, which stays the
/// link to the container's own pts instance.
#[test]
fn up_rootless_privileged() {
    if !need_root("up_rootless_privileged") {
        return;
    }
    let e = Env::new("privrl");
    e.give_to_nobody();
    let ns = rootless_netns();
    let caller_bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let out = ok(
        &e.up_rootless(
            &ns,
            "/usr/bin:/bin",
            &[
                "--network",
                "none",
                "--rm",
                "--privileged",
                IMAGE,
                "sh",
                "-c",
                "id -u; grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status | tr -d '\\t'; \
                 grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; \
                 test -c /dev/kmsg && echo kmsg; readlink /dev/ptmx",
            ],
        ),
        "up --privileged as nobody",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "0",
            &format!("CapEff:{caller_bnd}"),
            &format!("CapBnd:{caller_bnd}"),
            "Seccomp:0",
            "rw",
            "kmsg",
            "pts/ptmx"
        ],
        "rootless --privileged: {out}"
    );
    e.assert_all_gone("after up --rm --privileged as nobody");
}

/// `husk up --userns keep-id|nomap` of `nobody` (podman's rootless modes) with subordinate ids
/// of the test's in /etc/subuid and /etc/subgid (removed again, even on failure): keep-id keeps
/// nobody's uid and gid inside (podman's three-line uid_map), runs the process as them, adds
/// the user database lines the image lacks, and the image's owners are container ids (root's
/// files are root's, an image file of uid 1000 is 1000's) — the rootfs was unpacked in the
/// container's own mapping; `keep-id:uid=1000,gid=1000` puts the caller at 1000; `-u` wins over
/// keep-id's user; nomap leaves nobody's own ids out and runs as root; the same through pasta
/// and slirp4netns (the holder of the network namespace makes the mapping), with `-d`, `husk
/// exec` and `husk restart`; the image's VOLUME is filled with its owners kept, a new nomap
/// volume is root's inside; `husk rm`, `rm -f`, `--rm`, the monitor's `--rm`, `husk volume
/// rm`/`prune` and a `husk up` refused after the unpack remove the files of subordinate ids;
/// without ranges both are refused by name with nothing made.
#[test]
fn up_rootless_userns_keep_id_and_nomap() {
    if !need_root("up_rootless_userns_keep_id_and_nomap") {
        return;
    }
    for tool in ["newuidmap", "newgidmap"] {
        if !installed_or_skip("up_rootless_userns_keep_id_and_nomap", tool, "uidmap") {
            return;
        }
    }
    // an image without nobody in its user database, with a file of uid 1000
    let passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n";
    let group = "root:x:0:\nuser:x:1000:\n";
    let extra = layer(&[
        ("etc/passwd", 0o644, 0, Some(passwd)),
        ("etc/group", 0o644, 0, Some(group)),
        ("srv", 0o755, 0, None),
        ("srv/owned", 0o644, 1000, Some("x\n")),
    ]);
    let e = Env::with_image("keepid", json!({"Volumes": {"/srv": {}}}), Some(extra));
    e.give_to_nobody();
    let ns = rootless_netns();
    let path = "/usr/bin:/bin";
    let store = e.store_arg();
    let none = ["--network", "none"];
    let up = |args: &[&str]| {
        let mut a: Vec<&str> = Vec::new();
        if !args.contains(&"--network") {
            a.extend(none);
        }
        a.extend_from_slice(args);
        e.up_rootless(&ns, path, &a)
    };
    let nothing_left = |what: &str| {
        e.assert_clean(what);
        assert!(
            wait_until(Duration::from_secs(10), &|| procs_in(e.dir.path())
                .is_empty()),
            "{what}: processes left: {:?}",
            procs_in(e.dir.path())
        );
        assert!(
            e.volumes().is_empty(),
            "{what}: volumes left: {:?}",
            e.volumes()
        );
    };
    let as_nobody = |args: &[&str], what: &str| {
        ok(
            &run_timeout(&mut e.husk_rootless(&ns, path, args), CMD_TIMEOUT),
            what,
        )
    };

    // no ranges for nobody: refused by name, nothing made
    let listed = |f: &str| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("nobody:") || l.starts_with("65534:"))
    };
    if listed("/etc/subuid") || listed("/etc/subgid") {
        skip_part(
            "up_rootless_userns_keep_id_and_nomap/no-ranges",
            "the machine gives nobody subordinate ids",
        );
    } else {
        for mode in ["keep-id", "nomap"] {
            let o = up(&["--rm", "--name", "k0", "--userns", mode, IMAGE, "true"]);
            assert!(!o.status.success(), "{mode} without ranges accepted");
            let err = text(&o.stderr);
            for w in [&format!("--userns {mode}") as &str, "nobody", "/etc/subuid"] {
                assert!(err.contains(w), "{mode}: {w:?} unnamed: {err}");
            }
            nothing_left(&format!("{mode} without ranges"));
            assert!(
                !e.store().join("containers/k0").exists(),
                "{mode}: a bundle made"
            );
        }
    }

    let count: u64 = 200_000;
    let start: u64 = 2_000_000_000 + (std::process::id() as u64 % 1000) * 1_000_000;
    let _subids = Subids::add("nobody", start, count);

    // keep-id: nobody's own ids inside, podman's three lines, the image's owners kept
    // (/srv/owned: in the image's VOLUME, copied into its anonymous volume)
    let script = "id -u; id -g; cat /proc/self/uid_map; stat -c %u:%g / /bin/busybox /etc \
                  /srv/owned; grep ^nobody: /etc/passwd; grep ^nogroup: /etc/group; \
                  echo HOME=$HOME; touch /tmp/made-inside";
    let out = ok(
        &up(&[
            "--name", "k1", "--userns", "keep-id", IMAGE, "sh", "-c", script,
        ]),
        "up --userns keep-id",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["65534", "65534"], "{out}");
    let maps: Vec<(u64, u64, u64)> = lines[2..5].iter().map(|l| first_map(l)).collect();
    assert_eq!(
        maps,
        [
            (0, start, 65534),
            (65534, 65534, 1),
            (65535, start + 65534, count - 65534)
        ],
        "{out}"
    );
    assert_eq!(lines[5..9], ["0:0", "0:0", "0:0", "1000:1000"], "{out}");
    assert_eq!(lines[9], "nobody:*:65534:65534:nobody:/:/bin/sh", "{out}");
    assert_eq!(lines[10], "nogroup:x:65534:nobody", "{out}");
    assert_eq!(lines[11], "HOME=/", "{out}");
    // on the host: the subordinate ids, and what the process made is nobody's own
    let rootfs = e.store().join("containers/k1/rootfs");
    let owner = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::symlink_metadata(rootfs.join(p)).unwrap();
        (md.uid() as u64, md.gid() as u64)
    };
    assert_eq!(owner("bin/busybox"), (start, start));
    assert_eq!(owner("srv/owned"), (start + 1000, start + 1000));
    assert_eq!(owner("tmp/made-inside"), (65534, 65534));
    // husk rm (nobody's) removes the rootfs of subordinate ids; the kept anonymous volume (its
    // files the subordinate ids' too) goes with husk volume prune
    as_nobody(&["rm", "--store", &store, "k1"], "rm k1");
    assert_eq!(e.volumes().len(), 1, "k1's anonymous volume");
    as_nobody(&["volume", "--store", &store, "prune"], "volume prune");
    nothing_left("after husk rm of a keep-id container");

    // -d: husk exec, husk restart (through pasta: a new holder with the maps), husk rm -f of a
    // running one, and the monitor's --rm
    let net = if std::path::Path::new("/usr/bin/pasta").exists() {
        "pasta"
    } else {
        "none"
    };
    ok(
        &up(&[
            "-d",
            "--name",
            "k3",
            "--network",
            net,
            "--userns",
            "keep-id",
            IMAGE,
            "sleep",
            "60",
        ]),
        "up -d --userns keep-id",
    );
    let exec_map = || {
        let out = as_nobody(
            &["exec", "k3", "sh", "-c", "id -u; cat /proc/self/uid_map"],
            "exec k3",
        );
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(lines[0], "65534", "{out}");
        assert_eq!(first_map(&lines[2]), (65534, 65534, 1), "{out}");
    };
    exec_map();
    as_nobody(
        &["restart", "--store", &store, "-t", "1", "k3"],
        "restart k3",
    );
    exec_map();
    as_nobody(&["rm", "--store", &store, "-f", "k3"], "rm -f k3");
    as_nobody(&["volume", "--store", &store, "prune"], "volume prune");
    nothing_left("after rm -f of a keep-id container");
    ok(
        &up(&[
            "-d",
            "--rm",
            "--name",
            "k4",
            "--network",
            "none",
            "--userns",
            "nomap",
            IMAGE,
            "true",
        ]),
        "up -d --rm --userns nomap",
    );
    assert!(
        wait_until(Duration::from_secs(20), &|| e.bundles().is_empty()),
        "the monitor's --rm left {:?}",
        e.bundles()
    );
    nothing_left("after the monitor's --rm of a nomap container");

    // nomap: a new named volume belongs to the process's user (root inside), as podman's;
    // husk volume rm removes what root wrote there
    let out = ok(
        &up(&[
            "--rm",
            "--userns",
            "nomap",
            "-v",
            "kv:/data",
            IMAGE,
            "sh",
            "-c",
            "touch /data/x && stat -c %u:%g /data /data/x",
        ]),
        "up --userns nomap -v kv:/data",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0:0", "0:0"], "{out}");
    as_nobody(&["volume", "--store", &store, "rm", "kv"], "volume rm kv");
    nothing_left("after volume rm of a nomap volume");

    // keep-id:uid=1000,gid=1000: the caller at 1000, the process too; --rm removes it all
    let out = ok(
        &up(&[
            "--rm",
            "--userns",
            "keep-id:uid=1000,gid=1000",
            IMAGE,
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map",
        ]),
        "up --userns keep-id:uid=1000,gid=1000",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{out}");
    assert_eq!(first_map(lines[3]), (1000, 65534, 1), "{out}");
    nothing_left("after --rm of keep-id:uid=1000");

    // the added user's home (and HOME): the working directory, or the caller's own home
    // (nobody's /nonexistent) where a mount puts it in the container, as podman writes it
    for (flags, want) in [
        (&["-w", "/tmp"][..], "/tmp"),
        (&["--tmpfs", "/nonexistent"][..], "/nonexistent"),
    ] {
        let mut a = vec!["--rm", "--userns", "keep-id"];
        a.extend_from_slice(flags);
        a.extend([
            IMAGE,
            "sh",
            "-c",
            "echo $HOME; grep ^nobody: /etc/passwd | cut -d: -f6",
        ]);
        let out = ok(&up(&a), &format!("up --userns keep-id {flags:?}"));
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [want, want],
            "{flags:?}: {out}"
        );
    }
    nothing_left("after the homes");

    // -u wins over keep-id's user (podman's)
    let out = ok(
        &up(&[
            "--rm", "--userns", "keep-id", "-u", "0:0", IMAGE, "id", "-u",
        ]),
        "up --userns keep-id -u 0",
    );
    assert_eq!(out.trim(), "0");
    nothing_left("after keep-id -u 0");

    // a numeric -u the image's user database lacks: that uid and gid 0, as docker run and
    // podman give it (no added line for it, the caller's line still added)
    let out = ok(
        &up(&[
            "--rm",
            "--userns",
            "keep-id",
            "-u",
            "1234",
            IMAGE,
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map | wc -l; grep -c :1234: /etc/passwd; \
             grep -c ^nobody: /etc/passwd",
        ]),
        "up --userns keep-id -u 1234",
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1234", "0", "3", "0", "1"],
        "keep-id -u 1234: {out}"
    );
    nothing_left("after keep-id -u 1234");

    // --privileged with keep-id: the keep-id user, no seccomp filter, the caller's whole
    // bounding set (all capabilities of the container's user namespace), /sys writable as
    // Docker's privileged mounts it, the host's devices (podman binds them for a caller without
    // root)
    let caller_bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let out = ok(
        &up(&[
            "--rm",
            "--userns",
            "keep-id",
            "--privileged",
            IMAGE,
            "sh",
            "-c",
            "id -u; grep -E '^(CapBnd|Seccomp):' /proc/self/status | tr -d '\\t'; \
             grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; \
             test -c /dev/kmsg && echo kmsg",
        ]),
        "up --userns keep-id --privileged",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "65534",
            &format!("CapBnd:{caller_bnd}"),
            "Seccomp:0",
            "rw",
            "kmsg"
        ],
        "keep-id --privileged: {out}"
    );
    nothing_left("after keep-id --privileged");

    // nomap: nobody's own id not mapped, root inside is the first subordinate id
    let out = ok(
        &up(&[
            "--rm",
            "--userns",
            "nomap",
            IMAGE,
            "sh",
            "-c",
            "id -u; stat -c %u /bin/busybox; cat /proc/self/uid_map",
        ]),
        "up --userns nomap",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["0", "0"], "{out}");
    let maps: Vec<(u64, u64, u64)> = lines[2..].iter().map(|l| first_map(l)).collect();
    assert_eq!(maps, [(0, start, count)], "{out}");
    assert!(
        !maps.iter().any(|(_, h, n)| (*h..h + n).contains(&65534)),
        "nobody's own id mapped: {out}"
    );
    nothing_left("after --rm of nomap");

    // through pasta and slirp4netns: the holder of the network namespace has the container's
    // maps, and the helper its tap device there
    for (helper, package) in [("pasta", "passt"), ("slirp4netns", "slirp4netns")] {
        if !std::path::Path::new("/usr/bin").join(helper).exists() {
            skip_part(
                &format!("up_rootless_userns_keep_id_and_nomap/{helper}"),
                &format!("{helper} is not installed (package {package})"),
            );
            continue;
        }
        for (mode, want) in [("keep-id", (65534, 65534, 1)), ("nomap", (0, start, count))] {
            let out = ok(
                &up(&[
                    "--rm",
                    "--network",
                    helper,
                    "--userns",
                    mode,
                    IMAGE,
                    "sh",
                    "-c",
                    "cat /proc/self/uid_map; ip -o link show | grep -c ': '",
                ]),
                &format!("up --network {helper} --userns {mode}"),
            );
            let lines: Vec<&str> = out.lines().collect();
            assert!(
                lines
                    .iter()
                    .any(|l| l.split_whitespace().count() == 3 && first_map(l) == want),
                "{mode} through {helper}: {out}"
            );
            // loopback and the helper's tap device
            assert_eq!(
                lines.last().copied(),
                Some("2"),
                "{mode} through {helper}: {out}"
            );
            nothing_left(&format!("after {helper} with {mode}"));
        }
    }

    // refused after the unpack (-u outside the mapping): the rootfs removed all the same
    let o = up(&[
        "--rm", "--name", "k2", "--userns", "nomap", "-u", "300000", IMAGE, "true",
    ]);
    assert!(!o.status.success(), "-u 300000 in 200000 ids accepted");
    let err = text(&o.stderr);
    assert!(
        err.contains("uid 300000 is outside the container's user namespace"),
        "{err}"
    );
    nothing_left("after -u outside the nomap ids");
    // keep-id:uid= beyond the ids the mapping holds: refused by name before anything is made
    let o = up(&["--rm", "--userns", "keep-id:uid=300000", IMAGE, "true"]);
    assert!(!o.status.success(), "keep-id:uid=300000 accepted");
    assert!(
        text(&o.stderr).contains("uid=300000 is beyond"),
        "{}",
        text(&o.stderr)
    );
    nothing_left("after keep-id:uid=300000");

    // SIGKILLed at random moments (the unpack in its user namespace among them): husk rm -f
    // of nobody's leaves nothing (the unpack dies with husk up, nothing writes meanwhile)
    let seed = seed_from_env("HUSK_FAULT_SEED");
    eprintln!("keep-id kill: seed {seed} (HUSK_FAULT_SEED={seed} replays)");
    let mut rng = Rng(seed);
    let mut problems = Vec::new();
    for i in 0..12 {
        let name = format!("kk{i}");
        let mode = ["keep-id", "nomap"][i % 2];
        let delay = Duration::from_millis(rng.below(400));
        let mut c = e.husk_rootless(
            &ns,
            path,
            &[
                "up",
                "--store",
                &store,
                "--pull",
                "never",
                "--network",
                "none",
                "--name",
                &name,
                "--userns",
                mode,
                IMAGE,
                "sleep",
                "100",
            ],
        );
        kill_after(&mut c, delay);
        let o = run_timeout(
            &mut e.husk_rootless(&ns, path, &["rm", "--store", &store, "-f", &name]),
            CMD_TIMEOUT,
        );
        let err = text(&o.stderr);
        if !o.status.success() && !err.contains("no such container") {
            problems.push(format!(
                "{name} {mode} (killed after {delay:?}): rm -f: {err}"
            ));
        }
        if e.bundles().contains(&name) || e.containers().contains(&name) {
            problems.push(format!("{name} {mode} (killed after {delay:?}): left"));
        }
    }
    assert_no_problems(Some(seed), &problems);
    // (their anonymous volumes, kept by rm -f as by docker rm)
    as_nobody(&["volume", "--store", &store, "prune"], "volume prune");
    nothing_left("after the SIGKILLed husk ups");
}
