//! TLS for every probe (icaps://, https://, tls://, --tls): the rustls client
//! configuration built from the options, the verifier, the certificate-expiry
//! rule, and TLS errors turned into report text ([`describe`]).
//!
//! Nothing here runs for a plain-text check: the root store and the config
//! are built by [`TlsClient::new`], which settings call only when TLS is on.

pub(crate) mod der;
mod describe;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, OtherError, RootCertStore,
    SignatureScheme,
};

use super::endpoint::Host;
use crate::date;
use crate::file;
use crate::outcome::Failure;
use crate::text::{describe_io, escape};
pub use describe::describe_error;
use describe::Rejected;

/// Largest `--ca-file`, `--client-cert` or `--client-key` read. The biggest
/// PEM anyone gives is a system CA bundle (Debian's ca-certificates.crt is
/// about 220 KiB for ~150 roots); 1 MiB leaves room for four of those and
/// keeps a mistaken path (a log, an ISO image) from being read whole before
/// the check starts.
pub const MAX_PEM_FILE: u64 = 1 << 20;

/// The TLS options as given, before anything is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub sni: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub insecure: bool,
    pub cert_expiry_days: Option<u32>,
}

/// A ready client configuration and the name to verify.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub options: TlsOptions,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("options", &self.options)
            .finish()
    }
}

impl TlsClient {
    /// Reads the CA, certificate and key files and builds the configuration.
    /// `host` is the target's (`None` for a UNIX socket). Errors are usage errors.
    pub fn new(options: &TlsOptions, host: Option<&Host>) -> Result<TlsClient, Failure> {
        let server_name = server_name(options.sni.as_deref(), host)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Failure::Usage(format!("TLS set-up: {}", describe_error(&e))))?;
        let verifier: Arc<dyn ServerCertVerifier> = if options.insecure {
            Arc::new(Unverified(provider))
        } else {
            let (roots, ca_file) = roots(options.ca_file.as_deref())?;
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|_| Failure::Usage("TLS set-up: no trusted CA certificate".into()))?;
            Arc::new(Verifier { inner, ca_file })
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&options.client_cert, &options.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "--client-cert")?;
                let key_der = read_key(key)?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| client_key_error(&e, cert, key))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(Failure::Usage(
                    "--client-cert and --client-key go together".into(),
                ))
            }
        };
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
            options: options.clone(),
        })
    }

    /// One line for `--explain`.
    pub fn describe(&self) -> String {
        let o = &self.options;
        let mut parts = vec![format!("TLS to {}", name_text(&self.server_name))];
        parts.push(if o.insecure {
            "peer NOT verified (--insecure)".to_string()
        } else {
            match &o.ca_file {
                Some(p) => format!("verified against {}", p.display()),
                None => "verified against the built-in Mozilla roots".to_string(),
            }
        });
        if let Some(c) = &o.client_cert {
            parts.push(format!("client certificate {}", c.display()));
        }
        if let Some(d) = o.cert_expiry_days {
            parts.push(format!("certificate must be valid {d} more days"));
        }
        parts.join(", ")
    }
}

fn name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => other.to_str().into_owned(),
    }
}

/// `--sni`, else the target's name or IP address; a UNIX socket has neither.
fn server_name(sni: Option<&str>, host: Option<&Host>) -> Result<ServerName<'static>, Failure> {
    let text = match (sni, host) {
        (Some(name), _) => name.to_string(),
        (None, Some(Host::Name(name))) => name.clone(),
        (None, Some(Host::Ip(ip))) => return Ok(ServerName::IpAddress((*ip).into())),
        (None, None) => {
            return Err(Failure::Usage(
                "TLS over a UNIX socket needs --sni NAME to verify".into(),
            ))
        }
    };
    ServerName::try_from(text.clone())
        .map_err(|_| Failure::Usage(format!("invalid TLS server name '{text}'")))
}

/// The trusted roots, and the certificates of `--ca-file` as given (a
/// server certificate among them is trusted as it is: [`Verifier`]).
fn roots(ca_file: Option<&Path>) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), Failure> {
    match ca_file {
        None => Ok((
            RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Vec::new(),
        )),
        Some(path) => {
            let mut store = RootCertStore::empty();
            let certs = read_certs(path, "--ca-file")?;
            let (added, _ignored) = store.add_parsable_certificates(certs.iter().cloned());
            if added == 0 {
                return Err(Failure::Usage(format!(
                    "--ca-file {}: no usable CA certificate",
                    shown(path)
                )));
            }
            Ok((store, certs))
        }
    }
}

fn shown(path: &Path) -> String {
    escape(&path.display().to_string())
}

/// A PEM file's certificates; `flag` names the option in messages.
fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let pem = file::read_bounded(path, flag, MAX_PEM_FILE)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Usage(format!("{flag} {}: {}", shown(path), pem_error(&e))))?;
    if certs.is_empty() {
        return Err(Failure::Usage(format!(
            "{flag} {}: no PEM certificate in it",
            shown(path)
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Failure> {
    let pem = file::read_bounded(path, "--client-key", MAX_PEM_FILE)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        Failure::Usage(format!(
            "--client-key {}: no usable private key ({})",
            shown(path),
            pem_error(&e)
        ))
    })
}

/// A PEM error in words: its `Display` shows the marker lines as byte arrays.
fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "no \"-----END {}-----\" line",
            escape(&String::from_utf8_lossy(end_marker))
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "malformed BEGIN line \"{}\"",
            escape(&String::from_utf8_lossy(line))
        ),
        pem::Error::Base64Decode(_) => "bad base64 in a PEM section".to_string(),
        pem::Error::Io(e) => describe_io(e),
        pem::Error::NoItemsFound => "no PEM section in it".to_string(),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_string(),
        _ => "not valid PEM".to_string(),
    }
}

/// Why `with_client_auth_cert` refused the pair.
fn client_key_error(e: &Error, cert: &Path, key: &Path) -> Failure {
    Failure::Usage(match e {
        Error::InconsistentKeys(_) => format!(
            "--client-key {} is not the key of --client-cert {}",
            shown(key),
            shown(cert)
        ),
        _ => format!(
            "--client-key {}: not a key rustls can use (RSA, ECDSA P-256/P-384 or Ed25519)",
            shown(key)
        ),
    })
}

/// The server's certificate verified as rustls' `WebPkiServerVerifier`
/// does it, with one exception and fuller reasons:
///
/// - A certificate that is byte for byte one of `--ca-file`'s is trusted as
///   it is, even a CA certificate. `openssl req -x509` marks the self-signed
///   certificates operators make CA:TRUE by default; webpki refuses a CA
///   certificate as a server's (`CaUsedAsEndEntity`), while curl --cacert,
///   openssl s_client -CAfile, c-icap-client and Squid accept it. Its dates
///   and name are still verified, and the handshake's signatures always are
///   (with the key in that very certificate).
/// - A failure carries what the certificate says (issuer, CN) in a
///   [`Rejected`] for the report. The price: for an unknown issuer or a
///   certificate without subjectAltName the server gets the alert
///   certificate_unknown, not unknown_ca or bad_certificate.
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    /// The certificates of `--ca-file`; none with the built-in roots.
    ca_file: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verdict {
            Err(Error::InvalidCertificate(CertificateError::Other(o)))
                if is_ca_used_as_end_entity(&o)
                    && self
                        .ca_file
                        .iter()
                        .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                verify_as_given(end_entity, server_name, now)
                    .map_err(|e| with_context(e, end_entity))
            }
            Err(e) => Err(with_context(e, end_entity)),
            Ok(verified) => Ok(verified),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// webpki's refusal of a CA certificate as the server's. rustls passes it
/// on inside `Other`; the type is webpki's, so `rustls-webpki` in
/// Cargo.toml must stay the version rustls uses (tests/it/tls.rs's
/// self-signed case fails otherwise).
fn is_ca_used_as_end_entity(o: &OtherError) -> bool {
    matches!(
        o.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// A certificate trusted because `--ca-file` holds it as it is: its dates
/// and name are what is left to verify.
fn verify_as_given(
    cert: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, Error> {
    let (not_before, not_after) = der::validity(cert).ok_or(CertificateError::BadEncoding)?;
    valid_at(not_before, not_after, now)?;
    verify_server_name(&ParsedCertificate::try_from(cert)?, name)?;
    Ok(ServerCertVerified::assertion())
}

/// webpki's rule for the validity dates (both ends included), with its errors.
fn valid_at(not_before: i64, not_after: i64, now: UnixTime) -> Result<(), CertificateError> {
    let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let unix = |secs: i64| {
        UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    };
    if not_before > not_after {
        Err(CertificateError::Expired)
    } else if time < not_before {
        Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: unix(not_before),
        })
    } else if time > not_after {
        Err(CertificateError::ExpiredContext {
            time: now,
            not_after: unix(not_after),
        })
    } else {
        Ok(())
    }
}

/// `e` with what the certificate says where rustls' error leaves it out.
fn with_context(e: Error, leaf: &CertificateDer<'_>) -> Error {
    let fields = der::fields(leaf);
    let rejected = match &e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => Rejected::UntrustedIssuer {
            issuer: fields.and_then(|f| der::name_text(f.issuer)),
            self_signed: fields.is_some_and(|f| f.issuer == f.subject),
        },
        Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            presented,
        }) if !presented
            .iter()
            .any(|p| describe::presented_name(p).is_some()) =>
        {
            Rejected::NoSubjectAltName {
                expected: expected.to_str().into_owned(),
                common_name: fields.and_then(|f| der::common_name(f.subject)),
            }
        }
        Error::InvalidCertificate(CertificateError::Other(o)) if is_ca_used_as_end_entity(o) => {
            Rejected::CaAsServer {
                subject: fields.and_then(|f| der::name_text(f.subject)),
            }
        }
        _ => return e,
    };
    CertificateError::Other(OtherError(Arc::new(rejected))).into()
}

/// `--insecure`: any certificate and name, but the handshake's signatures
/// are still checked, so the session is with the key in the certificate.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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

/// The unhealthy verdict when the leaf certificate expires within `days`.
pub fn check_expiry(leaf: &[u8], days: u32, now: SystemTime) -> Result<(), Failure> {
    let not_after = der::not_after(leaf).ok_or_else(|| {
        Failure::Tls("cannot read the expiry date of the server's certificate".into())
    })?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = not_after.saturating_sub(now);
    if left < i64::from(days) * 86_400 {
        let when = date::format_utc(not_after);
        return Err(Failure::Unhealthy(if left < 0 {
            format!("certificate expired on {when}")
        } else {
            format!(
                "certificate expires on {when}, in {} days (< {days})",
                left / 86_400
            )
        }));
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use der::test::{cert, cert_with_validity, name};

    #[test]
    fn expiry_rule_names_the_date() {
        let cert = cert_with_validity(b"\x17\x0d240101000000Z", b"\x17\x0d300101000000Z");
        let at = |y, m, d| {
            UNIX_EPOCH + Duration::from_secs((date::days_from_civil(y, m, d) * 86_400) as u64)
        };
        assert_eq!(check_expiry(&cert, 30, at(2029, 1, 1)), Ok(()));
        match check_expiry(&cert, 30, at(2029, 12, 15)) {
            Err(Failure::Unhealthy(why)) => {
                assert_eq!(
                    why,
                    "certificate expires on 2030-01-01 00:00:00 UTC, in 17 days (< 30)"
                )
            }
            other => panic!("{other:?}"),
        }
        match check_expiry(&cert, 0, at(2030, 2, 1)) {
            Err(Failure::Unhealthy(why)) => {
                assert_eq!(why, "certificate expired on 2030-01-01 00:00:00 UTC")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_names() {
        let ip = Host::Ip("127.0.0.1".parse().unwrap());
        assert!(matches!(
            server_name(None, Some(&ip)),
            Ok(ServerName::IpAddress(_))
        ));
        let n = server_name(Some("icap.example"), Some(&ip)).unwrap();
        assert_eq!(name_text(&n), "icap.example");
        assert!(server_name(None, None).is_err());
        assert!(server_name(Some("bad name!"), None).is_err());
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[test]
    fn dates_of_a_certificate_trusted_as_given() {
        assert_eq!(valid_at(100, 200, at(100)), Ok(()));
        assert_eq!(valid_at(100, 200, at(200)), Ok(()));
        assert_eq!(
            valid_at(100, 200, at(99)),
            Err(CertificateError::NotValidYetContext {
                time: at(99),
                not_before: at(100)
            })
        );
        assert_eq!(
            valid_at(100, 200, at(201)),
            Err(CertificateError::ExpiredContext {
                time: at(201),
                not_after: at(200)
            })
        );
        assert_eq!(valid_at(200, 100, at(150)), Err(CertificateError::Expired));
        // Before 1970 (UTCTime 50..69), and a clock beyond i64.
        assert!(valid_at(-10, 200, at(0)).is_ok());
        assert!(valid_at(0, i64::MAX, at(u64::MAX)).is_ok());
    }

    #[test]
    fn failures_carry_what_the_certificate_says() {
        const CN: &[u8] = &[0x55, 0x04, 0x03];
        const O: &[u8] = &[0x55, 0x04, 0x0a];
        let ca = name(&[(O, 0x13, b"Example"), (CN, 0x0c, b"Other CA")]);
        let host = name(&[(CN, 0x0c, b"host")]);
        let time = b"\x17\x0d240101000000Z";
        let issued = CertificateDer::from(cert(&ca, time, time, &host));
        let self_signed = CertificateDer::from(cert(&host, time, time, &host));
        let described =
            |e: Error, leaf: &CertificateDer<'_>| describe_error(&with_context(e, leaf));

        let unknown: Error = CertificateError::UnknownIssuer.into();
        assert_eq!(
            described(unknown.clone(), &issued),
            "the server's certificate is issued by an untrusted CA \"O=Example, CN=Other CA\" \
             (give the issuing CA with --ca-file)"
        );
        assert_eq!(
            described(unknown.clone(), &self_signed),
            "the server's certificate \"CN=host\" is self-signed and not trusted \
             (give that certificate with --ca-file)"
        );
        // Garbage from the server: still a sentence, without the names.
        assert_eq!(
            described(unknown, &CertificateDer::from(vec![0x30, 0x01])),
            "the server's certificate is issued by a CA not trusted here \
             (give the issuing CA with --ca-file)"
        );

        let no_san: Error = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("host").unwrap(),
            presented: vec!["UniformResourceIdentifier(\"spiffe://x\")".into()],
        }
        .into();
        assert_eq!(
            described(no_san, &self_signed),
            "the server's certificate names no DNS or IP subjectAltName; its CN \"host\" is \
             not used for verification (reissue it with subjectAltName=DNS:host)"
        );
        let ca_as_server: Error =
            CertificateError::Other(OtherError(Arc::new(webpki::Error::CaUsedAsEndEntity))).into();
        assert_eq!(
            described(ca_as_server, &self_signed),
            "the server's certificate \"CN=host\" is a CA certificate (CA:TRUE) used as the \
             server's (give that very certificate with --ca-file to trust it as it is)"
        );
        // The rest is left as rustls has it (and its alert to the server).
        let expired: Error = CertificateError::ExpiredContext {
            time: at(2),
            not_after: at(1),
        }
        .into();
        assert_eq!(with_context(expired.clone(), &issued), expired);
    }

    #[test]
    fn pem_files_are_regular_bounded_and_explained() {
        let dir = std::env::temp_dir().join(format!("icap-check-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let usage = |r: Result<Vec<CertificateDer<'static>>, Failure>| match r {
            Err(Failure::Usage(why)) => why,
            other => panic!("{other:?}"),
        };
        // A device and a FIFO are refused before being opened (a FIFO's
        // open blocks until a writer comes).
        let why = usage(read_certs(Path::new("/dev/zero"), "--ca-file"));
        assert_eq!(why, "cannot read --ca-file /dev/zero: not a regular file");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let why = usage(read_certs(&fifo, "--ca-file"));
        assert!(why.ends_with("fifo: not a regular file"), "{why}");
        match read_key(&fifo) {
            Err(Failure::Usage(why)) => {
                assert!(why.starts_with("cannot read --client-key "), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // Too large.
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'A'; MAX_PEM_FILE as usize + 1]).unwrap();
        let why = usage(read_certs(&big, "--client-cert"));
        assert!(why.ends_with("big.pem: larger than 1 MiB"), "{why}");
        // Broken PEM: words, not byte arrays.
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let why = usage(read_certs(&broken, "--ca-file"));
        assert!(
            why.ends_with("broken.pem: no \"-----END CERTIFICATE-----\" line"),
            "{why}"
        );
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let why = usage(read_certs(&broken, "--ca-file"));
        assert!(why.ends_with("bad base64 in a PEM section"), "{why}");
        std::fs::write(&broken, "just text\n").unwrap();
        let why = usage(read_certs(&broken, "--ca-file"));
        assert!(why.ends_with("no PEM certificate in it"), "{why}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
