//! Property-based fuzzing of every parser that reads input husk does not control: config.json
//! (parser and validator), mount options, the /proc and cgroup file parsers, D-Bus messages,
//! CRIU responses, the command-line value parsers, and the image companion's: references,
//! registry auth challenges, entry names, image users, damaged tar layers and damaged image
//! archives (imported whole or not at all). proptest on the stable toolchain, so the ordinary
//! `cargo test --lib` runs it; `PROPTEST_CASES` sets the number of cases (default 256 per
//! property, a few seconds in all). A failing case is shrunk
//! and saved under `proptest-regressions/`, which is committed and replayed first on every
//! later run.
//!
//! The property everywhere: no panic on any input, and an error, when there is one, says
//! something.

use proptest::prelude::*;

/// Arbitrary text that looks a little like the files being parsed: digits, separators, words.
fn texty() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(" ".to_string()),
            Just("\n".to_string()),
            Just(":".to_string()),
            Just("-".to_string()),
            Just(",".to_string()),
            Just("/".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just("max".to_string()),
            "[0-9]{1,20}",
            "[a-z_=]{1,8}",
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..64,
    )
    .prop_map(|v| v.concat())
}

/// The default config as JSON, and every path (object keys, array indexes) inside it.
fn default_config() -> serde_json::Value {
    serde_json::from_str(&crate::spec::default_spec_json(false)).unwrap()
}

fn paths(v: &serde_json::Value, cur: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                cur.push(k.clone());
                out.push(cur.clone());
                paths(x, cur, out);
                cur.pop();
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                cur.push(i.to_string());
                out.push(cur.clone());
                paths(x, cur, out);
                cur.pop();
            }
        }
        _ => {}
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        "/[a-z./]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A bundle dir with an empty rootfs, for the validator.
fn bundle() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("rootfs")).unwrap();
    d
}

proptest! {
    #[test]
    fn config_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = crate::spec::parse(&b) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// The default config with one field replaced by an arbitrary JSON value (or removed), through
    /// the parser and the validator.
    #[test]
    fn mutated_config_parses_and_validates_without_panic(
        pick in any::<prop::sample::Index>(),
        remove in any::<bool>(),
        v in json_value(),
    ) {
        let mut cfg = default_config();
        let mut all = Vec::new();
        paths(&cfg, &mut Vec::new(), &mut all);
        let p = pick.get(&all).clone();
        let mut cur = &mut cfg;
        for seg in &p[..p.len() - 1] {
            cur = match cur {
                serde_json::Value::Array(a) => &mut a[seg.parse::<usize>().unwrap()],
                other => &mut other[seg.as_str()],
            };
        }
        let last = p.last().unwrap();
        match cur {
            serde_json::Value::Array(a) => {
                let i = last.parse::<usize>().unwrap();
                if remove { a.remove(i); } else { a[i] = v; }
            }
            serde_json::Value::Object(o) => {
                if remove { o.remove(last); } else { o.insert(last.clone(), v); }
            }
            _ => unreachable!(),
        }
        let bytes = serde_json::to_vec(&cfg).unwrap();
        match crate::spec::parse(&bytes) {
            Ok(spec) => {
                let b = bundle();
                if let Err(e) = crate::spec::validate(&spec, b.path()) {
                    prop_assert!(!e.to_string().is_empty());
                }
                // what create computes from a valid config before anything is made
                let _ = crate::process::compile_seccomp(&spec);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn mount_options_never_panic(
        opts in proptest::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "ro", "rw", "bind", "rbind", "nosuid", "idmap", "ridmap", "tmpcopyup",
                    "rprivate", "shared", "size=", "mode=1777", "uid=", "remount", "nosymfollow",
                ]).prop_map(String::from),
                ".{0,16}",
                "[a-z]{1,8}=[0-9a-z,]{0,8}",
            ],
            0..8,
        ),
        prop in ".{0,16}",
    ) {
        let _ = crate::rootfs::options::parse_mount_options(&opts);
        let _ = crate::rootfs::options::parse_propagation(&prop);
    }

    #[test]
    fn proc_and_cgroup_files_never_panic(t in texty()) {
        let _ = crate::cgroups::util::parse_mountinfo(&t);
        let _ = crate::sys::procfmt::proc_cgroup(&t);
        let _ = crate::sys::procfmt::mountinfo(&t);
        let _ = crate::sys::procfmt::id_to_parent(&t, 1000);
        let _ = crate::cgroups::stats::parse_flat_keyed(&t);
        let _ = crate::cgroups::stats::parse_blkio_v1(&t);
        let _ = crate::cgroups::stats::parse_io_stat(&t);
        let _ = crate::cgroups::util::parse_u64(&t);
        let _ = crate::sys::procfmt::stat_start_time(&t);
        let _ = crate::process::affinity::parse_cpu_list("f", &t);
    }

    /// cpuset lists are bounded: a huge range must not allocate without limit.
    #[test]
    fn cpuset_lists_stay_small(a in any::<u32>(), b in any::<u32>()) {
        let v = crate::cgroups::stats::parse_cpuset_list(&format!("{a}-{b}"));
        prop_assert!(v.len() <= 1 << 16);
    }

    #[test]
    fn stat_lines_give_the_start_time(
        comm in ".{0,16}",
        state in prop::sample::select(vec!["R", "S", "D", "Z", "X"]),
        start in any::<u64>(),
    ) {
        let fields: Vec<String> = (4..22).map(|i| i.to_string()).collect();
        let line = format!("123 ({comm}) {state} {} {start} 0 0\n", fields.join(" "));
        let want = if state == "Z" || state == "X" { None } else { Some(start) };
        prop_assert_eq!(crate::sys::procfmt::stat_start_time(&line), want);
    }

    #[test]
    fn dbus_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = crate::cgroups::dbus::decode(&b);
    }

    /// A real method call with some of its bytes changed.
    #[test]
    fn dbus_mutated_messages_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        use crate::cgroups::dbus::{encode_call, prop, props, Value};
        let mut m = encode_call(
            7,
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            &[
                Value::str("husk-x.scope"),
                Value::str("fail"),
                props(vec![prop("Description", Value::str("x"))]),
            ],
        );
        for (i, b) in &edits {
            let at = i.index(m.len());
            m[at] = *b;
        }
        let n = cut.index(m.len() + 1);
        let _ = crate::cgroups::dbus::decode(&m[..n]);
        let _ = crate::cgroups::dbus::decode(&m);
    }

    #[test]
    fn criu_responses_never_panic(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = crate::criu::proto::Resp::decode(&b);
    }

    #[test]
    fn command_line_values_never_panic(s in ".{0,24}") {
        let _ = crate::container::parse_signal(&s);
        let _ = crate::container::parse_user(&s);
        let _ = crate::cgroups::dbus::parse_bus_address(&s);
        let _ = crate::criu::proto::CgMode::parse(&s);
        let _ = crate::state::validate_id(&s);
    }
}

/// A small layer with the shapes the applier treats specially: directories, files, a symlink
/// out of the root, a hardlink, a `..` name, whiteouts. The properties below mutate its bytes.
fn sample_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        // the name goes in raw: the tar crate refuses to write a `..` name; a layer may hold one
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, b"", None);
    add(
        "etc/passwd",
        tar::EntryType::Regular,
        b"root:x:0:0::/root:/bin/sh\n",
        None,
    );
    add("out", tar::EntryType::Symlink, b"", Some("/../../.."));
    add("hard", tar::EntryType::Link, b"", Some("etc/passwd"));
    add("a/../../b", tar::EntryType::Regular, b"x", None);
    add("etc/.wh.passwd", tar::EntryType::Regular, b"", None);
    add("etc/.wh..wh..opq", tar::EntryType::Regular, b"", None);
    b.into_inner().unwrap()
}

/// Every entry under `dir`, relative, sorted.
fn tree(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

// The image companion's parsers: references, auth challenges, the credentials encoding, entry
// names, Docker's `user[:group]` against passwd/group text, and tar layers themselves.
proptest! {
    #[test]
    fn references_never_panic_and_print_back(s in "[a-zA-Z0-9:/@._-]{0,64}|.{0,64}") {
        if let Ok(r) = crate::registry::reference::Reference::parse(&s) {
            // what husk prints for a reference parses back to the same reference
            let shown = r.to_string();
            let again = crate::registry::reference::Reference::parse(&shown);
            prop_assert!(again.is_ok(), "{s:?} -> {shown:?} does not parse: {again:?}");
            prop_assert_eq!(again.unwrap().to_string(), shown);
        } else if let Err(e) = crate::registry::reference::Reference::parse(&s) {
            prop_assert!(!e.is_empty());
        }
        let _ = crate::registry::reference::check_digest(&s);
    }

    #[test]
    fn challenges_never_panic(
        s in r#"(Bearer|Basic|bearer)? ?([a-z]{1,8}="[^"]{0,16}",?){0,4}|.{0,64}"#
    ) {
        let _ = crate::registry::auth::parse_challenge(&s);
    }

    #[test]
    fn base64_round_trips(b in proptest::collection::vec(any::<u8>(), 0..96), s in ".{0,64}") {
        let e = crate::registry::auth::base64_encode(&b);
        prop_assert_eq!(crate::registry::auth::base64_decode(&e), Some(b));
        let _ = crate::registry::auth::base64_decode(&s);
    }

    /// A cleaned entry name is relative and made of plain components only.
    #[test]
    fn entry_names_stay_inside(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some(p) = crate::image::layer::clean(&b) {
            for c in p.components() {
                prop_assert!(
                    matches!(c, std::path::Component::Normal(_)),
                    "{:?} cleans to {:?}",
                    String::from_utf8_lossy(&b),
                    p
                );
            }
        }
    }

    #[test]
    fn image_users_never_panic(
        spec in "[a-z0-9:]{0,12}|.{0,16}",
        passwd in texty(),
        group in texty(),
    ) {
        let _ = crate::image::config::resolve_user(&spec, Some(&passwd), Some(&group));
        let _ = crate::image::config::resolve_user(&spec, None, None);
    }

    /// A damaged layer is applied or refused, never a panic, and nothing is written outside the
    /// root it is applied to.
    #[test]
    fn damaged_layers_stay_inside(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        whole in any::<bool>(),
    ) {
        let mut layer = sample_layer();
        for (at, byte) in &flips {
            let i = at.index(layer.len());
            layer[i] = *byte;
        }
        if !whole {
            layer.truncate(cut.index(layer.len() + 1));
        }
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let fd = std::fs::File::open(&root).unwrap();
        let opts = crate::image::layer::ApplyOptions { same_owner: false, overlay: false, mapped: None };
        if let Err(e) = crate::image::layer::apply(
            std::os::fd::AsFd::as_fd(&fd),
            &layer[..],
            opts,
            "sha256:fuzz",
        ) {
            prop_assert!(format!("{e:#}").contains("sha256:fuzz"), "{e:#}");
        }
        let outside: Vec<_> = tree(top.path())
            .into_iter()
            .filter(|p| !p.starts_with("rootfs"))
            .collect();
        prop_assert!(outside.is_empty(), "written outside the root: {outside:?}");
    }
}

/// A `docker save` tarball of one image: config, one layer (the sample layer), manifest.json,
/// and a second layer name that is a symlink to the first.
fn sample_docker_archive() -> Vec<u8> {
    use sha2::Digest as _;
    let layer = sample_layer();
    let diff = format!(
        "sha256:{}",
        crate::image::store::hex(&sha2::Sha256::digest(&layer))
    );
    let cfg = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff, diff]},
    }))
    .unwrap();
    let cfg_name = format!(
        "{}.json",
        crate::image::store::hex(&sha2::Sha256::digest(&cfg))
    );
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg_name, "RepoTags": ["fuzz:1"], "Layers": ["l1/layer.tar", "l2/layer.tar"],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(l).unwrap();
            }
            None => h.set_entry_type(tar::EntryType::Regular),
        }
        h.set_path(path).unwrap();
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add(&cfg_name, &cfg, None);
    add("l1/layer.tar", &layer, None);
    add("l2/layer.tar", b"", Some("../l1/layer.tar"));
    add("manifest.json", &manifest, None);
    b.into_inner().unwrap()
}

// Image archives: entry and link names, registry names for login, and damaged archives.
proptest! {
    #[test]
    fn archive_names_stay_inside(
        b in proptest::collection::vec(any::<u8>(), 0..64),
        t in proptest::collection::vec(any::<u8>(), 0..64),
        sym in any::<bool>(),
    ) {
        let inside = |n: &str| {
            !n.starts_with('/') && n.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        };
        if let Some(n) = crate::image::archive::clean_name(&b) {
            prop_assert!(inside(&n), "{n:?}");
        }
        if let Some(n) = crate::image::archive::link_target("a/b", &t, sym) {
            prop_assert!(inside(&n), "{n:?}");
        }
    }

    #[test]
    fn registry_names_never_panic(s in ".{0,64}") {
        if let Ok(k) = crate::registry::login::registry_key(&s) {
            prop_assert!(!k.is_empty() && !k.contains('/'), "{k:?}");
        }
    }

    /// A damaged archive is imported whole or refused with the store untouched: no index entry,
    /// no blob, nothing left in tmp/.
    #[test]
    fn damaged_archives_import_whole_or_not_at_all(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        whole in any::<bool>(),
    ) {
        let mut a = sample_docker_archive();
        for (at, byte) in &flips {
            let i = at.index(a.len());
            a[i] = *byte;
        }
        if !whole {
            a.truncate(cut.index(a.len() + 1));
        }
        let top = tempfile::tempdir().unwrap();
        let file = top.path().join("a.tar");
        std::fs::write(&file, &a).unwrap();
        let store = crate::image::store::Store::open(&top.path().join("store"), false).unwrap();
        let r = crate::image::archive::import(&store, &file, None, &crate::image::PlatformSpec::host(), false, crate::image::progress::Mode::Quiet);
        let entries = store.index().unwrap().manifests().len();
        let blobs = std::fs::read_dir(top.path().join("store/blobs/sha256")).unwrap().count();
        let tmp = std::fs::read_dir(top.path().join("store/tmp")).unwrap().count();
        prop_assert_eq!(tmp, 0);
        match r {
            Ok(names) => prop_assert!(entries == names.len() && entries > 0 && blobs > 0),
            Err(e) => {
                prop_assert!(format!("{e:#}").contains("a.tar"), "{e:#}");
                prop_assert!(entries == 0 && blobs == 0, "{entries} entries, {blobs} blobs");
            }
        }
    }
}
