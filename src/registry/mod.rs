//! A client for the OCI distribution spec (v2 API): manifests and blobs of one repository, with
//! anonymous, Basic and Bearer-token authentication.
//!
//! HTTP is blocking ureq 2 over rustls (ring): a CLI that fetches one image needs no async
//! runtime, and rustls keeps OpenSSL out of the static binary. Plain HTTP is used for loopback
//! registries (as Docker does) and with `--insecure`; everything else is HTTPS with the system
//! CA store. Redirects (blob storage) are followed; the `Authorization` header is never sent to
//! the redirect target. GETs are retried with backoff on 429, 5xx and connection errors.
//!
//! This is a companion module: nothing on the runtime's create/start/exec path uses it.

pub mod auth;
pub mod login;
pub mod reference;
pub mod tls;

use auth::{Challenge, Credentials};
use reference::Reference;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest or index larger than this is refused (containerd uses 4 MiB too).
pub const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Allow plain HTTP to a non-loopback registry.
    pub insecure: bool,
    pub creds: Option<Credentials>,
    /// Per request: connect and every read (a registry that stops sending fails after this).
    pub timeout: Option<Duration>,
    /// Ask for push rights too (Bearer scope `repository:<name>:pull,push`).
    pub push: bool,
    /// CA certificates (PEM) to trust besides the system's (`--ca-cert`).
    pub ca_certs: Vec<PathBuf>,
    /// Directories holding `HOST:PORT/*.crt` CA files (`--certs-dir`); `None`: Docker's and
    /// containers' `/etc/…/certs.d`.
    pub certs_dirs: Option<Vec<PathBuf>>,
    /// HTTPS without verifying the server's certificate (`--tls-verify=false`).
    pub no_tls_verify: bool,
}

/// A request body: none, bytes, or a stream of a known length that can be opened again (for a
/// retry or after an authentication challenge).
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Reader(u64, &'a OpenBody<'a>),
}

pub type OpenBody<'a> = dyn Fn() -> std::io::Result<Box<dyn Read + Send + 'static>> + 'a;

/// How a blob got into the destination repository.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The registry had it (HEAD answered 200).
    Present,
    /// Mounted from another repository of the same registry.
    Mounted(String),
    /// Uploaded in this many requests (1: monolithic PUT; more: PATCH chunks then PUT).
    Uploaded(usize),
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    repository: String,
    creds: Option<Credentials>,
    push: bool,
    /// Repositories blobs may be mounted from (their pull scope is asked for with the token).
    mount_from: Mutex<Vec<String>>,
    /// The `Authorization` value that last worked (a Bearer token is reused for the repository).
    authorization: Mutex<Option<String>>,
}

/// A fetched manifest or index: its bytes, media type and digest (computed from the bytes).
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

/// True for `localhost`, 127.0.0.0/8 and ::1 (with or without a port).
pub fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl Client {
    pub fn new(r: &Reference, opts: &Options) -> anyhow::Result<Client> {
        let host = r.api_host();
        let dirs: Vec<PathBuf> = match &opts.certs_dirs {
            Some(d) => d.clone(),
            None => tls::DEFAULT_CERTS_DIRS.iter().map(PathBuf::from).collect(),
        };
        let files =
            tls::host_files(host, &dirs).map_err(|e| e.context(format!("registry {host}")))?;
        let mut cas = opts.ca_certs.clone();
        cas.extend(files.cas);
        let client = files.client.as_ref();
        // HTTPS unless on loopback or --insecure; a CA or client certificate for the host, or
        // --tls-verify=false, means the registry speaks TLS even there (as Docker does with
        // certs.d)
        let tls_asked = !cas.is_empty() || client.is_some() || opts.no_tls_verify;
        let scheme = if (is_loopback(host) || opts.insecure) && !tls_asked {
            "http"
        } else {
            "https"
        };
        let timeout = opts.timeout.unwrap_or(Duration::from_secs(60));
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout_read(timeout)
            .timeout_write(timeout)
            .redirects(5)
            .user_agent(concat!("husk/", env!("CARGO_PKG_VERSION")));
        if opts.no_tls_verify {
            builder = builder.tls_config(tls::unverified(client)?);
        } else if !cas.is_empty() || client.is_some() {
            builder = builder.tls_config(
                tls::with_cas(&cas, client).map_err(|e| e.context(format!("registry {host}")))?,
            );
        }
        let agent = builder.build();
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => auth::from_auth_files(&r.registry).map_err(anyhow::Error::msg)?,
        };
        Ok(Client {
            agent,
            base: format!("{scheme}://{host}"),
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            creds,
            push: opts.push,
            mount_from: Mutex::new(Vec::new()),
            authorization: Mutex::new(None),
        })
    }

    /// GET `/v2/<repo>/<what>`, authenticating on a 401 challenge, retrying transient failures.
    fn get(&self, what: &str, accept: &str) -> anyhow::Result<ureq::Response> {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            Vec::new()
        } else {
            vec![("Accept", accept)]
        };
        self.send("GET", what, &headers, Body::Empty, &[])
    }

    /// The URL for `path`: absolute as given (an upload `Location`), `/…` on the registry, or
    /// relative to `/v2/<repo>/`.
    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/v2/{}/{path}", self.base, self.repository)
        }
    }

    /// One request: authenticating on a 401 challenge (once), retrying 429, 5xx and connection
    /// errors with backoff. 2xx answers and the codes in `pass` are returned; any other status
    /// is an error naming the URL and the registry's message. The `Authorization` header goes
    /// only to the registry itself (an upload `Location` on another host gets none).
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        pass: &[u16],
    ) -> anyhow::Result<ureq::Response> {
        let url = self.url(path);
        let ours = url.starts_with(&format!("{}/", self.base));
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let auth = self.authorization.lock().map(|a| a.clone()).unwrap_or(None);
            if let (true, Some(a)) = (ours, auth.as_deref()) {
                req = req.set("Authorization", a);
            }
            let result = match &body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::Reader(len, open) => {
                    let r = open().map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?;
                    req.set("Content-Length", &len.to_string()).send(r)
                }
            };
            match result {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(code, resp)) if pass.contains(&code) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !challenged && ours => {
                    challenged = true;
                    let header = resp.header("www-authenticate").unwrap_or("").to_string();
                    self.authenticate(&header)?;
                }
                Err(ureq::Error::Status(401, _)) => anyhow::bail!(
                    "{}: 401 unauthorized for {} with {} (wrong credentials?)",
                    self.registry,
                    self.what(),
                    self.creds_text()
                ),
                Err(ureq::Error::Status(code, resp))
                    if (code == 429 || code >= 500) && attempt < 4 && method != "PATCH" =>
                {
                    drop(resp);
                    backoff(attempt);
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let mut text = String::new();
                    let _ = resp.into_reader().take(512).read_to_string(&mut text);
                    let hint = if url.starts_with("http:") && text.contains("HTTPS server") {
                        " (the registry speaks HTTPS: give its CA with --ca-cert or a certs \
                         dir, or pass --tls-verify=false)"
                    } else {
                        ""
                    };
                    let msg = registry_error_text(&text)
                        .unwrap_or_else(|| text.trim().chars().take(200).collect());
                    anyhow::bail!("{method} {url}: {code} {msg}{hint}")
                }
                Err(ureq::Error::Transport(_)) if attempt < 4 && method != "PATCH" => {
                    backoff(attempt)
                }
                Err(ureq::Error::Transport(t)) => anyhow::bail!("{method} {url}: {t}"),
            }
        }
    }

    /// "repository NAME" or "the registry" (a client made for `login`).
    fn what(&self) -> String {
        if self.repository.is_empty() {
            "the registry".to_string()
        } else {
            format!("repository {}", self.repository)
        }
    }

    fn set_authorization(&self, value: String) {
        if let Ok(mut a) = self.authorization.lock() {
            *a = Some(value);
        }
    }

    fn creds_text(&self) -> String {
        match &self.creds {
            Some(c) => format!("the credentials of user {:?}", c.username),
            None => "no credentials".to_string(),
        }
    }

    /// The token scopes this client asks for: `repository:<repo>:pull` (`pull,push` for a
    /// push), `repository:<from>:pull` for each repository blobs are mounted from; none for a
    /// client made for `login`.
    fn scopes(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.repository.is_empty() {
            return v;
        }
        let actions = if self.push { "pull,push" } else { "pull" };
        v.push(format!("repository:{}:{actions}", self.repository));
        if let Ok(from) = self.mount_from.lock() {
            for f in from.iter().filter(|f| **f != self.repository) {
                v.push(format!("repository:{f}:pull"));
            }
        }
        v
    }

    /// Answer a `WWW-Authenticate` challenge: Basic sends the credentials, Bearer fetches a
    /// token for [`Client::scopes`] from the realm (with the credentials, if any).
    fn authenticate(&self, header: &str) -> anyhow::Result<()> {
        let Some(Challenge { scheme, params }) = auth::parse_challenge(header) else {
            anyhow::bail!(
                "{}: 401 unauthorized for {} without a WWW-Authenticate challenge",
                self.registry,
                self.what()
            );
        };
        match scheme.as_str() {
            "basic" => {
                let Some(c) = &self.creds else {
                    anyhow::bail!(
                        "{}: {} needs credentials (Basic auth): pass --creds USER:PASSWORD, \
                         or log in with `husk image login {}` ($REGISTRY_AUTH_FILE or \
                         ~/.docker/config.json)",
                        self.registry,
                        self.what(),
                        self.registry
                    );
                };
                self.set_authorization(c.basic_header());
                Ok(())
            }
            "bearer" => {
                let realm = params
                    .get("realm")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}: Bearer challenge without a realm: {header:?}",
                            self.registry
                        )
                    })?;
                let scopes = self.scopes();
                let scope = scopes.join(" ");
                let mut req = self.agent.get(realm);
                for s in &scopes {
                    req = req.query("scope", s);
                }
                if let Some(s) = params.get("service") {
                    req = req.query("service", s);
                }
                if let Some(c) = &self.creds {
                    req = req
                        .query("account", &c.username)
                        .set("Authorization", &c.basic_header());
                }
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(code, _)) => anyhow::bail!(
                        "{}: token endpoint {realm} refused {scope:?} for {}: HTTP {code}",
                        self.registry,
                        self.creds_text()
                    ),
                    Err(e) => anyhow::bail!("{}: token endpoint {realm}: {e}", self.registry),
                };
                let mut body = String::new();
                resp.into_reader()
                    .take(1 << 20)
                    .read_to_string(&mut body)
                    .map_err(|e| anyhow::anyhow!("token endpoint {realm}: {e}"))?;
                let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
                    anyhow::anyhow!("token endpoint {realm}: answer is not JSON: {e}")
                })?;
                let token = v["token"]
                    .as_str()
                    .or(v["access_token"].as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!("token endpoint {realm}: no token in the answer")
                    })?;
                self.set_authorization(format!("Bearer {token}"));
                Ok(())
            }
            other => anyhow::bail!(
                "{}: unsupported authentication scheme {other:?} in {header:?}",
                self.registry
            ),
        }
    }

    /// Fetch the manifest or index `reference` (a tag or digest), at most [`MAX_MANIFEST`] bytes.
    pub fn manifest(&self, reference: &str) -> anyhow::Result<Manifest> {
        let accept = [
            MEDIA_OCI_INDEX,
            MEDIA_OCI_MANIFEST,
            MEDIA_DOCKER_LIST,
            MEDIA_DOCKER_MANIFEST,
        ]
        .join(", ");
        let resp = self.get(&format!("manifests/{reference}"), &accept)?;
        let header_type = resp.content_type().to_string();
        if let Some(len) = resp
            .header("content-length")
            .and_then(|l| l.parse::<u64>().ok())
        {
            if len > MAX_MANIFEST {
                anyhow::bail!(
                    "manifest {reference} of {}/{} is {len} bytes, more than the limit of {MAX_MANIFEST}",
                    self.registry,
                    self.repository
                );
            }
        }
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow::anyhow!("manifest {reference}: {e}"))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            anyhow::bail!(
                "manifest {reference} of {}/{} is more than the limit of {MAX_MANIFEST} bytes",
                self.registry,
                self.repository
            );
        }
        // the document's own mediaType wins over a generic Content-Type
        let body_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(String::from));
        let media_type = body_type.unwrap_or(header_type);
        let digest = reference::sha256_digest(&bytes);
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Start fetching blob `digest`; the caller streams and verifies the body.
    pub fn blob(&self, digest: &str) -> anyhow::Result<Box<dyn Read + Send + Sync + 'static>> {
        Ok(self.get(&format!("blobs/{digest}"), "")?.into_reader())
    }

    /// Blob `digest` from byte `offset` on (an HTTP Range request), with the offset its bytes
    /// start at: `offset` when the registry answered 206 with that range, 0 when it sent the
    /// whole blob (200, Range ignored).
    pub fn blob_from(
        &self,
        digest: &str,
        offset: u64,
    ) -> anyhow::Result<(Box<dyn Read + Send + Sync + 'static>, u64)> {
        if offset == 0 {
            return Ok((self.blob(digest)?, 0));
        }
        let range = format!("bytes={offset}-");
        let resp = self.send(
            "GET",
            &format!("blobs/{digest}"),
            &[("Range", &range)],
            Body::Empty,
            &[],
        )?;
        if resp.status() != 206 {
            return Ok((resp.into_reader(), 0));
        }
        let want = format!("bytes {offset}-");
        match resp.header("content-range") {
            Some(r) if r.starts_with(&want) => Ok((resp.into_reader(), offset)),
            other => anyhow::bail!(
                "{}: blob {digest} asked from byte {offset} answered 206 with Content-Range \
                 {other:?}, expected {want}…",
                self.registry
            ),
        }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Repositories of this registry that `push_blob` may mount blobs from: their pull scope is
    /// asked for with the next token.
    pub fn set_mount_sources(&self, repos: Vec<String>) {
        if let Ok(mut m) = self.mount_from.lock() {
            *m = repos;
        }
    }

    /// Does the repository hold blob `digest` (HEAD: 200, or 404)?
    pub fn has_blob(&self, digest: &str) -> anyhow::Result<bool> {
        let resp = self.send("HEAD", &format!("blobs/{digest}"), &[], Body::Empty, &[404])?;
        Ok(resp.status() / 100 == 2)
    }

    /// The upload URL a POST or PATCH answered with (`Location`, maybe relative).
    fn location(&self, resp: &ureq::Response, what: &str) -> anyhow::Result<String> {
        match resp.header("location").filter(|l| !l.is_empty()) {
            Some(l) if l.starts_with('/') || l.contains("://") => Ok(self.url(l)),
            Some(l) => Ok(self.url(&format!("/{l}"))),
            None => anyhow::bail!(
                "{}: {what} for {} answered {} without a Location header",
                self.registry,
                self.what(),
                resp.status()
            ),
        }
    }

    /// Put blob `digest` (`size` bytes) into the repository, as the distribution spec's push
    /// does: nothing when HEAD finds it; a cross-repository mount (`POST ?mount=&from=`) from
    /// the first of `from` (when the registry mounts it); else an upload, monolithic (`POST`,
    /// then `PUT ?digest=` with the bytes) when `chunk` is 0 or the blob is no larger, chunked
    /// (`PATCH` with `Content-Range` per `chunk` bytes, then an empty `PUT ?digest=`) otherwise.
    /// `open(offset)` reads the blob from `offset`.
    pub fn push_blob(
        &self,
        digest: &str,
        size: u64,
        from: &[String],
        chunk: u64,
        open: &(dyn Fn(u64) -> std::io::Result<Box<dyn Read + Send>> + Sync),
    ) -> anyhow::Result<Pushed> {
        if self.has_blob(digest)? {
            return Ok(Pushed::Present);
        }
        let empty = [("Content-Length", "0")];
        let mut session = None;
        // a registry that does not mount answers 202 and starts an upload: one attempt
        if let Some(f) = from.iter().find(|f| **f != self.repository) {
            let path = format!("blobs/uploads/?mount={digest}&from={f}");
            let resp = self.send("POST", &path, &empty, Body::Empty, &[])?;
            match resp.status() {
                201 => return Ok(Pushed::Mounted(f.clone())),
                202 => session = Some(resp),
                other => anyhow::bail!(
                    "{}: mount of blob {digest} from {f} into {} answered {other}",
                    self.registry,
                    self.repository
                ),
            }
        }
        let resp = match session {
            Some(r) => r,
            None => self.send("POST", "blobs/uploads/", &empty, Body::Empty, &[])?,
        };
        if resp.status() != 202 {
            anyhow::bail!(
                "{}: starting the upload of blob {digest} to {} answered {}, not 202",
                self.registry,
                self.repository,
                resp.status()
            );
        }
        let min_chunk = resp
            .header("oci-chunk-min-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut location = self.location(&resp, "upload start")?;
        let with_digest = |loc: &str| {
            let sep = if loc.contains('?') { '&' } else { '?' };
            format!("{loc}{sep}digest={digest}")
        };
        let octets = ("Content-Type", "application/octet-stream");
        let mut requests = 1;
        if chunk == 0 || size <= chunk.max(min_chunk) {
            let body = || open(0);
            let resp = self.send(
                "PUT",
                &with_digest(&location),
                &[octets],
                Body::Reader(size, &body),
                &[],
            )?;
            self.expect_created(&resp, digest)?;
            return Ok(Pushed::Uploaded(requests));
        }
        let chunk = chunk.max(min_chunk);
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            let range = format!("{offset}-{}", offset + len - 1);
            let body = || -> std::io::Result<Box<dyn Read + Send>> {
                Ok(Box::new(open(offset)?.take(len)))
            };
            let resp = self.send(
                "PATCH",
                &location,
                &[octets, ("Content-Range", &range)],
                Body::Reader(len, &body),
                &[],
            )?;
            if resp.status() != 202 {
                anyhow::bail!(
                    "{}: chunk {range} of blob {digest} answered {}, not 202",
                    self.registry,
                    resp.status()
                );
            }
            if let Some(r) = resp.header("range") {
                let want = format!("0-{}", offset + len - 1);
                if r.trim_start_matches("bytes=") != want {
                    anyhow::bail!(
                        "{}: after chunk {range} of blob {digest} the registry holds {r:?}, \
                         expected {want}",
                        self.registry
                    );
                }
            }
            location = self.location(&resp, "chunk upload")?;
            offset += len;
            requests += 1;
        }
        let resp = self.send("PUT", &with_digest(&location), &empty, Body::Empty, &[])?;
        self.expect_created(&resp, digest)?;
        Ok(Pushed::Uploaded(requests))
    }

    fn expect_created(&self, resp: &ureq::Response, digest: &str) -> anyhow::Result<()> {
        if resp.status() != 201 {
            anyhow::bail!(
                "{}: completing the upload of blob {digest} to {} answered {}, not 201",
                self.registry,
                self.repository,
                resp.status()
            );
        }
        match resp.header("docker-content-digest") {
            Some(d) if d != digest => anyhow::bail!(
                "{}: uploaded blob {digest} to {}, the registry computed {d}",
                self.registry,
                self.repository
            ),
            _ => Ok(()),
        }
    }

    /// PUT the manifest `bytes` (of `media_type`) as `reference` (a tag or its digest).
    /// Returns the digest of the bytes, checked against the registry's `Docker-Content-Digest`.
    pub fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> anyhow::Result<String> {
        let digest = reference::sha256_digest(bytes);
        let resp = self.send(
            "PUT",
            &format!("manifests/{reference}"),
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
            &[],
        )?;
        if resp.status() != 201 {
            anyhow::bail!(
                "{}: PUT manifest {reference} of {} answered {}, not 201",
                self.registry,
                self.repository,
                resp.status()
            );
        }
        if let Some(d) = resp.header("docker-content-digest") {
            if d != digest {
                anyhow::bail!(
                    "{}: manifest {reference} of {}: sent {digest}, the registry computed {d}",
                    self.registry,
                    self.repository
                );
            }
        }
        Ok(digest)
    }

    /// `husk image login`: GET `/v2/` with the client's credentials, answering the challenge
    /// (Basic, or a Bearer token fetched with them). A 401 is an error naming the user.
    pub fn check_login(&self) -> anyhow::Result<()> {
        self.send("GET", "/v2/", &[], Body::Empty, &[]).map(drop)
    }
}

fn backoff(attempt: u32) {
    std::thread::sleep(Duration::from_millis(250 << attempt));
}

/// The first message of a distribution-spec error body `{"errors":[{"code","message"}]}`.
fn registry_error_text(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let e = &v["errors"][0];
    Some(format!(
        "{}: {}",
        e["code"].as_str()?,
        e["message"].as_str().unwrap_or("")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:80",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example",
            "10.0.0.1:5000",
            "[::2]:5000",
            "docker.io",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn token_scopes() {
        let creds = Some(Credentials {
            username: "u".into(),
            password: "p".into(),
        });
        let r = Reference::parse("127.0.0.1:5000/a/b:1").unwrap();
        let pull = Client::new(
            &r,
            &Options {
                creds: creds.clone(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(pull.scopes(), ["repository:a/b:pull"]);
        let push = Client::new(
            &r,
            &Options {
                creds,
                push: true,
                ..Default::default()
            },
        )
        .unwrap();
        push.set_mount_sources(vec!["c/d".into(), "a/b".into()]);
        assert_eq!(
            push.scopes(),
            ["repository:a/b:pull,push", "repository:c/d:pull"]
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            registry_error_text(
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            )
            .unwrap(),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert!(registry_error_text("<html>").is_none());
    }
}
