//! Mutated configs through `husk create`: a few hundred seeded mutants of
//! `spec-fixtures/default/config.json` (a field removed, given another type, emptied, given a
//! NUL byte, made huge or negative, an array element duplicated). Each must end without a panic
//! or a hang, either created (and then removed by `delete --force`) or refused with exit 1 and
//! an error naming the field's top-level key; nothing may be left behind either way.
//!
//! `HUSK_MUTANTS` sets the count (default 300), `HUSK_MUTATION_SEED` the seed (default: from
//! the clock; printed, so a failure can be replayed). `linux.cgroupsPath` is not mutated at
//! random: it names the cgroup after the container id, which is how leftovers are found; a
//! fixed list of its forms that keep the id in the path (nested, relative, with `..`, `.` and
//! doubled slashes) runs instead.
mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

/// Every path in the JSON tree, as (segments, display form such as `process.env[1]`).
fn paths(v: &Value, cur: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                cur.push(Seg::Key(k.clone()));
                out.push(cur.clone());
                paths(x, cur, out);
                cur.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                cur.push(Seg::Idx(i));
                out.push(cur.clone());
                paths(x, cur, out);
                cur.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Idx(usize),
}

fn show(p: &[Seg]) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn parent_mut<'a>(v: &'a mut Value, p: &[Seg]) -> &'a mut Value {
    let mut cur = v;
    for seg in &p[..p.len() - 1] {
        cur = match seg {
            Seg::Key(k) => &mut cur[k.as_str()],
            Seg::Idx(i) => &mut cur[*i],
        };
    }
    cur
}

/// Apply one mutation at `p`; returns its description.
fn mutate(v: &mut Value, p: &[Seg], rng: &mut Rng) -> String {
    let parent = parent_mut(v, p);
    let last = p.last().unwrap();
    let slot: &mut Value = match last {
        Seg::Key(k) => &mut parent[k.as_str()],
        Seg::Idx(i) => &mut parent[*i],
    };
    let kind = rng.below(10);
    let what = match kind {
        0 => {
            match (parent, last) {
                (Value::Object(o), Seg::Key(k)) => {
                    o.remove(k);
                }
                (Value::Array(a), Seg::Idx(i)) => {
                    a.remove(*i);
                }
                _ => unreachable!(),
            }
            return "removed".into();
        }
        1 => {
            *slot = Value::Null;
            "null"
        }
        2 => {
            *slot = Value::from("x");
            "the string \"x\""
        }
        3 => {
            *slot = Value::from(-1);
            "-1"
        }
        4 => {
            *slot = Value::from(u64::MAX);
            "u64::MAX"
        }
        5 => {
            *slot = match slot {
                Value::String(_) => Value::from(""),
                Value::Array(_) => Value::Array(vec![]),
                Value::Object(_) => Value::Object(Default::default()),
                _ => Value::from(0),
            };
            "emptied"
        }
        6 => {
            *slot = match slot {
                Value::String(s) => {
                    let at = rng.pick(s.len() + 1);
                    let at = (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap();
                    let mut t = s.clone();
                    t.insert(at, '\0');
                    Value::from(t)
                }
                _ => Value::from("\0"),
            };
            "a NUL byte inserted"
        }
        7 => {
            *slot = Value::from("a".repeat(5000));
            "a 5000-byte string"
        }
        8 => {
            *slot = match slot {
                Value::String(s) => Value::from(format!("../../../{s}")),
                Value::Bool(b) => Value::from(!*b),
                _ => Value::Array(vec![slot.clone(), slot.clone()]),
            };
            "../ prefixed, negated or doubled"
        }
        _ => {
            *slot = Value::Object(Default::default());
            "an empty object"
        }
    };
    what.into()
}

#[test]
fn mutated_configs_fail_by_name_and_leave_nothing() {
    if !require_root("mutated_configs_fail_by_name_and_leave_nothing") {
        return;
    }
    let n: usize = std::env::var("HUSK_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    // A fixed seed by default, so a run of the suite is repeatable; HUSK_MUTATION_SEED=random
    // explores (the seed is printed either way, and replays).
    let seed: u64 = match std::env::var("HUSK_MUTATION_SEED").ok().as_deref() {
        Some("random") => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        }
        Some(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("HUSK_MUTATION_SEED={s:?}: a number or \"random\"")),
        None => 0x6d75_7461_6e74,
    };
    eprintln!("mutation: seed {seed} (HUSK_MUTATION_SEED={seed} replays), {n} mutants");
    let mut rng = Rng(seed);
    let mut c = Ctr::new("mut", "default");
    let base = c.config.clone();
    let mut all = Vec::new();
    paths(&base, &mut Vec::new(), &mut all);
    all.retain(|p| !show(p).starts_with("linux.cgroupsPath"));
    let mut problems = Vec::new();
    let (mut created, mut refused) = (0, 0);
    for k in 0..n {
        let mut cfg = base.clone();
        let p = &all[rng.pick(all.len())];
        let what = mutate(&mut cfg, p, &mut rng);
        let field = show(p);
        let top = match &p[0] {
            Seg::Key(k) => k.clone(),
            Seg::Idx(_) => unreachable!(),
        };
        c.id = unique_id("mut");
        c.pids.clear();
        if let Some(l) = cfg.get_mut("linux").and_then(|l| l.as_object_mut()) {
            l.insert("cgroupsPath".into(), format!("/{}", c.id).into());
        }
        c.config = cfg;
        c.write_config();
        let b = c.bundle.to_string_lossy().into_owned();
        let mut cmd = c.cmd();
        cmd.args(["create", "--bundle", &b, &c.id]);
        let tag = format!("mutant {k}: {field} {what}");
        let o = match try_run_timeout(&mut cmd, Duration::from_secs(20)) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{tag}: {e}"));
                let _ = c.delete(true);
                continue;
            }
        };
        let err = text(&o.stderr);
        match code(&o.status) {
            0 => {
                created += 1;
                if let Some(pid) = c.state().and_then(|s| s["pid"].as_i64()) {
                    c.pids.push(pid as i32);
                }
            }
            1 => {
                refused += 1;
                if !err.contains(&top) {
                    problems.push(format!("{tag}: the error does not name {top:?}: {err}"));
                }
            }
            x => problems.push(format!("{tag}: exit {x}: {err}")),
        }
        if err.contains("panicked") {
            problems.push(format!("{tag}: panic: {err}"));
        }
        let d = c.delete(true);
        if !d.status.success() {
            problems.push(format!("{tag}: delete --force: {}", text(&d.stderr)));
        }
        let left = c.leftovers();
        if !left.is_empty() {
            problems.push(format!("{tag}: left behind {left:?}"));
            force_remove(&c.pids, &c.work.join("nothing"), &c.id);
        }
    }
    for form in [
        "/{id}/a/b",
        "{id}",
        "{id}/x",
        "/{id}/../{id}",
        "//{id}//y//",
        "/{id}/./z",
        "/{id}-p/{id}",
    ] {
        c.id = unique_id("mut");
        c.pids.clear();
        c.config = base.clone();
        c.config["linux"]["cgroupsPath"] = form.replace("{id}", &c.id).into();
        let o = c.create(&[]);
        let tag = format!("cgroupsPath {form}");
        if !o.status.success() {
            problems.push(format!("{tag}: create: {}", text(&o.stderr)));
        }
        let d = c.delete(true);
        if !d.status.success() {
            problems.push(format!("{tag}: delete --force: {}", text(&d.stderr)));
        }
        let left = c.leftovers();
        if !left.is_empty() {
            problems.push(format!("{tag}: left behind {left:?}"));
            force_remove(&c.pids, &c.work.join("nothing"), &c.id);
        }
    }
    eprintln!(
        "mutation: {created} created, {refused} refused, {} problems",
        problems.len()
    );
    c.id = unique_id("mut");
    c.config = base;
    assert_no_problems(Some(seed), &problems);
}
