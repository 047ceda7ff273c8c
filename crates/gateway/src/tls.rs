//! TLS termination with rustls (ring provider): HTTP/2 and HTTP/1.1 by ALPN, and the
//! certificate and key reloaded from their files when either changes, without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no PEM item of the expected kind.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the key or the configuration.
    #[error("tls setup failed")]
    Rustls(#[from] rustls::Error),
}

#[derive(Debug)]
struct Resolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(config: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| file_error(&config.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&config.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(&config.cert, "no certificate".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| file_error(&config.key, e.to_string()))?;
    let signing_key = provider().key_provider.load_private_key(key)?;
    Ok(CertifiedKey::new(certs, signing_key))
}

fn modified(config: &TlsConfig) -> Option<(SystemTime, SystemTime)> {
    let at = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((at(&config.cert)?, at(&config.key)?))
}

/// The acceptor for `config`, and the task (to spawn) that swaps in new certificates when the files change
/// (a pair that fails to load keeps the old one, with a warning).
pub(crate) fn acceptor(
    config: &TlsConfig,
    shutdown: CancellationToken,
) -> Result<
    (
        tokio_rustls::TlsAcceptor,
        impl Future<Output = ()> + Send + 'static,
    ),
    TlsError,
> {
    let resolver = Arc::new(Resolver(ArcSwap::from_pointee(load(config)?)));
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let config = config.clone();
    let reload = async move {
        let mut seen = modified(&config);
        let interval = Duration::from_millis(config.reload_interval_ms);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let now = modified(&config);
            if now == seen {
                continue;
            }
            match load(&config) {
                Ok(key) => {
                    resolver.0.store(Arc::new(key));
                    seen = now;
                    tracing::info!(cert = %config.cert.display(), "tls certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tls certificate change not applied");
                }
            }
        }
    };
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(server)), reload))
}
