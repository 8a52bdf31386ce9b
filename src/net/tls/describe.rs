//! TLS failures in the operator's words.
//!
//! rustls' `Display` embeds `Debug` of inner values (`UnknownIssuer`,
//! `Other(OtherError(CaUsedAsEndEntity))`, `DnsName("x")`, UNIX seconds),
//! which tells the person reading HAProxy's log little. Every variant that
//! can reach a report has a phrase here; a variant a later rustls adds gets
//! a fixed fallback, never `Debug`, and the error as rustls has it goes to
//! the debug log (`-v`) for a bug report.

use std::fmt;

use rustls::pki_types::{ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, Error, ExtendedKeyPurpose, InvalidMessage, OtherError,
    PeerIncompatible,
};

use super::der;
use crate::date;
use crate::text::escape;

/// The largest handshake message rustls accepts (its `MAX_HANDSHAKE_SIZE`
/// and `CERTIFICATE_MAX_SIZE_LIMIT`, 64 KiB, are private): a certificate
/// chain beyond it fails the handshake.
const HANDSHAKE_LIMIT_KIB: u32 = 64;

/// Most server names listed in a wrong-name failure.
const MAX_NAMES: usize = 5;

/// What the certificate says, which rustls' errors leave out: the verifier
/// (`super::Verifier`) puts it inside `CertificateError::Other` for
/// [`describe_error`]. Text in it is the certificate's, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not issued by a trusted CA: the issuer's name; `self_signed` when
    /// the issuer is the subject.
    UntrustedIssuer {
        issuer: Option<String>,
        self_signed: bool,
    },
    /// No DNS or IP subjectAltName, so valid for no name (the CN is not
    /// used): the name verified and the certificate's CN.
    NoSubjectAltName {
        expected: String,
        common_name: Option<String>,
    },
    /// A CA certificate (CA:TRUE) as the server's, not one of --ca-file's.
    CaAsServer { subject: Option<String> },
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::UntrustedIssuer {
                issuer: Some(issuer),
                self_signed: true,
            } => write!(
                f,
                "the server's certificate \"{}\" is self-signed and not trusted \
                 (give that certificate with --ca-file)",
                escape(issuer)
            ),
            Rejected::UntrustedIssuer {
                issuer: Some(issuer),
                ..
            } => write!(
                f,
                "the server's certificate is issued by an untrusted CA \"{}\" \
                 (give the issuing CA with --ca-file)",
                escape(issuer)
            ),
            Rejected::UntrustedIssuer { issuer: None, .. } => f.write_str(UNKNOWN_ISSUER),
            Rejected::NoSubjectAltName {
                expected,
                common_name,
            } => {
                f.write_str("the server's certificate names no DNS or IP subjectAltName")?;
                match common_name {
                    Some(cn) => write!(
                        f,
                        "; its CN \"{}\" is not used for verification",
                        escape(cn)
                    )?,
                    None => f.write_str(", so it is valid for no name")?,
                }
                write!(f, " (reissue it with {})", san_for(expected))
            }
            Rejected::CaAsServer { subject } => {
                f.write_str("the server's certificate ")?;
                if let Some(subject) = subject {
                    write!(f, "\"{}\" ", escape(subject))?;
                }
                f.write_str(
                    "is a CA certificate (CA:TRUE) used as the server's \
                     (give that very certificate with --ca-file to trust it as it is)",
                )
            }
        }
    }
}

impl std::error::Error for Rejected {}

const UNKNOWN_ISSUER: &str = "the server's certificate is issued by a CA not trusted here \
                              (give the issuing CA with --ca-file)";

/// The subjectAltName that would make a certificate valid for `name`, as
/// OpenSSL's `-addext` takes it.
fn san_for(name: &str) -> String {
    let kind = if name.parse::<std::net::IpAddr>().is_ok() {
        "IP"
    } else {
        "DNS"
    };
    format!("subjectAltName={kind}:{}", escape(name))
}

/// A TLS error as report text, with a hint where the cause is usually elsewhere.
pub fn describe_error(e: &Error) -> String {
    log::debug!("TLS error as rustls has it: {e:?}");
    let text = match e {
        Error::InvalidCertificate(c) => return certificate(c),
        Error::AlertReceived(a) => return alert(*a),
        Error::InvalidMessage(m) => return message(*m),
        Error::PeerIncompatible(p) => return incompatible(p),
        Error::Other(o) => return other(o),
        Error::General(text) => return format!("TLS failure: {}", escape(text)),
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            "the server sent a TLS message out of order (is the server speaking TLS on this port?)"
        }
        Error::PeerSentOversizedRecord => {
            "the server sent a record larger than TLS allows (is the server speaking TLS on this port?)"
        }
        Error::PeerMisbehaved(_) => "the server broke the TLS protocol (-v names the fault)",
        Error::NoCertificatesPresented => "the server sent no certificate",
        Error::UnsupportedNameType => "the server name is of a type the verifier does not support",
        Error::DecryptError => {
            "cannot decrypt the server's messages (a middlebox, or a broken TLS implementation?)"
        }
        Error::EncryptError => "cannot encrypt a message",
        Error::HandshakeNotComplete => "the TLS handshake did not complete",
        Error::NoApplicationProtocol => "no application protocol (ALPN) in common with the server",
        Error::InvalidEncryptedClientHello(_) => "encrypted client hello failed",
        Error::InvalidCertRevocationList(_) => "a certificate revocation list is invalid",
        Error::FailedToGetCurrentTime => "cannot read the system clock",
        Error::FailedToGetRandomBytes => "cannot get random bytes from the system",
        Error::BadMaxFragmentSize => "bad TLS maximum fragment size",
        Error::InconsistentKeys(_) => "the private key is not the certificate's",
        _ => "TLS failure (-v shows rustls' error)",
    };
    text.to_string()
}

/// Why the server's certificate was not accepted.
fn certificate(c: &CertificateError) -> String {
    use CertificateError as C;
    const IT: &str = "the server's certificate";
    match c {
        C::BadEncoding => format!("{IT} is malformed (not DER X.509)"),
        C::Expired => format!("{IT} has expired"),
        C::ExpiredContext { not_after, .. } => format!("{IT} expired on {}", utc(*not_after)),
        C::NotValidYet => format!("{IT} is not valid yet (is this machine's clock right?)"),
        C::NotValidYetContext { not_before, .. } => format!(
            "{IT} is not valid before {} (is this machine's clock right?)",
            utc(*not_before)
        ),
        C::Revoked => format!("{IT} has been revoked"),
        C::UnhandledCriticalExtension => {
            format!("{IT} has a critical extension the verifier does not know")
        }
        C::UnknownIssuer => UNKNOWN_ISSUER.to_string(),
        C::UnknownRevocationStatus
        | C::ExpiredRevocationList
        | C::ExpiredRevocationListContext { .. } => {
            format!("the revocation status of {IT} is unknown")
        }
        C::BadSignature => format!("{IT} (or one in its chain) is not signed by its issuer's key"),
        C::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id,
            ..
        } => format!(
            "{IT} (or one in its chain) is signed with {}, which is not accepted",
            algorithm_text(signature_algorithm_id)
        ),
        C::UnsupportedSignatureAlgorithmForPublicKeyContext {
            signature_algorithm_id,
            ..
        } => format!(
            "{IT} (or one in its chain) is signed with {}, which does not fit its issuer's key",
            algorithm_text(signature_algorithm_id)
        ),
        C::NotValidForName => {
            format!("{IT} is not valid for the name verified (--sni NAME sets the name verified)")
        }
        C::NotValidForNameContext {
            expected,
            presented,
        } => wrong_name(expected, presented),
        C::InvalidPurpose => {
            format!("{IT} is not for TLS servers (its extended key usage has no serverAuth)")
        }
        C::InvalidPurposeContext { presented, .. } => {
            let allowed: Vec<String> = presented.iter().map(purpose_text).collect();
            format!(
                "{IT} is not for TLS servers: its extended key usage allows {}",
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            )
        }
        C::InvalidOcspResponse => "the server's OCSP response is invalid".to_string(),
        C::ApplicationVerificationFailure => format!("{IT} was rejected"),
        C::Other(o) => other(o),
        _ => format!("{IT} is not acceptable (-v shows rustls' reason)"),
    }
}

fn utc(t: UnixTime) -> String {
    date::format_utc(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

/// `the server's certificate names localhost and 127.0.0.1 but not icap.example`
fn wrong_name(expected: &ServerName<'_>, presented: &[String]) -> String {
    let names: Vec<String> = presented
        .iter()
        .filter_map(|p| presented_name(p))
        .map(|n| escape(&n))
        .collect();
    if names.is_empty() {
        return Rejected::NoSubjectAltName {
            expected: expected.to_str().into_owned(),
            common_name: None,
        }
        .to_string();
    }
    let expected = escape(&expected.to_str());
    let shown = names.len().min(MAX_NAMES);
    let mut list = names[..shown].join(", ");
    if names.len() > shown {
        list.push_str(&format!(" and {} more", names.len() - shown));
    } else if let Some(i) = list.rfind(", ") {
        list.replace_range(i..i + 2, " and ");
    }
    format!(
        "the server's certificate names {list} but not {expected} \
         (--sni NAME sets the name verified)"
    )
}

/// A DNS or IP name out of the subjectAltName entries webpki lists in
/// `NotValidForNameContext::presented`, which are its `Debug` of each entry:
/// `DnsName("localhost")`, `IpAddress(127.0.0.1)`. Other kinds (URI,
/// directory name) are not names a server is verified by: `None`.
pub fn presented_name(entry: &str) -> Option<String> {
    if let Some(dns) = entry
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        return Some(dns.to_string());
    }
    let ip = entry.strip_prefix("IpAddress(")?.strip_suffix(')')?;
    ip.bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        .then(|| ip.to_string())
}

fn purpose_text(p: &ExtendedKeyPurpose) -> String {
    match p {
        ExtendedKeyPurpose::ClientAuth => "clientAuth".to_string(),
        ExtendedKeyPurpose::ServerAuth => "serverAuth".to_string(),
        ExtendedKeyPurpose::Other(arcs) => {
            let arcs: Vec<String> = arcs.iter().map(usize::to_string).collect();
            arcs.join(".")
        }
    }
}

/// A signature algorithm from its AlgorithmIdentifier's contents (as webpki
/// reports it): the common names of the ones rustls refuses, else the OID.
fn algorithm_text(id: &[u8]) -> String {
    let oid = der::der_item(id, 0x06)
        .or_else(|| der::der_item(der::der_item(id, 0x30)?.0, 0x06))
        .and_then(|(oid, _)| der::oid_text(oid));
    let Some(oid) = oid else {
        return "an unknown algorithm".to_string();
    };
    let name = match oid.as_str() {
        "1.2.840.113549.1.1.4" => "MD5 with RSA",
        "1.2.840.113549.1.1.5" => "SHA-1 with RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.113549.1.1.11" => "SHA-256 with RSA",
        "1.2.840.113549.1.1.12" => "SHA-384 with RSA",
        "1.2.840.113549.1.1.13" => "SHA-512 with RSA",
        "1.2.840.10045.4.1" => "ECDSA with SHA-1",
        "1.2.840.10045.4.3.2" => "ECDSA with SHA-256",
        "1.2.840.10045.4.3.3" => "ECDSA with SHA-384",
        "1.2.840.10045.4.3.4" => "ECDSA with SHA-512",
        "1.2.840.10040.4.3" => "DSA with SHA-1",
        "2.16.840.1.101.3.4.3.2" => "DSA with SHA-256",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => return format!("the algorithm {oid}"),
    };
    name.to_string()
}

/// A fatal alert from the server: what it usually means, its RFC name, and
/// what to try.
fn alert(a: AlertDescription) -> String {
    const CLIENT_CERT: &str = "give one with --client-cert and --client-key";
    let code = u8::from(a);
    let (name, meaning, advice) = match code {
        0 => ("close_notify", "the server closed the TLS session", ""),
        10 => (
            "unexpected_message",
            "the server did not expect one of our TLS messages",
            "",
        ),
        20 => (
            "bad_record_mac",
            "a TLS record was damaged on the way",
            "is a middlebox rewriting the traffic?",
        ),
        22 => (
            "record_overflow",
            "the server got a TLS record too large",
            "",
        ),
        40 => (
            "handshake_failure",
            "the server refused the handshake",
            "no TLS version or cipher suite in common, or it requires a client certificate \
             (--client-cert and --client-key)",
        ),
        42 => (
            "bad_certificate",
            "the server rejected the client certificate",
            "",
        ),
        43 => (
            "unsupported_certificate",
            "the server does not accept the client certificate's kind",
            "",
        ),
        44 => (
            "certificate_revoked",
            "the server says the client certificate is revoked",
            "",
        ),
        45 => (
            "certificate_expired",
            "the server says the client certificate has expired or is not valid yet",
            "",
        ),
        46 => (
            "certificate_unknown",
            "the server rejected the client certificate",
            "",
        ),
        47 => (
            "illegal_parameter",
            "the server found a bad value in our handshake",
            "",
        ),
        48 => (
            "unknown_ca",
            "the server does not trust the CA of the client certificate",
            "",
        ),
        49 => ("access_denied", "the server denied access", ""),
        50 => (
            "decode_error",
            "the server could not decode our handshake",
            "",
        ),
        51 => (
            "decrypt_error",
            "the server could not verify our handshake",
            "is --client-key the key of --client-cert?",
        ),
        70 => (
            "protocol_version",
            "the server speaks neither TLS 1.2 nor TLS 1.3",
            "",
        ),
        71 => (
            "insufficient_security",
            "the server wants stronger cipher suites than we offer",
            "",
        ),
        80 => ("internal_error", "the server failed internally", ""),
        86 => (
            "inappropriate_fallback",
            "the server refused a fallback to an older TLS version",
            "",
        ),
        90 => ("user_canceled", "the server canceled the handshake", ""),
        109 => (
            "missing_extension",
            "the server misses a TLS extension it requires",
            "",
        ),
        110 => (
            "unsupported_extension",
            "the server got a TLS extension it did not ask for",
            "",
        ),
        112 => (
            "unrecognized_name",
            "the server does not serve the name we sent",
            "--sni NAME sets it",
        ),
        116 => (
            "certificate_required",
            "the server requires a client certificate",
            CLIENT_CERT,
        ),
        120 => (
            "no_application_protocol",
            "no application protocol (ALPN) in common with the server",
            "",
        ),
        _ => {
            return format!("the server ended the connection with TLS alert {code}");
        }
    };
    if advice.is_empty() {
        format!("{meaning} (TLS alert {name})")
    } else {
        format!("{meaning} (TLS alert {name}): {advice}")
    }
}

/// A TLS message rustls could not parse.
fn message(m: InvalidMessage) -> String {
    match m {
        InvalidMessage::CertificatePayloadTooLarge => format!(
            "the server's certificate chain is larger than {HANDSHAKE_LIMIT_KIB} KiB, \
             more than rustls accepts"
        ),
        InvalidMessage::HandshakePayloadTooLarge => format!(
            "a handshake message from the server, usually its certificate chain, is larger \
             than {HANDSHAKE_LIMIT_KIB} KiB, more than rustls accepts"
        ),
        InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion => {
            "the server answered with something that is not TLS \
             (is the server speaking TLS on this port?)"
                .to_string()
        }
        _ => "the server sent a malformed TLS message (is the server speaking TLS on this port?)"
            .to_string(),
    }
}

fn incompatible(p: &PeerIncompatible) -> String {
    use PeerIncompatible as P;
    match p {
        P::NoCipherSuitesInCommon => "no cipher suite in common with the server",
        P::NoKxGroupsInCommon => "no key exchange group in common with the server",
        P::NoSignatureSchemesInCommon => "no signature scheme in common with the server",
        P::NoCertificateRequestSignatureSchemesInCommon => {
            "the server wants a client certificate signed in a way we do not support"
        }
        P::ServerDoesNotSupportTls12Or13
        | P::SupportedVersionsExtensionRequired
        | P::Tls12NotOffered
        | P::Tls12NotOfferedOrEnabled
        | P::ServerTlsVersionIsDisabledByOurConfig => {
            "the server speaks neither TLS 1.2 nor TLS 1.3"
        }
        P::ExtendedMasterSecretExtensionRequired => {
            "the server lacks the TLS 1.2 extended master secret (RFC 7627)"
        }
        _ => "the server's TLS does not fit ours (-v shows rustls' reason)",
    }
    .to_string()
}

/// What a verifier put in `Other`: ours ([`Rejected`]) or webpki's error.
fn other(o: &OtherError) -> String {
    let inner: &(dyn std::error::Error + Send + Sync) = &*o.0;
    if let Some(r) = inner.downcast_ref::<Rejected>() {
        return r.to_string();
    }
    match inner.downcast_ref::<webpki::Error>() {
        Some(w) => webpki_error(w),
        None => "the TLS library failed (-v shows its error)".to_string(),
    }
}

/// The webpki errors rustls passes on as `Other`.
fn webpki_error(w: &webpki::Error) -> String {
    use webpki::Error as W;
    const IT: &str = "the server's certificate";
    match w {
        W::CaUsedAsEndEntity => Rejected::CaAsServer { subject: None }.to_string(),
        W::EndEntityUsedAsCa => {
            "a certificate in the server's chain that is not a CA (CA:FALSE) issued another"
                .to_string()
        }
        W::PathLenConstraintViolated => {
            "the server's certificate chain is longer than a CA in it allows (pathLenConstraint)"
                .to_string()
        }
        W::NameConstraintViolation => {
            format!("{IT} names a name its CA may not certify (name constraints)")
        }
        W::MaximumPathDepthExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumSignatureChecksExceeded
        | W::MaximumNameConstraintComparisonsExceeded => {
            "the server's certificate chain is too long or too tangled to verify".to_string()
        }
        W::CertDistrusted => format!("{IT} or its CA is distrusted"),
        W::UnsupportedCertVersion => format!(
            "{IT} is X.509 version 1 or 2, without subjectAltName \
             (reissue it with subjectAltName=DNS:NAME)"
        ),
        W::UnsupportedCriticalExtension => {
            format!("{IT} has a critical extension the verifier does not know")
        }
        W::SignatureAlgorithmMismatch => {
            format!("{IT} names two different signature algorithms")
        }
        W::UnsupportedNameType => format!("{IT} has a name of a kind the verifier does not know"),
        W::EmptyEkuExtension => format!("{IT} has an empty extended key usage"),
        W::MalformedExtensions
        | W::ExtensionValueInvalid
        | W::MalformedDnsIdentifier
        | W::MalformedNameConstraint
        | W::InvalidNetworkMaskConstraint
        | W::InvalidSerialNumber
        | W::BadDer
        | W::BadDerTime => format!("{IT} is malformed (a bad field or extension)"),
        _ => format!("{IT} is not acceptable (-v shows webpki's reason)"),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// What a Debug rendering leaves in text: `(` and a CamelCase word, or
    /// a CamelCase word at all (`UnknownIssuer`, `InvalidContentType`; not
    /// `KiB`).
    pub fn debug_in(text: &str) -> bool {
        let camel = regex_lite::Regex::new(r"\([A-Z][a-z]+[A-Z]|\b[A-Z][a-z]+[A-Z][a-z]+").unwrap();
        text.contains("Other(") || camel.is_match(text)
    }

    fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> Error {
        Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[test]
    fn certificate_failures_in_words() {
        let cases: Vec<(Error, &str)> = vec![
            (
                CertificateError::ExpiredContext {
                    time: at(1_800_000_000),
                    not_after: at(1_767_225_600),
                }
                .into(),
                "the server's certificate expired on 2026-01-01 00:00:00 UTC",
            ),
            (
                CertificateError::NotValidYetContext {
                    time: at(1_800_000_000),
                    not_before: at(4_070_908_800),
                }
                .into(),
                "the server's certificate is not valid before 2099-01-01 00:00:00 UTC \
                 (is this machine's clock right?)",
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("icap.example").unwrap(),
                    presented: vec![
                        "DnsName(\"localhost\")".into(),
                        "IpAddress(127.0.0.1)".into(),
                        "UniformResourceIdentifier(\"spiffe://x\")".into(),
                    ],
                }
                .into(),
                "the server's certificate names localhost and 127.0.0.1 but not icap.example \
                 (--sni NAME sets the name verified)",
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("127.0.0.1").unwrap(),
                    presented: vec![],
                }
                .into(),
                "the server's certificate names no DNS or IP subjectAltName, so it is valid \
                 for no name (reissue it with subjectAltName=IP:127.0.0.1)",
            ),
            (
                CertificateError::UnknownIssuer.into(),
                "the server's certificate is issued by a CA not trusted here \
                 (give the issuing CA with --ca-file)",
            ),
            (
                other(Rejected::UntrustedIssuer {
                    issuer: Some("O=Example, CN=Other CA\x1b[31m".into()),
                    self_signed: false,
                }),
                "the server's certificate is issued by an untrusted CA \
                 \"O=Example, CN=Other CA\\x1b[31m\" (give the issuing CA with --ca-file)",
            ),
            (
                other(Rejected::UntrustedIssuer {
                    issuer: Some("CN=host".into()),
                    self_signed: true,
                }),
                "the server's certificate \"CN=host\" is self-signed and not trusted \
                 (give that certificate with --ca-file)",
            ),
            (
                other(Rejected::NoSubjectAltName {
                    expected: "host".into(),
                    common_name: Some("host".into()),
                }),
                "the server's certificate names no DNS or IP subjectAltName; its CN \"host\" \
                 is not used for verification (reissue it with subjectAltName=DNS:host)",
            ),
            (
                other(Rejected::CaAsServer {
                    subject: Some("CN=host".into()),
                }),
                "the server's certificate \"CN=host\" is a CA certificate (CA:TRUE) used as \
                 the server's (give that very certificate with --ca-file to trust it as it is)",
            ),
            (
                other(webpki::Error::CaUsedAsEndEntity),
                "the server's certificate is a CA certificate (CA:TRUE) used as the server's \
                 (give that very certificate with --ca-file to trust it as it is)",
            ),
            (
                CertificateError::UnsupportedSignatureAlgorithmContext {
                    signature_algorithm_id: vec![
                        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05,
                        0x00,
                    ],
                    supported_algorithms: vec![],
                }
                .into(),
                "the server's certificate (or one in its chain) is signed with SHA-1 with RSA, \
                 which is not accepted",
            ),
            (
                CertificateError::InvalidPurposeContext {
                    required: ExtendedKeyPurpose::ServerAuth,
                    presented: vec![
                        ExtendedKeyPurpose::ClientAuth,
                        ExtendedKeyPurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 4]),
                    ],
                }
                .into(),
                "the server's certificate is not for TLS servers: its extended key usage \
                 allows clientAuth, 1.3.6.1.5.5.7.3.4",
            ),
            (
                Error::AlertReceived(AlertDescription::CertificateRequired),
                "the server requires a client certificate (TLS alert certificate_required): \
                 give one with --client-cert and --client-key",
            ),
            (
                Error::AlertReceived(AlertDescription::Unknown(200)),
                "the server ended the connection with TLS alert 200",
            ),
            (
                InvalidMessage::InvalidContentType.into(),
                "the server answered with something that is not TLS \
                 (is the server speaking TLS on this port?)",
            ),
            (
                InvalidMessage::HandshakePayloadTooLarge.into(),
                "a handshake message from the server, usually its certificate chain, is larger \
                 than 64 KiB, more than rustls accepts",
            ),
            (
                InvalidMessage::CertificatePayloadTooLarge.into(),
                "the server's certificate chain is larger than 64 KiB, more than rustls accepts",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(describe_error(&e), want, "{e:?}");
        }
    }

    #[test]
    fn long_name_lists_are_cut() {
        let presented: Vec<String> = (0..8).map(|i| format!("DnsName(\"h{i}\")")).collect();
        let e = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("x").unwrap(),
            presented,
        };
        assert_eq!(
            describe_error(&e.into()),
            "the server's certificate names h0, h1, h2, h3, h4 and 3 more but not x \
             (--sni NAME sets the name verified)"
        );
        assert_eq!(
            presented_name("IpAddress(2001:db8::1)").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(presented_name("IpAddress(a b)"), None);
        assert_eq!(presented_name("DirectoryName"), None);
        assert_eq!(presented_name("Unsupported(0x88)"), None);
    }

    /// Every variant this rustls and webpki have that a check can meet,
    /// and every alert code: never Debug text.
    #[test]
    fn no_variant_is_described_with_debug_text() {
        use rustls::PeerMisbehaved;
        let mut errors: Vec<Error> = vec![
            Error::InappropriateMessage {
                expect_types: vec![rustls::ContentType::Handshake],
                got_type: rustls::ContentType::ApplicationData,
            },
            Error::InappropriateHandshakeMessage {
                expect_types: vec![rustls::HandshakeType::ServerHello],
                got_type: rustls::HandshakeType::Finished,
            },
            Error::NoCertificatesPresented,
            Error::UnsupportedNameType,
            Error::DecryptError,
            Error::EncryptError,
            Error::PeerMisbehaved(PeerMisbehaved::SelectedUnofferedCipherSuite),
            Error::PeerMisbehaved(PeerMisbehaved::TooManyKeyUpdateRequests),
            Error::FailedToGetCurrentTime,
            Error::FailedToGetRandomBytes,
            Error::HandshakeNotComplete,
            Error::PeerSentOversizedRecord,
            Error::NoApplicationProtocol,
            Error::BadMaxFragmentSize,
            Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch),
            Error::InvalidEncryptedClientHello(rustls::EncryptedClientHelloError::SniRequired),
            Error::InvalidCertRevocationList(rustls::CertRevocationListError::BadSignature),
            Error::General("signing failed".into()),
            Error::Other(OtherError(Arc::new(std::io::Error::other("SomeThing")))),
        ];
        for code in 0..=255u8 {
            errors.push(Error::AlertReceived(AlertDescription::from(code)));
        }
        for m in [
            InvalidMessage::CertificatePayloadTooLarge,
            InvalidMessage::HandshakePayloadTooLarge,
            InvalidMessage::InvalidCcs,
            InvalidMessage::InvalidContentType,
            InvalidMessage::InvalidCertificateStatusType,
            InvalidMessage::InvalidCertRequest,
            InvalidMessage::InvalidDhParams,
            InvalidMessage::InvalidEmptyPayload,
            InvalidMessage::InvalidKeyUpdate,
            InvalidMessage::InvalidServerName,
            InvalidMessage::MessageTooLarge,
            InvalidMessage::MessageTooShort,
            InvalidMessage::MissingData("ServerHello"),
            InvalidMessage::MissingKeyExchange,
            InvalidMessage::NoSignatureSchemes,
            InvalidMessage::TrailingData("ServerHello"),
            InvalidMessage::UnexpectedMessage("ServerHello"),
            InvalidMessage::UnknownProtocolVersion,
            InvalidMessage::UnsupportedCompression,
            InvalidMessage::UnsupportedCurveType,
            InvalidMessage::EmptyTicketValue,
            InvalidMessage::IllegalEmptyList("Extensions"),
            InvalidMessage::IllegalEmptyValue,
            InvalidMessage::DuplicateExtension(5),
            InvalidMessage::PreSharedKeyIsNotFinalExtension,
            InvalidMessage::UnknownHelloRetryRequestExtension,
            InvalidMessage::UnknownCertificateExtension,
        ] {
            errors.push(m.into());
        }
        {
            use PeerIncompatible as P;
            for p in [
                P::EcPointsExtensionRequired,
                P::ExtendedMasterSecretExtensionRequired,
                P::IncorrectCertificateTypeExtension,
                P::KeyShareExtensionRequired,
                P::NamedGroupsExtensionRequired,
                P::NoCertificateRequestSignatureSchemesInCommon,
                P::NoCipherSuitesInCommon,
                P::NoEcPointFormatsInCommon,
                P::NoKxGroupsInCommon,
                P::NoSignatureSchemesInCommon,
                P::NullCompressionRequired,
                P::ServerDoesNotSupportTls12Or13,
                P::ServerSentHelloRetryRequestWithUnknownExtension,
                P::ServerTlsVersionIsDisabledByOurConfig,
                P::SignatureAlgorithmsExtensionRequired,
                P::SupportedVersionsExtensionRequired,
                P::Tls12NotOffered,
                P::Tls12NotOfferedOrEnabled,
                P::Tls13RequiredForQuic,
                P::UncompressedEcPointsRequired,
                P::UnsolicitedCertificateTypeExtension,
                P::ServerRejectedEncryptedClientHello(None),
            ] {
                errors.push(p.into());
            }
        }
        {
            use CertificateError as C;
            #[allow(deprecated)]
            for c in [
                C::BadEncoding,
                C::Expired,
                C::NotValidYet,
                C::Revoked,
                C::UnhandledCriticalExtension,
                C::UnknownIssuer,
                C::UnknownRevocationStatus,
                C::ExpiredRevocationList,
                C::ExpiredRevocationListContext {
                    time: at(2),
                    next_update: at(1),
                },
                C::BadSignature,
                C::UnsupportedSignatureAlgorithm,
                C::UnsupportedSignatureAlgorithmContext {
                    signature_algorithm_id: vec![0x06, 0x03, 0x2b, 0x65, 0x71],
                    supported_algorithms: vec![],
                },
                C::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    signature_algorithm_id: vec![0xff],
                    public_key_algorithm_id: vec![],
                },
                C::NotValidForName,
                C::InvalidPurpose,
                C::InvalidPurposeContext {
                    required: ExtendedKeyPurpose::ServerAuth,
                    presented: vec![],
                },
                C::InvalidOcspResponse,
                C::ApplicationVerificationFailure,
            ] {
                errors.push(c.into());
            }
        }
        {
            use webpki::Error as W;
            #[allow(deprecated)]
            for w in [
                W::BadDer,
                W::BadDerTime,
                W::CaUsedAsEndEntity,
                W::CertDistrusted,
                W::EmptyEkuExtension,
                W::EndEntityUsedAsCa,
                W::ExtensionValueInvalid,
                W::InvalidCertValidity,
                W::InvalidCrlNumber,
                W::InvalidNetworkMaskConstraint,
                W::InvalidSerialNumber,
                W::InvalidCrlSignatureForPublicKey,
                W::InvalidSignatureForPublicKey,
                W::IssuerNotCrlSigner,
                W::MalformedDnsIdentifier,
                W::MalformedExtensions,
                W::MalformedNameConstraint,
                W::MaximumNameConstraintComparisonsExceeded,
                W::MaximumPathBuildCallsExceeded,
                W::MaximumPathDepthExceeded,
                W::MaximumSignatureChecksExceeded,
                W::NameConstraintViolation,
                W::PathLenConstraintViolated,
                W::RequiredEkuNotFound,
                W::SignatureAlgorithmMismatch,
                W::UnknownIssuer,
                W::UnknownRevocationStatus,
                W::UnsupportedCertVersion,
                W::UnsupportedCriticalExtension,
                W::UnsupportedCrlIssuingDistributionPoint,
                W::UnsupportedCrlVersion,
                W::UnsupportedDeltaCrl,
                W::UnsupportedIndirectCrl,
                W::UnsupportedNameType,
                W::UnsupportedRevocationReason,
                W::UnsupportedRevocationReasonsPartitioning,
                W::UnsupportedCrlSignatureAlgorithm,
                W::UnsupportedSignatureAlgorithm,
                W::UnsupportedCrlSignatureAlgorithmForPublicKey,
                W::UnsupportedSignatureAlgorithmForPublicKey,
            ] {
                errors.push(other(w));
            }
        }
        for e in &errors {
            let text = describe_error(e);
            assert!(!debug_in(&text), "{e:?} -> {text}");
            assert!(!text.is_empty() && text.len() < 300, "{e:?} -> {text}");
        }
        // The check itself catches what rustls' Display gives.
        assert!(debug_in(
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))"
        ));
        assert!(debug_in("received fatal alert: CertificateRequired"));
    }
}
