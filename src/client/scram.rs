//! The client side of a SCRAM-SHA-512 API-key login as TrueNAS 26+ runs it
//! (`docs/middleware.md` §2.3): RFC 5802 with SHA-512, the key id in the username (`user:id`),
//! PBKDF2 over the key material, a client nonce of exactly 32 bytes (the server's SCRAM library
//! refuses any other size) extended by 32 bytes of the server's, and optional RFC 5929
//! `tls-server-end-point` channel binding.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};

use super::error::{AuthError, Error, Result};
use crate::protocol::channel_binding::TLS_SERVER_END_POINT;

/// Bytes of the client nonce, and of what the server appends to it.
pub(crate) const NONCE_LEN: usize = 32;

/// Iteration counts the official client accepts; real servers use 500 000.
const ITERATIONS: std::ops::RangeInclusive<u32> = 50_000..=5_000_000;

/// Which channel binding the exchange carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `n,,`: not bound (plain `ws://`, or `--no-channel-binding`).
    None,
    /// `p=tls-server-end-point,,` with the certificate hash.
    TlsServerEndPoint(Vec<u8>),
}

impl Binding {
    fn gs2_header(&self) -> String {
        match self {
            Binding::None => "n,,".to_owned(),
            Binding::TlsServerEndPoint(_) => format!("p={TLS_SERVER_END_POINT},,"),
        }
    }

    /// `c=`: base64 of the GS2 header followed by the binding data.
    fn cbind_input(&self) -> String {
        let mut input = self.gs2_header().into_bytes();
        if let Binding::TlsServerEndPoint(data) = self {
            input.extend_from_slice(data);
        }
        B64.encode(input)
    }
}

/// The client-first message and what the rest of the exchange needs from it.
#[derive(Debug, Clone)]
pub(crate) struct ClientFirst {
    /// The full `rfc_str` to send.
    pub(crate) message: String,
    bare: String,
    nonce: [u8; NONCE_LEN],
    binding: Binding,
}

impl ClientFirst {
    /// `<gs2 header>n=<username>:<key id>,r=<base64 of 32 nonce bytes>`.
    pub(crate) fn new(
        username: &str,
        key_id: i64,
        nonce: [u8; NONCE_LEN],
        binding: Binding,
    ) -> Result<ClientFirst> {
        if username.is_empty() || username.contains([',', '=']) {
            return Err(AuthError::Scram(
                "the username must be non-empty and may not contain ',' or '='".into(),
            )
            .into());
        }
        let bare = format!("n={username}:{key_id},r={}", B64.encode(nonce));
        Ok(ClientFirst {
            message: format!("{}{bare}", binding.gs2_header()),
            bare,
            nonce,
            binding,
        })
    }

    /// With a fresh random nonce.
    pub(crate) fn random(username: &str, key_id: i64, binding: Binding) -> Result<ClientFirst> {
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| AuthError::Scram("no randomness available".into()))?;
        ClientFirst::new(username, key_id, nonce, binding)
    }

    /// Is this exchange bound to the TLS channel?
    pub(crate) fn is_bound(&self) -> bool {
        self.binding != Binding::None
    }
}

/// The client-final message and the server signature it must be answered with.
pub(crate) struct ClientFinal {
    /// The `c=…,r=…,p=…` message.
    pub(crate) message: String,
    server_signature: Vec<u8>,
}

impl ClientFinal {
    /// Answer the server-first message `r=…,s=…,i=…` with the key `material` (after `<id>-`).
    pub(crate) fn new(
        first: &ClientFirst,
        server_first: &str,
        material: &str,
    ) -> Result<ClientFinal> {
        let bad = |m: &str| Error::from(AuthError::Scram(m.to_owned()));
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => {
                    salt = Some(B64.decode(v).map_err(|_| bad("the salt is not base64"))?)
                }
                Some(("i", v)) => {
                    iterations = Some(
                        v.parse::<u32>()
                            .map_err(|_| bad("the iteration count is not a number"))?,
                    )
                }
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(bad("the server's first message lacks r=, s= or i="));
        };
        // The nonce is base64 of our 32 bytes followed by the server's 32, so it is compared as
        // bytes: its text does not start with the text of ours.
        let combined = B64
            .decode(nonce)
            .map_err(|_| bad("the server's nonce is not base64"))?;
        if combined.len() != 2 * NONCE_LEN || combined[..NONCE_LEN] != first.nonce {
            return Err(bad(
                "the server's nonce is not our 32 bytes followed by 32 of its own",
            ));
        }
        if !ITERATIONS.contains(&iterations) {
            return Err(bad(&format!(
                "iteration count {iterations} is outside 50000..=5000000"
            )));
        }
        let mut salted = [0u8; 64];
        let rounds = std::num::NonZeroU32::new(iterations).ok_or_else(|| bad("zero iterations"))?;
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA512,
            rounds,
            &salt,
            material.as_bytes(),
            &mut salted,
        );
        let salted_key = hmac::Key::new(hmac::HMAC_SHA512, &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA512, client_key.as_ref());
        let without_proof = format!("c={},r={nonce}", first.binding.cbind_input());
        let auth_message = format!("{},{server_first},{without_proof}", first.bare);
        let client_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA512, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let server_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA512, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        Ok(ClientFinal {
            message: format!("{without_proof},p={}", B64.encode(proof)),
            server_signature: server_signature.as_ref().to_vec(),
        })
    }

    /// Check the server's `v=` signature (constant-time).
    pub(crate) fn verify_server_final(&self, server_final: &str) -> bool {
        let Some(v) = server_final.split(',').find_map(|p| p.strip_prefix("v=")) else {
            return false;
        };
        let Ok(sig) = B64.decode(v) else { return false };
        sig.len() == self.server_signature.len()
            && sig
                .iter()
                .zip(&self.server_signature)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    fn server_nonce(extra: &[u8]) -> String {
        let mut n = NONCE.to_vec();
        n.extend_from_slice(extra);
        B64.encode(n)
    }

    #[test]
    fn client_first_has_32_nonce_bytes_and_the_key_id() {
        let first = ClientFirst::random("admin", 3, Binding::None).unwrap();
        let nonce = first.message.rsplit_once(",r=").unwrap().1;
        assert_eq!(B64.decode(nonce).unwrap().len(), 32);
        assert!(first.message.starts_with("n,,n=admin:3,r="));
        let bound =
            ClientFirst::new("admin", 3, NONCE, Binding::TlsServerEndPoint(vec![1])).unwrap();
        assert!(
            bound
                .message
                .starts_with("p=tls-server-end-point,,n=admin:3,r=")
        );
        assert!(bound.is_bound() && !first.is_bound());
        for bad in ["", "a,b", "a=b"] {
            let err = ClientFirst::new(bad, 1, NONCE, Binding::None).unwrap_err();
            assert!(err.to_string().contains("username"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn bad_server_first_messages_are_refused() {
        let first = ClientFirst::new("u", 1, NONCE, Binding::None).unwrap();
        let good = server_nonce(&[9; 32]);
        let short = server_nonce(&[9; 18]);
        let other = B64.encode([1u8; 64]);
        for (server_first, want) in [
            (format!("r={other},s=c2FsdA==,i=50000"), "not our 32 bytes"),
            (format!("r={short},s=c2FsdA==,i=50000"), "not our 32 bytes"),
            (
                format!("r={},s=c2FsdA==,i=50000", B64.encode(NONCE)),
                "not our",
            ),
            ("r=!!,s=c2FsdA==,i=50000".to_owned(), "nonce is not base64"),
            (format!("r={good},s=c2FsdA==,i=4096"), "outside"),
            (format!("r={good},s=c2FsdA==,i=x"), "not a number"),
            (format!("r={good},i=50000"), "lacks"),
            (format!("r={good},s=!!,i=50000"), "salt is not base64"),
        ] {
            let err = ClientFinal::new(&first, &server_first, "key")
                .err()
                .expect(&server_first)
                .to_string();
            assert!(err.contains(want), "{server_first}: {err}");
        }
    }

    #[test]
    fn binding_goes_into_c() {
        let server_first = format!("r={},s=c2FsdA==,i=50000", server_nonce(&[9; 32]));
        let plain = ClientFirst::new("u", 1, NONCE, Binding::None).unwrap();
        let fin = ClientFinal::new(&plain, &server_first, "key").unwrap();
        assert!(fin.message.starts_with("c=biws,r="));
        let bound =
            ClientFirst::new("u", 1, NONCE, Binding::TlsServerEndPoint(vec![0xAB; 32])).unwrap();
        let fin = ClientFinal::new(&bound, &server_first, "key").unwrap();
        let c = fin
            .message
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("c=")
            .unwrap();
        let mut want = b"p=tls-server-end-point,,".to_vec();
        want.extend([0xAB; 32]);
        assert_eq!(B64.decode(c).unwrap(), want);
        assert!(!fin.verify_server_final("v=AAAA"));
        assert!(!fin.verify_server_final("e=other-error"));
        assert!(!fin.verify_server_final("v=!!"));
    }

    /// Two logins the official client completed against a TrueNAS 26 emulation, with and
    /// without binding (`tests/fixtures/scram-sha512-26.json`): given the recorded nonce and
    /// server-first message, this client must send exactly what the official one sent and
    /// accept the server's `v=`.
    #[test]
    fn known_answers_from_the_official_client() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/scram-sha512-26.json"))
                .unwrap();
        let key = vectors["api_key"].as_str().unwrap();
        let (id, material) = key.split_once('-').unwrap();
        let pem = vectors["server_certificate_pem"].as_str().unwrap();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = B64.decode(der).unwrap();
        let cb = crate::protocol::channel_binding::tls_server_end_point(&der).unwrap();
        for (case, binding) in [
            ("with_channel_binding", Binding::TlsServerEndPoint(cb)),
            ("without_channel_binding", Binding::None),
        ] {
            let ex = &vectors[case];
            let recorded_first = ex["client_first"].as_str().unwrap();
            let nonce = B64
                .decode(recorded_first.rsplit_once(",r=").unwrap().1)
                .unwrap();
            let first = ClientFirst::new(
                vectors["username"].as_str().unwrap(),
                id.parse().unwrap(),
                nonce.try_into().unwrap(),
                binding,
            )
            .unwrap();
            assert_eq!(first.message, recorded_first, "{case}");
            let last =
                ClientFinal::new(&first, ex["server_first"].as_str().unwrap(), material).unwrap();
            assert_eq!(last.message, ex["client_final"].as_str().unwrap(), "{case}");
            let server_final = ex["server_final"].as_str().unwrap();
            assert!(last.verify_server_final(server_final), "{case}");
            let mut forged = B64.decode(&server_final[2..]).unwrap();
            forged[0] ^= 1;
            assert!(!last.verify_server_final(&format!("v={}", B64.encode(forged))));
        }
    }
}
