//! TLS for registries: the system CA store, plus CA files from `--ca-cert` and the per-registry
//! directories Docker and containerd/podman read (`/etc/docker/certs.d/HOST:PORT/*.crt`,
//! `/etc/containers/certs.d/HOST:PORT/*.crt`; `--certs-dir` replaces both) with a client
//! certificate there (`NAME.cert` + `NAME.key`) presented to registries that ask for one, or no
//! verification of the server at all with `--tls-verify=false`. rustls with ring, as ureq
//! uses it.

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where per-registry CA directories are looked for when `--certs-dir` is not given.
pub const DEFAULT_CERTS_DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// What the certs dirs hold for one registry: CA files (`*.crt`) and a client certificate
/// (`NAME.cert` with its key `NAME.key`), as Docker lays them out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostFiles {
    pub cas: Vec<PathBuf>,
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The files of `DIR/HOST` (`name:port` as written in references) for each certs dir, sorted;
/// the first client certificate found is used. A `NAME.cert` without `NAME.key` is an error.
pub fn host_files(host: &str, certs_dirs: &[PathBuf]) -> Result<HostFiles> {
    let mut out = HostFiles::default();
    if host.contains('/') || host == ".." || host == "." {
        return Ok(out);
    }
    for d in certs_dirs {
        let dir = d.join(host);
        let rd = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
        };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            match f.extension().and_then(|x| x.to_str()) {
                Some("crt") => out.cas.push(f),
                Some("cert") => {
                    let key = f.with_extension("key");
                    if !key.exists() {
                        anyhow::bail!(
                            "client certificate {} has no key {} beside it",
                            f.display(),
                            key.display()
                        );
                    }
                    if out.client.is_none() {
                        out.client = Some((f, key));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config trusting the system CAs and the certificates in `ca_files`, presenting
/// `client` (certificate chain file, key file) when given.
pub fn with_cas(
    ca_files: &[PathBuf],
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(native) = rustls_native_certs::load_native_certs() {
        roots.add_parsable_certificates(native);
    }
    for f in ca_files {
        let n = add_pem(&mut roots, f)?;
        if n == 0 {
            anyhow::bail!("CA file {}: no PEM certificate in it", f.display());
        }
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    with_client(b, client)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The config `b` builds, presenting the client certificate and key `client` when given.
fn with_client(
    b: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<Arc<rustls::ClientConfig>> {
    Ok(Arc::new(match client {
        Some(c) => {
            let (certs, key) = client_identity(c)?;
            b.with_client_auth_cert(certs, key)
                .with_context(|| format!("client certificate {}", c.0.display()))?
        }
        None => b.with_no_client_auth(),
    }))
}

fn client_identity((cert, key): &(PathBuf, PathBuf)) -> Result<Identity> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("client certificate {}", cert.display()))?
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("client certificate {}: not PEM", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "client certificate {}: no PEM certificate in it",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("client key {}: no PEM private key in it", key.display()))?;
    Ok((certs, key))
}

fn add_pem(roots: &mut rustls::RootCertStore, f: &Path) -> Result<usize> {
    let mut n = 0;
    let certs =
        CertificateDer::pem_file_iter(f).with_context(|| format!("CA file {}", f.display()))?;
    for c in certs {
        let c = c.with_context(|| format!("CA file {}: not PEM", f.display()))?;
        roots
            .add(c)
            .with_context(|| format!("CA file {}: a certificate rustls refuses", f.display()))?;
        n += 1;
    }
    Ok(n)
}

/// A client config that accepts any server certificate (`--tls-verify=false`): the
/// connection is encrypted, not authenticated. Signatures are still checked, so the server must
/// hold the key of the certificate it shows.
pub fn unverified(client: Option<&(PathBuf, PathBuf)>) -> Result<Arc<rustls::ClientConfig>> {
    let p = provider();
    let b = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(p)));
    with_client(b, client)
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_host_dirs() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("127.0.0.1:5000");
        std::fs::create_dir(&d).unwrap();
        for f in ["ca.crt", "b.crt", "client.cert", "client.key", "notes.txt"] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let dirs = vec![t.path().to_path_buf(), t.path().join("missing")];
        let got = host_files("127.0.0.1:5000", &dirs).unwrap();
        assert_eq!(got.cas, vec![d.join("b.crt"), d.join("ca.crt")]);
        assert_eq!(
            got.client,
            Some((d.join("client.cert"), d.join("client.key")))
        );
        assert_eq!(host_files("other:1", &dirs).unwrap(), HostFiles::default());
        assert_eq!(host_files("../x", &dirs).unwrap(), HostFiles::default());
        // a file that holds no certificate is an error naming it
        let e = with_cas(&[d.join("ca.crt")], None).unwrap_err();
        assert!(format!("{e:#}").contains("ca.crt"), "{e:#}");
        let e = with_cas(&[], got.client.as_ref()).unwrap_err();
        assert!(format!("{e:#}").contains("client.cert"), "{e:#}");
        // a certificate without its key
        std::fs::remove_file(d.join("client.key")).unwrap();
        let e = host_files("127.0.0.1:5000", &dirs).unwrap_err();
        assert!(format!("{e:#}").contains("has no key"), "{e:#}");
    }
}
