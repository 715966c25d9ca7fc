//! TLS for registries: the system CA store, plus CA files from `--ca-cert` and the per-registry
//! directories Docker and containerd/podman read (`/etc/docker/certs.d/HOST:PORT/*.crt`,
//! `/etc/containers/certs.d/HOST:PORT/*.crt`; `--certs-dir` replaces both), or no verification
//! at all with `--tls-verify=false`. rustls with ring, as ureq uses it.

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where per-registry CA directories are looked for when `--certs-dir` is not given.
pub const DEFAULT_CERTS_DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// The CA files for `host` (`name:port` as written in references): the `*.crt` files of
/// `DIR/HOST` for each certs dir, sorted.
pub fn host_ca_files(host: &str, certs_dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
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
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config trusting the system CAs and the certificates in `ca_files`.
pub fn with_cas(ca_files: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>> {
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
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
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
pub fn unverified() -> Result<Arc<rustls::ClientConfig>> {
    let p = provider();
    let cfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(p)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
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
        for f in ["ca.crt", "b.crt", "client.cert", "client.key"] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let dirs = vec![t.path().to_path_buf(), t.path().join("missing")];
        let got = host_ca_files("127.0.0.1:5000", &dirs).unwrap();
        assert_eq!(got, vec![d.join("b.crt"), d.join("ca.crt")]);
        assert!(host_ca_files("other:1", &dirs).unwrap().is_empty());
        assert!(host_ca_files("../x", &dirs).unwrap().is_empty());
        // a file that holds no certificate is an error naming it
        let e = with_cas(&[d.join("ca.crt")]).unwrap_err();
        assert!(format!("{e:#}").contains("ca.crt"), "{e:#}");
    }
}
