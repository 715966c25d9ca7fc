//! `/etc/resolv.conf` and `/etc/hosts` for a container, as Docker writes them.
//!
//! resolv.conf starts from the host's; `--dns`, `--dns-search` and `--dns-option` each replace
//! the corresponding lines. Nameservers on loopback (127.0.0.0/8, ::1) cannot be reached from a
//! container's own network namespace and are dropped; when none is left, Google's public
//! resolvers are used (Docker's defaults). A host whose resolv.conf only names systemd-resolved's
//! stub (127.0.0.53) is read through `/run/systemd/resolve/resolv.conf`, the real upstreams.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const DEFAULT_V4: [&str; 2] = ["8.8.8.8", "8.8.4.4"];
const DEFAULT_V6: [&str; 2] = ["2001:4860:4860::8888", "2001:4860:4860::8844"];

/// The user's DNS flags.
#[derive(Debug, Clone, Default)]
pub struct DnsOptions {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

fn is_loopback(s: &str) -> bool {
    // a zone (fe80::1%eth0) is not part of the address
    let a = s.split('%').next().unwrap_or(s);
    a.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `nameserver` addresses of a resolv.conf text, in order.
pub fn nameservers(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("nameserver")).then(|| f.next()).flatten()
        })
        .collect()
}

/// The host's resolv.conf as a container should start from it.
pub fn host_resolv_conf() -> Result<String> {
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers = nameservers(&main);
    let resolved = Path::new("/run/systemd/resolve/resolv.conf");
    if servers == ["127.0.0.53"] && resolved.exists() {
        return std::fs::read_to_string(resolved)
            .with_context(|| format!("read {}", resolved.display()));
    }
    Ok(main)
}

/// The container's resolv.conf from the host's text and the flags.
pub fn resolv_conf(host: &str, o: &DnsOptions, ipv6: bool) -> Result<String> {
    for s in &o.servers {
        let a = s.split('%').next().unwrap_or(s);
        a.parse::<IpAddr>()
            .with_context(|| format!("--dns {s:?}: not an IP address"))?;
    }
    for s in &o.search {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            anyhow::bail!("--dns-search {s:?}: expected a domain name");
        }
    }
    for s in &o.options {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            anyhow::bail!("--dns-option {s:?}: expected one option such as ndots:2");
        }
    }
    let mut servers: Vec<String> = nameservers(host).into_iter().map(String::from).collect();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut other = Vec::new();
    for line in host.lines() {
        let t = line.trim();
        let mut f = t.split_whitespace();
        match f.next() {
            Some("nameserver") => {}
            Some("search") | Some("domain") => search = f.map(String::from).collect(),
            Some("options") => options.extend(f.map(String::from)),
            _ if t.is_empty() || t.starts_with('#') || t.starts_with(';') => {}
            _ => other.push(t.to_string()),
        }
    }
    if !o.servers.is_empty() {
        servers = o.servers.clone();
    } else {
        servers.retain(|s| !is_loopback(s));
        if !ipv6 {
            servers.retain(|s| !s.contains(':'));
        }
        if servers.is_empty() {
            servers.extend(DEFAULT_V4.iter().map(|s| s.to_string()));
            if ipv6 {
                servers.extend(DEFAULT_V6.iter().map(|s| s.to_string()));
            }
        }
    }
    if !o.search.is_empty() {
        // `--dns-search .` means: no search domains
        search = o.search.iter().filter(|s| *s != ".").cloned().collect();
    }
    if !o.options.is_empty() {
        options = o.options.clone();
    }
    let mut out = String::new();
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    for l in other {
        out.push_str(&l);
        out.push('\n');
    }
    Ok(out)
}

/// The container's /etc/hosts: loopback names, its own addresses under its hostname (and
/// aliases), then the `--add-host` entries.
pub fn hosts(
    hostname: &str,
    aliases: &[String],
    ips: &[IpAddr],
    extra: &[(String, IpAddr)],
) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    let mut names = vec![hostname.to_string()];
    names.extend(aliases.iter().filter(|a| *a != hostname).cloned());
    for ip in ips {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    for (n, ip) in extra {
        out.push_str(&format!("{ip}\t{n}\n"));
    }
    out
}

/// The hosts file husk keeps for a container (`husk up`'s, bound read-only on its
/// `/etc/hosts`) and what its own lines are made of; kept in the container's attachment records
/// so that any attach or detach on a network it shares can write the file again whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostsFile {
    pub path: PathBuf,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<(String, IpAddr)>,
}

/// Another container on a network that gives names: one of its addresses and its names there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub ip: IpAddr,
    pub names: Vec<String>,
}

/// A container's whole hosts file: [`hosts`] (its own addresses under its hostname and its
/// names), then one line per address of each other container on a network it shares that gives
/// names. `--add-host` entries and the container's own names come first, so they win a lookup of
/// a name a peer also has.
pub fn hosts_with_peers(
    h: &HostsFile,
    own_names: &[String],
    ips: &[IpAddr],
    peers: &[Peer],
) -> String {
    let mut out = hosts(&h.hostname, own_names, ips, &h.extra_hosts);
    for p in peers {
        let mut names: Vec<&str> = Vec::new();
        for n in &p.names {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        if !names.is_empty() {
            out.push_str(&format!("{}\t{}\n", p.ip, names.join(" ")));
        }
    }
    out
}

/// A network alias (`--network-alias`, `husk network attach --alias`): a host name of 1 to 253
/// letters, digits, `-`, `_` and `.`, not starting with `-` or `.`.
pub fn check_alias(flag: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        anyhow::bail!(
            "{flag} {s:?}: expected a host name (1 to 253 letters, digits, '-', '_' and '.', not \
             starting with '-' or '.')"
        );
    }
    Ok(())
}

/// Write `text()` into the hosts file at `path` in place: the container has the file
/// bind-mounted, and the mount holds the inode, so a new file renamed over it would never be
/// seen. Under an exclusive flock of the file, the text is written from offset 0 and the file
/// cut to its length (a reader meanwhile sees the old lines, the new ones, or the new ones
/// followed by an old tail; never an empty file). The path is opened without following a
/// symlink and never created: `Ok(false)` when there is no file (the container's bundle is
/// gone).
pub fn rewrite_in_place(path: &Path, text: impl FnOnce() -> String) -> Result<bool> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let f = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock {}", path.display()))?;
    let data = text();
    f.write_all_at(data.as_bytes(), 0)
        .and_then(|()| f.set_len(data.len() as u64))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(true)
}

/// Parse `--add-host NAME:IP`.
pub fn parse_add_host(s: &str) -> Result<(String, IpAddr)> {
    let (n, ip) = s
        .split_once(':')
        .with_context(|| format!("--add-host {s:?}: expected NAME:IP"))?;
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("--add-host {s:?}: {ip:?} is not an IP address"))?;
    if n.is_empty() || n.chars().any(char::is_whitespace) {
        anyhow::bail!("--add-host {s:?}: {n:?} is not a host name");
    }
    Ok((n.to_string(), ip))
}

/// Write `hosts`, `resolv.conf` and `hostname` into `dir` (0644), for bind mounts.
pub fn write_files(dir: &Path, hostname: &str, hosts_text: &str, resolv_text: &str) -> Result<()> {
    crate::network::mkdir(dir, 0o755)?;
    for (name, data) in [
        ("hosts", hosts_text.to_string()),
        ("resolv.conf", resolv_text.to_string()),
        ("hostname", format!("{hostname}\n")),
    ] {
        crate::state::write_atomic(&dir.join(name), data.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Everything a container's name files need, as `husk up` has it after the attaches.
#[derive(Debug, Clone, Default)]
pub struct ContainerNames {
    pub hostname: String,
    pub aliases: Vec<String>,
    /// The container's addresses on its networks (from the attachments' results).
    pub ips: Vec<IpAddr>,
    pub dns: DnsOptions,
    /// `--add-host` entries.
    pub extra_hosts: Vec<(String, IpAddr)>,
}

/// The addresses of attachment results (`ips[].address`, CIDR form).
pub fn result_ips(results: &[&serde_json::Value]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for r in results {
        for i in r["ips"].as_array().into_iter().flatten() {
            let a = i["address"].as_str().unwrap_or_default();
            if let Ok(ip) = a.split('/').next().unwrap_or(a).parse() {
                out.push(ip);
            }
        }
    }
    out
}

/// Write `hosts`, `resolv.conf` (from `host_resolv`, the text of the host's file) and
/// `hostname` for a container into `dir`. IPv6 resolvers are kept when the container has an
/// IPv6 address.
pub fn write_container_files(dir: &Path, n: &ContainerNames, host_resolv: &str) -> Result<()> {
    if n.hostname.is_empty() || n.hostname.len() > 64 || n.hostname.contains(char::is_whitespace) {
        anyhow::bail!(
            "hostname {:?}: expected 1 to 64 characters without spaces",
            n.hostname
        );
    }
    let ipv6 = n.ips.iter().any(IpAddr::is_ipv6);
    let resolv = resolv_conf(host_resolv, &n.dns, ipv6)?;
    let h = hosts(&n.hostname, &n.aliases, &n.ips, &n.extra_hosts);
    write_files(dir, &n.hostname, &h, &resolv)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\n\
nameserver fd00::1\nsearch corp.example\noptions edns0 trust-ad\nsortlist 10.0.0.0/8\n";

    #[test]
    fn loopback_resolvers_dropped() {
        let r = resolv_conf(HOST, &DnsOptions::default(), false).unwrap();
        assert_eq!(
            r,
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0 trust-ad\nsortlist 10.0.0.0/8\n"
        );
        let r = resolv_conf(HOST, &DnsOptions::default(), true).unwrap();
        assert!(
            r.starts_with("nameserver 10.0.0.2\nnameserver fd00::1\n"),
            "{r}"
        );
    }

    #[test]
    fn only_loopback_gives_defaults() {
        let r = resolv_conf("nameserver 127.0.0.1\n", &DnsOptions::default(), false).unwrap();
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let r = resolv_conf("", &DnsOptions::default(), true).unwrap();
        assert!(r.contains("nameserver 2001:4860:4860::8888\n"), "{r}");
    }

    #[test]
    fn flags_replace_their_lines() {
        let o = DnsOptions {
            servers: vec!["1.1.1.1".into(), "127.0.0.1".into()],
            search: vec!["a.example".into(), "b.example".into()],
            options: vec!["ndots:2".into(), "timeout:1".into()],
        };
        let r = resolv_conf(HOST, &o, false).unwrap();
        assert_eq!(
            r,
            "nameserver 1.1.1.1\nnameserver 127.0.0.1\nsearch a.example b.example\n\
options ndots:2 timeout:1\nsortlist 10.0.0.0/8\n"
        );
        let o = DnsOptions {
            search: vec![".".into()],
            ..Default::default()
        };
        assert!(!resolv_conf(HOST, &o, false).unwrap().contains("search"));
    }

    #[test]
    fn bad_flags_are_named() {
        for (o, want) in [
            (
                DnsOptions {
                    servers: vec!["dns.example".into()],
                    ..Default::default()
                },
                "--dns",
            ),
            (
                DnsOptions {
                    search: vec!["a b".into()],
                    ..Default::default()
                },
                "--dns-search",
            ),
            (
                DnsOptions {
                    options: vec!["".into()],
                    ..Default::default()
                },
                "--dns-option",
            ),
        ] {
            let e = format!("{:#}", resolv_conf("", &o, false).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn hosts_file() {
        let h = hosts(
            "web",
            &["web".into(), "www".into()],
            &["10.89.0.2".parse().unwrap()],
            &[parse_add_host("db:10.89.0.3").unwrap()],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(h.ends_with("10.89.0.2\tweb www\n10.89.0.3\tdb\n"), "{h}");
        assert!(parse_add_host("db").is_err());
        assert!(parse_add_host("db:x").is_err());
        assert_eq!(
            parse_add_host("v6:[::1]").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn container_files_from_results() {
        let r = serde_json::json!({"ips":[{"address":"10.89.0.2/24","gateway":"10.89.0.1"},
                                          {"address":"fd00::2/64"}]});
        let ips = result_ips(&[&r]);
        assert_eq!(ips.len(), 2);
        let d = tempfile::tempdir().unwrap();
        let n = ContainerNames {
            hostname: "web".into(),
            ips,
            dns: DnsOptions {
                options: vec!["ndots:1".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        write_container_files(d.path(), &n, "nameserver 127.0.0.1\nnameserver fd00::53\n").unwrap();
        let resolv = std::fs::read_to_string(d.path().join("resolv.conf")).unwrap();
        assert_eq!(resolv, "nameserver fd00::53\noptions ndots:1\n");
        let hosts = std::fs::read_to_string(d.path().join("hosts")).unwrap();
        assert!(hosts.ends_with("10.89.0.2\tweb\nfd00::2\tweb\n"), "{hosts}");
        let bad = ContainerNames {
            hostname: "a b".into(),
            ..Default::default()
        };
        let e = format!(
            "{:#}",
            write_container_files(d.path(), &bad, "").unwrap_err()
        );
        assert!(e.contains("hostname \"a b\""), "{e}");
    }

    #[test]
    fn peers_follow_own_lines_and_add_hosts() {
        let h = HostsFile {
            path: PathBuf::from("/nonexistent"),
            hostname: "a".into(),
            extra_hosts: vec![parse_add_host("db:10.0.0.9").unwrap()],
        };
        let peers = [
            Peer {
                ip: "10.89.1.3".parse().unwrap(),
                names: vec!["b".into(), "b".into(), "web".into()],
            },
            Peer {
                ip: "10.89.2.4".parse().unwrap(),
                names: vec!["c".into()],
            },
        ];
        let t = hosts_with_peers(&h, &["al".into()], &["10.89.1.2".parse().unwrap()], &peers);
        assert!(
            t.ends_with("10.89.1.2\ta al\n10.0.0.9\tdb\n10.89.1.3\tb web\n10.89.2.4\tc\n"),
            "{t}"
        );
        // no peers: what the container alone gets
        assert_eq!(
            hosts_with_peers(&h, &[], &[], &[]),
            hosts("a", &[], &[], &h.extra_hosts)
        );
    }

    #[test]
    fn aliases_checked() {
        for ok in ["db", "db.example", "a_b-2", "x"] {
            check_alias("--network-alias", ok).unwrap();
        }
        for bad in ["", "a b", "-a", ".a", "a#b", "a\nb", &"x".repeat(254)] {
            let e = format!("{:#}", check_alias("--network-alias", bad).unwrap_err());
            assert!(
                e.contains("--network-alias") && e.contains("host name"),
                "{e}"
            );
        }
    }

    #[test]
    fn rewritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts");
        std::fs::write(&p, "a much longer first text than the next one\n").unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        assert!(rewrite_in_place(&p, || "short\n".into()).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "short\n");
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino, "same inode");
        assert!(rewrite_in_place(&p, || "longer than short\n".into()).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "longer than short\n");
        // never created, never through a symlink
        assert!(!rewrite_in_place(&d.path().join("gone"), || "x".into()).unwrap());
        assert!(!d.path().join("gone").exists());
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(rewrite_in_place(&link, || "x".into()).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "longer than short\n");
    }

    #[test]
    fn files_written() {
        let d = tempfile::tempdir().unwrap();
        write_files(d.path(), "web", "h\n", "r\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("hostname")).unwrap(),
            "web\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("resolv.conf")).unwrap(),
            "r\n"
        );
    }
}
