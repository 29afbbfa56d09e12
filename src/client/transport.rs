//! WebSocket and TLS: opening the connection, with the trust modes TrueNAS users need.
//!
//! TrueNAS ships a self-signed certificate, so besides the system roots a user can pin the
//! certificate's SHA-256 fingerprint (in the form `openssl x509 -fingerprint -sha256` prints,
//! which is also what `midscript mock` prints) or, knowingly, skip verification.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::error::Error;

/// The socket type the client runs on.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A SHA-256 certificate fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl std::fmt::Display for Fingerprint {
    /// Uppercase hex pairs joined by colons, as `openssl x509 -fingerprint -sha256` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    /// Accepts what openssl prints (`sha256 Fingerprint=AB:CD:…`, `SHA256 Fingerprint=…`), bare
    /// colon-separated pairs, or 64 hex digits; any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.rsplit_once('=').map_or(s, |(_, v)| v).trim();
        let s = s.strip_prefix("SHA256:").unwrap_or(s);
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not a SHA-256 fingerprint (expected 32 hex pairs such as AB:CD:…, as `openssl x509 -fingerprint -sha256` prints)"
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Fingerprint(out))
    }
}

/// How the server's certificate is checked on `wss://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's trust store (the default).
    #[default]
    System,
    /// Exactly this certificate (its SHA-256 fingerprint), whoever issued it. The server must
    /// still prove it holds the certificate's key.
    Pinned(Fingerprint),
    /// No check at all. For throwaway test boxes only.
    Insecure,
}

/// Records the fingerprint of the certificate the server presented, whatever the verdict, so an
/// error can show it (and trust-on-first-use can offer it).
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    system: Option<Arc<dyn ServerCertVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Arc<Mutex<Option<Fingerprint>>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity.as_ref());
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fp);
        }
        match &self.trust {
            Trust::Insecure => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(want) if *want == fp => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            Trust::System => match &self.system {
                Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
                None => Err(rustls::Error::General("no system trust store".into())),
            },
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where a URL points, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given.
    pub url: String,
    /// `wss` or `ws`.
    pub tls: bool,
    /// Host name or address (without brackets).
    pub host: String,
    /// The port: as given, else 443 for `wss` and 80 for `ws`.
    pub port: u16,
    /// The path, e.g. `/api/current`.
    pub path: String,
}

/// `url` as it may be shown: anything before an `@` in what could be its authority (a user
/// name and password) replaced by `…`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://…{}", &rest[at..]),
        None => url.to_owned(),
    }
}

impl Endpoint {
    /// Parse and check a `ws://` or `wss://` URL. The host and path are read by the same URI
    /// parser the connection uses, so the host checked here (loopback or not) is the host the
    /// connection goes to, whatever `?`, `#` or `@` the URL holds. A user name or password in
    /// the URL is refused (and never repeated in the error): give them with -U and
    /// --password-file.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: shown_url(url),
            reason: reason.to_owned(),
        };
        let (scheme, _) = url
            .split_once("://")
            .ok_or_else(|| bad("expected ws://HOST/… or wss://HOST/…"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "wss" => true,
            "ws" => false,
            "https" | "http" => {
                return Err(bad(
                    "use wss:// (or ws://) for the middleware WebSocket, e.g. wss://HOST/api/current",
                ));
            }
            _ => return Err(bad("the scheme must be ws or wss")),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "a user name or password in the URL is not accepted: pass -U NAME and --password-file FILE (or MIDSCRIPT_PASSWORD) instead",
            ));
        }
        let port_text = authority.as_str()[authority.host().len()..].strip_prefix(':');
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port_text {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port must be a number from 0 to 65535"))?,
            None if tls => 443,
            None => 80,
        };
        let path = uri.path();
        if path.is_empty() || path == "/" {
            return Err(bad(
                "no path: the JSON-RPC endpoint is /api/current (or /websocket on 24.10)",
            ));
        }
        Ok(Endpoint {
            url: url.to_owned(),
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// Is the host this machine (where the server treats the transport as secure)?
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Ok(ip) => ip.is_loopback(),
            Err(_) => false,
        }
    }

    /// Would the server consider this transport secure (`docs/middleware.md` §1.1): TLS, or loopback?
    pub fn is_secure_transport(&self) -> bool {
        self.tls || self.is_loopback()
    }

    /// Is this the legacy DDP endpoint (`/websocket`)?
    pub fn is_legacy(&self) -> bool {
        self.path.trim_end_matches('/').ends_with("/websocket")
    }

    /// The dialect this URL speaks (`docs/middleware.md` §1.2): the legacy one for a path ending in
    /// `/websocket`, JSON-RPC 2.0 for anything else.
    pub fn dialect(&self) -> Dialect {
        if self.is_legacy() {
            Dialect::Legacy
        } else {
            Dialect::JsonRpc
        }
    }

    /// For `…/api/current`: the same host's `/websocket`, where a TrueNAS 24.10 server (which
    /// answers `/api/current` with HTTP 404) speaks the legacy protocol. `None` for any other
    /// path: a pinned `/api/vX.Y.Z` or an explicit path is never second-guessed.
    pub fn legacy_fallback(&self) -> Option<String> {
        if self.path.trim_end_matches('/') != "/api/current" {
            return None;
        }
        let base = self.url.strip_suffix(self.path.as_str())?;
        Some(format!("{base}/websocket"))
    }

    /// For a pinned `…/api/vX.Y.Z`: the same host's `/api/current`. Releases do not serve every
    /// API version one would expect (26.0.0-BETA.1–3 have no `/api/v25.10.5`) and answer HTTP
    /// 404, so a pinned client falls back to the current API. `None` for any other path.
    pub fn current_fallback(&self) -> Option<String> {
        let version = self.path.trim_end_matches('/').strip_prefix("/api/v")?;
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let base = self.url.strip_suffix(self.path.as_str())?;
        Some(format!("{base}/api/current"))
    }
}

/// The two wire dialects of the middleware (`docs/middleware.md` §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// JSON-RPC 2.0 on `/api/current` (and `/api/vX.Y.Z`), TrueNAS 25.04 and later.
    JsonRpc,
    /// The legacy DDP-like protocol on `/websocket` (§1.4): the only API of TrueNAS 24.10,
    /// still served by later releases.
    Legacy,
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::JsonRpc => "JSON-RPC 2.0",
            Dialect::Legacy => "legacy DDP (/websocket)",
        })
    }
}

/// Options for opening the socket.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Certificate trust.
    pub trust: Trust,
    /// Give up connecting (TCP + TLS + upgrade) after this long.
    pub connect_timeout: Duration,
    /// The largest message accepted from the server. `core.get_methods` is several MB.
    pub max_message_size: usize,
    /// Extra headers for the HTTP upgrade (the `ws` script module's `headers`).
    pub headers: Vec<(String, String)>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            trust: Trust::System,
            connect_timeout: Duration::from_secs(10),
            max_message_size: 64 << 20,
            headers: Vec::new(),
        }
    }
}

/// An open socket and what was learned while opening it.
pub struct Opened {
    /// The WebSocket.
    pub socket: Socket,
    /// The fingerprint of the server's certificate (`wss://` only).
    pub fingerprint: Option<Fingerprint>,
    /// The DER of the certificate the server presented in this TLS session (`wss://` only), for
    /// SCRAM channel binding.
    pub certificate: Option<Vec<u8>>,
}

fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(
    trust: &Trust,
    seen: Arc<Mutex<Option<Fingerprint>>>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = crypto_provider();
    let tls_err = |e: rustls::Error| Error::Tls {
        message: e.to_string(),
        fingerprint: None,
    };
    let system: Option<Arc<dyn ServerCertVerifier>> = match trust {
        Trust::System => Some(Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone()).map_err(tls_err)?,
        )),
        _ => None,
    };
    let verifier = Verifier {
        trust: trust.clone(),
        system,
        provider: provider.clone(),
        seen,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Open the WebSocket (TCP, TLS as trusted, HTTP upgrade), turning every failure into an
/// [`Error`] a person can act on.
pub async fn open(endpoint: &Endpoint, options: &TransportOptions) -> Result<Opened, Error> {
    let seen = Arc::new(Mutex::new(None));
    let connector = if endpoint.tls {
        Connector::Rustls(tls_config(&options.trust, seen.clone())?)
    } else {
        Connector::Plain
    };
    let mut request =
        endpoint
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::InvalidUrl {
                url: endpoint.url.clone(),
                reason: e.to_string(),
            })?;
    for (name, value) in &options.headers {
        let bad = |what: &str| Error::InvalidUrl {
            url: endpoint.url.clone(),
            reason: format!("header {name:?}: {what}"),
        };
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad("not a valid header name"))?;
        let value = tokio_tungstenite::tungstenite::http::HeaderValue::from_str(value)
            .map_err(|_| bad("the value is not valid in a header"))?;
        request.headers_mut().insert(name, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_size))
        .max_frame_size(Some(options.max_message_size))
        .max_write_buffer_size(8 << 20);
    let attempt = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    let outcome = tokio::time::timeout(options.connect_timeout, attempt).await;
    let fingerprint = seen.lock().ok().and_then(|s| *s);
    match outcome {
        Err(_) => Err(Error::Connect {
            url: endpoint.url.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", options.connect_timeout.as_secs()),
            ),
        }),
        Ok(Ok((socket, _response))) => {
            let certificate = match socket.get_ref() {
                MaybeTlsStream::Rustls(tls) => tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|c| c.as_ref().to_vec()),
                _ => None,
            };
            Ok(Opened {
                socket,
                fingerprint,
                certificate,
            })
        }
        Ok(Err(e)) => Err(classify(endpoint, &options.trust, fingerprint, e)),
    }
}

fn classify(
    endpoint: &Endpoint,
    trust: &Trust,
    fingerprint: Option<Fingerprint>,
    e: tokio_tungstenite::tungstenite::Error,
) -> Error {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let url = endpoint.url.clone();
    match e {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let message = match status {
                404 if endpoint.path.starts_with("/api") => format!(
                    "HTTP 404: this server has no {} endpoint. TrueNAS 24.10 only serves the legacy /websocket endpoint",
                    endpoint.path
                ),
                404 => format!("HTTP 404: no WebSocket endpoint at {}", endpoint.path),
                403 => "HTTP 403: the server refused this client; its address is not on the UI allowlist".to_owned(),
                301 | 302 | 307 | 308 => format!(
                    "HTTP {status}: the server redirects plain HTTP to HTTPS; use wss://{}{}",
                    endpoint.host, endpoint.path
                ),
                _ => format!("HTTP {status} instead of a WebSocket upgrade"),
            };
            Error::Handshake {
                url,
                status,
                message,
            }
        }
        WsError::Tls(tls) => tls_error(tls.to_string(), trust, fingerprint),
        WsError::Io(io) => {
            // rustls reports certificate problems as io errors wrapping rustls::Error.
            if let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_error(inner.to_string(), trust, fingerprint);
            }
            Error::Connect { url, source: io }
        }
        WsError::Url(u) => Error::InvalidUrl {
            url,
            reason: u.to_string(),
        },
        other => Error::WebSocket(other.to_string()),
    }
}

fn tls_error(detail: String, trust: &Trust, fingerprint: Option<Fingerprint>) -> Error {
    let shown = fingerprint.map(|f| f.to_string());
    let message = match (trust, &shown) {
        (Trust::Pinned(want), Some(got)) => format!(
            "the server's certificate does not match the pinned fingerprint.\n  expected {want}\n  got      {got}\nIf the certificate was replaced on purpose, pin the new one; otherwise someone may be intercepting the connection"
        ),
        (Trust::System, Some(got)) => format!(
            "the server's certificate is not trusted by this system ({detail}).\nIts SHA-256 fingerprint is {got}.\nCompare it with the one in the TrueNAS UI (System > Certificates), then pass --fingerprint {got}"
        ),
        _ => format!("handshake failed: {detail}"),
    };
    Error::Tls {
        message,
        fingerprint: shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_openssl_forms() {
        let hex = "ab".repeat(32);
        let colon = vec!["AB"; 32].join(":");
        let want: Fingerprint = hex.parse().unwrap();
        assert_eq!(want.to_string(), colon);
        assert_eq!(colon.parse::<Fingerprint>().unwrap(), want);
        assert_eq!(
            format!("sha256 Fingerprint={colon}")
                .parse::<Fingerprint>()
                .unwrap(),
            want
        );
        assert_eq!(
            format!("SHA256 Fingerprint={}", colon.to_lowercase())
                .parse::<Fingerprint>()
                .unwrap(),
            want
        );
        let err = "AB:CD".parse::<Fingerprint>().unwrap_err();
        assert!(err.contains("not a SHA-256 fingerprint"), "{err}");
    }

    #[test]
    fn endpoints_parse_and_classify() {
        let e = Endpoint::parse("wss://nas.local/api/current").unwrap();
        assert!(e.tls && !e.is_loopback() && e.is_secure_transport() && !e.is_legacy());
        let e = Endpoint::parse("ws://127.0.0.1:6000/api/current").unwrap();
        assert!(!e.tls && e.is_loopback() && e.is_secure_transport());
        let e = Endpoint::parse("ws://[::1]:80/websocket").unwrap();
        assert_eq!(e.host, "::1");
        assert!(e.is_loopback() && e.is_legacy());
        let e = Endpoint::parse("ws://10.0.0.5/api/current").unwrap();
        assert!(!e.is_secure_transport());
        assert_eq!(e.dialect(), Dialect::JsonRpc);
        assert_eq!(
            e.legacy_fallback().as_deref(),
            Some("ws://10.0.0.5/websocket")
        );
        let e = Endpoint::parse("wss://[::1]:8443/websocket").unwrap();
        assert_eq!(e.dialect(), Dialect::Legacy);
        assert_eq!(e.legacy_fallback(), None);
        let pinned = Endpoint::parse("wss://nas/api/v25.04.0").unwrap();
        assert_eq!(pinned.legacy_fallback(), None);
        assert_eq!(
            pinned.current_fallback().as_deref(),
            Some("wss://nas/api/current")
        );
        for other in [
            "wss://nas/api/current",
            "wss://nas/websocket",
            "wss://nas/api/vx",
        ] {
            assert_eq!(Endpoint::parse(other).unwrap().current_fallback(), None);
        }
        for bad in [
            "nas/api/current",
            "https://nas/api/current",
            "wss:///api/current",
            "wss://nas",
            "ftp://nas/x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// The host is the one the connection goes to, whatever the URL hides after `?`, `#` or
    /// `@`; user info is refused and never repeated.
    #[test]
    fn the_host_is_the_connections_host_in_every_url_form() {
        // The connection's own parse of each URL, for comparison.
        let connects_to = |url: &str| {
            url.into_client_request()
                .ok()
                .and_then(|r| r.uri().host().map(str::to_owned))
        };
        for (url, host, loopback) in [
            ("ws://127.0.0.1:6000/api/current", "127.0.0.1", true),
            ("ws://localhost/api/current", "localhost", true),
            ("ws://LOCALHOST:1/api/current", "LOCALHOST", true),
            ("ws://[::1]:8080/api/current", "::1", true),
            (
                "ws://[::ffff:127.0.0.1]/api/current",
                "::ffff:127.0.0.1",
                true,
            ),
            (
                "ws://localhost.evil.com/api/current",
                "localhost.evil.com",
                false,
            ),
            (
                "ws://127.0.0.1.nip.io/api/current",
                "127.0.0.1.nip.io",
                false,
            ),
            (
                "ws://nas.invalid/api/current?@127.0.0.1",
                "nas.invalid",
                false,
            ),
            ("ws://[fe80::1]/api/current", "fe80::1", false),
        ] {
            let e = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(e.host, host, "{url}");
            assert_eq!(e.is_loopback(), loopback, "{url}");
            let conn = connects_to(url).unwrap();
            assert_eq!(
                conn.trim_start_matches('[').trim_end_matches(']'),
                host,
                "{url}"
            );
        }
        // Forms that used to read 127.0.0.1 after the `@` while the connection went to
        // nas.invalid: refused now (no path, or a user name).
        for url in [
            "ws://nas.invalid?@127.0.0.1/api/current",
            "ws://nas.invalid#@127.0.0.1/api/current",
            "ws://nas.invalid\\@127.0.0.1/api/current",
        ] {
            let e = Endpoint::parse(url);
            assert!(
                e.as_ref().is_err() || e.as_ref().is_ok_and(|e| !e.is_loopback()),
                "{url}: {e:?}"
            );
        }
        for url in [
            "wss://admin:PW-s3cret@nas.local/api/current",
            "ws://admin@127.0.0.1/api/current",
            "ws://x:PW-s3cret@127.0.0.1:80/api/current",
        ] {
            let err = Endpoint::parse(url).unwrap_err().to_string();
            assert!(
                err.contains("a user name or password in the URL is not accepted"),
                "{err}"
            );
            assert!(
                !err.contains("PW-s3cret") && !err.contains("admin"),
                "{err}"
            );
        }
        assert_eq!(
            shown_url("wss://admin:pw@nas/api/current"),
            "wss://…@nas/api/current"
        );
        assert_eq!(shown_url("wss://nas/api?x=a@b"), "wss://nas/api?x=a@b");
    }
}
