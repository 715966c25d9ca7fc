//! Build script: records the git commit the binary is built from (and whether the work tree had
//! uncommitted changes) as `HUSK_COMMIT`, for `husk --version`'s `commit:` line, which dockerd
//! and `docker info` read. A build outside a git checkout (a source tarball) keeps an
//! `HUSK_COMMIT` given in the environment, else says `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=HUSK_COMMIT");
    if git(&["rev-parse", "--git-dir"]).is_some() {
        // a new commit, a checkout or a staged change re-runs this script (paths as git names
        // them, so a linked work tree finds its own HEAD and the shared refs)
        let mut watch = vec!["HEAD".to_string(), "index".to_string()];
        watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
        for f in watch {
            if let Some(p) = git(&["rev-parse", "--git-path", &f]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        // an edit of the sources changes "-dirty"
        for p in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let commit = std::env::var("HUSK_COMMIT").ok().or_else(|| {
        let sha = git(&["rev-parse", "HEAD"])?;
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{sha}-dirty") } else { sha })
    });
    println!(
        "cargo:rustc-env=HUSK_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}
