//! RFC 5929 `tls-server-end-point` channel binding, as SCRAM logins on TrueNAS 26+ use it
//! (`docs/middleware.md` §2.3): the server certificate's DER, hashed with the hash of the
//! certificate's own signature algorithm, where MD5 and SHA-1 are promoted to SHA-256.
//!
//! The client computes it from the certificate the TLS handshake presented, the mock from the
//! certificate it serves; a relay in the middle presents another certificate, so the bound
//! login fails.

use ring::digest;

/// The channel-binding type name carried in the GS2 header (`p=tls-server-end-point`).
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// Why no binding can be computed for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelBindingError {
    /// The bytes are not a DER certificate this parser can walk to its signature algorithm.
    #[error("the server certificate is not valid DER: {0}")]
    Malformed(&'static str),
    /// The signature algorithm has no single hash (EdDSA) or one this build cannot compute.
    #[error(
        "tls-server-end-point is not defined for the certificate's signature algorithm (OID {0})"
    )]
    UnsupportedAlgorithm(String),
}

/// The hash a certificate's signature algorithm names, before the MD5/SHA-1 promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureHash {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// One DER TLV: its tag, and where its value starts and ends in the buffer.
fn read_tlv(buf: &[u8], at: usize) -> Result<(u8, usize, usize), ChannelBindingError> {
    let truncated = ChannelBindingError::Malformed("truncated");
    let tag = *buf.get(at).ok_or(truncated.clone())?;
    let first = *buf.get(at + 1).ok_or(truncated.clone())?;
    let mut start = at + 2;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(ChannelBindingError::Malformed("length"));
        }
        let bytes = buf.get(start..start + count).ok_or(truncated.clone())?;
        start += count;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    let end = start.checked_add(len).ok_or(truncated.clone())?;
    if end > buf.len() {
        return Err(truncated);
    }
    Ok((tag, start, end))
}

/// Dotted form of a DER OID body, for error messages.
fn dotted(oid: &[u8]) -> String {
    let Some((&first, rest)) = oid.split_first() else {
        return String::new();
    };
    let mut parts = vec![(first / 40).to_string(), (first % 40).to_string()];
    let mut value = 0u64;
    for b in rest {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(value.to_string());
            value = 0;
        }
    }
    parts.join(".")
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
/// `[0]` EXPLICIT, the `hashAlgorithm` of RSASSA-PSS parameters.
const CONTEXT_0: u8 = 0xa0;
/// 1.2.840.113549.1.1.10, RSASSA-PSS: its hash is in the parameters, not the OID.
const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

/// The hash of a signature-algorithm OID (RSA PKCS#1 v1.5, ECDSA, DSA).
fn signature_oid_hash(oid: &[u8]) -> Option<SignatureHash> {
    use SignatureHash::*;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
    const NIST_SIG: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
    if let Some(last) = oid.strip_prefix(RSA) {
        return match last {
            [0x04] => Some(Md5),
            [0x05] => Some(Sha1),
            [0x0e] => Some(Sha224),
            [0x0b] => Some(Sha256),
            [0x0c] => Some(Sha384),
            [0x0d] => Some(Sha512),
            _ => None,
        };
    }
    if let Some(rest) = oid.strip_prefix(ECDSA) {
        return match rest {
            [0x01] => Some(Sha1),
            [0x03, 0x01] => Some(Sha224),
            [0x03, 0x02] => Some(Sha256),
            [0x03, 0x03] => Some(Sha384),
            [0x03, 0x04] => Some(Sha512),
            _ => None,
        };
    }
    if oid == DSA_SHA1 {
        return Some(Sha1);
    }
    match oid.strip_prefix(NIST_SIG) {
        // id-dsa-with-sha224 / sha256 (DSA with SHA-384/512 has no defined hash here).
        Some([0x01]) => Some(Sha224),
        Some([0x02]) => Some(Sha256),
        _ => None,
    }
}

/// The hash of a digest-algorithm OID (inside RSASSA-PSS parameters).
fn digest_oid_hash(oid: &[u8]) -> Option<SignatureHash> {
    use SignatureHash::*;
    const NIST_HASH: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    match oid {
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05] => Some(Md5),
        [0x2b, 0x0e, 0x03, 0x02, 0x1a] => Some(Sha1),
        _ => match oid.strip_prefix(NIST_HASH) {
            Some([0x01]) => Some(Sha256),
            Some([0x02]) => Some(Sha384),
            Some([0x03]) => Some(Sha512),
            Some([0x04]) => Some(Sha224),
            _ => None,
        },
    }
}

/// The hash of RSASSA-PSS parameters: `hashAlgorithm [0]`, SHA-1 when absent (RFC 4055).
fn pss_hash(params: &[u8]) -> Result<SignatureHash, ChannelBindingError> {
    if params.is_empty() {
        return Ok(SignatureHash::Sha1);
    }
    let (tag, start, end) = read_tlv(params, 0)?;
    if tag != SEQUENCE {
        return Err(ChannelBindingError::Malformed("RSASSA-PSS parameters"));
    }
    if start == end {
        return Ok(SignatureHash::Sha1);
    }
    let (tag, h_start, _) = read_tlv(params, start)?;
    if tag != CONTEXT_0 {
        return Ok(SignatureHash::Sha1);
    }
    let (tag, alg_start, _) = read_tlv(params, h_start)?;
    if tag != SEQUENCE {
        return Err(ChannelBindingError::Malformed("RSASSA-PSS hashAlgorithm"));
    }
    let (tag, o_start, o_end) = read_tlv(params, alg_start)?;
    if tag != OID {
        return Err(ChannelBindingError::Malformed("RSASSA-PSS hash OID"));
    }
    let oid = &params[o_start..o_end];
    digest_oid_hash(oid).ok_or_else(|| ChannelBindingError::UnsupportedAlgorithm(dotted(oid)))
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }`: the hash its
/// signature algorithm uses.
fn certificate_signature_hash(der: &[u8]) -> Result<SignatureHash, ChannelBindingError> {
    let (tag, cert_start, _) = read_tlv(der, 0)?;
    if tag != SEQUENCE {
        return Err(ChannelBindingError::Malformed("not a certificate"));
    }
    let (tag, _, tbs_end) = read_tlv(der, cert_start)?;
    if tag != SEQUENCE {
        return Err(ChannelBindingError::Malformed("tbsCertificate"));
    }
    let (tag, alg_start, alg_end) = read_tlv(der, tbs_end)?;
    if tag != SEQUENCE {
        return Err(ChannelBindingError::Malformed("signatureAlgorithm"));
    }
    let (tag, o_start, o_end) = read_tlv(der, alg_start)?;
    if tag != OID {
        return Err(ChannelBindingError::Malformed("signature algorithm OID"));
    }
    let oid = &der[o_start..o_end];
    if oid == RSASSA_PSS {
        return pss_hash(&der[o_end..alg_end]);
    }
    signature_oid_hash(oid).ok_or_else(|| ChannelBindingError::UnsupportedAlgorithm(dotted(oid)))
}

/// The `tls-server-end-point` binding data of a DER certificate.
///
/// Certificates signed with SHA-224 are refused with
/// [`ChannelBindingError::UnsupportedAlgorithm`]: no TrueNAS certificate uses it and this build
/// has no SHA-224.
pub fn tls_server_end_point(cert_der: &[u8]) -> Result<Vec<u8>, ChannelBindingError> {
    let algorithm = match certificate_signature_hash(cert_der)? {
        SignatureHash::Md5 | SignatureHash::Sha1 | SignatureHash::Sha256 => &digest::SHA256,
        SignatureHash::Sha384 => &digest::SHA384,
        SignatureHash::Sha512 => &digest::SHA512,
        SignatureHash::Sha224 => {
            return Err(ChannelBindingError::UnsupportedAlgorithm(
                "a SHA-224 signature".into(),
            ));
        }
    };
    Ok(digest::digest(algorithm, cert_der).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate skeleton: SEQUENCE { SEQUENCE {} (tbs), SEQUENCE { OID, params } }.
    fn cert_with(oid: &[u8], params: &[u8]) -> Vec<u8> {
        let mut alg = vec![OID, oid.len() as u8];
        alg.extend_from_slice(oid);
        alg.extend_from_slice(params);
        let mut body = vec![SEQUENCE, 0];
        body.push(SEQUENCE);
        body.push(alg.len() as u8);
        body.extend(alg);
        let mut der = vec![SEQUENCE, body.len() as u8];
        der.extend(body);
        der
    }

    #[test]
    fn hash_follows_the_signature_algorithm() {
        let ecdsa_sha384 = cert_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], &[]);
        assert_eq!(tls_server_end_point(&ecdsa_sha384).unwrap().len(), 48);
        let rsa_sha512 = cert_with(
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
            &[0x05, 0x00],
        );
        assert_eq!(tls_server_end_point(&rsa_sha512).unwrap().len(), 64);
    }

    #[test]
    fn md5_and_sha1_are_promoted_to_sha256() {
        for oid in [
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04][..],
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05][..],
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01][..],
        ] {
            let der = cert_with(oid, &[]);
            let want = digest::digest(&digest::SHA256, &der);
            assert_eq!(tls_server_end_point(&der).unwrap(), want.as_ref());
        }
    }

    #[test]
    fn pss_reads_its_hash_from_the_parameters() {
        // SEQUENCE { [0] { SEQUENCE { OID sha384 } } }
        let sha384 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
        let mut alg = vec![SEQUENCE, (sha384.len() + 2) as u8, OID, sha384.len() as u8];
        alg.extend_from_slice(&sha384);
        let mut params = vec![SEQUENCE, (alg.len() + 2) as u8, CONTEXT_0, alg.len() as u8];
        params.extend(alg);
        assert_eq!(
            tls_server_end_point(&cert_with(RSASSA_PSS, &params))
                .unwrap()
                .len(),
            48
        );
        // No parameters: SHA-1, promoted.
        assert_eq!(
            tls_server_end_point(&cert_with(RSASSA_PSS, &[]))
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn eddsa_and_garbage_are_refused() {
        let ed25519 = cert_with(&[0x2b, 0x65, 0x70], &[]);
        let err = tls_server_end_point(&ed25519).unwrap_err();
        assert_eq!(
            err,
            ChannelBindingError::UnsupportedAlgorithm("1.3.101.112".into())
        );
        assert!(err.to_string().contains("1.3.101.112"));
        assert!(matches!(
            tls_server_end_point(b"\x30\x05\x30"),
            Err(ChannelBindingError::Malformed(_))
        ));
        assert!(tls_server_end_point(b"").is_err());
    }
}
