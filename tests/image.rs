//! `husk image`: pulls from Debian's docker-registry (started here on a loopback port with its
//! own storage) and from a small registry written here (for Bearer tokens and for answers a real
//! registry never gives: wrong digests, short blobs, odd media types), images built with umoci
//! or written as an OCI layout by hand and pushed with skopeo, unpacked bundles run with husk,
//! and husk's rootfs compared with `umoci unpack` of the same image.

mod common;
use common::*;
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_LAYER_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn need_tools(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    for t in ["docker-registry", "skopeo", "umoci"] {
        if Command::new(t).arg("--version").output().is_err() {
            skip(test, &format!("{t} is not installed (make deps)"));
            return false;
        }
    }
    true
}

fn sha(b: &[u8]) -> String {
    let h = Sha256::digest(b);
    let mut s = String::from("sha256:");
    for x in h.iter() {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tmpdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("husk-img-{tag}-"))
        .tempdir()
        .unwrap()
}

/// `husk image --store STORE ARGS…`
fn husk(store: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(runtime());
    c.arg("image").arg("--store").arg(store).args(args);
    run_timeout(&mut c, Duration::from_secs(120))
}

fn husk_ok(store: &Path, args: &[&str]) -> String {
    let o = husk(store, args);
    assert!(
        o.status.success(),
        "husk image {args:?} failed: {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    text(&o.stdout)
}

fn husk_err(store: &Path, args: &[&str]) -> String {
    let o = husk(store, args);
    assert_eq!(
        code(&o.status),
        1,
        "husk image {args:?} should fail with 1: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stderr)
}

fn run_ok(cmd: &mut Command) -> String {
    let o = run_timeout(cmd, Duration::from_secs(120));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    text(&o.stdout)
}

/// The store holds nothing half-written: no index entries (unless `entries`), no temp files,
/// and every blob's content matches its name.
fn assert_store_consistent(store: &Path, entries: usize) {
    let idx: Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), entries, "{idx}");
    for e in std::fs::read_dir(store.join("tmp")).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".partial"), "temp file left: {n}");
    }
    for e in std::fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            sha(&data),
            format!("sha256:{}", e.file_name().to_string_lossy()),
            "blob content does not match its name"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Debian's docker-registry on a loopback port

struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        let dir = tmpdir("registry");
        let port = free_port();
        let mut auth = String::new();
        if let Some((user, pass)) = htpasswd {
            let file = dir.path().join("htpasswd");
            run_ok(
                Command::new("htpasswd")
                    .args(["-Bbc"])
                    .arg(&file)
                    .args([user, pass]),
            );
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                file.display()
            );
        }
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy oci:LAYOUT:TAG docker://HOST/REPO` (format: None = as is, or "v2s2").
    fn push(
        &self,
        layout: &Path,
        tag: &str,
        repo: &str,
        format: Option<&str>,
        creds: Option<&str>,
    ) {
        let mut c = Command::new("skopeo");
        c.args(["copy", "--dest-tls-verify=false"]);
        if let Some(f) = format {
            c.args(["--format", f]);
        }
        if let Some(cr) = creds {
            c.args(["--dest-creds", cr]);
        }
        c.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}", self.host()));
        run_ok(&mut c);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // by pid: the registry we started
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// hand-written tar layers and OCI layouts

#[derive(Default, Clone)]
struct Ent {
    name: String,
    kind: u8,
    link: String,
    data: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    dev: (u32, u32),
    pax: Vec<(String, Vec<u8>)>,
}

fn file(name: &str, data: &[u8], mode: u32) -> Ent {
    Ent {
        name: name.into(),
        kind: b'0',
        data: data.to_vec(),
        mode,
        ..Default::default()
    }
}
fn dir(name: &str, mode: u32) -> Ent {
    Ent {
        name: name.into(),
        kind: b'5',
        mode,
        ..Default::default()
    }
}
fn symlink(name: &str, target: &str) -> Ent {
    Ent {
        name: name.into(),
        kind: b'2',
        link: target.into(),
        mode: 0o777,
        ..Default::default()
    }
}
fn hardlink(name: &str, target: &str) -> Ent {
    Ent {
        name: name.into(),
        kind: b'1',
        link: target.into(),
        ..Default::default()
    }
}

fn header(name: &str, kind: u8, link: &str, size: usize, e: &Ent) -> [u8; 512] {
    let mut h = [0u8; 512];
    assert!(
        name.len() <= 100 && link.len() <= 100,
        "name too long for this writer"
    );
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |buf: &mut [u8], v: u64| {
        let s = format!("{:0w$o}\0", v, w = buf.len() - 1);
        buf.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], e.mode as u64);
    octal(&mut h[108..116], e.uid as u64);
    octal(&mut h[116..124], e.gid as u64);
    octal(&mut h[124..136], size as u64);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], e.dev.0 as u64);
    octal(&mut h[337..345], e.dev.1 as u64);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A tar stream of `ents`, written by hand so names like `../x` can be made.
fn tar(ents: &[Ent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in ents {
        if !e.pax.is_empty() {
            let mut rec = Vec::new();
            for (k, v) in &e.pax {
                let body_len = k.len() + v.len() + 3; // ' ' '=' '\n'
                let mut n = body_len + 1;
                while n.to_string().len() + body_len != n {
                    n += 1;
                }
                rec.extend_from_slice(format!("{n} {k}=").as_bytes());
                rec.extend_from_slice(v);
                rec.push(b'\n');
            }
            out.extend_from_slice(&header("PaxHeader", b'x', "", rec.len(), &Ent::default()));
            out.extend_from_slice(&rec);
            pad(&mut out);
        }
        out.extend_from_slice(&header(&e.name, e.kind, &e.link, e.data.len(), e));
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// An image: manifest bytes, its digest, and every blob (config and gzipped layers).
struct Img {
    manifest: Vec<u8>,
    digest: String,
    blobs: HashMap<String, Vec<u8>>,
}

fn image(layers: &[Vec<u8>], config: Value) -> Img {
    let mut blobs = HashMap::new();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let z = gz(l);
        diff_ids.push(sha(l));
        descs.push(json!({"mediaType": MT_LAYER_GZ, "digest": sha(&z), "size": z.len()}));
        blobs.insert(sha(&z), z);
    }
    let cfg = json!({
        "created": "2026-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let cfg = serde_json::to_vec(&cfg).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha(&cfg), "size": cfg.len()},
        "layers": descs,
    }))
    .unwrap();
    blobs.insert(sha(&cfg), cfg);
    Img {
        digest: sha(&manifest),
        manifest,
        blobs,
    }
}

/// Write `img` as an OCI layout at `dir` under `tag`.
fn write_layout(dir: &Path, tag: &str, img: &Img) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut all = img.blobs.clone();
    all.insert(img.digest.clone(), img.manifest.clone());
    for (d, b) in &all {
        std::fs::write(dir.join("blobs/sha256").join(&d[7..]), b).unwrap();
    }
    let idx = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// a small registry written here: Bearer tokens, and answers a real registry never gives

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn resp(status: u16, ct: &str, body: Vec<u8>) -> Resp {
    Resp {
        status,
        headers: vec![("Content-Type".into(), ct.into())],
        body,
    }
}

struct Req {
    path: String,
    headers: HashMap<String, String>,
}

type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

struct Fake {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start(handler: Handler) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                        serve(c, &handler, &seen2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Fake {
            port,
            stop,
            thread: Some(thread),
            seen,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(c: TcpStream, handler: &Handler, seen: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    seen.lock().unwrap().push(format!(
        "{path} auth={}",
        headers.get("authorization").cloned().unwrap_or_default()
    ));
    let resp = handler(&Req { path, headers });
    let mut w = c;
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", resp.status);
    let mut has_len = false;
    for (k, v) in &resp.headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    head.push_str("\r\n");
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(&resp.body);
}

/// A handler serving `img` as `REPO:TAG` (manifest by tag or digest, blobs by digest), with
/// `tamper` given a chance to change any answer.
fn serve_image(
    repo: &str,
    tag: &str,
    img: Img,
    extra: HashMap<String, (String, Vec<u8>)>,
) -> impl Fn(&Req) -> Resp + Send + Sync {
    let prefix = format!("/v2/{repo}/");
    let tag = tag.to_string();
    move |q: &Req| {
        let Some(rest) = q.path.strip_prefix(&prefix) else {
            return resp(404, "text/plain", b"not here".to_vec());
        };
        if let Some(r) = rest.strip_prefix("manifests/") {
            if let Some((ct, body)) = extra.get(r) {
                return resp(200, ct, body.clone());
            }
            if r == tag || r == img.digest {
                return resp(200, MT_MANIFEST, img.manifest.clone());
            }
        }
        if let Some(d) = rest.strip_prefix("blobs/") {
            if let Some(b) = img.blobs.get(d) {
                return resp(200, "application/octet-stream", b.clone());
            }
        }
        resp(
            404,
            "application/json",
            br#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#.to_vec(),
        )
    }
}

fn small_image() -> Img {
    image(
        &[tar(&[
            dir("etc/", 0o755),
            file("etc/hello", b"hello\n", 0o644),
        ])],
        json!({"Cmd": ["/bin/true"]}),
    )
}

// ---------------------------------------------------------------------------------------------

/// A new user's path: an image built with umoci from the test rootfs, pushed to the registry
/// (OCI and Docker schema 2), pulled, unpacked, and run with husk: the image's program runs as
/// the image's User (resolved in its /etc/passwd and /etc/group), in its WorkingDir, with its Env.
#[test]
fn pull_unpack_run() {
    if !need_tools("pull_unpack_run") {
        return;
    }
    let reg = Registry::start(None);
    let work = tmpdir("run");
    let layout = work.path().join("layout");
    let l = format!("{}:t", layout.display());
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    );
    run_ok(Command::new("umoci").args(["new", "--image", &l]));
    run_ok(
        Command::new("umoci")
            .args(["insert", "--image", &l])
            .arg(testroot())
            .arg("/"),
    );
    let etc = work.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\napp:x:1001:\naudio:x:29:app\n",
    )
    .unwrap();
    run_ok(
        Command::new("umoci")
            .args(["insert", "--image", &l])
            .arg(&etc)
            .arg("/etc"),
    );
    run_ok(Command::new("umoci").args([
        "config",
        "--image",
        &l,
        "--config.entrypoint=/probe",
        "--config.env=FOO=bar",
        "--config.workingdir=/tmp",
        "--config.user=app",
        "--config.label=org.example.purpose=test",
        "--config.stopsignal=SIGUSR1",
    ]));
    reg.push(&layout, "t", "test/app:oci", None, None);
    reg.push(&layout, "t", "test/app:docker", Some("v2s2"), None);

    let store = work.path().join("store");
    let oci_ref = format!("{}/test/app:oci", reg.host());
    let docker_ref = format!("{}/test/app:docker", reg.host());
    let d1 = husk_ok(&store, &["pull", &oci_ref]).trim().to_string();
    let d2 = husk_ok(&store, &["pull", "-q", &docker_ref])
        .trim()
        .to_string();
    assert!(d1.starts_with("sha256:") && d2.starts_with("sha256:") && d1 != d2);
    let inspect: Value = serde_json::from_str(&husk_ok(&store, &["inspect", &docker_ref])).unwrap();
    assert_eq!(
        inspect["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspect["config"]["config"]["User"], "app");
    // by digest too
    let by_digest = format!("{}/test/app@{d1}", reg.host());
    husk_ok(&store, &["pull", "-q", &by_digest]);
    let ls: Value = serde_json::from_str(&husk_ok(&store, &["ls", "--format", "json"])).unwrap();
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{ls}");
    assert!(names.contains(&by_digest.as_str()) && names.contains(&oci_ref.as_str()));
    let q = husk_ok(&store, &["ls", "-q"]);
    assert_eq!(q.lines().count(), 3);
    assert!(husk_ok(&store, &["ls"]).starts_with("REFERENCE"));

    // unpack into a harness container's bundle and run it
    let mut ctr = Ctr::with_config("image-run", json!({}));
    std::fs::remove_dir_all(ctr.rootfs()).unwrap();
    husk_ok(
        &store,
        &["unpack", &docker_ref, ctr.bundle.to_str().unwrap()],
    );
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(ctr.bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.stopSignal"],
        "SIGUSR1"
    );
    assert_eq!(cfg["annotations"]["org.example.purpose"], "test");
    assert_eq!(cfg["process"]["args"], json!(["/probe"]));
    let cgroup = ctr.config["linux"]["cgroupsPath"].clone();
    ctr.config = cfg;
    ctr.config["linux"]["cgroupsPath"] = cgroup;
    let v = ctr.run_probe();
    assert_eq!(
        (v["uid"].as_u64(), v["gid"].as_u64()),
        (Some(1000), Some(1001)),
        "{v}"
    );
    assert!(v["groups"].as_array().unwrap().contains(&json!(29)), "{v}");
    assert_eq!(v["cwd"], "/tmp");
    let env: Vec<&str> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        env.contains(&"FOO=bar") && env.contains(&"HOME=/home/app"),
        "{env:?}"
    );

    // tag, rm: shared blobs stay while a name needs them, go with the last one
    husk_ok(&store, &["tag", &oci_ref, "local/copy:1"]);
    assert!(husk_ok(&store, &["ls", "-q"]).contains("docker.io/local/copy:1"));
    husk_ok(&store, &["rm", &oci_ref, &by_digest, &docker_ref]);
    let unpack2 = work.path().join("b2");
    husk_ok(
        &store,
        &["unpack", "local/copy:1", unpack2.to_str().unwrap()],
    );
    assert!(unpack2.join("rootfs/probe").is_file());
    husk_ok(&store, &["rm", "local/copy:1"]);
    assert_store_consistent(&store, 0);
    assert_eq!(
        std::fs::read_dir(store.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    let e = husk_err(
        &store,
        &[
            "unpack",
            "local/copy:1",
            work.path().join("b3").to_str().unwrap(),
        ],
    );
    assert!(
        e.contains("docker.io/local/copy:1 is not in the store"),
        "{e}"
    );
    assert!(!work.path().join("b3").exists());
}
