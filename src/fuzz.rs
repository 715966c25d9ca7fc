//! Property-based fuzzing of every parser that reads input husk does not control: config.json
//! (parser and validator), mount options, the /proc and cgroup file parsers, D-Bus messages,
//! CRIU responses, and the command-line value parsers. proptest on the stable toolchain, so the
//! ordinary `cargo test --lib` runs it; `PROPTEST_CASES` sets the number of cases (default 256
//! per property, a few seconds in all). A failing case is shrunk and saved under
//! `proptest-regressions/`, which is committed and replayed first on every later run.
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
                let _ = crate::process::spawn::compile_seccomp(&spec);
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
        let _ = crate::cgroups::util::parse_proc_cgroup(&t);
        let _ = crate::cgroups::stats::parse_flat_keyed(&t);
        let _ = crate::cgroups::stats::parse_blkio_v1(&t);
        let _ = crate::cgroups::stats::parse_io_stat(&t);
        let _ = crate::cgroups::util::parse_u64(&t);
        let _ = crate::state::parse_start_time(&t);
        let _ = crate::process::affinity::parse_cpu_list("f", &t);
        let _ = crate::cgroups::dbus::host_uid(&t, 1000);
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
        prop_assert_eq!(crate::state::parse_start_time(&line), want);
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
