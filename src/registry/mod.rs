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
pub mod reference;

use auth::{Challenge, Credentials};
use reference::Reference;
use std::io::Read;
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
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    repository: String,
    creds: Option<Credentials>,
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
        let scheme = if is_loopback(host) || opts.insecure {
            "http"
        } else {
            "https"
        };
        let timeout = opts.timeout.unwrap_or(Duration::from_secs(60));
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout_read(timeout)
            .timeout_write(timeout)
            .redirects(5)
            .user_agent(concat!("husk/", env!("CARGO_PKG_VERSION")))
            .build();
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
            authorization: Mutex::new(None),
        })
    }

    /// GET `/v2/<repo>/<what>`, authenticating on a 401 challenge, retrying transient failures.
    fn get(&self, what: &str, accept: &str) -> anyhow::Result<ureq::Response> {
        let url = format!("{}/v2/{}/{what}", self.base, self.repository);
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.agent.get(&url);
            if !accept.is_empty() {
                req = req.set("Accept", accept);
            }
            let auth = self.authorization.lock().map(|a| a.clone()).unwrap_or(None);
            if let Some(a) = auth.as_deref() {
                req = req.set("Authorization", a);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !challenged => {
                    challenged = true;
                    let header = resp.header("www-authenticate").unwrap_or("").to_string();
                    self.authenticate(&header)?;
                }
                Err(ureq::Error::Status(401, _)) => anyhow::bail!(
                    "{}: 401 unauthorized for repository {} with {} (wrong credentials?)",
                    self.registry,
                    self.repository,
                    self.creds_text()
                ),
                Err(ureq::Error::Status(code, resp))
                    if (code == 429 || code >= 500) && attempt < 4 =>
                {
                    drop(resp);
                    backoff(attempt);
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let mut body = String::new();
                    let _ = resp.into_reader().take(512).read_to_string(&mut body);
                    anyhow::bail!(
                        "{url}: {code} {}",
                        registry_error_text(&body).unwrap_or_default()
                    )
                }
                Err(ureq::Error::Transport(_)) if attempt < 4 => backoff(attempt),
                Err(ureq::Error::Transport(t)) => anyhow::bail!("{url}: {t}"),
            }
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

    /// Answer a `WWW-Authenticate` challenge: Basic sends the credentials, Bearer fetches a
    /// token for `repository:<repo>:pull` from the realm (with the credentials, if any).
    fn authenticate(&self, header: &str) -> anyhow::Result<()> {
        let Some(Challenge { scheme, params }) = auth::parse_challenge(header) else {
            anyhow::bail!(
                "{}: 401 unauthorized for repository {} without a WWW-Authenticate challenge",
                self.registry,
                self.repository
            );
        };
        match scheme.as_str() {
            "basic" => {
                let Some(c) = &self.creds else {
                    anyhow::bail!(
                        "{}: repository {} needs credentials (Basic auth): pass --creds USER:PASSWORD or put them in $REGISTRY_AUTH_FILE or ~/.docker/config.json",
                        self.registry,
                        self.repository
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
                let scope = format!("repository:{}:pull", self.repository);
                let mut req = self.agent.get(realm).query("scope", &scope);
                if let Some(s) = params.get("service") {
                    req = req.query("service", s);
                }
                if let Some(c) = &self.creds {
                    req = req.set("Authorization", &c.basic_header());
                }
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(code, _)) => anyhow::bail!(
                        "{}: token endpoint {realm} refused {scope} for {}: HTTP {code}",
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

    pub fn registry(&self) -> &str {
        &self.registry
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
