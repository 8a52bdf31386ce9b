//! The few X.509 fields the TLS code reads itself: the validity dates (for
//! `--cert-expiry-days` and for a certificate trusted as it is) and the
//! issuer's and subject's names (for the report, which rustls' errors leave
//! out). Pure functions over a certificate's DER: the input is whatever the
//! server sent, so every read is bounded by the slice and returns `None`
//! rather than panic.

use crate::date;
use crate::text::MAX_QUOTED;

/// The parts of a certificate's `tbsCertificate` the report uses, each the
/// contents of its DER item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    pub issuer: &'a [u8],
    pub validity: &'a [u8],
    pub subject: &'a [u8],
}

/// Issuer, validity and subject of an X.509 certificate (DER).
pub fn fields(der: &[u8]) -> Option<Fields<'_>> {
    let (cert, _) = der_item(der, 0x30)?;
    let (mut tbs, _) = der_item(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der_item(tbs, 0xa0)?.1; // [0] version
    }
    let (_, rest) = der_item(tbs, 0x02)?; // serialNumber
    let (_, rest) = der_item(rest, 0x30)?; // signature algorithm
    let (issuer, rest) = der_item(rest, 0x30)?;
    let (validity, rest) = der_item(rest, 0x30)?;
    let (subject, _) = der_item(rest, 0x30)?;
    Some(Fields {
        issuer,
        validity,
        subject,
    })
}

/// `notBefore` and `notAfter`, in seconds since 1970.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let validity = fields(der)?.validity;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Some((not_before, not_after))
}

/// The `notAfter` of an X.509 certificate (DER), in seconds since 1970,
/// whatever its `notBefore` holds (`--insecure --cert-expiry-days` reads it
/// from certificates nothing else checked).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let validity = fields(der)?.validity;
    let tag = *validity.first()?;
    let (_, rest) = der_item(validity, tag)?;
    Some(time(rest)?.0)
}

/// A distinguished name (the contents of its SEQUENCE) as OpenSSL prints
/// it, in the certificate's order: `O=Example Corp, CN=Example CA`. Values
/// are not escaped here; the caller escapes the whole. The text stops soon
/// after [`MAX_QUOTED`] characters, where the report cuts it anyway.
pub fn name_text(name: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut rdns = name;
    while !rdns.is_empty() {
        if out.chars().count() > MAX_QUOTED {
            break;
        }
        let (mut set, rest) = der_item(rdns, 0x31)?;
        rdns = rest;
        let mut first_in_set = true;
        while !set.is_empty() {
            let (attribute, rest) = der_item(set, 0x30)?;
            set = rest;
            let (oid, value) = der_item(attribute, 0x06)?;
            if !out.is_empty() {
                out.push_str(if first_in_set { ", " } else { " + " });
            }
            first_in_set = false;
            out.push_str(&attribute_name(oid));
            out.push('=');
            out.push_str(&value_text(value));
        }
    }
    Some(out)
}

/// The last `commonName` of a distinguished name, if it has one.
pub fn common_name(name: &[u8]) -> Option<String> {
    let mut found = None;
    let mut rdns = name;
    while !rdns.is_empty() {
        let (mut set, rest) = der_item(rdns, 0x31)?;
        rdns = rest;
        while !set.is_empty() {
            let (attribute, rest) = der_item(set, 0x30)?;
            set = rest;
            let (oid, value) = der_item(attribute, 0x06)?;
            if oid == CN {
                found = Some(value_text(value));
            }
        }
    }
    found
}

/// id-at-commonName, 2.5.4.3.
const CN: &[u8] = &[0x55, 0x04, 0x03];

/// The short names OpenSSL prints for the attributes seen in practice;
/// others as their dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    let short = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x04] => "SN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x0c] => "title",
        [0x55, 0x04, 0x2a] => "GN",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        _ => return oid_text(oid).unwrap_or_else(|| "?".to_string()),
    };
    short.to_string()
}

/// An OID's contents in dotted form (`1.2.840.113549.1.1.5`); `None` when
/// malformed or when an arc does not fit in 64 bits.
pub fn oid_text(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut arc: u64 = 0;
    let mut in_arc = false;
    for &b in oid {
        if !in_arc && b == 0x80 {
            return None; // a leading zero septet is not DER
        }
        arc = arc.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        in_arc = b & 0x80 != 0;
        if !in_arc {
            arcs.push(arc);
            arc = 0;
        }
    }
    let (&first, rest) = arcs.split_first()?;
    if in_arc {
        return None;
    }
    // The first subidentifier packs two arcs: 40 * X + Y, X in 0..=2.
    let (x, y) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut text = format!("{x}.{y}");
    for a in rest {
        text.push('.');
        text.push_str(&a.to_string());
    }
    Some(text)
}

/// An attribute value (a whole DER item) as text: the string types
/// certificates use; anything else as `#` and its hex, as RFC 4514 has it.
fn value_text(item: &[u8]) -> String {
    let Some(&tag) = item.first() else {
        return String::new();
    };
    let Some((bytes, _)) = der_item(item, tag) else {
        return "?".to_string();
    };
    let text = match tag {
        // UTF8String, NumericString, PrintableString, IA5String, VisibleString
        0x0c | 0x12 | 0x13 | 0x16 | 0x1a => Some(String::from_utf8_lossy(bytes).into_owned()),
        // TeletexString: in practice Latin-1.
        0x14 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16 big-endian.
        0x1e => (bytes.len() % 2 == 0).then(|| {
            let units = bytes
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }),
        // UniversalString: UTF-32 big-endian.
        0x1c => (bytes.len() % 4 == 0).then(|| {
            bytes
                .chunks_exact(4)
                .map(|q| {
                    char::from_u32(u32::from_be_bytes([q[0], q[1], q[2], q[3]]))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect()
        }),
        _ => None,
    };
    text.unwrap_or_else(|| {
        let shown = item.get(..32).unwrap_or(item);
        let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "#{hex}{}",
            if shown.len() < item.len() { "..." } else { "" }
        )
    })
}

/// The contents of the DER item at the start of `input` if its tag is
/// `tag`, and what follows it.
pub fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        // At most 4 length bytes: no certificate is larger than 4 GiB, and
        // the shifts below cannot overflow.
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((input.get(header..end)?, input.get(end..)?))
}

/// A UTCTime or GeneralizedTime item at the start of `input`: its value and
/// what follows it.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let tag = *input.first()?;
    let (text, rest) = der_item(input, tag)?;
    Some((parse_time(tag, text)?, rest))
}

/// UTCTime `YYMMDDHHMMSSZ` (0x17) or GeneralizedTime `YYYYMMDDHHMMSSZ` (0x18).
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day) = (field(0)?, field(2)?);
    let (h, m, s) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // At most year 9999: no overflow.
    Some(date::days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
pub mod test {
    use super::*;

    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    /// A distinguished name's contents from (OID, string tag, value).
    pub fn name(attributes: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (oid, tag, value) in attributes {
            let mut attribute = tlv(0x06, oid);
            attribute.extend(tlv(*tag, value));
            out.extend(tlv(0x31, &tlv(0x30, &attribute)));
        }
        out
    }

    /// DER with the shape of a certificate up to its subject.
    pub fn cert(issuer: &[u8], not_before: &[u8], not_after: &[u8], subject: &[u8]) -> Vec<u8> {
        let mut validity = not_before.to_vec();
        validity.extend_from_slice(not_after);
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[0x12, 0x34]));
        tbs.extend(tlv(0x30, &tlv(0x06, &[1, 2, 3])));
        tbs.extend(tlv(0x30, issuer));
        tbs.extend(tlv(0x30, &validity));
        tbs.extend(tlv(0x30, subject));
        tlv(0x30, &tlv(0x30, &tbs))
    }

    /// A certificate with a 200-byte issuer (a 2-byte length).
    pub fn cert_with_validity(not_before: &[u8], not_after: &[u8]) -> Vec<u8> {
        let issuer = name(&[(CN, 0x0c, &[b'x'; 190])]);
        cert(&issuer, not_before, not_after, b"subject")
    }

    #[test]
    fn reads_not_after_in_both_time_forms() {
        let utc = cert_with_validity(b"\x17\x0d240101000000Z", b"\x17\x0d260301120000Z");
        assert_eq!(
            not_after(&utc).map(date::format_utc).as_deref(),
            Some("2026-03-01 12:00:00 UTC")
        );
        assert_eq!(
            validity(&utc).map(|(b, _)| date::format_utc(b)).as_deref(),
            Some("2024-01-01 00:00:00 UTC")
        );
        let gen = cert_with_validity(b"\x17\x0d240101000000Z", b"\x18\x0f20600102030405Z");
        assert_eq!(
            not_after(&gen).map(date::format_utc).as_deref(),
            Some("2060-01-02 03:04:05 UTC")
        );
        let old = cert_with_validity(b"\x17\x0d690101000000Z", b"\x17\x0d490101000000Z");
        assert_eq!(validity(&old), Some((-31_536_000, 2_493_072_000)));
        for bad in [
            &b"\x17\x0d2401010000Z"[..],
            b"\x17\x0d241301000000Z",
            b"\x17\x0d24010100000+Z",
            b"\x18\x0d240101000000Z",
            b"\x04\x0d240101000000Z",
        ] {
            assert_eq!(
                not_after(&cert_with_validity(b"\x17\x0d240101000000Z", bad)),
                None
            );
        }
        assert_eq!(not_after(b"\x30\x03\x02\x01\x00"), None);
    }

    #[test]
    fn names_as_openssl_prints_them() {
        let n = name(&[
            (&[0x55, 0x04, 0x06], 0x13, b"DE"),
            (&[0x55, 0x04, 0x0a], 0x0c, "Müller AG".as_bytes()),
            (CN, 0x0c, b"Example CA"),
        ]);
        assert_eq!(
            name_text(&n).as_deref(),
            Some("C=DE, O=Müller AG, CN=Example CA")
        );
        assert_eq!(common_name(&n).as_deref(), Some("Example CA"));
        // BMPString, TeletexString, an unknown attribute, an unknown string type.
        let n = name(&[
            (CN, 0x1e, &[0, b'h', 0, b'i']),
            (&[0x55, 0x04, 0x0b], 0x14, &[0xe9]),
            (
                &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c],
                0x0c,
                b"v",
            ),
            (&[0x55, 0x04, 0x0a], 0x04, &[0xff]),
        ]);
        assert_eq!(
            name_text(&n).as_deref(),
            Some("CN=hi, OU=é, 1.3.6.1.4.1.311.60=v, O=#0401ff")
        );
        // Several attributes in one RDN; no CN at all.
        let mut attributes = tlv(
            0x30,
            &[tlv(0x06, &[0x55, 0x04, 0x0a]), tlv(0x13, b"A")].concat(),
        );
        attributes.extend(tlv(
            0x30,
            &[tlv(0x06, &[0x55, 0x04, 0x0b]), tlv(0x13, b"B")].concat(),
        ));
        let n = tlv(0x31, &attributes);
        assert_eq!(name_text(&n).as_deref(), Some("O=A + OU=B"));
        assert_eq!(common_name(&n), None);
        assert_eq!(name_text(&[]).as_deref(), Some(""));
        // A long name stops soon after what the report shows.
        let long: Vec<u8> = (0..50)
            .flat_map(|_| name(&[(CN, 0x0c, b"0123456789")]))
            .collect();
        assert!(name_text(&long).unwrap().len() < MAX_QUOTED + 20);
    }

    #[test]
    fn oids() {
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]).as_deref(),
            Some("1.2.840.113549.1.1.5")
        );
        assert_eq!(oid_text(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
        assert_eq!(oid_text(&[0x88, 0x37]).as_deref(), Some("2.999"));
        assert_eq!(oid_text(&[]), None);
        assert_eq!(oid_text(&[0x2a, 0x86]), None); // unfinished arc
        assert_eq!(oid_text(&[0x2a, 0x80, 0x01]), None); // leading zero septet
        assert_eq!(oid_text(&[0xff; 12]), None); // more than 64 bits
    }

    #[test]
    fn every_truncation_and_corruption_is_refused_without_panic() {
        let n = name(&[
            (&[0x55, 0x04, 0x0a], 0x0c, b"Example"),
            (CN, 0x1e, &[0, b'x']),
        ]);
        let c = cert(&n, b"\x17\x0d240101000000Z", b"\x18\x0f20600102030405Z", &n);
        for end in 0..c.len() {
            assert_eq!(fields(&c[..end]), None, "{end}");
            assert_eq!(validity(&c[..end]), None, "{end}");
        }
        for end in 0..n.len() {
            let _ = name_text(&n[..end]);
            let _ = common_name(&n[..end]);
        }
        // Every byte flipped: any answer but a panic.
        for i in 0..c.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = c.clone();
                bad[i] ^= flip;
                if let Some(f) = fields(&bad) {
                    let _ = name_text(f.issuer);
                    let _ = common_name(f.subject);
                }
                let _ = validity(&bad);
            }
        }
        // Lengths that point past the end, or need more than 4 bytes.
        assert_eq!(der_item(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 0x30), None);
        assert_eq!(der_item(&[0x30, 0x85, 1, 0, 0, 0, 0], 0x30), None);
        assert_eq!(der_item(&[0x30, 0x80], 0x30), None);
        assert_eq!(der_item(&[0x30, 0x02, 0x00], 0x30), None);
        assert_eq!(
            der_item(&[0x30, 0x01, 0x00], 0x30),
            Some((&[0u8][..], &[][..]))
        );
    }
}
