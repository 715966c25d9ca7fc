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
        let dir = tempfile::Builder::new()
            .prefix(&format!("husk-test-up-{tag}-"))
            .tempdir_in("/tmp")
            .unwrap();
        let store = dir.path().join("store");
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", testroot()).unwrap();
        let layer = b.into_inner().unwrap();
        let cfg = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin:/sbin", "FROM_IMAGE=1"], "Cmd": ["/probe"],
                       "ExposedPorts": {"8000/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": [sha(&layer)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(&cfg), "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(&layer), "size": layer.len()}],
        }))
        .unwrap();
        let blobs = store.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        for b in [&layer, &cfg, &manifest] {
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

    fn up(&self, args: &[&str]) -> Output {
        let store = self.store();
        let mut a = vec!["up", "--store", store.to_str().unwrap(), "--pull", "never"];
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
        // whatever a failed test left: containers by their ids, then the mounts
        for id in self.containers() {
            let _ = self.husk(&["delete", "-f", &id]);
        }
        for m in mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
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
        links(&[]),
        ["lo"],
        "the default network is none: loopback only"
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
        (&["--rm", "--network", "bridge", IMAGE, "true"], "--network"),
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

/// A network namespace of the test's own, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("hk-up-{}", std::process::id());
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
                    &format!("http://127.0.0.1:{port}/index.html"),
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
    let e = Env::new("pub");
    let ns = Netns::new();
    let dirs = e.dir.path();
    let husk_in_ns = |args: &[&str]| {
        let mut c = ns.cmd(runtime().to_str().unwrap());
        c.arg("--root")
            .arg(e.root())
            .args(args)
            .env("HUSK_NETWORK_DIR", dirs.join("netconf"))
            .env("HUSK_CNI_CONFIG_DIR", dirs.join("cni"))
            .env("HUSK_NETWORK_RUN_DIR", dirs.join("netrun"))
            .env("CNI_PATH", "/usr/lib/cni");
        c
    };
    let o = run_timeout(
        &mut husk_in_ns(&["network", "create", "--subnet", "10.89.77.0/24", "upweb"]),
        CMD_TIMEOUT,
    );
    ok(&o, "network create");
    let links_before = text(&ns.cmd("ip").args(["-o", "link"]).output().unwrap().stdout);
    let store = e.store();
    let script = web("hello-from-up");
    let mut up = husk_in_ns(&[
        "up",
        "--store",
        store.to_str().unwrap(),
        "--pull",
        "never",
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
        got, "hello-from-up\n",
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
    let records: Vec<_> = std::fs::read_dir(dirs.join("netrun"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("web"))
        .collect();
    assert!(records.is_empty(), "attachment records left: {records:?}");
    let rules = text(&ns.cmd("iptables-save").output().unwrap().stdout);
    assert!(!rules.contains("8080"), "port rules left: {rules}");
    // -P: the exposed 8000/tcp on a free host port, which husk up names on stderr
    let script = web("hello-from-P");
    let mut up = husk_in_ns(&[
        "up",
        "--store",
        store.to_str().unwrap(),
        "--pull",
        "never",
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
    // -p without a network to publish on is refused by name
    let o = e.up(&["--rm", "-p", "8080:80", IMAGE, "true"]);
    assert!(text(&o.stderr).contains("-p"), "{}", text(&o.stderr));
    e.assert_clean("after a refused -p");
}
