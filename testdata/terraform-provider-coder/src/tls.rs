//! go-plugin's automatic mutual TLS.
//!
//! Terraform passes its client certificate (self-signed, PEM) in
//! `PLUGIN_CLIENT_CERT` and expects the plugin to serve TLS with a
//! self-signed certificate for `localhost`, announced base64 (DER) as the
//! handshake line's sixth field; it trusts exactly that certificate.
//!
//! Both certificates are CA certificates, which webpki refuses as end
//! entities, so the client certificate is pinned instead of path-validated:
//! the connection must present exactly the certificate from the environment
//! and prove its key with the handshake signature. go-plugin's keys are
//! ECDSA P-521, which ring cannot verify, so that signature is checked with
//! the RustCrypto `p521` crate (a Go client offers no certificate to a server
//! that does not list a scheme its key can sign with).

use std::sync::Arc;

use p521::ecdsa::signature::Verifier;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::WebPkiSupportedAlgorithms;
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::UnixTime;
use tokio_rustls::rustls::pki_types::{alg_id, AlgorithmIdentifier, InvalidSignature};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, SignatureVerificationAlgorithm,
};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, Error, ServerConfig};
use tokio_rustls::rustls::{SignatureScheme, ALL_VERSIONS};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The server side of go-plugin's automatic mTLS.
pub struct AutoMtls {
    /// The server's TLS configuration.
    pub config: Arc<ServerConfig>,
    /// The server certificate (DER), for the handshake line.
    pub server_cert: Vec<u8>,
}

impl AutoMtls {
    /// Sets up TLS trusting only `client_cert_pem` (the value of
    /// `PLUGIN_CLIENT_CERT`), with a fresh server certificate.
    pub fn new(client_cert_pem: &str) -> Result<Self, BoxError> {
        let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
            .map_err(|e| format!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}"))?;

        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "HashiCorp");
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        let server_cert = cert.der().to_vec();
        let key_der =
            PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| format!("server key: {e}"))?;

        let provider = Arc::new(ring::default_provider());
        let verifier = Arc::new(PinnedClientCert { cert: client_cert.into_owned() });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(ALL_VERSIONS)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![CertificateDer::from(server_cert.clone())], key_der)?;
        // gRPC clients insist on HTTP/2 by ALPN.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(AutoMtls { config: Arc::new(config), server_cert })
    }
}

/// Accepts exactly one client certificate.
#[derive(Debug)]
struct PinnedClientCert {
    cert: CertificateDer<'static>,
}

/// The signature schemes a client may prove its key with: ECDSA with the
/// NIST curves (go-plugin uses P-521).
static CLIENT_SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&EcdsaP521Sha512, webpki::ring::ECDSA_P256_SHA256, webpki::ring::ECDSA_P384_SHA384],
    mapping: &[
        (SignatureScheme::ECDSA_NISTP521_SHA512, &[&EcdsaP521Sha512]),
        (SignatureScheme::ECDSA_NISTP384_SHA384, &[webpki::ring::ECDSA_P384_SHA384]),
        (SignatureScheme::ECDSA_NISTP256_SHA256, &[webpki::ring::ECDSA_P256_SHA256]),
    ],
};

/// ECDSA over P-521 with SHA-512, DER-encoded signatures.
#[derive(Debug)]
struct EcdsaP521Sha512;

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }

    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature).map_err(|_| InvalidSignature)
    }
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(Error::General("client certificate is not PLUGIN_CLIENT_CERT".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &CLIENT_SIGNATURE_ALGORITHMS)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &CLIENT_SIGNATURE_ALGORITHMS)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        CLIENT_SIGNATURE_ALGORITHMS.supported_schemes()
    }
}
