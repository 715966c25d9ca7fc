//! Running CNI plugins (CNI spec 1.0, "Execution of Network Configurations"): one process per
//! plugin with `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS` and
//! `CNI_PATH` in its environment and the plugin's configuration on stdin. For a list, ADD runs
//! the plugins in order, each given the previous one's result as `prevResult`; DEL runs them in
//! reverse order, each given the result the ADD recorded. `runtimeConfig` carries the capability
//! arguments (`portMappings`) to the plugins that declare them in `capabilities`.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One invocation's environment.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: &'a str,
    pub path: &'a [PathBuf],
    pub timeout: Duration,
}

/// The executable of plugin `ty` in the search path.
pub fn find_plugin(network: &str, ty: &str, path: &[PathBuf]) -> Result<PathBuf> {
    if ty.is_empty() || ty.contains('/') {
        bail!("network {network}: plugin type {ty:?} is not a plugin name");
    }
    for d in path {
        let p = d.join(ty);
        if p.is_file() {
            return Ok(p);
        }
    }
    let dirs: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "network {network}: plugin {ty} not found in CNI_PATH {}",
        dirs.join(":")
    )
}

/// The configuration one plugin of `list` gets on stdin.
pub fn plugin_config(list: &Value, plugin: &Value, prev: Option<&Value>, rc: &Value) -> Value {
    let mut c = plugin.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    if let Some(caps) = plugin["capabilities"].as_object() {
        let mut r = Map::new();
        for (k, on) in caps {
            if *on == Value::Bool(true) {
                if let Some(v) = rc.get(k) {
                    r.insert(k.clone(), v.clone());
                }
            }
        }
        if !r.is_empty() {
            c["runtimeConfig"] = Value::Object(r);
        }
    }
    c
}

/// Run one plugin; its parsed stdout (a result for ADD, nothing for DEL).
pub fn exec(command: &str, ty: &str, conf: &Value, env: &Env) -> Result<Option<Value>> {
    let net = env.network;
    let bin = find_plugin(net, ty, env.path)?;
    let search = std::env::join_paths(env.path).map_err(|e| anyhow!("CNI_PATH: {e}"))?;
    let mut cmd = Command::new(&bin);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", env.container_id)
        .env("CNI_NETNS", env.netns)
        .env("CNI_IFNAME", env.ifname)
        .env("CNI_ARGS", env.args)
        .env("CNI_PATH", search)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // its own process group, so a timeout kills whatever it started too
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("network {net}: run plugin {ty} ({})", bin.display()))?;
    let pid = child.id() as i32;
    let input = serde_json::to_vec(conf)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let ereader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + env.timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            let _ = writer.join();
            bail!(
                "network {net}: plugin {ty} {command} timed out after {}s and was killed",
                env.timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let stdout = reader.join().unwrap_or_default();
    let stderr = ereader.join().unwrap_or_default();
    if !status.success() {
        let why = match serde_json::from_slice::<Value>(&stdout) {
            Ok(v) if v["msg"].is_string() => {
                let mut s = v["msg"].as_str().unwrap_or_default().to_string();
                if let Some(d) = v["details"].as_str().filter(|d| !d.is_empty()) {
                    s = format!("{s} ({d})");
                }
                if let Some(c) = v["code"].as_u64() {
                    s = format!("{s} [code {c}]");
                }
                s
            }
            _ => {
                let t = String::from_utf8_lossy(if stderr.is_empty() { &stdout } else { &stderr });
                let t = t.trim();
                if t.is_empty() {
                    format!("{status}")
                } else {
                    t.to_string()
                }
            }
        };
        bail!("network {net}: plugin {ty} {command} failed: {why}");
    }
    if command != "ADD" || stdout.iter().all(u8::is_ascii_whitespace) {
        if command == "ADD" {
            bail!("network {net}: plugin {ty} ADD printed no result");
        }
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&stdout).with_context(|| {
        format!("network {net}: plugin {ty} ADD printed a result that is not JSON")
    })?;
    Ok(Some(v))
}

/// ADD of a whole list. On a failure the error is returned and the caller undoes what ran with
/// a DEL of the whole list (DEL tolerates what was never added).
pub fn add_list(list: &Value, rc: &Value, env: &Env) -> Result<Value> {
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    let mut prev: Option<Value> = None;
    for p in &plugins {
        let ty = p["type"].as_str().unwrap_or_default();
        let conf = plugin_config(list, p, prev.as_ref(), rc);
        prev = exec("ADD", ty, &conf, env)?;
    }
    prev.ok_or_else(|| anyhow!("network {}: the plugin list gave no result", env.network))
}

/// DEL of a whole list in reverse order. Every plugin is run even when one fails (so as much
/// as possible is released); the first error is returned.
pub fn del_list(list: &Value, rc: &Value, prev: Option<&Value>, env: &Env) -> Result<()> {
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    let mut first: Option<anyhow::Error> = None;
    for p in plugins.iter().rev() {
        let ty = p["type"].as_str().unwrap_or_default();
        let conf = plugin_config(list, p, prev, rc);
        if let Err(e) = exec("DEL", ty, &conf, env) {
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// CHECK of a whole list in order, with the recorded result.
pub fn check_list(list: &Value, rc: &Value, prev: &Value, env: &Env) -> Result<()> {
    for p in list["plugins"].as_array().cloned().unwrap_or_default() {
        let ty = p["type"].as_str().unwrap_or_default();
        exec("CHECK", ty, &plugin_config(list, &p, Some(prev), rc), env)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtime_config_only_for_declared_capabilities() {
        let list = json!({"cniVersion":"1.0.0","name":"n","plugins":[]});
        let rc = json!({"portMappings":[{"hostPort":1,"containerPort":2,"protocol":"tcp"}]});
        let pm = json!({"type":"portmap","capabilities":{"portMappings":true}});
        let c = plugin_config(&list, &pm, Some(&json!({"ips":[]})), &rc);
        assert_eq!(c["name"], "n");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        assert_eq!(c["prevResult"], json!({"ips":[]}));
        let br = json!({"type":"bridge"});
        let c = plugin_config(&list, &br, None, &rc);
        assert!(c.get("runtimeConfig").is_none() && c.get("prevResult").is_none());
    }

    #[test]
    fn missing_plugin_is_named() {
        let e = find_plugin("net1", "nosuch", &[PathBuf::from("/nonexistent")]).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("net1") && e.contains("nosuch") && e.contains("/nonexistent"),
            "{e}"
        );
    }
}
