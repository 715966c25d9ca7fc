#!/usr/bin/env python3
"""Generate docs/conformance.md from docs/requirements.txt and the `// req: ID ...` annotations
in tests/*.rs, so the table cannot drift from the tests.

  python3 docs/gen-conformance.py [--log ROOT_TEST_LOG] [--out FILE]   write the table
  python3 docs/gen-conformance.py --check [FILE]                         FILE's rows match the
                                                                         requirements/annotations
ROOT_TEST_LOG is the output (stdout+stderr) of `cargo test --test '*'`: statuses come from its
`test NAME ... ok|FAILED|ignored` lines and the harness's `SKIP NAME: reason` lines. Without a log
every status is "not run". Exit 1 on an annotation naming an unknown requirement, a reference to a
test that does not exist, or (with --check) a table that differs from what would be generated.
"""
import os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQ = os.path.join(ROOT, "docs", "requirements.txt")
TESTS = os.path.join(ROOT, "tests")


def load_reqs():
    reqs = []
    for ln in open(REQ):
        ln = ln.rstrip("\n")
        if not ln.strip() or ln.startswith("#"):
            continue
        f = [x.strip() for x in ln.split("|")]
        f += [""] * (6 - len(f))
        rid, sec, level, text, refs, note = f[:6]
        reqs.append(dict(id=rid, sec=sec, level=level, text=text,
                         refs=refs.split(), note=note))
    return reqs


def scan_tests():
    """{file::test}: set of ids claimed; and the set of all test names."""
    claims, names = {}, set()
    for fn in sorted(os.listdir(TESTS)):
        if not fn.endswith(".rs"):
            continue
        mod = fn[:-3]
        pending, is_test = [], False
        for ln in open(os.path.join(TESTS, fn)):
            s = ln.strip()
            m = re.match(r"//\s*req:\s*(.*)", s)
            if m:
                pending += m.group(1).split()
                continue
            if s.startswith("#[test]"):
                is_test = True
                continue
            m = re.match(r"(?:pub\s+)?(?:async\s+)?fn\s+([a-z0-9_]+)\s*\(", s)
            if m:
                if is_test:
                    name = f"{mod}::{m.group(1)}"
                    names.add(name)
                    if pending:
                        claims.setdefault(name, set()).update(pending)
                pending, is_test = [], False
    return claims, names


def parse_log(path):
    """{file::test: ("pass"|"FAIL"|"ignored"|"skipped", reason)}"""
    res, skips, cur = {}, {}, None
    for ln in open(path, errors="replace"):
        m = re.search(r"Running tests/([a-z0-9_]+)\.rs", ln)
        if m:
            cur = m.group(1)
            continue
        m = re.match(r"SKIP ([a-z0-9_]+): (.*)", ln.strip())
        if m and cur:
            skips[f"{cur}::{m.group(1)}"] = m.group(2)
        m = re.match(r"test ([a-z0-9_:]+) \.\.\. (ok|FAILED|ignored)", ln.strip())
        if m and cur:
            res[f"{cur}::{m.group(1)}"] = {"ok": "pass", "FAILED": "FAIL", "ignored": "ignored"}[m.group(2)]
    out = {}
    for t, r in res.items():
        if r == "pass" and t in skips:
            out[t] = ("skipped", skips[t])
        else:
            out[t] = (r, "")
    return out


def build(log):
    reqs = load_reqs()
    claims, names = scan_tests()
    ids = {r["id"] for r in reqs}
    errors = []
    for t, cl in sorted(claims.items()):
        for i in sorted(cl - ids):
            errors.append(f"{t}: `// req: {i}` names no requirement in docs/requirements.txt")
    for r in reqs:
        for t in r["refs"]:
            if t not in names:
                errors.append(f"{r['id']}: referenced test {t} does not exist")
    results = parse_log(log) if log else None
    rows, counts = [], dict(total=0, na=0, covered=0, passing=0, failing=0, skipped=0,
                            notrun=0, uncovered=0, deviates=0)
    for r in reqs:
        tests = sorted(set(r["refs"]) | {t for t, cl in claims.items() if r["id"] in cl})
        counts["total"] += 1
        note = r["note"]
        if note.startswith("NA:"):
            counts["na"] += 1
            status = "n/a: " + note[3:].strip()
        elif not tests:
            counts["uncovered"] += 1
            status = "NOT COVERED"
        else:
            counts["covered"] += 1
            if results is None:
                status = "not run"
                counts["notrun"] += 1
            else:
                st = [results.get(t, ("not run", "")) for t in tests]
                kinds = [s for s, _ in st]
                if "FAIL" in kinds:
                    status = "FAIL (" + ", ".join(t for t, (s, _) in zip(tests, st) if s == "FAIL") + ")"
                    counts["failing"] += 1
                elif all(k == "skipped" for k in kinds):
                    status = "skipped: " + "; ".join(sorted({w for _, w in st}))
                    counts["skipped"] += 1
                elif "pass" in kinds:
                    status = "pass"
                    counts["passing"] += 1
                else:
                    status = "not run"
                    counts["notrun"] += 1
            if note.startswith("DEVIATES:"):
                counts["deviates"] += 1
                status += " — deviates: " + note[9:].strip()
        rows.append((r, tests, status))
    return rows, counts, errors


def row_key(r, tests):
    return f"| {r['id']} | {r['sec']} | {r['level']} | {r['text']} | " + \
        " ".join(f"`{t}`" for t in tests) + " |"


def render(rows, counts, log):
    c = counts
    out = ["# Runtime-spec v1.2.1 conformance of husk", "",
           "GENERATED by `python3 docs/gen-conformance.py --log LOG` from `docs/requirements.txt` and the",
           "`// req: ID` annotations in `tests/*.rs` — do not edit by hand; `tests/conformance_doc.rs` fails",
           "when the requirement → test mapping below differs from what the annotations say.",
           "",
           f"Statuses from: `{os.path.relpath(log, ROOT) if log else 'no run'}` (output of the root tests in `make test`, `HUSK_BIN` = husk, "
           "Debian 12 VM, cgroup v1 hybrid).", "",
           f"- requirements: **{c['total']}** (MUST/SHOULD of config.md, config-linux.md, runtime.md, "
           "runtime-linux.md, features.md and features-linux.md of runtime-spec v1.2.1 that apply to a "
           "Linux runtime, plus runc-cli-contract.md exit codes and error words)",
           f"- covered by at least one test: **{c['covered']}**; not covered: **{c['uncovered']}**; "
           f"not applicable: **{c['na']}**",
           f"- of the covered: passing **{c['passing']}**, failing **{c['failing']}**, "
           f"skipped **{c['skipped']}**, not run **{c['notrun']}**",
           f"- husk deliberately deviates on **{c['deviates']}** (tested for husk's behaviour; reason in the row)",
           "",
           "| id | section | level | requirement | tests | status |",
           "|---|---|---|---|---|---|"]
    for r, tests, status in rows:
        out.append(row_key(r, tests)[:-1] + f"| {status} |")
    out.append("")
    return "\n".join(out)


def main():
    a = sys.argv[1:]
    log = None
    outp = os.path.join(ROOT, "docs", "conformance.md")
    check = None
    i = 0
    while i < len(a):
        if a[i] == "--log":
            log = a[i + 1]; i += 2
        elif a[i] == "--out":
            outp = a[i + 1]; i += 2
        elif a[i] == "--check":
            check = a[i + 1] if i + 1 < len(a) else os.path.join(ROOT, "docs", "conformance.md"); i += 2
        else:
            sys.exit(f"unknown argument {a[i]}")
    rows, counts, errors = build(log)
    for e in errors:
        print("conformance:", e, file=sys.stderr)
    if check:
        have = [l for l in open(check).read().splitlines() if l.startswith("| ") and not l.startswith("| id ")]
        want = [row_key(r, t) for r, t, _ in rows]
        strip = lambda l: l.rsplit("|", 2)[0] + "|"
        have_k = [strip(l) for l in have]
        if have_k != want:
            for w in want:
                if w not in have_k:
                    print("conformance: missing or changed row:", w, file=sys.stderr)
            for h in have_k:
                if h not in want:
                    print("conformance: stale row:", h, file=sys.stderr)
            print(f"conformance: {check} is out of date: run python3 docs/gen-conformance.py --log LOG",
                  file=sys.stderr)
            sys.exit(1)
        sys.exit(1 if errors else 0)
    open(outp, "w").write(render(rows, counts, log))
    print(f"conformance: wrote {outp}: {counts}")
    sys.exit(1 if errors else 0)


main()
