//! `husk image`: pulls from Debian's docker-registry (started here on a loopback port with its
//! own storage) and from a small registry written here (for Bearer tokens and for answers a real
//! registry never gives: wrong digests, short blobs, odd media types), images built with umoci
//! or written as an OCI layout by hand and pushed with skopeo, unpacked bundles run with husk,
//! and husk's rootfs compared with `umoci unpack` of the same image.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";

use common::images::*;

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
    let layers: Vec<(String, Vec<u8>, String)> = layers
        .iter()
        .map(|l| (MT_LAYER_GZ.to_string(), gz(l), sha(l)))
        .collect();
    image_of(layers, config)
}

/// An image from layer blobs as given: (media type, blob, diff_id).
fn image_of(layers: Vec<(String, Vec<u8>, String)>, config: Value) -> Img {
    let mut blobs = HashMap::new();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (mt, blob, diff_id) in layers {
        diff_ids.push(diff_id);
        descs.push(json!({"mediaType": mt, "digest": sha(&blob), "size": blob.len()}));
        blobs.insert(sha(&blob), blob);
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
    // a blob that stops half way and closes (a connection reset mid-transfer)
    if resp.headers.iter().any(|(k, _)| k == "X-Cut") {
        let _ = w.write_all(&resp.body[..resp.body.len() / 2]);
        return;
    }
    // a blob that stops half way and stays open (a registry or network that dies mid-transfer)
    if resp.headers.iter().any(|(k, _)| k == "X-Stall") {
        let _ = w.write_all(&resp.body[..resp.body.len() / 2]);
        let _ = w.flush();
        std::thread::sleep(Duration::from_secs(3));
        return;
    }
    let _ = w.write_all(&resp.body);
}

/// A handler serving `img` as `REPO:TAG` (manifest by tag or digest, blobs by digest), and the
/// `extra` manifests by tag (content type, body).
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

/// A fake registry serving `img` as `REPO:t` that, once the flag it returns is set, changes a
/// byte of the blob `layer`'s gzip header MTIME: decompression and content unchanged, the
/// digest wrong.
fn serve_tampered(repo: &str, img: Img, layer: &str) -> (Fake, Arc<AtomicBool>) {
    let tamper = Arc::new(AtomicBool::new(false));
    let inner = serve_image(repo, "t", img, HashMap::new());
    let (t2, layer) = (tamper.clone(), layer.to_string());
    let fake = Fake::start(Arc::new(move |q: &Req| {
        let mut r = inner(q);
        if t2.load(Ordering::SeqCst) && q.path.ends_with(&layer) {
            r.body[4] ^= 0x5a;
        }
        r
    }));
    (fake, tamper)
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
    if !need_tools("pull_unpack_run", &["docker-registry", "skopeo", "umoci"]) {
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
    reg.skopeo_push(&layout, "t", "test/app:oci", None, None);
    reg.skopeo_push(&layout, "t", "test/app:docker", Some("v2s2"), None);

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
    // a digest prefix names the image too; a malformed reference is a clear error
    let by_prefix: Value =
        serde_json::from_str(&husk_ok(&store, &["inspect", &d1[7..19]])).unwrap();
    assert_eq!(by_prefix["digest"], d1.as_str());
    let e = husk_err(&store, &["pull", "Bad/Name"]);
    assert!(
        e.contains("invalid image reference") && e.contains("Bad/Name"),
        "{e}"
    );
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
    // the store is an OCI layout skopeo and umoci read
    let sk: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{oci_ref}", store.display())),
    ))
    .unwrap();
    assert_eq!(sk["Digest"], d1.as_str());
    let um = run_ok(Command::new("umoci").args(["ls", "--layout"]).arg(&store));
    assert!(um.lines().any(|l| l == docker_ref), "{um}");
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
    // husk up pulls as `image pull` does: a line per blob when stderr is no terminal, none
    // with -q (docker run's flag)
    let s = store.to_str().unwrap();
    let up = |quiet: bool| {
        let mut c = Command::new(runtime());
        c.args(["--root", work.path().join("up-root").to_str().unwrap()]);
        c.args([
            "up",
            "--store",
            s,
            "--rm",
            "--network",
            "none",
            "--pull",
            "always",
        ]);
        if quiet {
            c.arg("-q");
        }
        c.arg(&oci_ref);
        run_timeout(&mut c, Duration::from_secs(120))
    };
    let o = up(false);
    assert!(o.status.success(), "husk up: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("sha256:"), "{}", text(&o.stderr));
    let o = up(true);
    assert!(o.status.success(), "husk up -q: {}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "", "husk up -q prints nothing of the pull");
    husk_ok(&store, &["rm", &oci_ref]);
}

/// Everything a layer can hold, applied by husk and by `umoci unpack` from the same OCI layout:
/// the same tree (paths, types, modes, owners, sizes, mtimes, link targets, link counts,
/// contents, security.capability).
#[test]
fn unpack_matches_umoci() {
    if !need_tools(
        "unpack_matches_umoci",
        &["docker-registry", "skopeo", "umoci"],
    ) {
        return;
    }
    let work = tmpdir("interop");
    let base = run_timeout(
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "-C"])
            .arg(testroot())
            .args(["-cf", "-", "."]),
        Duration::from_secs(60),
    );
    assert!(base.status.success());
    let l2 = tar(&[
        dir("opt/", 0o755),
        dir("opt/d/", 0o750),
        file("opt/d/old", b"old", 0o644),
        file("opt/gone", b"gone", 0o644),
        file("opt/stay", b"stay", 0o644),
    ]);
    // vfs_cap_data revision 2: CAP_NET_RAW permitted + effective
    let cap: Vec<u8> = [
        0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]
    .to_vec();
    let l3 = tar(&[
        file("opt/.wh.gone", b"", 0o644),
        dir("opt/d/", 0o755),
        file("opt/d/.wh..wh..opq", b"", 0o644),
        file("opt/d/new", b"new", 0o600),
        hardlink("opt/hl", "opt/stay"),
        symlink("opt/sl", "../etc/passwd"),
        Ent {
            name: "opt/null".into(),
            kind: b'3',
            mode: 0o666,
            dev: (1, 3),
            ..Default::default()
        },
        Ent {
            name: "opt/fifo".into(),
            kind: b'6',
            mode: 0o640,
            ..Default::default()
        },
        Ent {
            uid: 1234,
            gid: 5678,
            ..file("opt/owned", b"mine", 0o640)
        },
        file("opt/suid", b"#!/bin/sh\n", 0o4755),
        Ent {
            pax: vec![("SCHILY.xattr.security.capability".into(), cap.clone())],
            ..file("opt/cap", b"ping", 0o755)
        },
        file("bin/.wh.acpid", b"", 0o644),
    ]);
    let img = image(&[base.stdout, l2, l3], json!({"Cmd": ["/probe"]}));
    let layout = work.path().join("layout");
    write_layout(&layout, "t", &img);
    let umoci_bundle = work.path().join("umoci");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:t", layout.display()))
            .arg(&umoci_bundle),
    );

    let reg = Registry::start(None);
    reg.skopeo_push(&layout, "t", "interop/img:1", None, None);
    let store = work.path().join("store");
    husk_ok(
        &store,
        &["pull", "-q", &format!("{}/interop/img:1", reg.host())],
    );
    let husk_bundle = work.path().join("husk");
    husk_ok(
        &store,
        &[
            "unpack",
            &format!("{}/interop/img:1", reg.host()),
            husk_bundle.to_str().unwrap(),
        ],
    );

    let listing = |root: &Path| {
        run_ok(
            Command::new("find")
                .arg(".")
                .args(["-printf", "%p %y %m %U %G %s %n %T@ %l\\n"])
                .current_dir(root),
        )
        .lines()
        .map(String::from)
        .filter(|l| !l.starts_with(". ")) // the root: umoci makes it 0700 itself
        .collect::<std::collections::BTreeSet<_>>()
    };
    let (u, h) = (umoci_bundle.join("rootfs"), husk_bundle.join("rootfs"));
    let (lu, lh) = (listing(&u), listing(&h));
    let only_u: Vec<_> = lu.difference(&lh).collect();
    let only_h: Vec<_> = lh.difference(&lu).collect();
    assert!(
        only_u.is_empty() && only_h.is_empty(),
        "umoci only: {only_u:#?}\nhusk only: {only_h:#?}"
    );
    assert!(lh.len() > 100, "a tree was unpacked");
    // contents of every regular file
    for l in &lh {
        let mut f = l.split(' ');
        let (p, t) = (f.next().unwrap(), f.next().unwrap());
        if t == "f" {
            assert_eq!(
                std::fs::read(u.join(p)).unwrap(),
                std::fs::read(h.join(p)).unwrap(),
                "{p}"
            );
        }
    }
    // the things this test is about, explicitly
    assert!(!h.join("opt/gone").exists() && !h.join("bin/acpid").exists());
    assert!(!h.join("opt/d/old").exists() && h.join("opt/d/new").exists());
    let getcap = |p: &Path| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        // SAFETY: c is NUL-terminated, buf is a live buffer of the given length.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                c"security.capability".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert!(n > 0, "no security.capability on {}", p.display());
        buf[..n as usize].to_vec()
    };
    assert_eq!(getcap(&h.join("opt/cap")), cap);
    assert_eq!(getcap(&u.join("opt/cap")), getcap(&h.join("opt/cap")));
}

/// Layers crafted like the umoci, containerd and moby archive advisories: path traversal,
/// absolute and chained symlinks written through, a directory replaced by a symlink to the host
/// and then written through, a hardlink to a host file. Nothing outside the bundle changes.
#[test]
fn malicious_layers_stay_inside() {
    if !need_tools(
        "malicious_layers_stay_inside",
        &["docker-registry", "skopeo", "umoci"],
    ) {
        return;
    }
    let work = tmpdir("evil");
    let host = tmpdir("evil-host");
    let hp = host.path().to_str().unwrap().to_string();
    std::fs::write(host.path().join("secret"), b"host secret").unwrap();
    let host_listing = || {
        run_ok(
            Command::new("find")
                .arg(host.path())
                .args(["-printf", "%p %y %s %n %T@\\n"]),
        )
    };
    let before = host_listing();
    let hrel = &hp[1..];
    let ups = "../../../../../../../../..";
    let l1 = tar(&[
        file(&format!("{ups}{hp}/traversal"), b"x", 0o644),
        symlink("abs", &hp),
        file("abs/through-abs", b"x", 0o644),
        symlink("a/up", ups),
        symlink("a/chain", "up/tmp/../"),
        file(&format!("a/chain/{hrel}/through-chain"), b"x", 0o644),
        dir("etc/", 0o755),
        file("etc/hosts", b"x", 0o644),
    ]);
    let l2 = tar(&[
        symlink("etc", &hp),
        file("etc/through-replaced-dir", b"x", 0o644),
        dir("etc/made-dir/", 0o755),
        symlink("secret-link", &format!("{hp}/secret")),
        file("secret-link", b"replaced the link, not the target", 0o644),
    ]);
    let evil = image(&[l1, l2], json!({"Cmd": ["/x"]}));
    let hard = image(
        &[tar(&[hardlink("h", &format!("{hp}/secret"))])],
        json!({"Cmd": ["/x"]}),
    );
    let reg = Registry::start(None);
    for (name, img) in [("evil", &evil), ("hard", &hard)] {
        let layout = work.path().join(name);
        write_layout(&layout, "t", img);
        reg.skopeo_push(&layout, "t", &format!("evil/{name}:1"), None, None);
    }
    let store = work.path().join("store");
    let r = format!("{}/evil/evil:1", reg.host());
    husk_ok(&store, &["pull", "-q", &r]);
    let b = work.path().join("b");
    husk_ok(&store, &["unpack", &r, b.to_str().unwrap()]);
    assert_eq!(host_listing(), before, "the host directory changed");
    assert_eq!(
        std::fs::read(host.path().join("secret")).unwrap(),
        b"host secret"
    );
    // each write landed at its in-root place
    let inside = b.join("rootfs").join(hrel);
    for f in [
        "traversal",
        "through-abs",
        "through-chain",
        "through-replaced-dir",
    ] {
        assert!(inside.join(f).is_file(), "{f} not inside the rootfs");
    }
    assert!(inside.join("made-dir").is_dir());
    assert_eq!(
        std::fs::read(b.join("rootfs/secret-link")).unwrap(),
        b"replaced the link, not the target"
    );

    let r = format!("{}/evil/hard:1", reg.host());
    husk_ok(&store, &["pull", "-q", &r]);
    let b2 = work.path().join("b2");
    let e = husk_err(&store, &["unpack", &r, b2.to_str().unwrap()]);
    assert!(
        e.contains("hardlink target") && e.contains(&hard.manifest_layer(0)),
        "{e}"
    );
    assert!(!b2.exists(), "a failed unpack left {}", b2.display());
    assert_eq!(host_listing(), before);
}

impl Img {
    fn manifest_layer(&self, i: usize) -> String {
        let m: Value = serde_json::from_slice(&self.manifest).unwrap();
        m["layers"][i]["digest"].as_str().unwrap().to_string()
    }
}

/// Answers a real registry never gives: each is a clear error naming the reference and the
/// digest, and the store stays consistent with nothing half-stored.
#[test]
fn bad_registry_answers() {
    if !need_husk("bad_registry_answers") {
        return;
    }
    let work = tmpdir("bad");
    let store = work.path().join("store");
    let img = small_image();
    let layer = img.manifest_layer(0);
    let other = image(&[tar(&[file("x", b"y", 0o644)])], json!({"Cmd": ["/x"]}));
    let index = |plats: &[(&str, &str)]| {
        let m: Vec<Value> = plats
            .iter()
            .map(|(arch, d)| {
                json!({"mediaType": MT_MANIFEST, "digest": d, "size": img.manifest.len(),
                       "platform": {"os": "linux", "architecture": arch}})
            })
            .collect();
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": m}))
            .unwrap()
    };
    let lz4_manifest = {
        let mut m: Value = serde_json::from_slice(&img.manifest).unwrap();
        m["layers"][0]["mediaType"] = json!("application/vnd.example.layer.v1.tar+lz4");
        serde_json::to_vec(&m).unwrap()
    };
    let extra: HashMap<String, (String, Vec<u8>)> = HashMap::from([
        (
            "odd".into(),
            (
                "application/vnd.example.thing+json".into(),
                br#"{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}"#.to_vec(),
            ),
        ),
        (
            "arm-only".into(),
            (MT_INDEX.into(), index(&[("arm64", &other.digest)])),
        ),
        (
            "multi".into(),
            (
                MT_INDEX.into(),
                index(&[("arm64", &other.digest), ("amd64", &img.digest)]),
            ),
        ),
        ("big".into(), (MT_MANIFEST.into(), vec![b' '; 5 << 20])),
        ("lz4".into(), (MT_MANIFEST.into(), lz4_manifest)),
        (
            format!("sha256:{}", "1".repeat(64)),
            (MT_MANIFEST.into(), img.manifest.clone()),
        ),
    ]);
    let good = Arc::new(serve_image("bad/img", "t", small_image(), extra));
    // the same registry, with the layer blob tampered with per mode
    let mode = Arc::new(Mutex::new(""));
    let (m2, g2, l2) = (mode.clone(), good.clone(), layer.clone());
    let fake = Fake::start(Arc::new(move |q: &Req| {
        let mut r = g2(q);
        if q.path.ends_with(&l2) {
            let m = *m2.lock().unwrap();
            match m {
                "flip" => r.body[20] ^= 0xff,
                "short" => r.body.truncate(r.body.len() / 2),
                "hang" => std::thread::sleep(Duration::from_secs(4)),
                // a registry that is busy once: answered with a retry after a backoff
                "busy-once" => {
                    *m2.lock().unwrap() = "";
                    r = resp(503, "text/plain", b"busy".to_vec());
                }
                "busy" => r = resp(503, "text/plain", b"busy".to_vec()),
                _ => {}
            }
        }
        r
    }));
    let h = fake.host();
    let reff = |t: &str| format!("{h}/bad/img:{t}");
    let set = |m: &'static str| *mode.lock().unwrap() = m;

    set("flip");
    let e = husk_err(&store, &["pull", &reff("t")]);
    assert!(
        e.contains("digest mismatch") && e.contains(&layer) && e.contains(&reff("t")),
        "{e}"
    );
    assert_store_consistent(&store, 0);
    set("short");
    let e = husk_err(&store, &["pull", &reff("t")]);
    assert!(
        e.contains("truncated") && e.contains(&layer) && e.contains(&reff("t")),
        "{e}"
    );
    assert_store_consistent(&store, 0);
    set("hang");
    let t0 = Instant::now();
    let e = husk_err(&store, &["pull", "--timeout", "1", &reff("t")]);
    assert!(
        e.contains(&layer) && e.to_lowercase().contains("timed out"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_store_consistent(&store, 0);
    set("busy");
    let e = husk_err(&store, &["pull", &reff("t")]);
    assert!(e.contains("503") && e.contains(&layer), "{e}");
    assert_store_consistent(&store, 0);
    set("busy-once");
    husk_ok(&store, &["pull", "-q", &reff("t")]);
    husk_ok(&store, &["rm", &reff("t")]);
    assert_store_consistent(&store, 0);
    set("");

    let e = husk_err(&store, &["pull", &reff("odd")]);
    assert!(
        e.contains("application/vnd.example.thing+json") && e.contains(&reff("odd")),
        "{e}"
    );
    let e = husk_err(&store, &["pull", &reff("arm-only")]);
    assert!(
        e.contains("no manifest for platform linux/amd64 (it has: linux/arm64)")
            && e.contains(&reff("arm-only")),
        "{e}"
    );
    let e = husk_err(&store, &["pull", &reff("big")]);
    assert!(e.contains("limit of 4194304"), "{e}");
    let e = husk_err(&store, &["pull", &reff("lz4")]);
    assert!(e.contains("tar+lz4") && e.contains(&layer), "{e}");
    assert_store_consistent(&store, 0);
    // an index: the host's platform is chosen; another one on request
    husk_ok(&store, &["pull", "-q", &reff("multi")]);
    assert_store_consistent(&store, 1);
    let e = husk_err(
        &store,
        &["pull", "--platform", "linux/arm64", &reff("multi")],
    );
    assert!(
        e.contains(&other.digest),
        "the arm64 manifest was asked for: {e}"
    );
    let inspect: Value =
        serde_json::from_str(&husk_ok(&store, &["inspect", &reff("multi")])).unwrap();
    assert_eq!(inspect["digest"], img.digest);
    assert_eq!(inspect["platform"]["architecture"], "amd64");
    // a digest reference answered with another manifest
    let lying = format!("{h}/bad/img@sha256:{}", "1".repeat(64));
    let e = husk_err(&store, &["pull", &lying]);
    assert!(
        e.contains(&format!(
            "answered with a manifest whose digest is {}",
            img.digest
        )),
        "{e}"
    );
    // a digest this registry does not have: a 404 naming it
    let wrong = format!("{h}/bad/img@{}", other.digest);
    let e = husk_err(&store, &["pull", &wrong]);
    assert!(e.contains(&other.digest) && e.contains("404"), "{e}");
    assert_store_consistent(&store, 1);
}

/// Bearer tokens: the 401 challenge names a realm; husk asks it for a pull token with the
/// credentials and retries with the token. A token endpoint that refuses is a clear error.
/// Blobs are redirected to "storage", which must not get the token.
#[test]
fn bearer_token_auth() {
    if !need_husk("bearer_token_auth") {
        return;
    }
    let work = tmpdir("bearer");
    let store = work.path().join("store");
    let inner = serve_image("tok/img", "t", small_image(), HashMap::new());
    let fake = Fake::start(Arc::new(move |q: &Req| {
        let host = q.headers.get("host").cloned().unwrap_or_default();
        if q.path.starts_with("/token") {
            let ok = q.headers.get("authorization").map(String::as_str)
                == Some("Basic YWxpY2U6c2VjcmV0") // alice:secret
                && q.path.contains("service=fake")
                && q.path.contains("scope=repository%3Atok%2Fimg%3Apull");
            return if ok {
                resp(
                    200,
                    "application/json",
                    br#"{"token":"tok-123","expires_in":300}"#.to_vec(),
                )
            } else {
                resp(401, "application/json", b"{}".to_vec())
            };
        }
        // blobs live in "storage" the registry redirects to; it must not see the token
        if let Some(d) = q.path.strip_prefix("/storage/") {
            if q.headers.contains_key("authorization") {
                return resp(403, "text/plain", b"credentials sent to storage".to_vec());
            }
            let path = format!("/v2/tok/img/blobs/{d}");
            return inner(&Req {
                path,
                headers: HashMap::new(),
            });
        }
        if q.headers.get("authorization").map(String::as_str) != Some("Bearer tok-123") {
            let mut r = resp(
                401,
                "application/json",
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}"#.to_vec(),
            );
            r.headers.push((
                "WWW-Authenticate".into(),
                format!(r#"Bearer realm="http://{host}/token",service="fake",scope="repository:tok/img:pull""#),
            ));
            return r;
        }
        if let Some(d) = q.path.strip_prefix("/v2/tok/img/blobs/") {
            let mut r = resp(307, "text/plain", Vec::new());
            r.headers
                .push(("Location".into(), format!("http://{host}/storage/{d}")));
            return r;
        }
        inner(q)
    }));
    let r = format!("{}/tok/img:t", fake.host());
    let e = husk_err(&store, &["pull", &r]);
    assert!(
        e.contains("token endpoint") && e.contains("401") && e.contains("no credentials"),
        "{e}"
    );
    let e = husk_err(&store, &["pull", "--creds", "alice:wrong", &r]);
    assert!(e.contains("token endpoint") && e.contains("alice"), "{e}");
    assert_store_consistent(&store, 0);
    husk_ok(&store, &["pull", "-q", "--creds", "alice:secret", &r]);
    assert_store_consistent(&store, 1);
    let seen = fake.seen.lock().unwrap().clone();
    let tokens = seen.iter().filter(|s| s.starts_with("/token")).count();
    let with_bearer = seen
        .iter()
        .filter(|s| s.ends_with("auth=Bearer tok-123"))
        .count();
    // one token per pull of this repository, reused for the manifest and both blobs
    assert_eq!(tokens, 3, "{seen:#?}");
    assert_eq!(with_bearer, 3, "{seen:#?}");
    // both blobs came from storage through the redirect, without the token
    let storage: Vec<&String> = seen.iter().filter(|s| s.starts_with("/storage/")).collect();
    assert_eq!(storage.len(), 2, "{seen:#?}");
    assert!(storage.iter().all(|s| s.ends_with("auth=")), "{seen:#?}");
}

/// Basic auth (docker-registry with htpasswd): no credentials, wrong ones, right ones from
/// --creds and from $REGISTRY_AUTH_FILE.
#[test]
fn basic_auth_htpasswd() {
    if !need_tools(
        "basic_auth_htpasswd",
        &["docker-registry", "skopeo", "umoci"],
    ) {
        return;
    }
    if Command::new("htpasswd").arg("-h").output().is_err() {
        skip(
            "basic_auth_htpasswd",
            "htpasswd (apache2-utils) is not installed (make deps)",
        );
        return;
    }
    let work = tmpdir("basic");
    let reg = Registry::start(Some(("alice", "secret")));
    let layout = work.path().join("layout");
    write_layout(&layout, "t", &small_image());
    reg.skopeo_push(&layout, "t", "auth/img:1", None, Some("alice:secret"));
    let store = work.path().join("store");
    let r = format!("{}/auth/img:1", reg.host());
    let e = husk_err(&store, &["pull", &r]);
    assert!(
        e.contains("needs credentials") && e.contains("auth/img"),
        "{e}"
    );
    let e = husk_err(&store, &["pull", "--creds", "alice:nope", &r]);
    assert!(
        e.contains("401 unauthorized") && e.contains("alice") && e.contains("auth/img"),
        "{e}"
    );
    assert_store_consistent(&store, 0);
    husk_ok(&store, &["pull", "-q", "--creds", "alice:secret", &r]);
    let auth = work.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6c2VjcmV0"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let mut c = Command::new(runtime());
    c.arg("image")
        .arg("--store")
        .arg(&store)
        .args(["pull", "-q", "--", &r])
        .env("REGISTRY_AUTH_FILE", &auth);
    let o = run_timeout(&mut c, Duration::from_secs(60));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_store_consistent(&store, 1);
}

/// The store under concurrent pulls and a pull killed mid-blob: four pulls of one image at once
/// fetch each blob once (the others wait on its lock and reuse it) and all succeed; a pull killed
/// half way through a blob leaves only a temp file, which the next `rm` clears. Also: a layer
/// stored uncompressed (`application/vnd.oci.image.layer.v1.tar`).
#[test]
fn concurrent_pulls_and_a_killed_pull() {
    if !need_husk("concurrent_pulls_and_a_killed_pull") {
        return;
    }
    let work = tmpdir("conc");
    let store = work.path().join("store");
    let layer = tar(&[
        dir("data/", 0o755),
        file("data/payload", &[7u8; 200_000], 0o644),
    ]);
    // the same image, its layer stored uncompressed
    let mut img = image(std::slice::from_ref(&layer), json!({"Cmd": ["/x"]}));
    let gz_digest = {
        let m: Value = serde_json::from_slice(&img.manifest).unwrap();
        m["layers"][0]["digest"].as_str().unwrap().to_string()
    };
    img.blobs.remove(&gz_digest);
    img.blobs.insert(sha(&layer), layer.clone());
    let mut m: Value = serde_json::from_slice(&img.manifest).unwrap();
    m["layers"][0] = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&layer), "size": layer.len()});
    img.manifest = serde_json::to_vec(&m).unwrap();
    img.digest = sha(&img.manifest);
    let layer_digest = sha(&layer);
    let stall = Arc::new(AtomicBool::new(false));
    let (st2, ld) = (stall.clone(), layer_digest.clone());
    let inner = serve_image("c/img", "t", img, HashMap::new());
    let fake = Fake::start(Arc::new(move |q: &Req| {
        let mut r = inner(q);
        if q.path.ends_with(&ld) {
            std::thread::sleep(Duration::from_millis(200));
            if st2.load(Ordering::Relaxed) {
                r.headers.push(("X-Stall".into(), "1".into()));
            }
        }
        r
    }));
    let r = format!("{}/c/img:t", fake.host());

    // killed half way through the layer
    stall.store(true, Ordering::Relaxed);
    let mut child = Command::new(runtime())
        .arg("image")
        .arg("--store")
        .arg(&store)
        .args(["pull", "-q", &r])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // the layer's partial blob (`HEX.PID.N.partial`); the store's own metadata writes
    // (`meta.PID.N.partial`, index.json on a new store) are not the layer
    let layer_hex = layer_digest[7..].to_string();
    let partial = || {
        std::fs::read_dir(store.join("tmp"))
            .map(|d| {
                d.filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    let n = n.to_string_lossy();
                    n.starts_with(&layer_hex) && n.ends_with(".partial")
                })
                .count()
            })
            .unwrap_or(0)
    };
    while partial() == 0 {
        assert!(
            Instant::now() < deadline,
            "the pull never started writing the layer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // by pid: the pull we started
    child.wait().unwrap();
    let idx: Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 0);
    assert!(!store.join("blobs/sha256").join(&layer_digest[7..]).exists());
    assert_eq!(partial(), 1);
    stall.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(3)); // the stalled connection ends

    // four at once
    let before = fake.seen.lock().unwrap().len();
    let kids: Vec<Child> = (0..4)
        .map(|_| {
            Command::new(runtime())
                .arg("image")
                .arg("--store")
                .arg(&store)
                .args(["pull", "-q", &r])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut k in kids {
        let st = wait_child(&mut k, Duration::from_secs(60));
        let mut err = String::new();
        k.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(st.success(), "{err}");
    }
    let seen: Vec<String> = fake.seen.lock().unwrap()[before..].to_vec();
    let layer_gets = seen.iter().filter(|s| s.contains(&layer_digest)).count();
    assert_eq!(layer_gets, 1, "{seen:#?}");
    let idx: Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
    // the uncompressed layer unpacks
    let b = work.path().join("b");
    husk_ok(&store, &["unpack", &r, b.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(b.join("rootfs/data/payload")).unwrap(),
        vec![7u8; 200_000]
    );
    // rm collects the killed pull's temp file
    husk_ok(&store, &["rm", &r]);
    assert_store_consistent(&store, 0);
    assert_eq!(partial(), 0);
}

/// zstd layers unpack; a corrupt gzip or zstd stream and a layer whose content is not its
/// diff_id are errors naming the layer, and the failed unpack leaves nothing.
#[test]
fn zstd_and_corrupt_layers() {
    if !need_tools(
        "zstd_and_corrupt_layers",
        &["docker-registry", "skopeo", "umoci"],
    ) {
        return;
    }
    let work = tmpdir("zstd");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let t1 = tar(&[dir("z/", 0o755), file("z/big", &big, 0o644)]);
    let t2 = tar(&[
        file("z/second", b"two", 0o600),
        file("z/.wh.none", b"", 0o644),
    ]);
    let zst = |t: &[u8]| zstd::encode_all(t, 3).unwrap();
    const MT_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    let good = image_of(
        vec![
            (MT_ZSTD.into(), zst(&t1), sha(&t1)),
            (MT_LAYER_GZ.into(), gz(&t2), sha(&t2)),
        ],
        json!({"Cmd": ["/x"]}),
    );
    let mut bad_z = zst(&t1);
    let n = bad_z.len();
    bad_z[n / 2..n / 2 + 16].fill(0xa5);
    let mut bad_gz = gz(&t1);
    let n = bad_gz.len();
    bad_gz[n / 2..n / 2 + 16].fill(0xa5);
    let corrupt_z = image_of(
        vec![(MT_ZSTD.into(), bad_z, sha(&t1))],
        json!({"Cmd": ["/x"]}),
    );
    let corrupt_gz = image_of(
        vec![(MT_LAYER_GZ.into(), bad_gz, sha(&t1))],
        json!({"Cmd": ["/x"]}),
    );
    let lying = image_of(
        vec![(MT_LAYER_GZ.into(), gz(&t1), sha(&t2))],
        json!({"Cmd": ["/x"]}),
    );
    // (zstd's content is hashed by its decompressing thread, gzip's by the extraction)
    let lying_z = image_of(
        vec![(MT_ZSTD.into(), zst(&t1), sha(&t2))],
        json!({"Cmd": ["/x"]}),
    );
    let reg = Registry::start(None);
    let store = work.path().join("store");
    for (name, img) in [
        ("good", &good),
        ("corrupt-z", &corrupt_z),
        ("corrupt-gz", &corrupt_gz),
        ("lying", &lying),
        ("lying-z", &lying_z),
    ] {
        let layout = work.path().join(name);
        write_layout(&layout, "t", img);
        reg.skopeo_push(&layout, "t", &format!("z/{name}:1"), None, None);
        husk_ok(
            &store,
            &["pull", "-q", &format!("{}/z/{name}:1", reg.host())],
        );
    }
    let b = work.path().join("good-b");
    husk_ok(
        &store,
        &[
            "unpack",
            &format!("{}/z/good:1", reg.host()),
            b.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(b.join("rootfs/z/big")).unwrap(), big);
    assert_eq!(std::fs::read(b.join("rootfs/z/second")).unwrap(), b"two");
    for (name, img, want) in [
        ("corrupt-z", &corrupt_z, ""),
        ("corrupt-gz", &corrupt_gz, ""),
        ("lying", &lying, "the config's diff_id is"),
        ("lying-z", &lying_z, "the config's diff_id is"),
    ] {
        let b = work.path().join(format!("{name}-b"));
        let e = husk_err(
            &store,
            &[
                "unpack",
                &format!("{}/z/{name}:1", reg.host()),
                b.to_str().unwrap(),
            ],
        );
        assert!(
            e.contains(&img.manifest_layer(0)) && e.contains(want),
            "{name}: {e}"
        );
        assert!(!b.exists(), "{name}: a failed unpack left {}", b.display());
    }
    assert_store_consistent(&store, 5);
}

/// A tmpfs mounted by the test (unmounted on drop).
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn new(size: &str) -> SmallFs {
        let d = tmpdir("smallfs");
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(d.path()),
        );
        SmallFs(d)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A disk that fills up: during a pull (the blob is not stored, its temp file is removed, the
/// index is untouched) and during an unpack (the bundle is removed). Errors name the layer.
#[test]
fn disk_full() {
    if !need_husk("disk_full") {
        return;
    }
    let work = tmpdir("full");
    // 1.5 MB that gzip cannot shrink
    let noise = noise(1_500_000, 0x9e3779b97f4a7c15);
    let img = image(
        &[tar(&[file("noise", &noise, 0o644)])],
        json!({"Cmd": ["/x"]}),
    );
    let layer = img.manifest_layer(0);
    let fake = Fake::start(Arc::new(serve_image("full/img", "t", img, HashMap::new())));
    let r = format!("{}/full/img:t", fake.host());

    let small = SmallFs::new("1m");
    let store = small.0.path().join("store");
    let e = husk_err(&store, &["pull", &r]);
    assert!(
        e.contains(&layer) && e.contains(&r) && e.contains("No space left"),
        "{e}"
    );
    assert_store_consistent(&store, 0);

    let store = work.path().join("store");
    husk_ok(&store, &["pull", "-q", &r]);
    let b = small.0.path().join("bundle");
    let e = husk_err(&store, &["unpack", &r, b.to_str().unwrap()]);
    assert!(
        e.contains(&layer) && e.contains("noise") && e.contains("No space left"),
        "{e}"
    );
    assert!(!b.exists(), "a failed unpack left {}", b.display());
}

/// Commands that only read a store never create one, and a first pull, import or `husk up`
/// that fails removes the store it made: nothing is left where no store was.
#[test]
fn a_missing_store_is_not_created_by_reads_or_failed_first_pulls() {
    if !need_husk("a_missing_store_is_not_created_by_reads_or_failed_first_pulls") {
        return;
    }
    let work = tmpdir("nostore");
    let store = work.path().join("store");
    let s = store.to_str().unwrap();
    assert_eq!(husk_ok(&store, &["ls", "-q"]), "");
    assert_eq!(husk_ok(&store, &["ls", "--format", "json"]).trim(), "[]");
    husk_ok(&store, &["prune"]);
    let bundle = work.path().join("bundle");
    let archive = work.path().join("out.tar");
    let (b, a) = (bundle.to_str().unwrap(), archive.to_str().unwrap());
    for args in [
        vec!["inspect", "busybox:1"],
        vec!["rm", "busybox:1"],
        vec!["tag", "busybox:1", "other:1"],
        vec!["unpack", "busybox:1", b],
        vec!["export", "busybox:1", a],
        vec!["push", "busybox:1", "127.0.0.1:1/busybox:1"],
    ] {
        let o = husk(&store, &args);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("busybox:1") && err.contains(s),
            "{args:?}: the error must name the image and the store: {err}"
        );
    }
    // nothing listens on port 1 of loopback: the pull fails at its first request
    let o = husk(&store, &["pull", "127.0.0.1:1/busybox:1"]);
    assert!(!o.status.success(), "pull from a closed port succeeded");
    let o = husk(
        &store,
        &["import", work.path().join("none.tar").to_str().unwrap()],
    );
    assert!(!o.status.success(), "import of a missing file succeeded");
    let o = run_timeout(
        Command::new(runtime()).args(["up", "--store", s, "--pull", "never", "busybox:1", "true"]),
        Duration::from_secs(60),
    );
    assert!(
        !o.status.success(),
        "up --pull never without the image succeeded"
    );
    assert!(
        text(&o.stderr).contains("--pull is never"),
        "{}",
        text(&o.stderr)
    );
    let o = run_timeout(
        Command::new(runtime()).args(["up", "--store", s, "--rm", "127.0.0.1:1/busybox:1", "true"]),
        Duration::from_secs(60),
    );
    assert!(
        !o.status.success(),
        "up with a pull from a closed port succeeded"
    );
    assert!(!store.exists(), "a store was left at {s}");
    assert!(!bundle.exists() && !archive.exists());
}

/// A layer whose transfer breaks half way is taken up again from where it broke (an HTTP Range
/// request, 206) — or, from a registry that ignores Range, fetched again whole — and the pull
/// succeeds with a verified blob. The same with `pull --unpack`, which applies the layer while
/// it downloads: the resumed transfer goes on being applied; one fetched again whole is applied
/// from the stored blob. Either way the bundle holds the layer's content.
#[test]
fn a_broken_layer_transfer_is_resumed() {
    if !need_husk("a_broken_layer_transfer_is_resumed") {
        return;
    }
    let noise = noise(400_000, 0x2545_f491_4f6c_dd1d);
    let img = image(
        &[tar(&[file("noise", &noise, 0o644)])],
        json!({"Cmd": ["/x"]}),
    );
    let layer = img.manifest_layer(0);
    let size = img.blobs[&layer].len();
    for (honour_range, unpack) in [(true, false), (false, false), (true, true), (false, true)] {
        let ranges = Arc::new(Mutex::new(Vec::<String>::new()));
        let cuts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner = serve_image(
            "res/img",
            "t",
            Img {
                manifest: img.manifest.clone(),
                digest: img.digest.clone(),
                blobs: img.blobs.clone(),
            },
            HashMap::new(),
        );
        let (r2, c2, ld): (_, _, String) = (ranges.clone(), cuts.clone(), layer.clone());
        let fake = Fake::start(Arc::new(move |q: &Req| {
            let mut r = inner(q);
            if !q.path.ends_with(&ld) {
                return r;
            }
            match q.headers.get("range") {
                Some(range) if honour_range => {
                    r2.lock().unwrap().push(range.clone());
                    let from: usize = range
                        .strip_prefix("bytes=")
                        .and_then(|v| v.strip_suffix('-'))
                        .and_then(|v| v.parse().ok())
                        .unwrap();
                    let total = r.body.len();
                    r.status = 206;
                    r.headers.push((
                        "Content-Range".into(),
                        format!("bytes {from}-{}/{total}", total - 1),
                    ));
                    r.body = r.body[from..].to_vec();
                }
                other => {
                    if let Some(range) = other {
                        r2.lock().unwrap().push(range.clone());
                    }
                    // the first transfer breaks half way
                    if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                        r.headers.push(("X-Cut".into(), "1".into()));
                    }
                }
            }
            r
        }));
        let work = tmpdir("resume");
        let store = work.path().join("store");
        let reference = format!("{}/res/img:t", fake.host());
        let bundle = work.path().join("bundle");
        if unpack {
            husk_ok(
                &store,
                &[
                    "pull",
                    "-q",
                    "--unpack",
                    bundle.to_str().unwrap(),
                    &reference,
                ],
            );
            assert_eq!(std::fs::read(bundle.join("rootfs/noise")).unwrap(), noise);
            assert!(bundle.join("config.json").is_file());
        } else {
            husk_ok(&store, &["pull", "-q", &reference]);
        }
        assert_store_consistent(&store, 1);
        let asked = ranges.lock().unwrap().clone();
        assert_eq!(
            asked,
            [format!("bytes={}-", size / 2)],
            "honour_range {honour_range}: the second request asks from where the first broke"
        );
        assert_eq!(
            cuts.load(Ordering::SeqCst),
            if honour_range { 1 } else { 2 }
        );
    }
}

/// `pull --unpack DIR` applies each layer while it downloads, in order, into the same tree as
/// `pull` + `unpack`. A layer whose bytes unpack cleanly but whose blob has the wrong digest (a
/// byte of its gzip header's mtime changed: the same content, the same diff_id) fails the pull
/// only once its download ends, after the unpack read it all: the bundle is removed, the blob is
/// not stored and no image is named. A bundle that has a config.json is refused before anything
/// is fetched.
#[test]
fn pull_unpack_applies_layers_as_they_download() {
    if !need_husk("pull_unpack_applies_layers_as_they_download") {
        return;
    }
    let noise = noise(600_000, 0x9e37_79b9_7f4a_7c15);
    let img = image(
        &[
            tar(&[
                dir("etc/", 0o755),
                file("etc/hello", b"hello\n", 0o644),
                file("etc/gone", b"x", 0o644),
            ]),
            tar(&[
                file("etc/hello", b"again\n", 0o600),
                file(".wh.nothing", b"", 0o644),
                file("etc/.wh.gone", b"", 0o644),
                file("noise", &noise, 0o644),
            ]),
        ],
        json!({"Cmd": ["/bin/true"]}),
    );
    let top = img.manifest_layer(1);
    let (fake, tamper) = serve_tampered("one/img", img, &top);
    let reference = format!("{}/one/img:t", fake.host());
    let work = tmpdir("oneshot");

    // the one pass and the two make the same tree
    let store = work.path().join("store");
    let b1 = work.path().join("b1");
    let b2 = work.path().join("b2");
    husk_ok(
        &store,
        &["pull", "-q", "--unpack", b1.to_str().unwrap(), &reference],
    );
    assert_store_consistent(&store, 1);
    husk_ok(&store, &["unpack", &reference, b2.to_str().unwrap()]);
    let r1 = b1.join("rootfs");
    assert_eq!(std::fs::read(r1.join("etc/hello")).unwrap(), b"again\n");
    assert!(!r1.join("etc/gone").exists(), "the whiteout removed it");
    assert_eq!(std::fs::read(r1.join("noise")).unwrap(), noise);
    let listing = |root: &Path| {
        let out = run_ok(
            Command::new("find")
                // (the rootfs directory itself is made by the unpack: its own mtime)
                .args([
                    ".",
                    "-mindepth",
                    "1",
                    "-printf",
                    "%p %y %m %U:%G %s %T@ %l\n",
                ])
                .current_dir(root),
        );
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(listing(&r1), listing(&b2.join("rootfs")));
    assert_eq!(
        std::fs::read(b1.join("config.json")).unwrap(),
        std::fs::read(b2.join("config.json")).unwrap()
    );

    // a bundle that is there already: refused before any fetch, left as it was
    let e = husk_err(
        &store,
        &["pull", "-q", "--unpack", b1.to_str().unwrap(), &reference],
    );
    assert!(e.contains("config.json exists"), "{e}");
    assert!(b1.join("config.json").is_file());

    // the top layer's digest is wrong, its content is not: nothing of it is kept
    tamper.store(true, Ordering::SeqCst);
    let store = work.path().join("store2");
    let b3 = work.path().join("b3");
    let e = husk_err(
        &store,
        &["pull", "-q", "--unpack", b3.to_str().unwrap(), &reference],
    );
    assert!(
        e.contains("digest mismatch") && e.contains(&top) && e.contains(&reference),
        "{e}"
    );
    assert!(!b3.exists(), "the bundle made from the bad blob is removed");
    assert!(!store.join("blobs/sha256").join(&top[7..]).exists());
    assert_store_consistent(&store, 0);
    // a bundle directory that was there stays, empty
    std::fs::create_dir(&b3).unwrap();
    husk_err(
        &store,
        &["pull", "-q", "--unpack", b3.to_str().unwrap(), &reference],
    );
    assert_eq!(std::fs::read_dir(&b3).unwrap().count(), 0);
    assert_store_consistent(&store, 0);
}

/// `husk up` pulling its image (as root) makes each layer's overlayfs snapshot while the layer
/// downloads, and the container runs on them. A layer whose blob has the wrong digest but whose
/// content unpacks (its gzip header's mtime changed) leaves no snapshot, no temp dir of one and
/// no blob, and `up` fails naming it.
#[test]
fn up_pull_makes_snapshots_as_layers_download() {
    if !need_husk("up_pull_makes_snapshots_as_layers_download") {
        return;
    }
    let base = testroot_layer();
    let top_tar = tar(&[dir("etc/", 0o755), file("etc/motd", b"pulled\n", 0o644)]);
    let chain0 = sha(&base);
    let chain1 = sha(format!("{chain0} {}", sha(&top_tar)).as_bytes());
    let img = image(&[base, top_tar], json!({"Cmd": ["/bin/cat", "/etc/motd"]}));
    let top = img.manifest_layer(1);
    let (fake, tamper) = serve_tampered("up/img", img, &top);
    let reference = format!("{}/up/img:t", fake.host());
    let work = tmpdir("upsnap");
    let store = work.path().join("store");
    let root = work.path().join("root");
    let up = || {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(&root)
            .args(["up", "--store"])
            .arg(&store)
            .args(["--rm", "--network", "none", &reference]);
        run_timeout(&mut c, Duration::from_secs(120))
    };
    let snap = |chain: &str| store.join("snapshots").join(&chain[7..]);

    let o = up();
    assert!(o.status.success(), "husk up: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "pulled\n");
    assert!(snap(&chain0).is_dir() && snap(&chain1).is_dir());
    // the image and its snapshots go; the store stays
    husk_ok(&store, &["rm", &reference]);
    assert!(!snap(&chain1).exists());

    tamper.store(true, Ordering::SeqCst);
    let o = up();
    let e = text(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("digest mismatch") && e.contains(&top), "{e}");
    assert!(!snap(&chain1).exists(), "no snapshot of the bad blob");
    assert!(!store.join("blobs/sha256").join(&top[7..]).exists());
    for e in std::fs::read_dir(store.join("tmp")).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.starts_with("snapshot-"), "snapshot temp dir left: {n}");
    }
    assert_store_consistent(&store, 0);
    assert!(mounts_under(work.path()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// rootless unpack: the image's owners shifted by the user's /etc/subuid and /etc/subgid ranges

/// A system user made for one test (no home, no login), with the subordinate id ranges it is
/// given. Dropping it deletes the user (userdel drops its ranges) and any line of
/// /etc/subuid or /etc/subgid still naming it: only lines the test added. usermod needs the
/// files: one missing is made empty, and removed again if it is still empty at the end.
struct TempUser {
    name: String,
    uid: u32,
    gid: u32,
    made_files: Vec<&'static str>,
}

impl TempUser {
    fn new(tag: &str, subids: Option<(u32, u32)>) -> TempUser {
        let name = format!("hk{tag}{}", std::process::id());
        run_ok(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]));
        let id = |flag: &str| -> u32 {
            run_ok(Command::new("id").args([flag, &name]))
                .trim()
                .parse()
                .unwrap()
        };
        let mut u = TempUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
            made_files: Vec::new(),
        };
        if let Some((start, count)) = subids {
            for f in ["/etc/subuid", "/etc/subgid"] {
                // create_new: never truncates a file somebody else made meanwhile
                if std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(f)
                    .is_ok()
                {
                    u.made_files.push(f);
                }
            }
            let r = format!("{start}-{}", start + count - 1);
            run_ok(Command::new("usermod").args([
                "--add-subuids",
                &r,
                "--add-subgids",
                &r,
                &u.name,
            ]));
        }
        u
    }

    /// `husk [GLOBAL] ARGS` run as this user in `cwd`, with `path` as $PATH and `cwd/xdg` as
    /// $XDG_DATA_HOME (so the user's default store is `cwd/xdg/husk`).
    fn husk(&self, cwd: &Path, args: &[&str], path: &str) -> std::process::Output {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(runtime());
        c.uid(self.uid)
            .gid(self.gid)
            .env("PATH", path)
            .env("HOME", cwd)
            .env("XDG_DATA_HOME", cwd.join("xdg"))
            .env_remove("HUSK_STORE")
            .current_dir(cwd)
            .args(args);
        run_timeout(&mut c, Duration::from_secs(120))
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let prefix = format!("{}:", self.name);
        for f in ["/etc/subuid", "/etc/subgid"] {
            let Ok(t) = std::fs::read_to_string(f) else {
                continue;
            };
            if t.lines().any(|l| l.starts_with(&prefix)) {
                let kept: String = t
                    .lines()
                    .filter(|l| !l.starts_with(&prefix))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = std::fs::write(f, kept);
            }
        }
        for f in &self.made_files {
            if std::fs::metadata(f).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

const STD_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// A subordinate id range no other test uses: high, and apart per process.
fn subid_start() -> u32 {
    1_000_000_000 + (std::process::id() % 10_000) * 65_536
}

/// The test rootfs (busybox + probe) as a layer owned by 0:0.
fn testroot_layer() -> Vec<u8> {
    let o = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(testroot())
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", text(&o.stderr));
    o.stdout
}

fn owned(mut e: Ent, uid: u32, gid: u32) -> Ent {
    e.uid = uid;
    e.gid = gid;
    e
}

/// `img` as an OCI archive at `work/NAME.tar`, imported by `user` into its default store
/// (`$XDG_DATA_HOME/husk`) as NAME:1.
fn import_as(user: &TempUser, work: &Path, name: &str, img: &Img) -> String {
    let layout = work.join(name);
    write_layout(&layout, "t", img);
    let archive = work.join(format!("{name}.tar"));
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .args(["oci-layout", "index.json", "blobs"]),
    );
    let r = format!("localhost/{name}:1");
    let o = user.husk(
        work,
        &["image", "import", archive.to_str().unwrap(), &r],
        STD_PATH,
    );
    assert!(o.status.success(), "import: {}", text(&o.stderr));
    assert!(
        work.join("xdg/husk/index.json").is_file(),
        "the user's store is $XDG_DATA_HOME/husk"
    );
    r
}

fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The xattr `name` of `p` as the host's root reads it (None: it has none).
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 64];
    // SAFETY: c and n are NUL-terminated, buf's pointer and length describe a live buffer.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ENODATA),
            "getxattr {}: {e}",
            p.display()
        );
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// As a user with /etc/subuid and /etc/subgid ranges, `unpack` keeps the image's owners shifted
/// as rootless podman shifts them (0 is the user, N > 0 is range start + N - 1), a file
/// capability becomes a v3 xattr whose root is the user, user.* xattrs are kept, trusted.*
/// ones and device nodes (no user namespace may make them) are skipped, and
/// config.json maps the same layout in a user namespace: `husk --rootless true run` of the
/// bundle by the user runs the image's program as root of that namespace.
#[test]
fn rootless_unpack_shifts_owners_and_runs() {
    root_or_skip!("rootless_unpack_shifts_owners_and_runs");
    if !need_tools("rootless_unpack_shifts_owners_and_runs", &["newuidmap"]) {
        return;
    }
    let start = subid_start();
    let user = TempUser::new("rlu", Some((start, 65_536)));
    let work = tmpdir("rlunpack");
    std::os::unix::fs::chown(work.path(), Some(user.uid), Some(user.gid)).unwrap();
    let mut cap = owned(file("usr/bin/capped", b"#!/bin/sh\n", 0o755), 0, 0);
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE (10)
    let mut v2 = Vec::new();
    for w in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        v2.extend_from_slice(&w.to_le_bytes());
    }
    cap.pax = vec![("SCHILY.xattr.security.capability".into(), v2)];
    let mut null = owned(dir("dev/", 0o755), 0, 0);
    null.name = "dev/null2".into();
    null.kind = b'3';
    null.mode = 0o666;
    null.dev = (1, 3);
    let mut attrs = owned(file("etc/attrs", b"x", 0o644), 0, 0);
    attrs.pax = vec![
        ("SCHILY.xattr.user.note".into(), b"kept".to_vec()),
        ("SCHILY.xattr.trusted.note".into(), b"host root's".to_vec()),
    ];
    let own = tar(&[
        attrs,
        owned(dir("home/app/", 0o700), 1000, 1000),
        owned(file("home/app/f", b"app", 0o600), 1000, 1000),
        owned(file("etc/shadowish", b"x", 0o640), 0, 42),
        owned(file("top", b"x", 0o644), 65_536, 65_536),
        cap,
        null,
    ]);
    let img = image(
        &[testroot_layer(), own],
        json!({"Cmd": ["/probe"], "User": "0:0"}),
    );
    let r = import_as(&user, work.path(), "shift", &img);
    let b = work.path().join("b");
    let o = user.husk(
        work.path(),
        &["image", "unpack", &r, b.to_str().unwrap()],
        STD_PATH,
    );
    assert!(o.status.success(), "unpack: {}", text(&o.stderr));
    assert!(
        !text(&o.stderr).contains("warning"),
        "no warning with ranges: {}",
        text(&o.stderr)
    );
    use std::os::unix::fs::MetadataExt;
    let rootfs = b.join("rootfs");
    let probe = lstat(&rootfs.join("probe"));
    assert_eq!(
        (probe.uid(), probe.gid()),
        (user.uid, user.gid),
        "0:0 is the user"
    );
    let f = lstat(&rootfs.join("home/app/f"));
    assert_eq!(
        (f.uid(), f.gid()),
        (start + 999, start + 999),
        "1000 is start+999"
    );
    assert_eq!(f.mode() & 0o7777, 0o600);
    let d = lstat(&rootfs.join("home/app"));
    assert_eq!(d.uid(), start + 999);
    let s = lstat(&rootfs.join("etc/shadowish"));
    assert_eq!((s.uid(), s.gid()), (user.uid, start + 41));
    let t = lstat(&rootfs.join("top"));
    assert_eq!(t.uid(), start + 65_535, "the last id of the range");
    assert!(
        !rootfs.join("dev/null2").exists(),
        "a device node in a user namespace"
    );
    let mut v3 = Vec::new();
    for w in [0x0300_0001u32, 1 << 10, 0, 0, 0, user.uid] {
        v3.extend_from_slice(&w.to_le_bytes());
    }
    assert_eq!(
        xattr(&rootfs.join("usr/bin/capped"), "security.capability"),
        Some(v3),
        "a v3 capability whose root is the user"
    );
    // user.* is the user's to set; trusted.* only the host root's: skipped
    let attrs = rootfs.join("etc/attrs");
    assert_eq!(xattr(&attrs, "user.note"), Some(b"kept".to_vec()));
    assert_eq!(xattr(&attrs, "trusted.note"), None);
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": user.uid, "size": 1},
               {"containerID": 1, "hostID": start, "size": 65536}])
    );
    assert_eq!(
        cfg["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": user.gid, "size": 1},
               {"containerID": 1, "hostID": start, "size": 65536}])
    );
    assert!(
        cfg["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user"),
        "{cfg}"
    );
    assert_eq!(
        std::fs::metadata(b.join("config.json")).unwrap().uid(),
        user.uid
    );

    // the user runs the bundle, rootless: newuidmap writes the maps, as for runc; without it
    // the error names the field and the tool, and nothing is left
    let root = work.path().join("state");
    let id = unique_id("rlunpack");
    let run = [
        "--root",
        root.to_str().unwrap(),
        "--rootless",
        "true",
        "run",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ];
    let o = user.husk(work.path(), &run, "/nonexistent");
    let e = check_err(o, &["run"]);
    assert!(
        e.contains("linux.uidMappings") && e.contains("newuidmap"),
        "{e}"
    );
    assert!(
        std::fs::read_dir(&root).map_or(true, |mut d| d.next().is_none()),
        "a failed run left state in {}",
        root.display()
    );
    let o = user.husk(work.path(), &run, STD_PATH);
    let _ = user.husk(
        work.path(),
        &["--root", root.to_str().unwrap(), "delete", "-f", &id],
        STD_PATH,
    );
    assert!(o.status.success(), "run: {}", text(&o.stderr));
    let v = probe_json(&o);
    assert_eq!(v["uid"], 0, "{v}");
    assert_eq!(
        id_map(&v, "uid_map"),
        [format!("0 {} 1", user.uid), format!("1 {start} 65536")]
    );
    assert_eq!(
        id_map(&v, "gid_map"),
        [format!("0 {} 1", user.gid), format!("1 {start} 65536")]
    );

    // the user alone cannot remove what belongs to its subordinate ids; `image unshare` runs a
    // command as root of the same mapping, and gives back its exit code
    let o = user.husk(
        work.path(),
        &["image", "unshare", "cat", "/proc/self/uid_map"],
        STD_PATH,
    );
    let (out, _) = check_ok(o, &["unshare"]);
    let lines: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["0".to_string(), user.uid.to_string(), "1".into()],
            vec!["1".to_string(), start.to_string(), "65536".into()]
        ]
    );
    let o = user.husk(
        work.path(),
        &["image", "unshare", "sh", "-c", "exit 7"],
        STD_PATH,
    );
    assert_eq!(code(&o.status), 7, "{}", text(&o.stderr));
    let o = user.husk(
        work.path(),
        &["image", "unshare", "rm", "-rf", b.to_str().unwrap()],
        STD_PATH,
    );
    check_ok(o, &["unshare", "rm"]);
    assert!(!b.exists(), "{} is still there", b.display());
}

/// An owner outside the user's ranges is an error naming the entry and the id, and the failed
/// unpack leaves nothing, although what it made belongs to the shifted ids.
#[test]
fn rootless_unpack_outside_the_range_leaves_nothing() {
    root_or_skip!("rootless_unpack_outside_the_range_leaves_nothing");
    if !need_tools(
        "rootless_unpack_outside_the_range_leaves_nothing",
        &["newuidmap"],
    ) {
        return;
    }
    let start = subid_start() + 1_000;
    let user = TempUser::new("rlx", Some((start, 1_000)));
    let work = tmpdir("rlbad");
    std::os::unix::fs::chown(work.path(), Some(user.uid), Some(user.gid)).unwrap();
    let img = image(
        &[
            tar(&[
                owned(dir("d/", 0o500), 500, 500),
                owned(file("d/x", b"x", 0o400), 500, 500),
            ]),
            tar(&[owned(file("big/f", b"x", 0o644), 70_000, 0)]),
        ],
        json!({"Cmd": ["/x"]}),
    );
    let r = import_as(&user, work.path(), "big", &img);
    let b = work.path().join("b");
    let o = user.husk(
        work.path(),
        &["image", "unpack", &r, b.to_str().unwrap()],
        STD_PATH,
    );
    let e = check_err(o, &["unpack"]);
    assert!(
        e.contains("big/f") && e.contains("70000") && e.contains("/etc/subuid"),
        "{e}"
    );
    assert!(!b.exists(), "a failed unpack left {}", b.display());
}

/// Without /etc/subuid ranges, or without newuidmap, `unpack` warns once, naming why, and
/// makes the plain copy owned by the user, its config mapping the user alone to 0; `image
/// unshare` refuses, naming why.
#[test]
fn rootless_unpack_without_ranges_warns_and_copies() {
    root_or_skip!("rootless_unpack_without_ranges_warns_and_copies");
    if !need_husk("rootless_unpack_without_ranges_warns_and_copies") {
        return;
    }
    let bare = TempUser::new("rln", None);
    let ranged = TempUser::new("rlm", Some((subid_start() + 2_000, 65_536)));
    let img = image(
        &[tar(&[
            owned(dir("home/app/", 0o755), 1000, 1000),
            owned(file("home/app/f", b"app", 0o644), 1000, 1000),
        ])],
        json!({"Cmd": ["/x"]}),
    );
    for (user, path, why) in [
        (
            &bare,
            STD_PATH.to_string(),
            format!("/etc/subuid has no entry for {}", bare.name),
        ),
        (
            &ranged,
            "/nonexistent".to_string(),
            "newuidmap is not installed".to_string(),
        ),
    ] {
        let work = tmpdir("rlnone");
        std::os::unix::fs::chown(work.path(), Some(user.uid), Some(user.gid)).unwrap();
        let r = import_as(user, work.path(), "plain", &img);
        let b = work.path().join("b");
        let o = user.husk(
            work.path(),
            &["image", "unpack", &r, b.to_str().unwrap()],
            &path,
        );
        let (_, err) = check_ok(o, &["unpack"]);
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "one warning: {err}");
        assert!(warnings[0].contains(&why), "{err}");
        use std::os::unix::fs::MetadataExt;
        let f = lstat(&b.join("rootfs/home/app/f"));
        assert_eq!((f.uid(), f.gid()), (user.uid, user.gid));
        let o = user.husk(work.path(), &["image", "unshare", "true"], &path);
        let e = check_err(o, &["unshare"]);
        assert!(e.contains("image unshare") && e.contains(&why), "{e}");
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
        // rootless all the same: the user alone is 0 of the container's user namespace
        assert_eq!(
            cfg["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": user.uid, "size": 1}])
        );
    }
}
