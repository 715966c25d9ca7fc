//! `husk image push`, `login`/`logout`, `export`/`import` and `prune`, against Debian's
//! docker-registry started here on a loopback port (its access log counts the requests each
//! push makes), with skopeo as the independent client that reads what husk wrote, and
//! archives (OCI, docker save, damaged ones) built here.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::images::*;

// ---------------------------------------------------------------------------------------------
// tar layers and OCI layouts written here

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

struct Img {
    manifest: Vec<u8>,
    digest: String,
    config: Vec<u8>,
    /// (gzipped blob, uncompressed tar)
    layers: Vec<(Vec<u8>, Vec<u8>)>,
}

fn image(layer_tars: Vec<Vec<u8>>, cmd: &[&str]) -> Img {
    image_for("amd64", layer_tars, cmd)
}

/// [`image`] whose config names the architecture `arch`.
fn image_for(arch: &str, layer_tars: Vec<Vec<u8>>, cmd: &[&str]) -> Img {
    let layers: Vec<(Vec<u8>, Vec<u8>)> = layer_tars.into_iter().map(|t| (gz(&t), t)).collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(&l.1)).collect();
    let config = serde_json::to_vec(&json!({
        "created": "2026-01-02T03:04:05Z",
        "architecture": arch,
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

/// `img` written as an OCI layout under `work` and copied by skopeo to `reg` as `REPO:TAG`
/// (`format`: skopeo's `--format`): the reference to pull it by.
fn skopeo_pushed(
    reg: &Registry,
    work: &Path,
    img: &Img,
    repo_tag: &str,
    format: Option<&str>,
) -> String {
    let layout = work.join("layout");
    write_layout(&layout, "t", img);
    reg.skopeo_push(&layout, "t", repo_tag, format, None);
    format!("{}/{repo_tag}", reg.host())
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
    let store = work.path().join("store");
    let src = skopeo_pushed(&reg, work.path(), &img, "src/app:1", None);
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
    let store = work.path().join("store");
    let src = skopeo_pushed(&reg, work.path(), &img, "d/app:1", Some("v2s2"));
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
    // logout changes $REGISTRY_AUTH_FILE only, and says where other credentials are
    let args = ["logout", &host];
    let e = check_err(run(&args, None), &args);
    assert!(
        e.contains("not logged in") && e.contains(".docker/config.json"),
        "{e}"
    );
    // bad input
    let args = ["login", "-u", "alice", "-p", "x", "a b"];
    let e = check_err(husk_with(&store, &args, &env2, None), &args);
    assert!(e.contains("expected a host name"), "{e}");
    let args = ["login", "--password-stdin", &host];
    let e = check_err(husk_with(&store, &args, &env2, Some("x")), &args);
    assert!(e.contains("--password-stdin needs --username"), "{e}");
    // nothing to prompt on: standard input is not a terminal
    let args = ["login", &host];
    let e = check_err(husk_with(&store, &args, &env2, None), &args);
    assert!(
        e.contains("not a terminal") && e.contains("username"),
        "{e}"
    );
    let args = ["login", "-u", "alice", &host];
    let e = check_err(husk_with(&store, &args, &env2, None), &args);
    assert!(
        e.contains("not a terminal") && e.contains("password"),
        "{e}"
    );
}

/// A tar with entries as given — names are not checked, so `../x` can be written. Kinds:
/// b'0' file, b'2' symlink (data is the target).
fn raw_tar(entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::new(*kind));
        if *kind == b'2' {
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            h.set_size(0);
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// `img` as `docker save` writes it: manifest.json, `<hex>.json`, `<id>/layer.tar`
/// (uncompressed), a repeated layer as a symlink to the first.
fn docker_save(img: &Img, tags: &[&str], extra_dup: bool) -> (Vec<u8>, String) {
    let cfg_name = format!("{}.json", &sha(&img.config)[7..]);
    let mut files: Vec<(String, u8, Vec<u8>)> = vec![(cfg_name.clone(), b'0', img.config.clone())];
    let mut layer_names = Vec::new();
    for (i, (_, t)) in img.layers.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        files.push((format!("{id}/layer.tar"), b'0', t.clone()));
        files.push((format!("{id}/VERSION"), b'0', b"1.0".to_vec()));
        layer_names.push(format!("{id}/layer.tar"));
    }
    let mut config: Value = serde_json::from_slice(&img.config).unwrap();
    if extra_dup {
        // the first layer again, stored as a symlink, as docker does for identical layers
        let id = format!("{:064x}", 99);
        files.push((
            format!("{id}/layer.tar"),
            b'2',
            format!("../{:064x}/layer.tar", 1).into_bytes(),
        ));
        layer_names.push(format!("{id}/layer.tar"));
        let d = config["rootfs"]["diff_ids"][0].clone();
        config["rootfs"]["diff_ids"].as_array_mut().unwrap().push(d);
        let cfg = serde_json::to_vec(&config).unwrap();
        files[0] = (format!("{}.json", &sha(&cfg)[7..]), b'0', cfg);
    }
    let cfg_name = files[0].0.clone();
    let manifest = json!([{"Config": cfg_name, "RepoTags": tags, "Layers": layer_names}]);
    files.push((
        "manifest.json".into(),
        b'0',
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let entries: Vec<(&str, u8, &[u8])> = files
        .iter()
        .map(|(n, k, d)| (n.as_str(), *k, d.as_slice()))
        .collect();
    (raw_tar(&entries), cfg_name)
}

/// An OCI archive of `img`, its blobs as given (`blobs`: name → content), index.json naming it
/// `name`.
fn oci_archive(img: &Img, name: &str, skip: Option<&str>, corrupt: Option<&str>) -> Vec<u8> {
    let idx = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": name}
    }]});
    let idx = serde_json::to_vec(&idx).unwrap();
    let mut blobs = vec![img.manifest.clone(), img.config.clone()];
    blobs.extend(img.layers.iter().map(|l| l.0.clone()));
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), idx),
    ];
    for b in blobs {
        let d = sha(&b);
        if skip == Some(d.as_str()) {
            continue;
        }
        let mut b = b;
        if corrupt == Some(d.as_str()) {
            b[0] ^= 1;
        }
        files.push((format!("blobs/sha256/{}", &d[7..]), b));
    }
    let entries: Vec<(&str, u8, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), b'0', d.as_slice()))
        .collect();
    raw_tar(&entries)
}

fn tar_names(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// import of a docker save tarball (a repeated layer as a symlink) → unpack → export as an
/// OCI archive → skopeo reads it (inspect, copy) → import into a fresh store: the same manifest
/// digest, the same unpacked files. skopeo's own oci-archive (ref.name a bare tag) needs a name.
#[test]
fn export_import() {
    if !need_tools("export_import", &["skopeo"]) {
        return;
    }
    let work = tmpdir("archive");
    let img = test_image(4);
    let (saved, _) = docker_save(&img, &["saved:1", "example.com/team/saved:latest"], true);
    let saved_file = work.path().join("saved.tar");
    std::fs::write(&saved_file, &saved).unwrap();
    let store = work.path().join("store");
    let out = husk_ok(&store, &["import", saved_file.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("docker.io/library/saved:1 sha256:"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("example.com/team/saved:latest sha256:"),
        "{out}"
    );
    let digest = lines[0].split(' ').nth(1).unwrap().to_string();
    assert_store_consistent(&store, 2);
    let inspect: Value = serde_json::from_str(&husk_ok(&store, &["inspect", "saved:1"])).unwrap();
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        inspect["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        inspect["layers"][0]["digest"],
        inspect["layers"][2]["digest"]
    );
    let b1 = work.path().join("b1");
    husk_ok(&store, &["unpack", "saved:1", b1.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(b1.join("rootfs/etc/hello")).unwrap(),
        b"hello\n"
    );
    assert_eq!(
        std::fs::read(b1.join("rootfs/data/noise")).unwrap(),
        noise(40_000, 4)
    );

    // export: an OCI archive skopeo reads
    let exported = work.path().join("out.tar");
    husk_ok(&store, &["export", "saved:1", exported.to_str().unwrap()]);
    let bytes = std::fs::read(&exported).unwrap();
    let names = tar_names(&bytes);
    assert!(names.contains(&"index.json".to_string()), "{names:?}");
    assert!(
        names.contains(&format!("blobs/sha256/{}", &digest[7..])),
        "{names:?}"
    );
    let sk: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", exported.display())),
    ))
    .unwrap();
    assert_eq!(sk["Digest"], digest.as_str());
    let sk_layout = work.path().join("sk-layout");
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci-archive:{}", exported.display()))
            .arg(format!("oci:{}:copied", sk_layout.display())),
    );

    // into a fresh store: the same image
    let store2 = work.path().join("store2");
    let out = husk_ok(&store2, &["import", exported.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("docker.io/library/saved:1 {digest}"));
    assert_store_consistent(&store2, 1);
    let b2 = work.path().join("b2");
    husk_ok(&store2, &["unpack", "saved:1", b2.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(b2.join("rootfs/data/noise")).unwrap(),
        noise(40_000, 4)
    );
    assert_eq!(
        std::fs::read(b2.join("config.json")).unwrap(),
        std::fs::read(b1.join("config.json")).unwrap()
    );

    // `-`: standard output and input; the same bytes as the file
    let o = husk(&store, &["export", "saved:1", "-"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(o.stdout, bytes);
    let store5 = work.path().join("store5");
    let piped = run_ok(Command::new("sh").arg("-c").arg(format!(
        "exec {} image --store {} import - < {}",
        runtime().display(),
        store5.display(),
        exported.display()
    )));
    assert_eq!(piped.trim(), format!("docker.io/library/saved:1 {digest}"));
    let o = run_timeout(
        Command::new("sh").arg("-c").arg(format!(
            "exec {} image --store {} import - < /dev/null",
            runtime().display(),
            store5.display()
        )),
        Duration::from_secs(30),
    );
    assert_eq!(code(&o.status), 1);
    assert!(
        text(&o.stderr).contains("import (standard input)"),
        "{}",
        text(&o.stderr)
    );

    // skopeo's own oci-archive names the image by a bare tag: a name must be given
    let sk_archive = work.path().join("sk.tar");
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:copied", sk_layout.display()))
            .arg(format!("oci-archive:{}:mytag", sk_archive.display())),
    );
    let store3 = work.path().join("store3");
    let e = husk_err(&store3, &["import", sk_archive.to_str().unwrap()]);
    assert!(e.contains("has no name") && e.contains("\"mytag\""), "{e}");
    assert_store_consistent(&store3, 0);
    assert_eq!(blob_count(&store3), 0);
    let out = husk_ok(
        &store3,
        &["import", sk_archive.to_str().unwrap(), "local/sk:1"],
    );
    assert!(out.starts_with("docker.io/local/sk:1 sha256:"), "{out}");
    // gzipped archives are read too
    let gz_file = work.path().join("saved.tar.gz");
    std::fs::write(&gz_file, gz(&saved)).unwrap();
    let store4 = work.path().join("store4");
    husk_ok(&store4, &["import", gz_file.to_str().unwrap()]);
    assert_store_consistent(&store4, 2);
}

/// Bad archives are refused with an error naming the entry, blob or digest, and leave the
/// store exactly as it was: no index entry, no blob, no staging files.
#[test]
fn import_refuses_bad_archives() {
    if !need_husk("import_refuses_bad_archives") {
        return;
    }
    let work = tmpdir("badarch");
    let img = test_image(5);
    let layer = sha(&img.layers[1].0);
    let (good_saved, cfg_name) = docker_save(&img, &["x:1"], false);
    let _ = good_saved;
    let mut wrong_layer_cfg: Value = serde_json::from_slice(&img.config).unwrap();
    wrong_layer_cfg["rootfs"]["diff_ids"][1] = json!(format!("sha256:{}", "1".repeat(64)));
    let wrong_cfg = serde_json::to_vec(&wrong_layer_cfg).unwrap();
    let wrong_cfg_name = format!("{}.json", &sha(&wrong_cfg)[7..]);
    let l1 = format!("{:064x}/layer.tar", 1);
    let l2 = format!("{:064x}/layer.tar", 2);
    let wrong_manifest = serde_json::to_vec(
        &json!([{"Config": wrong_cfg_name, "RepoTags": ["x:1"], "Layers": [l1, l2]}]),
    )
    .unwrap();
    let docker_wrong = raw_tar(&[
        (&wrong_cfg_name, b'0', &wrong_cfg),
        (&l1, b'0', &img.layers[0].1),
        (&l2, b'0', &img.layers[1].1),
        ("manifest.json", b'0', &wrong_manifest),
    ]);
    let cases: Vec<(&str, Vec<u8>, Vec<String>)> = vec![
        (
            "dotdot",
            raw_tar(&[("../evil", b'0', b"x"), ("index.json", b'0', b"{}")]),
            vec!["entry name \"../evil\"".into()],
        ),
        (
            "absolute",
            raw_tar(&[("/etc/evil", b'0', b"x")]),
            vec!["/etc/evil".into(), "not allowed".into()],
        ),
        (
            "symlink-out",
            raw_tar(&[("a/layer.tar", b'2', b"../../etc/passwd")]),
            vec!["leaves the archive".into()],
        ),
        (
            "missing-blob",
            oci_archive(&img, "example.com/a:1", Some(&layer), None),
            vec![layer.clone(), "is missing".into()],
        ),
        (
            "digest-mismatch",
            oci_archive(&img, "example.com/a:1", None, Some(&layer)),
            vec![layer[7..].to_string(), "digest mismatch".into()],
        ),
        (
            "diff-id",
            docker_wrong,
            vec!["diff_id".into(), "digest mismatch".into(), l2.clone()],
        ),
        ("not-tar", noise(3000, 9), vec!["tar".into()]),
        (
            "no-index",
            raw_tar(&[("hello", b'0', b"x")]),
            vec!["neither an OCI archive".into()],
        ),
        (
            "docker-missing-config",
            raw_tar(&[(
                "manifest.json",
                b'0',
                &serde_json::to_vec(
                    &json!([{"Config": cfg_name, "RepoTags": ["x:1"], "Layers": []}]),
                )
                .unwrap(),
            )]),
            vec![cfg_name.clone(), "missing".into()],
        ),
    ];
    for (tag, bytes, wants) in cases {
        let f = work.path().join(format!("{tag}.tar"));
        std::fs::write(&f, &bytes).unwrap();
        let store = work.path().join(format!("store-{tag}"));
        let e = husk_err(&store, &["import", f.to_str().unwrap()]);
        for w in &wants {
            assert!(e.contains(w.as_str()), "{tag}: want {w:?} in: {e}");
        }
        assert!(
            e.contains(f.to_str().unwrap()),
            "{tag}: the file is not named: {e}"
        );
        assert_store_consistent(&store, 0);
        assert_eq!(blob_count(&store), 0, "{tag}: blobs stored");
    }
    let store = work.path().join("store-nofile");
    let e = husk_err(&store, &["import", "/nonexistent/archive.tar"]);
    assert!(e.contains("/nonexistent/archive.tar"), "{e}");
}

/// prune deletes the blobs no image refers to and what killed commands left in tmp/, reports
/// the bytes freed, keeps every image whole, and waits for commands holding the store (a
/// pull, push or import holds its lock shared).
#[test]
fn prune_collects_garbage() {
    if !need_tools("prune_collects_garbage", &["flock"]) {
        return;
    }
    let work = tmpdir("prune");
    let store = work.path().join("store");
    let img = test_image(6);
    let (saved, _) = docker_save(&img, &["kept:1"], false);
    let saved_file = work.path().join("saved.tar");
    std::fs::write(&saved_file, &saved).unwrap();
    husk_ok(&store, &["import", saved_file.to_str().unwrap()]);
    let kept = blob_count(&store);
    // an unreferenced blob, a partial blob and a staging dir of a killed import
    let orphan = noise(12_345, 7);
    std::fs::write(store.join("blobs/sha256").join(&sha(&orphan)[7..]), &orphan).unwrap();
    std::fs::write(store.join("tmp/abc.1.2.partial"), vec![0u8; 1000]).unwrap();
    let staged = store.join("tmp/import.1.3.staging");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("1"), vec![0u8; 200]).unwrap();

    let out = husk_ok(&store, &["prune"]);
    assert!(
        out.contains("removed 1 unreferenced blobs (12345 bytes)")
            && out.contains("1200 bytes of temp files")
            && out.contains("13545 bytes freed"),
        "{out}"
    );
    assert_eq!(blob_count(&store), kept);
    assert_store_consistent(&store, 1);
    assert_eq!(std::fs::read_dir(store.join("tmp")).unwrap().count(), 0);
    let b = work.path().join("b");
    husk_ok(&store, &["unpack", "kept:1", b.to_str().unwrap()]);
    assert!(husk_ok(&store, &["prune"]).contains(" 0 bytes freed"));

    // a command holding the store lock shared: prune waits for it
    let mut holder = Command::new("flock")
        .arg("-s")
        .arg(store.join("lock"))
        .args(["sleep", "2"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    husk_ok(&store, &["prune"]);
    assert!(
        t.elapsed() >= Duration::from_millis(1200),
        "prune did not wait for the lock: {:?}",
        t.elapsed()
    );
    wait_child(&mut holder, Duration::from_secs(10));

    // imports and prunes at once: every import lands whole
    let imports: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            let f = saved_file.clone();
            std::thread::spawn(move || {
                let name = format!("many/img:{i}");
                husk_ok(&store, &["import", f.to_str().unwrap(), &name]);
            })
        })
        .collect();
    for _ in 0..4 {
        husk_ok(&store, &["prune"]);
    }
    for t in imports {
        t.join().unwrap();
    }
    assert_store_consistent(&store, 5);
    assert_eq!(blob_count(&store), kept);
    let b2 = work.path().join("b2");
    husk_ok(&store, &["unpack", "many/img:3", b2.to_str().unwrap()]);
    assert!(husk_ok(&store, &["prune"]).contains(" 0 bytes freed"));
}

/// A CA (`NAME.crt`, `NAME.key`) and, when `server`, a certificate for 127.0.0.1 it signed
/// (`NAME-srv.crt`, `NAME-srv.key`).
fn make_ca(dir: &Path, name: &str, server: bool) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    run_ok(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN=husk test {name}"),
        "-keyout",
        &p(&format!("{name}.key")),
        "-out",
        &p(&format!("{name}.crt")),
    ]));
    if server {
        sign(
            dir,
            name,
            &format!("{name}-srv"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        );
    }
}

/// A key `LEAF.key` and certificate `LEAF.crt` signed by the CA `CA`, with extensions `ext`.
fn sign(dir: &Path, ca: &str, leaf: &str, ext: &str) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    run_ok(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p(&format!("{leaf}.key")),
        "-out",
        &p(&format!("{leaf}.csr")),
    ]));
    let ext_file = dir.join(format!("{leaf}.ext"));
    std::fs::write(&ext_file, ext).unwrap();
    run_ok(Command::new("openssl").args([
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &p(&format!("{leaf}.csr")),
        "-CA",
        &p(&format!("{ca}.crt")),
        "-CAkey",
        &p(&format!("{ca}.key")),
        "-CAcreateserial",
        "-extfile",
        ext_file.to_str().unwrap(),
        "-out",
        &p(&format!("{leaf}.crt")),
    ]));
}

/// A registry on loopback that speaks only TLS, with a certificate from a CA of the test's:
/// reached with --ca-cert, with a certs dir laid out as Docker's (DIR/HOST:PORT/ca.crt) for
/// pull, push and login, and with --tls-verify=false; a CA that did not sign it, no CA (plain
/// HTTP to a TLS port) and a CA file that is not PEM are errors naming the registry or file.
#[test]
fn tls_registry() {
    if !need_tools(
        "tls_registry",
        &["docker-registry", "skopeo", "openssl", "htpasswd"],
    ) {
        return;
    }
    let work = tmpdir("tls");
    let w = work.path();
    make_ca(w, "ca", true);
    make_ca(w, "other", false);
    let reg = Registry::start_with(
        Some(("bob", "pw")),
        Some((&w.join("ca-srv.crt"), &w.join("ca-srv.key"), None)),
    );
    let host = reg.host();
    let img = test_image(8);
    let layout = w.join("layout");
    write_layout(&layout, "t", &img);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false", "--dest-creds", "bob:pw"])
            .arg(format!("oci:{}:t", layout.display()))
            .arg(format!("docker://{host}/tls/app:1")),
    );
    let name = format!("{host}/tls/app:1");
    let empty = w.join("empty-certs");
    std::fs::create_dir(&empty).unwrap();
    let certs = w.join("certs.d");
    std::fs::create_dir_all(certs.join(&host)).unwrap();
    std::fs::copy(w.join("ca.crt"), certs.join(&host).join("ca.crt")).unwrap();
    let (ca, other) = (w.join("ca.crt"), w.join("other.crt"));
    let (ca, other, empty_s, certs_s) = (
        ca.to_str().unwrap(),
        other.to_str().unwrap(),
        empty.to_str().unwrap(),
        certs.to_str().unwrap(),
    );
    let creds = ["--creds", "bob:pw"];

    let s1 = w.join("s1");
    // no CA for it: plain HTTP, which a TLS port does not answer as a registry
    let e = husk_err(
        &s1,
        &[&["pull", "--certs-dir", empty_s][..], &creds, &[&name]].concat(),
    );
    assert!(
        e.contains(&host) && e.contains("the registry speaks HTTPS"),
        "{e}"
    );
    // a CA that did not sign its certificate
    let e = husk_err(
        &s1,
        &[&["pull", "--ca-cert", other][..], &creds, &[&name]].concat(),
    );
    assert!(
        e.contains(&host) && e.to_lowercase().contains("certificate"),
        "{e}"
    );
    // a CA file that is not PEM
    let e = husk_err(
        &s1,
        &[
            &["pull", "--ca-cert", "/etc/hostname"][..],
            &creds,
            &[&name],
        ]
        .concat(),
    );
    assert!(e.contains("/etc/hostname"), "{e}");
    assert_store_consistent(&s1, 0);
    let out = husk_ok(
        &s1,
        &[&["pull", "-q", "--ca-cert", ca][..], &creds, &[&name]].concat(),
    );
    assert_eq!(out.trim(), img.digest);

    // Docker's layout: DIR/HOST:PORT/ca.crt, for pull, push and login
    let s2 = w.join("s2");
    let pulled = husk_ok(
        &s2,
        &[
            &["pull", "-q", "--certs-dir", certs_s][..],
            &creds,
            &[&name],
        ]
        .concat(),
    );
    assert_eq!(pulled.trim(), img.digest);
    let copy = format!("{host}/tls/copy:1");
    husk_ok(
        &s2,
        &[
            &["push", "-q", "--certs-dir", certs_s][..],
            &creds,
            &[&name, &copy],
        ]
        .concat(),
    );
    assert_eq!(
        sha(&reg.raw_manifest("tls/copy:1", Some("bob:pw"))),
        img.digest
    );
    let auth = w.join("auth.json");
    let env = [("REGISTRY_AUTH_FILE", Some(auth.as_path()))];
    let args = [
        "login",
        "--certs-dir",
        certs_s,
        "-u",
        "bob",
        "-p",
        "nope",
        &host,
    ];
    let e = check_err(husk_with(&s2, &args, &env, None), &args);
    assert!(e.contains("401") && e.contains("bob"), "{e}");
    let args = [
        "login",
        "--certs-dir",
        certs_s,
        "-u",
        "bob",
        "-p",
        "pw",
        &host,
    ];
    check_ok(husk_with(&s2, &args, &env, None), &args);
    let args = ["pull", "-q", "--certs-dir", certs_s, &copy];
    check_ok(husk_with(&s2, &args, &env, None), &args);

    // encrypted, not verified: only when asked
    let s3 = w.join("s3");
    let out = husk_ok(
        &s3,
        &[&["pull", "-q", "--tls-verify=false"][..], &creds, &[&name]].concat(),
    );
    assert_eq!(out.trim(), img.digest);
    // a usage error, as clap reports them
    let o = husk(&s3, &["pull", "--tls-verify=maybe", &name]);
    assert_eq!(code(&o.status), 2);
    assert!(text(&o.stderr).contains("maybe"), "{}", text(&o.stderr));
}

// ---------------------------------------------------------------------------------------------
// a registry written here with Bearer tokens: each token carries the scopes it was asked for,
// and the registry checks them per request (push needs `pull,push`, a mount `pull` on the
// source), so the scopes husk asks for are tested, not assumed

#[derive(Default)]
struct TokenRegState {
    /// token -> scopes
    tokens: HashMap<String, Vec<String>>,
    /// repo -> digest -> bytes
    blobs: HashMap<String, HashMap<String, Vec<u8>>>,
    /// (repo, reference) -> (content type, bytes)
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    /// upload id -> (repo, bytes so far)
    uploads: HashMap<String, (String, Vec<u8>)>,
    /// the scopes of each token request, and each request line with its answer
    token_requests: Vec<Vec<String>>,
    log: Vec<String>,
}

struct TokenReg {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<Mutex<TokenRegState>>,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

impl TokenReg {
    fn start(user: &'static str, pass: &'static str) -> TokenReg {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(TokenRegState::default()));
        let (s2, st2) = (stop.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                        TokenReg::serve(c, &st2, port, user, pass);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TokenReg {
            port,
            stop,
            thread: Some(thread),
            state,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn serve(c: TcpStream, state: &Mutex<TokenRegState>, port: u16, user: &str, pass: &str) {
        use std::io::{BufRead, BufReader, Read};
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut line = String::new();
        if r.read_line(&mut line).is_err() || line.is_empty() {
            return;
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let target = words.next().unwrap_or("").to_string();
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
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let (status, hdrs, out) = {
            let mut st = state.lock().unwrap();
            let a = TokenReg::answer(&mut st, &method, &target, &headers, body, port, user, pass);
            st.log.push(format!("{method} {target} -> {}", a.0));
            a
        };
        let mut w = c;
        let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
        for (k, v) in &hdrs {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "HEAD" || !hdrs.iter().any(|(k, _)| k == "Content-Length") {
            head.push_str(&format!("Content-Length: {}\r\n", out.len()));
        }
        head.push_str("\r\n");
        let _ = w.write_all(head.as_bytes());
        if method != "HEAD" {
            let _ = w.write_all(&out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        st: &mut TokenRegState,
        method: &str,
        target: &str,
        headers: &HashMap<String, String>,
        body: Vec<u8>,
        port: u16,
        user: &str,
        pass: &str,
    ) -> Answer {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let q = query_pairs(query);
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        let err = |code: u16, c: &str| {
            let b = format!(r#"{{"errors":[{{"code":"{c}","message":"{c}"}}]}}"#);
            (
                code,
                vec![h("Content-Type", "application/json")],
                b.into_bytes(),
            )
        };
        if path == "/token" {
            let want = format!(
                "Basic {}",
                husk::registry::auth::base64_encode(format!("{user}:{pass}").as_bytes())
            );
            if headers.get("authorization") != Some(&want) {
                return err(401, "UNAUTHORIZED");
            }
            let scopes: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.clone())
                .collect();
            let token = format!("t{}", st.tokens.len());
            st.tokens.insert(token.clone(), scopes.clone());
            st.token_requests.push(scopes);
            let b = format!(r#"{{"token":"{token}"}}"#);
            return (
                200,
                vec![h("Content-Type", "application/json")],
                b.into_bytes(),
            );
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return err(404, "NOT_FOUND");
        };
        let granted: Vec<String> = headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| st.tokens.get(t).cloned())
            .map(|v| v.into_iter().filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let authed = headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| st.tokens.contains_key(t));
        let challenge = |scope: &str| {
            let mut v = format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake""#);
            if !scope.is_empty() {
                v.push_str(&format!(r#",scope="{scope}""#));
            }
            let b = br#"{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}"#.to_vec();
            (401, vec![h("WWW-Authenticate", &v)], b)
        };
        if rest.is_empty() {
            return if authed {
                (200, vec![], b"{}".to_vec())
            } else {
                challenge("")
            };
        }
        // /v2/<repo>/(blobs|manifests)/…
        let kinds = ["/blobs/uploads/", "/blobs/", "/manifests/"];
        let Some((i, kind)) = kinds.iter().find_map(|k| rest.find(k).map(|i| (i, *k))) else {
            return err(404, "NOT_FOUND");
        };
        let repo = rest[..i].to_string();
        let item = rest[i + kind.len()..].to_string();
        let write = !matches!(method, "GET" | "HEAD");
        let has = |scope_repo: &str, push: bool| {
            granted.iter().any(|s| {
                let mut p = s.splitn(3, ':');
                let (_, r, actions) = (p.next(), p.next(), p.next().unwrap_or(""));
                r == Some(scope_repo)
                    && actions.split(',').any(|a| a == "pull")
                    && (!push || actions.split(',').any(|a| a == "push"))
            })
        };
        if !has(&repo, write) {
            let actions = if write { "pull,push" } else { "pull" };
            return challenge(&format!("repository:{repo}:{actions}"));
        }
        let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}");
        match (method, kind) {
            ("POST", "/blobs/uploads/") => {
                let get = |k: &str| q.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
                if let (Some(d), Some(from)) = (get("mount"), get("from")) {
                    let src = st.blobs.get(&from).and_then(|b| b.get(&d)).cloned();
                    if let (true, Some(b)) = (has(&from, false), src) {
                        st.blobs
                            .entry(repo.clone())
                            .or_default()
                            .insert(d.clone(), b);
                        return (201, vec![h("Docker-Content-Digest", &d)], vec![]);
                    }
                }
                let id = format!("u{}", st.uploads.len() + st.log.len());
                st.uploads.insert(id.clone(), (repo.clone(), Vec::new()));
                (
                    202,
                    vec![h("Location", &location(&id)), h("Range", "0-0")],
                    vec![],
                )
            }
            ("PATCH", "/blobs/uploads/") => {
                let Some((_, data)) = st.uploads.get_mut(&item) else {
                    return err(404, "BLOB_UPLOAD_UNKNOWN");
                };
                let range = headers.get("content-range").cloned().unwrap_or_default();
                let start: usize = range.split('-').next().unwrap_or("").parse().unwrap_or(999);
                if start != data.len() {
                    return err(416, "BLOB_UPLOAD_INVALID");
                }
                data.extend_from_slice(&body);
                let end = format!("0-{}", data.len() - 1);
                (
                    202,
                    vec![h("Location", &location(&item)), h("Range", &end)],
                    vec![],
                )
            }
            ("PUT", "/blobs/uploads/") => {
                let Some((_, mut data)) = st.uploads.remove(&item) else {
                    return err(404, "BLOB_UPLOAD_UNKNOWN");
                };
                data.extend_from_slice(&body);
                let d = q
                    .iter()
                    .find(|(k, _)| k == "digest")
                    .map(|(_, v)| v.clone());
                if d.as_deref() != Some(sha(&data).as_str()) {
                    return err(400, "DIGEST_INVALID");
                }
                let d = d.unwrap();
                st.blobs.entry(repo).or_default().insert(d.clone(), data);
                (201, vec![h("Docker-Content-Digest", &d)], vec![])
            }
            ("HEAD" | "GET", "/blobs/") => match st.blobs.get(&repo).and_then(|b| b.get(&item)) {
                Some(b) => (
                    200,
                    vec![h("Content-Length", &b.len().to_string())],
                    b.clone(),
                ),
                None => err(404, "BLOB_UNKNOWN"),
            },
            ("PUT", "/manifests/") => {
                let ct = headers.get("content-type").cloned().unwrap_or_default();
                let d = sha(&body);
                st.manifests
                    .insert((repo.clone(), d.clone()), (ct.clone(), body.clone()));
                st.manifests.insert((repo, item), (ct, body));
                (201, vec![h("Docker-Content-Digest", &d)], vec![])
            }
            ("GET" | "HEAD", "/manifests/") => match st.manifests.get(&(repo, item)) {
                Some((ct, b)) => (200, vec![h("Content-Type", ct)], b.clone()),
                None => err(404, "MANIFEST_UNKNOWN"),
            },
            _ => err(405, "UNSUPPORTED"),
        }
    }
}

impl Drop for TokenReg {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bearer tokens: login fetches one with the credentials (no scope) and fails clearly on a
/// refusal; a push asks for `repository:NAME:pull,push` (and `pull` on the repository it mounts
/// from, which the registry requires before it mounts); chunks through relative `Location`s;
/// the pushed image pulls back with the same digest.
#[test]
fn bearer_push_scopes() {
    if !need_husk("bearer_push_scopes") {
        return;
    }
    let work = tmpdir("bearer");
    let reg = TokenReg::start("carol", "pw");
    let host = reg.host();
    let auth = work.path().join("auth.json");
    let env = [("REGISTRY_AUTH_FILE", Some(auth.as_path()))];
    let store = work.path().join("store");
    let args = ["login", "-u", "carol", "-p", "bad", &host];
    let e = check_err(husk_with(&store, &args, &env, None), &args);
    assert!(e.contains("carol") && e.contains("401"), "{e}");
    assert!(!auth.exists());
    let args = ["login", "-u", "carol", "-p", "pw", &host];
    check_ok(husk_with(&store, &args, &env, None), &args);
    assert_eq!(
        reg.state.lock().unwrap().token_requests.last().unwrap(),
        &Vec::<String>::new()
    );

    let img = test_image(10);
    let (saved, _) = docker_save(&img, &["x:1"], false);
    let f = work.path().join("saved.tar");
    std::fs::write(&f, &saved).unwrap();
    let src = format!("{host}/src/app:1");
    husk_ok(&store, &["import", f.to_str().unwrap(), &src]);
    let args = ["push", "--chunk-size", "10000", &src];
    let (_, err) = check_ok(husk_with(&store, &args, &env, None), &args);
    assert!(err.contains("uploaded in 5 chunks"), "{err}");
    assert_eq!(
        reg.state.lock().unwrap().token_requests.last().unwrap(),
        &vec!["repository:src/app:pull,push".to_string()]
    );
    let dst = format!("{host}/dst/app:2");
    let args = ["push", &src, &dst];
    let (out, err) = check_ok(husk_with(&store, &args, &env, None), &args);
    assert_eq!(err.matches("mounted from src/app").count(), 3, "{err}");
    assert_eq!(
        reg.state.lock().unwrap().token_requests.last().unwrap(),
        &vec![
            "repository:dst/app:pull,push".to_string(),
            "repository:src/app:pull".to_string()
        ]
    );
    let digest = out.trim().to_string();
    let store2 = work.path().join("store2");
    let args = ["pull", "-q", &dst];
    let (out, _) = check_ok(husk_with(&store2, &args, &env, None), &args);
    assert_eq!(out.trim(), digest);
    assert_store_consistent(&store2, 1);
    let log = reg.state.lock().unwrap().log.join("\n");
    assert!(!log.contains("-> 5"), "server errors: {log}");
}

/// An OCI archive whose index.json entry is a multi-platform index (as `skopeo copy --all` or
/// Docker's containerd store write it): the host platform's manifest is imported under the
/// entry's name; an index without the host's platform is an error naming what it has.
#[test]
fn import_multi_platform_archive() {
    if !need_husk("import_multi_platform_archive") {
        return;
    }
    let work = tmpdir("multi");
    let img = test_image(11);
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let other_manifest = format!("sha256:{}", "e".repeat(64));
    let nested = |archs: &[&str]| {
        let ms: Vec<Value> = archs
            .iter()
            .map(|a| {
                let (d, size) = if *a == host_arch {
                    (img.digest.clone(), img.manifest.len())
                } else {
                    (other_manifest.clone(), 100)
                };
                json!({"mediaType": MT_MANIFEST, "digest": d, "size": size,
                       "platform": {"os": "linux", "architecture": a}})
            })
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": ms,
        }))
        .unwrap()
    };
    let archive = |nested: &[u8]| {
        let idx = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": sha(nested), "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "example.com/multi:1"}
        }]}))
        .unwrap();
        let mut files: Vec<(String, Vec<u8>)> = vec![
            ("index.json".into(), idx),
            (
                format!("blobs/sha256/{}", &sha(nested)[7..]),
                nested.to_vec(),
            ),
        ];
        let mut blobs = vec![img.manifest.clone(), img.config.clone()];
        blobs.extend(img.layers.iter().map(|l| l.0.clone()));
        for b in blobs {
            files.push((format!("blobs/sha256/{}", &sha(&b)[7..]), b));
        }
        let entries: Vec<(&str, u8, &[u8])> = files
            .iter()
            .map(|(n, d)| (n.as_str(), b'0', d.as_slice()))
            .collect();
        raw_tar(&entries)
    };
    let good = work.path().join("multi.tar");
    std::fs::write(&good, archive(&nested(&["s390x", host_arch]))).unwrap();
    let store = work.path().join("store");
    let out = husk_ok(&store, &["import", good.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("example.com/multi:1 {}", img.digest));
    let v: Value =
        serde_json::from_str(&husk_ok(&store, &["inspect", "example.com/multi:1"])).unwrap();
    assert_eq!(v["platform"]["architecture"], host_arch);
    assert_store_consistent(&store, 1);

    let bad = work.path().join("other.tar");
    std::fs::write(&bad, archive(&nested(&["s390x"]))).unwrap();
    let store2 = work.path().join("store2");
    let e = husk_err(&store2, &["import", bad.to_str().unwrap()]);
    assert!(
        e.contains(&format!("no manifest for the platform linux/{host_arch}"))
            && e.contains("linux/s390x"),
        "{e}"
    );
    assert_store_consistent(&store2, 0);
    assert_eq!(blob_count(&store2), 0);

    // --platform picks another platform's manifest (the image's blobs, labelled s390x here)
    let only = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MT_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
                       "platform": {"os": "linux", "architecture": "s390x"}}],
    }))
    .unwrap();
    let s390 = work.path().join("s390x.tar");
    std::fs::write(&s390, archive(&only)).unwrap();
    let store3 = work.path().join("store3");
    let e = husk_err(&store3, &["import", s390.to_str().unwrap()]);
    assert!(e.contains("no manifest for the platform"), "{e}");
    let out = husk_ok(
        &store3,
        &[
            "import",
            "--platform",
            "linux/s390x",
            s390.to_str().unwrap(),
        ],
    );
    assert_eq!(out.trim(), format!("example.com/multi:1 {}", img.digest));
    let v: Value =
        serde_json::from_str(&husk_ok(&store3, &["inspect", "example.com/multi:1"])).unwrap();
    assert_eq!(v["platform"]["architecture"], "s390x");
    let e = husk_err(
        &store3,
        &["import", "--platform", "linux", s390.to_str().unwrap()],
    );
    assert!(e.contains("linux"), "{e}");
}

/// A registry that requires a client certificate (mutual TLS): the certificate and key in the
/// registry's certs dir (`client.cert`, `client.key`, as Docker lays them out) get husk in;
/// without them the handshake fails with an error naming the registry, and a certificate
/// without its key is an error naming the file.
#[test]
fn tls_client_certificate() {
    if !need_tools(
        "tls_client_certificate",
        &["docker-registry", "skopeo", "openssl"],
    ) {
        return;
    }
    let work = tmpdir("mtls");
    let w = work.path();
    make_ca(w, "ca", true);
    sign(
        w,
        "ca",
        "client",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    let reg = Registry::start_with(
        None,
        Some((
            &w.join("ca-srv.crt"),
            &w.join("ca-srv.key"),
            Some(&w.join("ca.crt")),
        )),
    );
    let host = reg.host();
    let img = test_image(12);
    let layout = w.join("layout");
    write_layout(&layout, "t", &img);
    let name = format!("{host}/m/app:1");
    // skopeo as the client that has the certificate (its --dest-cert-dir: *.crt, *.cert, *.key)
    let sk = w.join("sk-certs");
    std::fs::create_dir(&sk).unwrap();
    std::fs::copy(w.join("ca.crt"), sk.join("ca.crt")).unwrap();
    std::fs::copy(w.join("client.crt"), sk.join("client.cert")).unwrap();
    std::fs::copy(w.join("client.key"), sk.join("client.key")).unwrap();
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-cert-dir"])
            .arg(&sk)
            .arg(format!("oci:{}:t", layout.display()))
            .arg(format!("docker://{name}")),
    );

    let certs = w.join("certs.d");
    let hd = certs.join(&host);
    std::fs::create_dir_all(&hd).unwrap();
    std::fs::copy(w.join("ca.crt"), hd.join("ca.crt")).unwrap();
    let certs_s = certs.to_str().unwrap();
    let store = w.join("store");
    // the CA alone: the registry refuses the handshake
    let e = husk_err(
        &store,
        &["pull", "--timeout", "10", "--certs-dir", certs_s, &name],
    );
    assert!(e.contains(&host), "{e}");
    assert_store_consistent(&store, 0);
    // a certificate without its key
    std::fs::copy(w.join("client.crt"), hd.join("client.cert")).unwrap();
    let e = husk_err(&store, &["pull", "--certs-dir", certs_s, &name]);
    assert!(e.contains("client.cert") && e.contains("has no key"), "{e}");
    // both: pull and push
    std::fs::copy(w.join("client.key"), hd.join("client.key")).unwrap();
    let out = husk_ok(&store, &["pull", "-q", "--certs-dir", certs_s, &name]);
    assert_eq!(out.trim(), img.digest);
    let copy = format!("{host}/m/copy:1");
    husk_ok(
        &store,
        &["push", "-q", "--certs-dir", certs_s, &name, &copy],
    );
    let o = run_timeout(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(&sk)
            .arg(format!("docker://{copy}")),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(sha(&o.stdout), img.digest);
}

/// export errors name the image, blob or path, and leave no file (not even a partial one).
#[test]
fn export_errors_leave_no_file() {
    if !need_husk("export_errors_leave_no_file") {
        return;
    }
    let work = tmpdir("export-err");
    let img = test_image(13);
    let (saved, _) = docker_save(&img, &["ex:1"], false);
    let f = work.path().join("saved.tar");
    std::fs::write(&f, &saved).unwrap();
    let store = work.path().join("store");
    husk_ok(&store, &["import", f.to_str().unwrap()]);
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("ex.tar");
    let out_s = out.to_str().unwrap();

    let e = husk_err(&store, &["export", "no/such:1", out_s]);
    assert!(e.contains("docker.io/no/such:1 is not in the store"), "{e}");
    let e = husk_err(&store, &["export", "ex:1", "/nonexistent/dir/ex.tar"]);
    assert!(e.contains("/nonexistent/dir"), "{e}");
    // a layer gone from the store: named, and no archive is left behind
    let layer = sha(&img.layers[1].1); // docker save layers are stored uncompressed
    std::fs::remove_file(store.join("blobs/sha256").join(&layer[7..])).unwrap();
    let e = husk_err(&store, &["export", "ex:1", out_s]);
    assert!(e.contains(&layer) && e.contains("not in the store"), "{e}");
    // a blob whose content no longer matches its name
    std::fs::write(
        store.join("blobs/sha256").join(&layer[7..]),
        b"not the layer",
    )
    .unwrap();
    let e = husk_err(&store, &["export", "ex:1", out_s]);
    assert!(e.contains(&layer) && e.contains("corrupt"), "{e}");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}

/// prune while pulls run: each pull lands whole (prune waits for the shared store lock a pull
/// holds, and never collects blobs a pull has fetched but not yet named).
#[test]
fn prune_during_pulls() {
    if !need_tools("prune_during_pulls", &["docker-registry", "skopeo"]) {
        return;
    }
    let work = tmpdir("prune-pull");
    let reg = Registry::start(None);
    let img = image(
        vec![
            tar_of(&[("etc/hello", b"hello\n")]),
            tar_of(&[("data/noise", &noise(3 << 20, 14))]),
        ],
        &["/bin/true"],
    );
    let name = skopeo_pushed(&reg, work.path(), &img, "p/app:1", None);
    let store = work.path().join("store");
    for round in 0..3 {
        let pulls: Vec<_> = (0..2)
            .map(|_| {
                let (store, name) = (store.clone(), name.clone());
                std::thread::spawn(move || husk_ok(&store, &["pull", "-q", &name]))
            })
            .collect();
        for _ in 0..4 {
            husk_ok(&store, &["prune"]);
        }
        for p in pulls {
            assert_eq!(p.join().unwrap().trim(), img.digest, "round {round}");
        }
        assert_store_consistent(&store, 1);
        assert_eq!(blob_count(&store), 4, "round {round}");
        let b = work.path().join(format!("b{round}"));
        husk_ok(&store, &["unpack", &name, b.to_str().unwrap()]);
        assert_eq!(
            std::fs::read(b.join("rootfs/data/noise")).unwrap().len(),
            3 << 20
        );
        husk_ok(&store, &["rm", &name]);
        assert_eq!(blob_count(&store), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// progress output

/// The JSON events of `--progress json` on stdout, one object a line.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// `pull --progress json`: every blob (config and each layer) has a `start` and a `done`
/// event with its digest and size, `progress` events stay within the blob's size, and the
/// stream ends with the `image` event carrying the manifest digest (stdout holds nothing
/// else); a second pull says `present`; a push streams the same way; a failure ends the
/// stream with an `error` event. Without a terminal the default is one plain line per blob
/// on stderr, no escape sequences.
#[test]
fn progress_json_stream() {
    if !need_tools("progress_json_stream", &["docker-registry", "skopeo"]) {
        return;
    }
    let work = tmpdir("progress");
    let reg = Registry::start(None);
    let img = image(
        vec![
            tar_of(&[("etc/hello", b"hello\n")]),
            tar_of(&[("data/a", &noise(3_000_000, 21))]),
            tar_of(&[("data/b", &noise(500_000, 22))]),
        ],
        &["/bin/true"],
    );
    let r = skopeo_pushed(&reg, work.path(), &img, "prog/app:1", None);
    let mut want: Vec<(String, u64, &str)> =
        vec![(sha(&img.config), img.config.len() as u64, "config")];
    want.extend(
        img.layers
            .iter()
            .map(|l| (sha(&l.0), l.0.len() as u64, "layer")),
    );

    let check = |out: &str, status: &str, action: &str, reference: &str| {
        let ev = events(out);
        for (d, size, role) in &want {
            let of = |kind: &str| -> Vec<&Value> {
                ev.iter()
                    .filter(|e| e["event"] == kind && e["digest"] == d.as_str())
                    .collect()
            };
            let start = of("start");
            assert_eq!(start.len(), 1, "{d}: {out}");
            assert_eq!(start[0]["total"], *size, "{out}");
            assert_eq!(start[0]["role"], *role, "{out}");
            let done = of("done");
            assert_eq!(done.len(), 1, "{d}: {out}");
            assert_eq!(done[0]["total"], *size, "{out}");
            assert_eq!(done[0]["status"], status, "{out}");
            if status != "present" {
                assert_eq!(done[0]["bytes"], *size, "{out}");
            }
            for p in of("progress") {
                assert!(p["bytes"].as_u64().unwrap() < *size, "{p}");
            }
            // start before progress before done
            let pos = |e: &Value| ev.iter().position(|x| std::ptr::eq(x, e)).unwrap();
            assert!(pos(start[0]) < pos(done[0]), "{out}");
        }
        let last = ev.last().unwrap();
        assert_eq!(last["event"], "image", "{out}");
        assert_eq!(last["action"], action, "{out}");
        assert_eq!(last["digest"], img.digest, "{out}");
        assert_eq!(last["reference"], reference, "{out}");
        assert_eq!(
            ev.iter().filter(|e| e["event"] == "image").count(),
            1,
            "{out}"
        );
    };

    let store = work.path().join("store");
    let (out, err) = husk_ok2(&store, &["pull", "--progress", "json", &r]);
    check(&out, "fetched", "pull", &r);
    assert!(!err.contains("layer sha256:"), "{err}");
    let (out, _) = husk_ok2(&store, &["pull", "--progress", "json", &r]);
    check(&out, "present", "pull", &r);

    // not a terminal: plain lines on stderr, the digest alone on stdout
    let store2 = work.path().join("store2");
    let (out, err) = husk_ok2(&store2, &["pull", &r]);
    assert_eq!(out.trim(), img.digest);
    for (d, size, role) in &want {
        assert!(
            err.contains(&format!("{role} {d} ({size} bytes): fetched\n")),
            "{err}"
        );
    }
    assert!(
        !err.contains('\x1b'),
        "escape sequences without a terminal: {err:?}"
    );
    // --quiet and --progress quiet: nothing on stderr
    let store3 = work.path().join("store3");
    let (_, err) = husk_ok2(&store3, &["pull", "--progress", "quiet", &r]);
    assert_eq!(err, "");

    // push streams the same events, uploaded
    let dst = format!("{}/prog/copy:1", reg.host());
    let (out, _) = husk_ok2(&store, &["push", "--progress", "json", &r, &dst]);
    let ev = events(&out);
    for (d, size, _) in &want {
        let done = ev
            .iter()
            .find(|e| e["event"] == "done" && e["digest"] == d.as_str())
            .unwrap_or_else(|| panic!("no done event for {d}: {out}"));
        assert_eq!(done["total"], *size, "{out}");
        assert!(
            done["status"]
                .as_str()
                .unwrap()
                .starts_with("mounted from prog/app")
                || done["status"] == "uploaded",
            "{out}"
        );
    }
    assert_eq!(ev.last().unwrap()["event"], "image", "{out}");
    assert_eq!(ev.last().unwrap()["digest"], img.digest, "{out}");

    // a failure: an error event last, naming what failed
    let missing = format!("{}/prog/none:1", reg.host());
    let o = husk(&store, &["pull", "--progress", "json", &missing]);
    let e = check_err(o.clone(), &["pull", "--progress", "json", &missing]);
    let ev = events(&text(&o.stdout));
    let last = ev.last().expect("an error event");
    assert_eq!(last["event"], "error");
    assert!(
        last["message"].as_str().unwrap().contains("prog/none:1"),
        "{last}"
    );
    assert!(e.contains("prog/none:1"), "{e}");

    // bad values are refused by name
    let e = husk_err(&store, &["pull", "--progress", "fancy", &r]);
    assert!(
        e.contains("--progress \"fancy\"") && e.contains("json"),
        "{e}"
    );
    let e = husk_err(&store, &["pull", "-q", "--progress", "json", &r]);
    assert!(
        e.contains("--quiet") && e.contains("--progress json"),
        "{e}"
    );
}

/// Run a shell command line on a pseudo-terminal (`script`), 160 columns; its output.
fn on_a_terminal(cmd: &str) -> String {
    run_ok(
        Command::new("script")
            .args(["-q", "-e", "-c", cmd, "/dev/null"])
            .env("TERM", "xterm")
            .env("COLUMNS", "160"),
    )
}

/// On a terminal (a pty made by `script`) pull draws progress bars: per-blob lines redrawn
/// with escape sequences, bytes done of the total and a speed; the same pull with stderr not a
/// terminal prints plain lines only. Import draws a bar per archive entry it stages.
#[test]
fn progress_bars_on_a_terminal() {
    if !need_tools(
        "progress_bars_on_a_terminal",
        &["docker-registry", "skopeo", "script"],
    ) {
        return;
    }
    let work = tmpdir("bars");
    let reg = Registry::start(None);
    let img = image(
        vec![
            tar_of(&[("etc/hello", b"hello\n")]),
            tar_of(&[("data/a", &noise(2_000_000, 31))]),
        ],
        &["/bin/true"],
    );
    let r = skopeo_pushed(&reg, work.path(), &img, "bars/app:1", None);
    let store = work.path().join("store");
    let out = on_a_terminal(&format!(
        "{} image --store {} pull {r}",
        runtime().display(),
        store.display()
    ));
    assert!(out.contains('\x1b'), "no terminal drawing: {out:?}");
    let big = &sha(&img.layers[1].0)[7..19];
    assert!(
        out.contains(&format!("layer  {big} [")),
        "no bar for layer {big}: {out:?}"
    );
    // the layer blob's size as the bar prints it (gzip's output size depends on the
    // compressor's version, so it is not written here)
    let mib = img.layers[1].0.len() as f64 / (1024.0 * 1024.0);
    let total = format!("{mib:.2} MiB/{mib:.2} MiB");
    assert!(
        out.contains(&total),
        "bytes of the total ({total}): {out:?}"
    );
    assert!(out.contains("/s"), "a speed: {out:?}");
    assert!(out.contains("fetched"), "{out:?}");
    assert!(
        !out.contains("): fetched"),
        "plain lines on a terminal: {out:?}"
    );
    assert!(out.contains(&img.digest), "{out:?}");

    // the same pull, stderr a pipe: plain lines, no bars
    let store2 = work.path().join("store2");
    let (_, err) = husk_ok2(&store2, &["pull", &r]);
    assert!(!err.contains('\x1b') && !err.contains(" ["), "{err:?}");
    assert!(
        err.contains(&format!("layer {} (", sha(&img.layers[1].0))),
        "{err}"
    );

    // import on a terminal: a bar per archive entry staged, named by its blob's digest
    let archive = work.path().join("a.tar");
    std::fs::write(
        &archive,
        oci_archive(&img, "example.com/bars:1", None, None),
    )
    .unwrap();
    let store3 = work.path().join("store3");
    let out = on_a_terminal(&format!(
        "{} image --store {} import {}",
        runtime().display(),
        store3.display(),
        archive.display()
    ));
    assert!(out.contains('\x1b'), "no terminal drawing: {out:?}");
    assert!(
        out.contains(&format!("entry  {big} [")),
        "no bar for the entry of layer {big}: {out:?}"
    );
    assert!(out.contains(&total) && out.contains("staged"), "{out:?}");
    assert!(
        !out.contains("): staged"),
        "plain lines on a terminal: {out:?}"
    );
    assert!(out.contains(&img.digest), "{out:?}");
}

/// A multi-platform image kept whole (`import --all-platforms`) is pushed whole: every
/// platform's blobs and manifest, then the index last; the registry serves the index
/// (`skopeo inspect --raw`), each platform pulls back with `--platform`, `pull
/// --all-platforms` stores the same index, and a push of that copy to another repository
/// mounts every blob. The store lists one image, unpacks the host's platform, exports the
/// whole image, and `rm` collects every blob.
#[test]
fn push_multi_platform_index() {
    if !need_tools("push_multi_platform_index", &["docker-registry", "skopeo"]) {
        return;
    }
    let work = tmpdir("multipush");
    let reg = Registry::start(None);
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let other_arch = if host_arch == "s390x" {
        "ppc64le"
    } else {
        "s390x"
    };
    let shared = tar_of(&[("etc/hello", b"hello\n")]);
    let imgs = [
        image_for(
            host_arch,
            vec![shared.clone(), tar_of(&[("data/host", &noise(30_000, 41))])],
            &["/bin/true"],
        ),
        image_for(
            other_arch,
            vec![
                shared.clone(),
                tar_of(&[("data/other", &noise(30_000, 42))]),
            ],
            &["/bin/false"],
        ),
    ];
    // a build attestation of the host's image, as BuildKit adds: an in-toto layer, kept and
    // pushed along, never unpacked
    let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#.to_vec();
    let att_config = serde_json::to_vec(&json!({
        "architecture": "unknown", "os": "unknown", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha(&statement)]},
    }))
    .unwrap();
    let att = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha(&att_config), "size": att_config.len()},
        "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": sha(&statement),
                    "size": statement.len()}],
    }))
    .unwrap();
    let mut listed: Vec<Value> = imgs
        .iter()
        .zip([host_arch, other_arch])
        .map(|(i, a)| {
            json!({
                "mediaType": MT_MANIFEST, "digest": i.digest, "size": i.manifest.len(),
                "platform": {"os": "linux", "architecture": a}
            })
        })
        .collect();
    listed.push(json!({
        "mediaType": MT_MANIFEST, "digest": sha(&att), "size": att.len(),
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": imgs[0].digest},
    }));
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": listed,
    }))
    .unwrap();
    let index_digest = sha(&nested);
    let idx = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index_digest, "size": nested.len(),
        "annotations": {"org.opencontainers.image.ref.name": "example.com/multi:2"}
    }]}))
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("index.json".into(), idx),
        (
            format!("blobs/sha256/{}", &index_digest[7..]),
            nested.clone(),
        ),
    ];
    for b in [&att, &att_config, &statement] {
        files.push((format!("blobs/sha256/{}", &sha(b)[7..]), b.clone()));
    }
    for i in &imgs {
        let mut blobs = vec![i.manifest.clone(), i.config.clone()];
        blobs.extend(i.layers.iter().map(|l| l.0.clone()));
        for b in blobs {
            let n = format!("blobs/sha256/{}", &sha(&b)[7..]);
            if !files.iter().any(|f| f.0 == n) {
                files.push((n, b));
            }
        }
    }
    let entries: Vec<(&str, u8, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), b'0', d.as_slice()))
        .collect();
    let archive = work.path().join("multi.tar");
    std::fs::write(&archive, raw_tar(&entries)).unwrap();

    let store = work.path().join("store");
    // the two flags contradict each other: a usage error, nothing stored
    let o = husk(
        &store,
        &[
            "import",
            "--all-platforms",
            "--platform",
            "linux/amd64",
            archive.to_str().unwrap(),
        ],
    );
    let e = text(&o.stderr);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("--platform") && e.contains("--all-platforms"),
        "{e}"
    );
    assert_store_consistent(&store, 0);
    let out = husk_ok(
        &store,
        &["import", "--all-platforms", archive.to_str().unwrap()],
    );
    assert_eq!(out.trim(), format!("example.com/multi:2 {index_digest}"));
    assert_store_consistent(&store, 1);
    // 1 index + 2 manifests + 2 configs + 3 layers (one shared) + the attestation's 3
    assert_eq!(blob_count(&store), 11);
    let v: Value =
        serde_json::from_str(&husk_ok(&store, &["inspect", "example.com/multi:2"])).unwrap();
    assert_eq!(v["index"]["digest"], index_digest, "{v}");
    assert_eq!(v["digest"], imgs[0].digest, "the host's platform: {v}");
    assert_eq!(v["platform"]["architecture"], host_arch, "{v}");
    let bundle = work.path().join("bundle");
    husk_ok(
        &store,
        &["unpack", "example.com/multi:2", bundle.to_str().unwrap()],
    );
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], json!(["/bin/true"]), "{cfg}");
    assert_eq!(
        std::fs::read(bundle.join("rootfs/data/host")).unwrap(),
        noise(30_000, 41)
    );

    // push: every blob and both manifests, the index last
    let dst = format!("{}/multi/app:2", reg.host());
    let (out, err) = husk_ok2(&store, &["push", "example.com/multi:2", &dst]);
    assert_eq!(out.trim(), index_digest, "{err}");
    let reqs = reg.requests();
    let puts: Vec<&(String, String)> = reqs
        .iter()
        .filter(|(m, p)| m == "PUT" && p.contains("/manifests/"))
        .collect();
    assert_eq!(puts.len(), 4, "{reqs:?}");
    assert!(
        puts[3].1.ends_with("/manifests/2"),
        "the index goes last: {reqs:?}"
    );
    for i in &imgs {
        assert!(
            puts[..3]
                .iter()
                .any(|(_, p)| p.ends_with(&format!("/manifests/{}", i.digest))),
            "{reqs:?}"
        );
    }
    let last_put = reqs
        .iter()
        .rposition(|(m, p)| m == "PUT" && p.contains("/manifests/2"));
    let last_blob = reqs
        .iter()
        .rposition(|(m, p)| (m == "PUT" || m == "PATCH" || m == "POST") && p.contains("/blobs/"));
    assert!(last_blob < last_put, "{reqs:?}");
    let raw = reg.raw_manifest("multi/app:2", None);
    assert_eq!(sha(&raw), index_digest);
    let served: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(served["manifests"].as_array().unwrap().len(), 3, "{served}");
    // each platform pulls back with --platform
    for (i, a) in imgs.iter().zip([host_arch, other_arch]) {
        let s = work.path().join(format!("back-{a}"));
        let d = husk_ok(
            &s,
            &["pull", "-q", "--platform", &format!("linux/{a}"), &dst],
        );
        assert_eq!(d.trim(), i.digest);
        assert_store_consistent(&s, 1);
    }

    // pull --all-platforms keeps the index; pushed to another repository, everything mounts
    let s2 = work.path().join("all");
    let d = husk_ok(&s2, &["pull", "-q", "--all-platforms", &dst]);
    assert_eq!(d.trim(), index_digest);
    assert_eq!(blob_count(&s2), 11);
    assert_store_consistent(&s2, 1);
    let dst2 = format!("{}/multi/copy:2", reg.host());
    let (out, err) = husk_ok2(&s2, &["push", &dst, &dst2]);
    assert_eq!(out.trim(), index_digest);
    assert_eq!(err.matches("mounted from multi/app").count(), 7, "{err}");
    assert_eq!(sha(&reg.raw_manifest("multi/copy:2", None)), index_digest);

    // export holds the whole image: a fresh store imports the same index
    let exported = work.path().join("export.tar");
    husk_ok(&s2, &["export", &dst, exported.to_str().unwrap()]);
    let s3 = work.path().join("reimport");
    let out = husk_ok(
        &s3,
        &["import", "--all-platforms", exported.to_str().unwrap()],
    );
    assert_eq!(out.trim(), format!("{dst} {index_digest}"));
    assert_eq!(blob_count(&s3), 11);
    // ls: one image, the size of every platform's blobs
    let ls: Value = serde_json::from_str(&husk_ok(&s3, &["ls", "--format", "json"])).unwrap();
    // each blob once: the shared layer counts once
    let total: usize = imgs
        .iter()
        .map(|i| i.config.len() + i.layers.iter().map(|l| l.0.len()).sum::<usize>())
        .sum::<usize>()
        - imgs[0].layers[0].0.len()
        + att_config.len()
        + statement.len();
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls[0]["size"], total, "{ls}");
    assert_eq!(ls[0]["digest"], index_digest, "{ls}");
    // rm collects every platform's blobs
    husk_ok(&s3, &["rm", &dst]);
    assert_eq!(blob_count(&s3), 0);
}

/// `import --progress json`: each archive entry being staged has one `start` event (its name
/// and size) and one `done` event (all its bytes, `staged`, the digest of its content), any
/// `progress` event in between stays within its size, and one `image` event per name stored
/// ends the stream (stdout holds nothing else). Without a terminal the default is one plain
/// line per entry on stderr, stdout keeping `NAME DIGEST`. A failed import ends the stream
/// with an `error` event; `-q` contradicts `--progress json`.
#[test]
fn import_progress_json() {
    if !need_husk("import_progress_json") {
        return;
    }
    let work = tmpdir("import-progress");
    let img = image(
        vec![
            tar_of(&[("etc/hello", b"hello\n")]),
            tar_of(&[("data/a", &noise(3_000_000, 31))]),
        ],
        &["/bin/true"],
    );
    let name = "example.com/prog:1";
    let bytes = oci_archive(&img, name, None, None);
    let f = work.path().join("a.tar");
    std::fs::write(&f, &bytes).unwrap();
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    let mut a = tar::Archive::new(&bytes[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let n = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        want.push((n, data));
    }
    assert!(
        want.len() >= 6,
        "oci-layout, index.json, manifest, config, 2 layers"
    );

    let store = work.path().join("store");
    let out = husk_ok(
        &store,
        &["import", "--progress", "json", f.to_str().unwrap()],
    );
    let ev = events(&out);
    for (n, data) in &want {
        let of = |kind: &str| -> Vec<(usize, &Value)> {
            ev.iter()
                .enumerate()
                .filter(|(_, e)| e["event"] == kind && e["name"] == n.as_str())
                .collect()
        };
        let starts = of("start");
        assert_eq!(starts.len(), 1, "{n}: one start: {out}");
        assert_eq!(starts[0].1["role"], "entry");
        assert_eq!(starts[0].1["total"], data.len() as u64, "{n}");
        let dones = of("done");
        assert_eq!(dones.len(), 1, "{n}: one done: {out}");
        let d = dones[0].1;
        assert_eq!(d["bytes"], data.len() as u64, "{n}");
        assert_eq!(d["total"], data.len() as u64, "{n}");
        assert_eq!(d["status"], "staged");
        assert_eq!(d["digest"], sha(data), "{n}");
        assert!(starts[0].0 < dones[0].0, "{n}: start before done");
        for (i, p) in of("progress") {
            assert!(starts[0].0 < i && i < dones[0].0, "{n}: progress between");
            assert!(p["bytes"].as_u64().unwrap() <= data.len() as u64, "{p}");
        }
    }
    assert_eq!(
        ev.iter().filter(|e| e["event"] == "start").count(),
        want.len()
    );
    let last = ev.last().unwrap();
    assert_eq!(
        (
            &last["event"],
            &last["action"],
            &last["reference"],
            &last["digest"]
        ),
        (
            &json!("image"),
            &json!("import"),
            &json!(name),
            &json!(img.digest)
        ),
        "{out}"
    );
    assert_eq!(ev.iter().filter(|e| e["event"] == "image").count(), 1);
    assert_store_consistent(&store, 1);

    // the default without a terminal: plain lines on stderr
    let store2 = work.path().join("store2");
    let (out, err) = husk_ok2(&store2, &["import", f.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("{name} {}", img.digest));
    for (n, data) in &want {
        let line = format!("entry {n} ({} bytes): staged {}", data.len(), sha(data));
        assert!(err.lines().any(|l| l == line), "no {line:?} in {err}");
    }
    assert!(!err.contains('\x1b'), "escape sequences without a terminal");

    // a failure ends the stream with an error event
    let bad = work.path().join("bad.tar");
    let layer = sha(&img.layers[1].0);
    std::fs::write(&bad, oci_archive(&img, name, None, Some(&layer))).unwrap();
    let store3 = work.path().join("store3");
    let o = husk(
        &store3,
        &["import", "--progress", "json", bad.to_str().unwrap()],
    );
    assert_eq!(code(&o.status), 1);
    let out = text(&o.stdout);
    let ev = events(&out);
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "error", "{out}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("digest mismatch"),
        "{last}"
    );
    assert_eq!(ev.iter().filter(|e| e["event"] == "image").count(), 0);

    let e = husk_err(
        &store3,
        &["import", "-q", "--progress", "json", bad.to_str().unwrap()],
    );
    assert!(
        e.contains("--quiet") && e.contains("--progress json"),
        "{e}"
    );
}
