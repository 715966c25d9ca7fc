//! `husk image …`: the image companion commands (noun-verb, so they never collide with runc's
//! verbs). Parsed here, run by `husk::image`.

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The image store [default: $HUSK_STORE, else /var/lib/husk for root, else
    /// $XDG_DATA_HOME/husk].
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// TLS to the registry (pull, push, login).
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// A CA certificate (PEM) to trust besides the system's; the registry is then reached over
    /// HTTPS even on loopback. May be repeated.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Look for the registry's CA files in DIR/HOST:PORT/*.crt [default:
    /// /etc/containers/certs.d and /etc/docker/certs.d].
    #[arg(long, value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// false: HTTPS without checking the registry's certificate.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

/// How to reach a registry (pull, push, login, and `husk up`'s pull).
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Allow plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Seconds to wait on a registry that does not answer.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

impl RegistryArgs {
    /// The client's options, with `creds` (USER:PASSWORD) when given.
    pub fn options(self, creds: Option<&str>) -> anyhow::Result<crate::registry::Options> {
        let creds = creds
            .map(crate::registry::auth::Credentials::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        Ok(crate::registry::Options {
            insecure: self.insecure,
            creds,
            timeout: Some(std::time::Duration::from_secs(self.timeout.max(1))),
            ca_certs: self.tls.ca_cert,
            certs_dirs: self.tls.certs_dir.map(|d| vec![d]),
            no_tls_verify: !self.tls.tls_verify,
            ..Default::default()
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Fetch an image from its registry into the store.
    Pull {
        #[command(flatten)]
        conn: RegistryArgs,
        /// Credentials USER:PASSWORD (default: $REGISTRY_AUTH_FILE, then ~/.docker/config.json).
        #[arg(long)]
        creds: Option<String>,
        /// OS/ARCH[/VARIANT] to pick from a multi-platform image [default: the host's].
        #[arg(long)]
        platform: Option<String>,
        /// Keep a multi-platform image whole: every platform's manifest and blobs, the index as
        /// the stored image (unpack and husk up use the host's platform; push sends them all).
        #[arg(long, conflicts_with = "platform")]
        all_platforms: bool,
        /// Also unpack the image into the bundle DIR, as `husk image unpack REF DIR` does; as
        /// root each layer is applied while it downloads.
        #[arg(long, value_name = "DIR")]
        unpack: Option<PathBuf>,
        /// No progress output (--progress quiet).
        #[arg(short, long)]
        quiet: bool,
        /// auto, tty (bars on standard error), plain (a line per blob on standard error),
        /// json (an event per line on standard output) or quiet [default: auto: tty when
        /// standard error is a terminal, else plain].
        #[arg(long, value_name = "MODE")]
        progress: Option<String>,
        /// busybox, registry.example:5000/app:1.4, app@sha256:…
        reference: String,
    },
    /// List the images in the store.
    #[command(alias = "list")]
    Ls {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the references.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print an image's manifest, config and layers as JSON.
    Inspect { reference: String },
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove images from the store (blobs nothing else uses are deleted).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Write a runnable bundle: DIR/rootfs and DIR/config.json.
    Unpack { reference: String, dir: PathBuf },
    /// Run a command as root of the user namespace a user's unpack maps (the user and its
    /// /etc/subuid and /etc/subgid ranges), e.g. `rm -rf DIR` of such a bundle.
    Unshare {
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Upload an image of the store to a registry (blobs it has are skipped).
    Push {
        #[command(flatten)]
        conn: RegistryArgs,
        /// Credentials USER:PASSWORD (default: $REGISTRY_AUTH_FILE, then ~/.docker/config.json).
        #[arg(long)]
        creds: Option<String>,
        /// Upload blobs larger than this many bytes in chunks of this size (0: never chunk).
        #[arg(long, default_value_t = crate::image::push::DEFAULT_CHUNK)]
        chunk_size: u64,
        /// No progress output (--progress quiet).
        #[arg(short, long)]
        quiet: bool,
        /// auto, tty (bars on standard error), plain (a line per blob on standard error),
        /// json (an event per line on standard output) or quiet [default: auto: tty when
        /// standard error is a terminal, else plain].
        #[arg(long, value_name = "MODE")]
        progress: Option<String>,
        /// The image in the store (a reference or digest); a multi-platform image (its index)
        /// is pushed whole: every platform's blobs and manifest, then the index.
        source: String,
        /// Where to push it [default: SOURCE's name].
        destination: Option<String>,
    },
    /// Check credentials against a registry and store them in the auth file
    /// ($REGISTRY_AUTH_FILE, else ~/.docker/config.json).
    Login {
        /// The user name (prompted for on a terminal when not given).
        #[arg(short, long)]
        username: Option<String>,
        /// The password (visible to other users in ps; prefer --password-stdin).
        #[arg(short, long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        conn: RegistryArgs,
        /// registry.example, registry.example:5000, docker.io
        registry: String,
    },
    /// Remove a registry's credentials from the auth file.
    Logout {
        /// registry.example, registry.example:5000, docker.io
        registry: String,
    },
    /// Write an image of the store to FILE as an OCI archive (a tar of an OCI image layout).
    Export {
        /// The image (a reference or digest).
        reference: String,
        /// The archive to write (`-`: standard output).
        file: PathBuf,
    },
    /// Read images from an OCI archive or a `docker save` tarball (plain or gzipped) into
    /// the store.
    Import {
        /// OS/ARCH[/VARIANT] to pick from a multi-platform archive [default: the host's].
        #[arg(long)]
        platform: Option<String>,
        /// Keep a multi-platform image whole: every platform's manifest and blobs, the index as
        /// the stored image.
        #[arg(long, conflicts_with = "platform")]
        all_platforms: bool,
        /// No progress output (--progress quiet).
        #[arg(short, long)]
        quiet: bool,
        /// auto, tty (a bar per archive entry on standard error), plain (a line per entry on
        /// standard error), json (an event per line on standard output) or quiet [default:
        /// auto: tty when standard error is a terminal, else plain].
        #[arg(long, value_name = "MODE")]
        progress: Option<String>,
        /// The archive to read (`-`: standard input).
        file: PathBuf,
        /// The name to store the image under [default: the name the archive gives it].
        reference: Option<String>,
    },
    /// Delete the blobs no image of the store refers to, and what interrupted commands left in
    /// its tmp/ (waits for pulls, pushes and imports in progress).
    Prune,
}
