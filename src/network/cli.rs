//! `husk network VERB ...`.

use super::attach::{self, AttachOptions};
use super::{ports, CreateOptions, Dirs, Network, Source};
use crate::container::Global;
use crate::output;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct NetworkArgs {
    /// Directory of husk's network conflists [env HUSK_NETWORK_DIR; default /etc/husk/networks].
    #[arg(long = "network-dir", global = true)]
    pub network_dir: Option<PathBuf>,
    /// Directory of attachment records and pinned namespaces [env HUSK_NETWORK_RUN_DIR;
    /// default /run/husk-network].
    #[arg(long = "network-run-dir", global = true)]
    pub run_dir: Option<PathBuf>,
    /// Plugin search path [env CNI_PATH; default /usr/lib/cni:/opt/cni/bin].
    #[arg(long = "cni-path", global = true)]
    pub cni_path: Option<String>,
    /// Seconds one plugin may run before it is killed [env HUSK_CNI_TIMEOUT; default 60].
    #[arg(long = "plugin-timeout", global = true)]
    pub plugin_timeout: Option<u64>,
    #[command(subcommand)]
    pub verb: NetworkVerb,
}

#[derive(Subcommand, Debug)]
pub enum NetworkVerb {
    /// Create a bridge network (a CNI conflist: bridge + host-local, portmap, firewall).
    Create {
        /// IPv4 subnet (default: a free /24 of 10.89.0.0/16); with --ipv6 also an IPv6 one
        /// (repeat the flag: one of each family).
        #[arg(long)]
        subnet: Vec<String>,
        /// Dual stack: IPv6 addresses too, from the IPv6 --subnet or, without one, a free
        /// unique local /64 (fdXX:XXXX:XXXX:XXXX::/64); published ports answer over IPv6 too.
        #[arg(long)]
        ipv6: bool,
        /// Gateway address (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<String>,
        /// No masquerade and no default route: containers reach only the network.
        #[arg(long)]
        internal: bool,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Print only the names.
        #[arg(short, long)]
        quiet: bool,
        /// table, or json: an array of the networks, each with all its subnets (-q: the names
        /// alone, either way).
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Print a network's conflist, addresses and attachments as JSON.
    Inspect { name: String },
    /// Remove networks nothing is attached to.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Release attachments of containers that are gone, then remove every unused husk network.
    Prune,
    /// Release attachments of containers that are gone (and unfinished attaches).
    Gc,
    /// Attach a container to a network (CNI ADD).
    Attach {
        /// Publish a port: [ip:]hostPort:containerPort[/tcp|udp|sctp], or ranges of the same
        /// length (8000-8002:80-82); an IPv6 ip in brackets ([::1]:8080:80); repeatable.
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
        /// Interface name in the container (default: the first free ethN).
        #[arg(long)]
        ifname: Option<String>,
        /// Another name the container has on the network, beside its id, in the /etc/hosts of
        /// `husk up`'s containers there; repeatable. Not on the default network.
        #[arg(long)]
        alias: Vec<String>,
        name: String,
        id: String,
    },
    /// Detach a container from a network (CNI DEL).
    Detach { name: String, id: String },
    /// Check an attachment (CNI CHECK).
    Check { name: String, id: String },
    /// (internal) The [::1] proxy of a published port: relays its standard input's socket to
    /// TARGET while RECORD exists.
    #[command(hide = true)]
    Proxy {
        record: PathBuf,
        proto: String,
        target: String,
    },
}

pub fn run(g: &Global, a: NetworkArgs) -> Result<()> {
    let dirs = Dirs::resolve(a.network_dir, a.run_dir, a.cni_path, a.plugin_timeout)?;
    match a.verb {
        NetworkVerb::Proxy {
            record,
            proto,
            target,
        } => super::proxy::run(&record, &proto, &target)?,
        NetworkVerb::Create {
            subnet,
            ipv6,
            gateway,
            internal,
            name,
        } => {
            let (mut v4, mut v6) = (None, None);
            for s in subnet {
                let slot = if s.contains(':') { &mut v6 } else { &mut v4 };
                if let Some(first) = slot.replace(s.clone()) {
                    bail!(
                        "network {name}: --subnet {first} and --subnet {s}: at most one subnet \
                         of each family (IPv4, IPv6)"
                    );
                }
            }
            let n = super::create(
                &dirs,
                &CreateOptions {
                    name,
                    subnet: v4,
                    gateway,
                    internal,
                    ipv6,
                    subnet6: v6,
                },
            )?;
            output::line(&n.name)?;
        }
        NetworkVerb::Ls { quiet, format } => {
            if !matches!(format.as_str(), "table" | "json") {
                bail!("--format {format:?}: expected table or json");
            }
            let nets = super::list(&dirs)?;
            if quiet {
                for n in nets {
                    output::line(&n.name)?;
                }
            } else if format == "json" {
                let v: Vec<_> = nets.iter().map(ls_json).collect();
                output::line(&serde_json::to_string_pretty(&v)?)?;
            } else {
                output::line(&ls_table(&nets))?;
            }
        }
        NetworkVerb::Inspect { name } => {
            let n = super::find(&dirs, &name)?;
            let atts: Vec<_> = attach::records(&dirs)?
                .into_iter()
                .filter(|x| x.network == n.name)
                .map(|x| {
                    json!({"container": x.container, "ifname": x.ifname, "ips": x.ips(),
                           "ports": x.ports, "phase": x.phase})
                })
                .collect();
            let v = json!({
                "name": n.name,
                "file": n.path,
                "managedByHusk": n.source == Source::Husk,
                "subnet": n.subnet.map(|s| s.to_string()),
                "gateway": n.gateway.map(|s| s.to_string()),
                "subnet6": n.subnet6.map(|s| s.0.to_string()),
                "gateway6": n.subnet6.map(|s| s.1.to_string()),
                "subnets": subnets_json(&n),
                "bridge": n.bridge,
                "internal": n.internal,
                "plugins": n.plugin_types(),
                "attachments": atts,
                "conflist": n.conflist,
            });
            output::line(&serde_json::to_string_pretty(&v)?)?;
        }
        NetworkVerb::Rm { names } => {
            let mut failed = None;
            for n in names {
                match super::remove(&dirs, &n) {
                    Ok(()) => output::line(&n)?,
                    Err(e) => {
                        crate::logging::error(&format!("{e:#}"));
                        failed.get_or_insert(n);
                    }
                }
            }
            if let Some(n) = failed {
                bail!("network {n} (and any named above) not removed");
            }
        }
        NetworkVerb::Prune => {
            attach::gc(&dirs, None)?;
            let used: Vec<String> = attach::records(&dirs)?
                .into_iter()
                .map(|a| a.network)
                .collect();
            for n in super::list(&dirs)? {
                if n.source == Source::Husk && !used.contains(&n.name) {
                    super::remove(&dirs, &n.name)?;
                    output::line(&n.name)?;
                }
            }
        }
        NetworkVerb::Gc => {
            for (net, id) in attach::gc(&dirs, None)? {
                output::line(&format!("{id} {net}"))?;
            }
        }
        NetworkVerb::Attach {
            publish,
            ifname,
            alias,
            name,
            id,
        } => {
            let mut ports = Vec::new();
            for p in &publish {
                ports.extend(ports::parse(p)?);
            }
            // husk keeps no hosts file for a bundle of the user's: the container's own
            // /etc/hosts is left alone, its names go into those of husk up's containers
            let o = AttachOptions {
                ports,
                ifname,
                aliases: alias,
                hosts: None,
            };
            let a = attach::attach(g, &dirs, &name, &id, &o)?;
            let mut line = format!("{} {}", a.ifname, a.ips().join(","));
            for p in &a.ports {
                line.push_str(&format!(" {p}"));
            }
            output::line(&line)?;
        }
        NetworkVerb::Detach { name, id } => attach::detach(&dirs, &name, &id)?,
        NetworkVerb::Check { name, id } => attach::check(&dirs, &name, &id)?,
    }
    Ok(())
}

/// Every subnet of `n` with its gateway, as podman lists them (`subnets`).
fn subnets_json(n: &Network) -> Value {
    n.subnets
        .iter()
        .map(|(s, g)| json!({"subnet": s, "gateway": g.to_string()}))
        .collect()
}

/// One element of `ls --format json`.
fn ls_json(n: &Network) -> Value {
    json!({
        "name": n.name,
        "file": n.path,
        "managedByHusk": n.source == Source::Husk,
        "subnets": subnets_json(n),
        "ipv6": n.subnets.iter().any(|(s, _)| s.contains(':')),
        "bridge": n.bridge,
        "internal": n.internal,
    })
}

/// `ls`'s table: a network's subnets (and their gateways, in the same order) comma-separated
/// in one cell each, the columns as wide as their longest cell.
fn ls_table(nets: &[Network]) -> String {
    let rows: Vec<[String; 5]> = nets
        .iter()
        .map(|n| {
            let subnets: Vec<String> = n.subnets.iter().map(|(s, _)| s.clone()).collect();
            let gateways: Vec<String> = n.subnets.iter().map(|(_, g)| g.to_string()).collect();
            let or_dash = |v: Vec<String>| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(",")
                }
            };
            [
                n.name.clone(),
                or_dash(subnets),
                or_dash(gateways),
                n.bridge.clone().unwrap_or("-".into()),
                n.path.display().to_string(),
            ]
        })
        .collect();
    let head = ["NAME", "SUBNETS", "GATEWAYS", "BRIDGE", "SOURCE"].map(String::from);
    let mut width = head.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    std::iter::once(&head)
        .chain(&rows)
        .map(|r| {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(&format!("{c:<w$}  ", w = width[i]));
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}
