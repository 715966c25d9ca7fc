//! `husk image login` / `logout`: credentials checked against the registry's `/v2/` and kept
//! in the auth file Docker and podman use (`{"auths": {"HOST": {"auth": base64(user:pass)}}}`),
//! the first of [`auth::auth_files`]: `$REGISTRY_AUTH_FILE`, else `~/.docker/config.json`.
//! The file is written whole (temp file + rename) with mode 0600; other keys in it are kept.

use super::auth::{self, Credentials};
use super::reference::{Reference, DEFAULT_REGISTRY};
use super::{Client, Options};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The registry name credentials are stored under: `https://host:port/v2/` → `host:port`,
/// Docker Hub's names → `docker.io`.
pub fn registry_key(text: &str) -> Result<String> {
    let bad = |why: &str| anyhow::anyhow!("registry {text:?}: {why}");
    let t = text.trim();
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let host = t.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(bad("empty"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    {
        return Err(bad("expected a host name with an optional :port"));
    }
    let host = host.to_ascii_lowercase();
    Ok(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        _ => host,
    })
}

/// The auth file `login` and `logout` change.
pub fn auth_file() -> Result<PathBuf> {
    auth::auth_files().into_iter().next().ok_or_else(|| {
        anyhow::anyhow!(
            "no auth file: set $REGISTRY_AUTH_FILE or $HOME (for ~/.docker/config.json)"
        )
    })
}

fn prompt(question: &str, echo: bool) -> Result<String> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    if !nix::unistd::isatty(&stdin).unwrap_or(false) {
        bail!("standard input is not a terminal to ask for the {question} on: give it as a flag");
    }
    eprint!("{}: ", capitalise(question));
    let _ = std::io::stderr().flush();
    let saved = if echo {
        None
    } else {
        let t = termios::tcgetattr(&stdin).context("read the terminal's settings")?;
        let mut quiet = t.clone();
        quiet.local_flags.remove(termios::LocalFlags::ECHO);
        termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &quiet)
            .context("turn off the terminal's echo")?;
        Some(t)
    };
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &t);
        eprintln!();
    }
    r.with_context(|| format!("read the {question}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Check `username`/`password` against `registry` and store them. Returns the auth file.
pub fn login(
    registry: &str,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
    opts: &Options,
) -> Result<PathBuf> {
    let key = registry_key(registry)?;
    let username = match username {
        Some(u) => u,
        None if password_stdin => bail!("--password-stdin needs --username"),
        None => prompt("username", true)?,
    };
    if username.is_empty() || username.contains(':') {
        bail!("login to {key}: the username must be non-empty and hold no ':'");
    }
    let password = match (password, password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .take(1 << 20)
                .read_to_string(&mut p)
                .context("read the password from standard input")?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt("password", false)?,
    };
    if password.is_empty() {
        bail!("login to {key}: the password is empty");
    }
    let creds = Credentials { username, password };
    let r = Reference {
        registry: key.clone(),
        repository: String::new(),
        tag: None,
        digest: None,
    };
    let mut o = opts.clone();
    o.creds = Some(creds.clone());
    Client::new(&r, &o)?
        .check_login()
        .with_context(|| format!("login to {key} as {:?}", creds.username))?;
    let file = auth_file()?;
    let text = format!("{}:{}", creds.username, creds.password);
    change_auth_file(&file, |auths| {
        let entry = auths
            .entry(key.clone())
            .or_insert_with(|| serde_json::json!({}));
        if !entry.is_object() {
            *entry = serde_json::json!({});
        }
        entry["auth"] = serde_json::Value::String(auth::base64_encode(text.as_bytes()));
        Ok(())
    })?;
    Ok(file)
}

/// Remove `registry`'s credentials (under every key they are read from). An error when there
/// are none.
pub fn logout(registry: &str) -> Result<PathBuf> {
    let key = registry_key(registry)?;
    let file = auth_file()?;
    // credentials a later file holds are still used by pulls: say where they are
    let elsewhere = || -> String {
        for f in auth::auth_files().iter().skip(1) {
            let Ok(b) = std::fs::read(f) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
                continue;
            };
            if auth::auth_keys(&key)
                .iter()
                .any(|k| v["auths"].get(k).is_some())
            {
                return format!(
                    " (there are some in {}, which logout does not change)",
                    f.display()
                );
            }
        }
        String::new()
    };
    if !file.exists() {
        bail!(
            "not logged in to {key}: {} does not exist{}",
            file.display(),
            elsewhere()
        );
    }
    change_auth_file(&file, |auths| {
        let mut removed = false;
        for k in auth::auth_keys(&key) {
            removed |= auths.remove(&k).is_some();
        }
        if !removed {
            bail!(
                "not logged in to {key}: no credentials for it in {}{}",
                file.display(),
                elsewhere()
            );
        }
        Ok(())
    })?;
    Ok(file)
}

/// Read `file` (missing: `{}`), let `change` edit its `auths` object, write it back whole with
/// mode 0600 (its directory made 0700 if missing).
fn change_auth_file<F>(file: &Path, change: F) -> Result<()>
where
    F: FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> Result<()>,
{
    let mut doc: serde_json::Value = match std::fs::read(file) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{}: not valid JSON", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).with_context(|| format!("read {}", file.display())),
    };
    let Some(obj) = doc.as_object_mut() else {
        bail!("{}: not a JSON object", file.display());
    };
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    let Some(auths) = auths.as_object_mut() else {
        bail!("{}: \"auths\" is not an object", file.display());
    };
    change(auths)?;
    let text = serde_json::to_vec_pretty(&doc)?;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", dir.display()))?;
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.with_context(|| format!("write {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys() {
        assert_eq!(registry_key("localhost:5000").unwrap(), "localhost:5000");
        assert_eq!(
            registry_key("https://Registry.Example:443/v2/").unwrap(),
            "registry.example:443"
        );
        assert_eq!(registry_key("index.docker.io").unwrap(), "docker.io");
        assert_eq!(
            registry_key("https://index.docker.io/v1/").unwrap(),
            "docker.io"
        );
        for bad in ["", "https://", "a b", "user@host"] {
            assert!(registry_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_file_keeps_other_keys_and_is_private() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("sub/config.json");
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::fs::write(
            &f,
            r#"{"credsStore":"x","auths":{"other":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        change_auth_file(&f, |a| {
            a.insert("h:1".into(), serde_json::json!({"auth": "YTpi"}));
            Ok(())
        })
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "x");
        assert_eq!(v["auths"]["other"]["auth"], "eDp5");
        assert_eq!(v["auths"]["h:1"]["auth"], "YTpi");
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&f, "[1]").unwrap();
        let e = change_auth_file(&f, |_| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("not a JSON object"), "{e:#}");
    }
}
