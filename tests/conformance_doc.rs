//! docs/conformance.md is generated from docs/requirements.txt and the `// req:` annotations:
//! fail when its requirement → test mapping no longer matches them (a test renamed, a
//! requirement added, an annotation naming an unknown id, a referenced test deleted).
use std::process::Command;

#[test]
fn conformance_table_matches_annotations() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let o = match Command::new("python3")
        .arg(format!("{dir}/docs/gen-conformance.py"))
        .arg("--check")
        .arg(format!("{dir}/docs/conformance.md"))
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                format!("SKIP conformance_table_matches_annotations: no python3 ({e})\n")
                    .as_bytes(),
            );
            return;
        }
    };
    assert!(
        o.status.success(),
        "docs/conformance.md is out of date or an annotation is wrong:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
