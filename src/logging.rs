//! runc-style logging: `--log FILE` and `--log-format text|json`. containerd reads the last
//! `"level":"error"` line of the JSON log; podman parses the log as one object, so an error
//! writes exactly one line.

use crate::state::now_rfc3339;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Config {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn init(file: Option<PathBuf>, format: &str, debug: bool) -> anyhow::Result<()> {
    let json = match format {
        "json" => true,
        "text" => false,
        other => anyhow::bail!("--log-format: unknown format {other:?} (expected text or json)"),
    };
    let _ = CONFIG.set(Config { file, json, debug });
    Ok(())
}

fn line(level: &str, msg: &str, json: bool) -> String {
    if json {
        let v = serde_json::json!({"level": level, "msg": msg, "time": now_rfc3339()});
        format!("{v}\n")
    } else {
        format!(
            "time=\"{}\" level={level} msg={}\n",
            now_rfc3339(),
            serde_json::Value::from(msg)
        )
    }
}

fn emit(level: &str, msg: &str) {
    let Some(c) = CONFIG.get() else {
        eprintln!("{level}: {msg}");
        return;
    };
    match &c.file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            if let Ok(mut f) = f {
                let _ = f.write_all(line(level, msg, c.json).as_bytes());
            }
        }
        None => {
            let _ = std::io::stderr().write_all(line(level, msg, c.json).as_bytes());
        }
    }
}

/// An error that ends the command. Also printed plainly on stderr when logging goes to a file,
/// as runc does, so a person at a terminal sees it.
pub fn error(msg: &str) {
    emit("error", msg);
    if CONFIG.get().is_some_and(|c| c.file.is_some()) {
        eprintln!("husk: {msg}");
    }
}

pub fn warn(msg: &str) {
    emit("warning", msg);
}

pub fn debug(msg: &str) {
    if CONFIG.get().is_some_and(|c| c.debug) {
        emit("debug", msg);
    }
}
