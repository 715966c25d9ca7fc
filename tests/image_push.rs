//! `husk image push`, `login`/`logout`, `export`/`import` and `prune`, against Debian's
//! docker-registry started here on a loopback port (its access log counts the requests each
//! push makes), with skopeo as the independent client that reads what husk wrote.

mod common;
use common::*;
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_LAYER_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn need_husk(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if is_runc() || is_crun() {
        skip(
            test,
            "`image` is husk's own command; nothing to validate against runc or crun",
        );
        return false;
    }
    true
}

fn need_tools(test: &str, tools: &[&str]) -> bool {
    if !need_husk(test) {
        return false;
    }
    for t in tools {
        let arg = if *t == "htpasswd" { "-h" } else { "--version" };
        if Command::new(t).arg(arg).output().is_err() {
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

/// `husk image --store STORE ARGS…` with extra environment (`None`: removed) and stdin.
fn husk_with(
    store: &Path,
    args: &[&str],
    env: &[(&str, Option<&Path>)],
    stdin: Option<&str>,
) -> Output {
    let mut c = Command::new(runtime());
    c.arg("image").arg("--store").arg(store).args(args);
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let Some(input) = stdin else {
        return run_timeout(&mut c, Duration::from_secs(120));
    };
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let pid = child.id() as i32;
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // by pid: the husk we started
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    waiter.join().unwrap()
}

fn husk(store: &Path, args: &[&str]) -> Output {
    husk_with(store, args, &[], None)
}

fn check_ok(o: Output, args: &[&str]) -> (String, String) {
    assert!(
        o.status.success(),
        "husk image {args:?} failed: {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    (text(&o.stdout), text(&o.stderr))
}

fn husk_ok(store: &Path, args: &[&str]) -> String {
    check_ok(husk(store, args), args).0
}

/// stdout and stderr of a husk command that must succeed.
fn husk_ok2(store: &Path, args: &[&str]) -> (String, String) {
    check_ok(husk(store, args), args)
}

fn check_err(o: Output, args: &[&str]) -> String {
    assert_eq!(
        code(&o.status),
        1,
        "husk image {args:?} should fail with 1: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stderr)
}

fn husk_err(store: &Path, args: &[&str]) -> String {
    check_err(husk(store, args), args)
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

/// The store holds nothing half-written: `entries` index entries, no temp files, and every
/// blob's content matches its name.
fn assert_store_consistent(store: &Path, entries: usize) {
    let idx: Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), entries, "{idx}");
    for e in std::fs::read_dir(store.join("tmp")).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".partial"), "temp file left: {n}");
        assert!(!n.starts_with("import"), "import staging left: {n}");
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
// Debian's docker-registry on a loopback port, its access log kept

struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
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
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Registry { child, port, dir };
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

    /// `skopeo copy oci:LAYOUT:TAG docker://HOST/REPO`.
    fn skopeo_push(&self, layout: &Path, tag: &str, repo: &str, format: Option<&str>) {
        let mut c = Command::new("skopeo");
        c.args(["copy", "--dest-tls-verify=false"]);
        if let Some(f) = format {
            c.args(["--format", f]);
        }
        c.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}", self.host()));
        run_ok(&mut c);
    }

    /// The access log's request lines so far: (method, path).
    fn requests(&self) -> Vec<(String, String)> {
        std::thread::sleep(Duration::from_millis(200));
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap();
        log.lines()
            .filter_map(|l| {
                let q = l.split('"').nth(1)?;
                let mut w = q.split_whitespace();
                let (m, p) = (w.next()?, w.next()?);
                Some((m.to_string(), p.to_string()))
            })
            .collect()
    }

    /// `skopeo inspect --raw`: the manifest the registry serves for `repo_ref`.
    fn raw_manifest(&self, repo_ref: &str, creds: Option<&str>) -> Vec<u8> {
        let mut c = Command::new("skopeo");
        c.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(cr) = creds {
            c.args(["--creds", cr]);
        }
        c.arg(format!("docker://{}/{repo_ref}", self.host()));
        let o = run_timeout(&mut c, Duration::from_secs(60));
        assert!(o.status.success(), "{}", text(&o.stderr));
        o.stdout
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
// tar layers and OCI layouts written here

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Bytes that do not compress (a layer this size stays this size gzipped).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Img {
    manifest: Vec<u8>,
    digest: String,
    config: Vec<u8>,
    /// (gzipped blob, uncompressed tar)
    layers: Vec<(Vec<u8>, Vec<u8>)>,
}

fn image(layer_tars: Vec<Vec<u8>>, cmd: &[&str]) -> Img {
    let layers: Vec<(Vec<u8>, Vec<u8>)> = layer_tars.into_iter().map(|t| (gz(&t), t)).collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(&l.1)).collect();
    let config = serde_json::to_vec(&json!({
        "created": "2026-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha(&config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": MT_LAYER_GZ, "digest": sha(&l.0), "size": l.0.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    Img {
        digest: sha(&manifest),
        manifest,
        config,
        layers,
    }
}

/// A two-layer image: a small file, and 40 KB of noise (chunked with a small --chunk-size).
fn test_image(seed: u64) -> Img {
    image(
        vec![
            tar_of(&[("etc/hello", b"hello\n")]),
            tar_of(&[("data/noise", &noise(40_000, seed))]),
        ],
        &["/bin/true"],
    )
}

/// Write `img` as an OCI layout at `dir` under `tag`.
fn write_layout(dir: &Path, tag: &str, img: &Img) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut all = vec![img.manifest.clone(), img.config.clone()];
    all.extend(img.layers.iter().map(|l| l.0.clone()));
    for b in &all {
        std::fs::write(dir.join("blobs/sha256").join(&sha(b)[7..]), b).unwrap();
    }
    let idx = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
}

fn count(reqs: &[(String, String)], method: &str, path_has: &str) -> usize {
    reqs.iter()
        .filter(|(m, p)| m == method && p.contains(path_has))
        .count()
}

// ---------------------------------------------------------------------------------------------

/// Push: an image pulled from one repository is pushed to another of the same registry (its
/// blobs mounted, not uploaded), to a second registry in chunks and monolithically, pulled
/// back into a fresh store with the same digest, read by skopeo; a second push uploads nothing.
#[test]
fn push_round_trip() {
    if !need_tools("push_round_trip", &["docker-registry", "skopeo"]) {
        return;
    }
    let work = tmpdir("push");
    let reg = Registry::start(None);
    let reg2 = Registry::start(None);
    let img = test_image(1);
    let layout = work.path().join("layout");
    write_layout(&layout, "t", &img);
    reg.skopeo_push(&layout, "t", "src/app:1", None);
    let store = work.path().join("store");
    let src = format!("{}/src/app:1", reg.host());
    assert_eq!(husk_ok(&store, &["pull", "-q", &src]).trim(), img.digest);

    // same registry, another repository: every blob is mounted from src/app
    let dst = format!("{}/dst/app:2", reg.host());
    let before = reg.requests().len();
    let (out, err) = husk_ok2(&store, &["push", &src, &dst]);
    assert_eq!(out.trim(), img.digest);
    assert_eq!(err.matches("mounted from src/app").count(), 3, "{err}");
    let reqs = reg.requests()[before..].to_vec();
    assert_eq!(count(&reqs, "POST", "mount=sha256:"), 3, "{reqs:?}");
    assert_eq!(count(&reqs, "PATCH", ""), 0, "{reqs:?}");
    assert_eq!(count(&reqs, "PUT", "/manifests/2"), 1, "{reqs:?}");
    assert_eq!(sha(&reg.raw_manifest("dst/app:2", None)), img.digest);

    // another registry, in chunks of 10000 bytes: the 40 KB layer takes 5 PATCHes
    let dst2 = format!("{}/other/app:v1", reg2.host());
    let (_, err) = husk_ok2(&store, &["push", "--chunk-size", "10000", &src, &dst2]);
    let big = sha(&img.layers[1].0);
    let big_size = img.layers[1].0.len();
    assert!(
        big_size > 40_000,
        "the noise layer compressed to {big_size}"
    );
    let chunks = big_size.div_ceil(10_000);
    assert!(
        err.contains(&format!(
            "layer {big} ({big_size} bytes): uploaded in {chunks} chunks"
        )),
        "{err}"
    );
    let reqs = reg2.requests();
    assert_eq!(count(&reqs, "PATCH", "/blobs/uploads/"), chunks, "{reqs:?}");
    assert_eq!(count(&reqs, "HEAD", "/blobs/sha256:"), 3, "{reqs:?}");
    assert_eq!(sha(&reg2.raw_manifest("other/app:v1", None)), img.digest);
    // skopeo reads it through the registry's API as an image (config and layers)
    let sk: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{dst2}")),
    ))
    .unwrap();
    assert_eq!(sk["Digest"], img.digest.as_str());
    assert_eq!(sk["Layers"].as_array().unwrap().len(), 2);

    // pulled back into a fresh store: the same manifest, config and layers
    let store2 = work.path().join("store2");
    assert_eq!(husk_ok(&store2, &["pull", "-q", &dst2]).trim(), img.digest);
    let a: Value = serde_json::from_str(&husk_ok(&store, &["inspect", &src])).unwrap();
    let b: Value = serde_json::from_str(&husk_ok(&store2, &["inspect", &dst2])).unwrap();
    assert_eq!(a["layers"], b["layers"]);
    assert_eq!(a["config"], b["config"]);
    assert_store_consistent(&store2, 1);

    // a second push uploads nothing: HEAD finds every blob, only the manifest is PUT again
    let before = reg2.requests().len();
    let (_, err) = husk_ok2(&store, &["push", "--chunk-size", "10000", &src, &dst2]);
    assert_eq!(err.matches("): present").count(), 3, "{err}");
    let reqs = reg2.requests()[before..].to_vec();
    assert_eq!(count(&reqs, "POST", ""), 0, "{reqs:?}");
    assert_eq!(count(&reqs, "PATCH", ""), 0, "{reqs:?}");
    assert_eq!(count(&reqs, "PUT", "/blobs/"), 0, "{reqs:?}");
    assert_eq!(count(&reqs, "PUT", "/manifests/v1"), 1, "{reqs:?}");

    // monolithic (--chunk-size 0) to a new repository, the default destination is the name
    husk_ok(
        &store,
        &["tag", &src, &format!("{}/mono/app:1", reg2.host())],
    );
    let before = reg2.requests().len();
    let mono = format!("{}/mono/app:1", reg2.host());
    let (_, err) = husk_ok2(&store, &["push", "--chunk-size", "0", &mono]);
    let reqs = reg2.requests()[before..].to_vec();
    // other/app of reg2 is not an image of the store: nothing to mount from, all uploaded
    assert_eq!(err.matches("): uploaded\n").count(), 3, "{err}");
    assert_eq!(count(&reqs, "PATCH", ""), 0, "{reqs:?}");
    assert_eq!(count(&reqs, "PUT", "digest=sha256"), 3, "{reqs:?}");
    assert_eq!(sha(&reg2.raw_manifest("mono/app:1", None)), img.digest);

    // by digest only
    let by_digest = format!("{}/bydigest/app@{}", reg2.host(), img.digest);
    husk_ok(&store, &["push", "-q", &src, &by_digest]);
    assert_eq!(
        sha(&reg2.raw_manifest(&format!("bydigest/app@{}", img.digest), None)),
        img.digest
    );
}

/// A Docker schema 2 image keeps its media type and digest; errors name the image, the
/// registry and what is wrong, and a failed push leaves no manifest in the registry.
#[test]
fn push_docker_media_type_and_errors() {
    if !need_tools(
        "push_docker_media_type_and_errors",
        &["docker-registry", "skopeo"],
    ) {
        return;
    }
    let work = tmpdir("push-err");
    let reg = Registry::start(None);
    let img = test_image(2);
    let layout = work.path().join("layout");
    write_layout(&layout, "t", &img);
    reg.skopeo_push(&layout, "t", "d/app:1", Some("v2s2"));
    let store = work.path().join("store");
    let src = format!("{}/d/app:1", reg.host());
    let digest = husk_ok(&store, &["pull", "-q", &src]).trim().to_string();
    let dst = format!("{}/d/copy:1", reg.host());
    assert_eq!(husk_ok(&store, &["push", "-q", &src, &dst]).trim(), digest);
    let raw = reg.raw_manifest("d/copy:1", None);
    assert_eq!(sha(&raw), digest);
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        v["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    let e = husk_err(&store, &["push", "no/such:image"]);
    assert!(
        e.contains("docker.io/no/such:image is not in the store"),
        "{e}"
    );
    let e = husk_err(&store, &["push", &src, "Bad/Dest"]);
    assert!(
        e.contains("invalid image reference") && e.contains("Bad/Dest"),
        "{e}"
    );
    let wrong = format!("{}/d/x@sha256:{}", reg.host(), "0".repeat(64));
    let e = husk_err(&store, &["push", &src, &wrong]);
    assert!(e.contains("not the image's"), "{e}");
    // nobody listens there
    let port = free_port();
    let e = husk_err(
        &store,
        &[
            "push",
            "--timeout",
            "5",
            &src,
            &format!("127.0.0.1:{port}/x/y:1"),
        ],
    );
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    // a layer missing from the store: named, and nothing reaches the registry
    let m: Value = serde_json::from_slice(&raw).unwrap();
    let layer = m["layers"][1]["digest"].as_str().unwrap();
    std::fs::remove_file(store.join("blobs/sha256").join(&layer[7..])).unwrap();
    let before = reg.requests().len();
    let e = husk_err(
        &store,
        &["push", &src, &format!("{}/d/broken:1", reg.host())],
    );
    assert!(
        e.contains(layer) && e.contains("is not in the store"),
        "{e}"
    );
    assert_eq!(reg.requests().len(), before);
}

/// login checks the credentials against the registry (htpasswd: Basic) and writes them to the
/// auth file ($REGISTRY_AUTH_FILE, else ~/.docker/config.json) with mode 0600; pull and push
/// then use them; logout removes them. Wrong credentials: an error naming the user and the
/// registry, and no file written.
#[test]
fn login_logout() {
    if !need_tools("login_logout", &["docker-registry", "skopeo", "htpasswd"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let work = tmpdir("login");
    let reg = Registry::start(Some(("alice", "s3cret")));
    let host = reg.host();
    let store = work.path().join("store");
    let auth = work.path().join("auth.json");
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let env = [
        ("REGISTRY_AUTH_FILE", Some(auth.as_path())),
        ("HOME", Some(home.as_path())),
    ];
    let run = |args: &[&str], stdin: Option<&str>| husk_with(&store, args, &env, stdin);

    let args = ["login", "-u", "alice", "-p", "wrong", &host];
    let e = check_err(run(&args, None), &args);
    assert!(
        e.contains("401") && e.contains("alice") && e.contains(&host),
        "{e}"
    );
    assert!(!auth.exists());
    let args = ["login", "-u", "alice", "--password-stdin", &host];
    check_ok(run(&args, Some("s3cret\n")), &args);
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v: Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert_eq!(v["auths"][&host]["auth"], "YWxpY2U6czNjcmV0"); // alice:s3cret
    assert!(!home.join(".docker").exists());

    // push and pull with the stored credentials
    let img = test_image(3);
    let layout = work.path().join("layout");
    write_layout(&layout, "t", &img);
    let name = format!("{host}/priv/app:1");
    let mut c = Command::new("skopeo");
    c.args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
    ])
    .arg(format!("oci:{}:t", layout.display()))
    .arg(format!("docker://{name}"));
    run_ok(&mut c);
    let args = ["pull", "-q", &name];
    check_ok(run(&args, None), &args);
    let copy = format!("{host}/priv/copy:1");
    let args = ["push", "-q", &name, &copy];
    check_ok(run(&args, None), &args);
    assert_eq!(
        sha(&reg.raw_manifest("priv/copy:1", Some("alice:s3cret"))),
        img.digest
    );

    let args = ["logout", &host];
    check_ok(run(&args, None), &args);
    let v: Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(v["auths"].get(&host).is_none(), "{v}");
    let e = check_err(run(&args, None), &args);
    assert!(e.contains("not logged in to") && e.contains(&host), "{e}");
    let args = ["push", "-q", &name, &copy];
    let e = check_err(run(&args, None), &args);
    assert!(e.contains("needs credentials"), "{e}");

    // without $REGISTRY_AUTH_FILE: ~/.docker/config.json, its directory made 0700
    let env2 = [("REGISTRY_AUTH_FILE", None), ("HOME", Some(home.as_path()))];
    let args = ["login", "-u", "alice", "-p", "s3cret", &host];
    check_ok(husk_with(&store, &args, &env2, None), &args);
    let file = home.join(".docker/config.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["auths"][&host]["auth"], "YWxpY2U6czNjcmV0");
    let dmode = std::fs::metadata(home.join(".docker"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dmode & 0o777, 0o700);
    // bad input
    let args = ["login", "-u", "alice", "-p", "x", "a b"];
    let e = check_err(husk_with(&store, &args, &env2, None), &args);
    assert!(e.contains("expected a host name"), "{e}");
    let args = ["login", "--password-stdin", &host];
    let e = check_err(husk_with(&store, &args, &env2, Some("x")), &args);
    assert!(e.contains("--password-stdin needs --username"), "{e}");
}
