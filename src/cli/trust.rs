//! Trust on first use, as ssh does. A `wss://` server whose certificate the system does not
//! trust, and that no `--fingerprint` pins, is shown with its SHA-256 fingerprint and the
//! person at the terminal is asked; a yes is remembered in `known_hosts` (state dir, keyed by
//! `host:port`). A remembered host is pinned from then on, and a changed certificate is
//! refused loudly. Without a terminal an unknown host is refused.
//!
//! The check happens during the TLS handshake, and the client logs in only once the handshake
//! has succeeded, so no credential is sent before trust is settled: an attempt refused for an
//! untrusted certificate ends before login, and the retry after a yes logs in.

use std::path::{Path, PathBuf};

use super::CliError;
use super::prompt::Prompter;
use crate::client::{Client, ConnectOptions, Endpoint, Error, Fingerprint, Trust};
use crate::dirs::create_parent;
use crate::output;

/// A problem with the known-hosts file itself.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    /// It exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `HOST:PORT FINGERPRINT`.
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// It cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One remembered certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    /// `host:port`.
    pub host: String,
    /// The certificate's SHA-256 fingerprint.
    pub fingerprint: Fingerprint,
    /// Its 1-based line in the file.
    pub line: usize,
}

/// The known-hosts file: one `HOST:PORT FINGERPRINT` per line, `#` comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHosts {
    /// Where it lives.
    pub path: PathBuf,
    entries: Vec<KnownHost>,
}

impl KnownHosts {
    /// Read the file; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<KnownHosts, KnownHostsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KnownHostsError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |reason: String| KnownHostsError::Malformed {
                path: path.to_owned(),
                line: i + 1,
                reason,
            };
            let mut parts = line.split_whitespace();
            let (Some(host), Some(fp), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(malformed("expected HOST:PORT FINGERPRINT".into()));
            };
            let fingerprint = fp.parse::<Fingerprint>().map_err(malformed)?;
            entries.push(KnownHost {
                host: host.to_owned(),
                fingerprint,
                line: i + 1,
            });
        }
        Ok(KnownHosts {
            path: path.to_owned(),
            entries,
        })
    }

    /// The remembered certificate of `host` (`host:port`).
    pub fn get(&self, host: &str) -> Option<&KnownHost> {
        self.entries.iter().find(|e| e.host == host)
    }

    /// Remember `fingerprint` for `host`: appended to the file (created private if new).
    pub fn add(&mut self, host: &str, fingerprint: Fingerprint) -> Result<(), KnownHostsError> {
        use std::io::Write as _;
        let write_err = |source| KnownHostsError::Write {
            path: self.path.clone(),
            source,
        };
        create_parent(&self.path).map_err(write_err)?;
        let new = !self.path.exists();
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(write_err)?;
        let mut text = String::new();
        if new {
            text.push_str("# midscript known hosts: HOST:PORT SHA256-FINGERPRINT, one per line\n");
        }
        text.push_str(&format!("{host} {fingerprint}\n"));
        file.write_all(text.as_bytes()).map_err(write_err)?;
        let line = std::fs::read_to_string(&self.path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        self.entries.push(KnownHost {
            host: host.to_owned(),
            fingerprint,
            line,
        });
        Ok(())
    }
}

/// `host:port` of a `ws://` or `wss://` URL, the key of the known-hosts file: the host in
/// lowercase (IPv6 in brackets), the port explicit (443 for wss, 80 for ws by default).
pub fn host_key(url: &str) -> Option<String> {
    let endpoint = Endpoint::parse(url).ok()?;
    let port = endpoint.port;
    let host = endpoint.host.to_ascii_lowercase();
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

fn tls(message: String, fingerprint: Option<Fingerprint>) -> CliError {
    CliError::Client(Error::Tls {
        message,
        fingerprint: fingerprint.map(|f| f.to_string()),
    })
}

/// Connect (and log in, with `options.credentials`) with trust settled as described in the
/// module docs. `known_hosts` is `None` when there is no state folder.
pub async fn open(
    mut options: ConnectOptions,
    known_hosts: Option<&Path>,
    prompter: &dyn Prompter,
) -> Result<Client, CliError> {
    let tofu = options.trust == Trust::System && Endpoint::parse(&options.url).is_ok_and(|e| e.tls);
    let Some(host) = host_key(&options.url).filter(|_| tofu) else {
        return Ok(Client::connect(options).await?);
    };
    let mut known = match known_hosts {
        Some(p) => Some(KnownHosts::load(p).map_err(|e| CliError::File(e.to_string()))?),
        None => None,
    };
    if let Some(entry) = known.as_ref().and_then(|k| k.get(&host)).cloned() {
        options.trust = Trust::Pinned(entry.fingerprint);
        return match Client::connect(options).await {
            Err(Error::Tls {
                fingerprint: Some(got),
                ..
            }) if got.parse::<Fingerprint>().ok() != Some(entry.fingerprint) => {
                let path = known.map(|k| k.path).unwrap_or_default();
                Err(tls(
                    format!(
                        "THE CERTIFICATE OF {host} HAS CHANGED since you accepted it. Refusing to connect.\n  \
                         known    {}\n  \
                         now      {got}\n\
                         Someone may be intercepting the connection, or the certificate was replaced. \
                         If you know it was replaced, compare the new fingerprint with the one in the TrueNAS UI \
                         (System > Certificates), then remove line {} of {} (or pass --fingerprint {got}).",
                        entry.fingerprint,
                        entry.line,
                        path.display()
                    ),
                    got.parse().ok(),
                ))
            }
            other => Ok(other?),
        };
    }
    let first = Client::connect(options.clone()).await;
    let (detail, seen) = match first {
        Err(Error::Tls {
            message,
            fingerprint: Some(got),
        }) => match got.parse::<Fingerprint>() {
            Ok(fp) => (message, fp),
            Err(_) => {
                return Err(Error::Tls {
                    message,
                    fingerprint: Some(got),
                }
                .into());
            }
        },
        other => return Ok(other?),
    };
    let reason = detail
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map_or("unknown issuer", |(r, _)| r)
        .to_owned();
    if !prompter.interactive() {
        let remember = match &known {
            Some(k) => format!(", and it is not in {}", k.path.display()),
            None => String::new(),
        };
        return Err(tls(
            format!(
                "the certificate of {host} is not trusted by this system ({reason}){remember}.\n\
                 Its SHA-256 fingerprint is {seen}.\n\
                 Compare it with the one in the TrueNAS UI (System > Certificates), then pass --fingerprint {seen}, \
                 or connect once from a terminal to accept and remember it. Nothing was sent to the server."
            ),
            Some(seen),
        ));
    }
    let question = format!(
        "The authenticity of {host} can't be established: its certificate is not trusted by this system ({reason}).\n\
         Certificate SHA-256 fingerprint: {seen}\n\
         Compare it with the one in the TrueNAS UI (System > Certificates).\n\
         Trust this certificate and connect (yes/no/[fingerprint])? "
    );
    loop {
        let answer = prompter.ask(&question).unwrap_or_default();
        let accepted = match answer.to_ascii_lowercase().as_str() {
            "yes" | "y" => true,
            "no" | "n" | "" => false,
            _ => match answer.parse::<Fingerprint>() {
                Ok(fp) if fp == seen => true,
                Ok(_) => {
                    return Err(tls(
                        format!(
                            "the fingerprint you typed does not match the server's ({seen}); not connecting"
                        ),
                        Some(seen),
                    ));
                }
                Err(_) => {
                    output::warn("Please type 'yes', 'no' or the fingerprint.");
                    continue;
                }
            },
        };
        if !accepted {
            return Err(tls(
                format!("{host}: certificate not accepted; nothing was sent to the server"),
                Some(seen),
            ));
        }
        break;
    }
    match known.as_mut() {
        Some(k) => match k.add(&host, seen) {
            Ok(()) => output::warn(&format!(
                "midscript: permanently added {host} ({seen}) to {}",
                k.path.display()
            )),
            Err(e) => output::warn(&format!("midscript: warning: not remembered: {e}")),
        },
        None => output::warn(&format!(
            "midscript: warning: no state folder to remember {host} in; trusting it for this run only"
        )),
    }
    options.trust = Trust::Pinned(seen);
    Ok(Client::connect(options).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::prompt::{NoTerminal, Scripted};
    use crate::client::{Credentials, Secret};
    use crate::mock::{MockConfig, MockServer, TEST_PASSWORD};

    #[test]
    fn host_keys_are_host_and_port() {
        assert_eq!(
            host_key("wss://NAS.local/api/current").as_deref(),
            Some("nas.local:443")
        );
        assert_eq!(host_key("ws://nas/api/current").as_deref(), Some("nas:80"));
        assert_eq!(
            host_key("wss://127.0.0.1:8443/api/current").as_deref(),
            Some("127.0.0.1:8443")
        );
        assert_eq!(
            host_key("wss://[::1]:8443/api/current").as_deref(),
            Some("[::1]:8443")
        );
        assert_eq!(
            host_key("wss://[::1]/api/current").as_deref(),
            Some("[::1]:443")
        );
        // User info is refused, so it names no host key.
        assert_eq!(host_key("wss://u@h:1/api/current"), None);
        assert_eq!(host_key("wss://h:99999/api/current"), None);
        assert_eq!(host_key("nonsense"), None);
    }

    #[test]
    fn known_hosts_round_trip_and_malformed_lines_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/known_hosts");
        let mut k = KnownHosts::load(&path).unwrap();
        assert!(k.get("a:443").is_none());
        let fp = Fingerprint([7; 32]);
        k.add("a:443", fp).unwrap();
        k.add("b:443", Fingerprint([8; 32])).unwrap();
        let again = KnownHosts::load(&path).unwrap();
        assert_eq!(again, k);
        assert_eq!(again.get("a:443").unwrap().fingerprint, fp);
        assert_eq!(again.get("b:443").unwrap().line, 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "# c\n\nx:1 AB:CD\n").unwrap();
        let err = KnownHosts::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("known_hosts:3: \"AB:CD\" is not a SHA-256"),
            "{err}"
        );
        std::fs::write(&path, "x:1\n").unwrap();
        let err = KnownHosts::load(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("known_hosts:1: expected HOST:PORT FINGERPRINT"),
            "{err}"
        );
    }

    async fn wss_mock() -> MockServer {
        let mut c = MockConfig::for_tests();
        c.tls = true;
        MockServer::start(c).await.unwrap()
    }

    #[tokio::test]
    async fn first_use_asks_remembers_and_then_pins() {
        let server = wss_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        let fp: Fingerprint = server.fingerprint().unwrap().parse().unwrap();
        let with_login = || {
            let mut o = ConnectOptions::new(server.url());
            o.credentials = Some(Credentials::Password {
                username: "truenas_admin".into(),
                password: Secret::new(TEST_PASSWORD),
                otp: None,
                otp_prompt: None,
            });
            o
        };

        // No terminal: refused, nothing remembered.
        let err = open(with_login(), Some(&kh), &NoTerminal)
            .await
            .unwrap_err();
        assert_eq!(err.exit(), super::super::Exit::Connection);
        let text = err.to_string();
        assert!(
            text.contains(&fp.to_string()) && text.contains("--fingerprint"),
            "{text}"
        );
        assert!(!kh.exists());

        // "no" at the terminal: refused.
        let no = Scripted::new(&["no"]);
        assert!(open(with_login(), Some(&kh), &no).await.is_err());
        assert!(no.shown.lock().unwrap()[0].contains(&fp.to_string()));
        // Not one frame, let alone a credential, reached the server.
        assert_eq!(server.transcript().lines, vec![]);

        // "yes": connected, pinned, remembered, logged in.
        let yes = Scripted::new(&["yes"]);
        let client = open(with_login(), Some(&kh), &yes).await.unwrap();
        assert_eq!(client.fingerprint(), Some(fp));
        assert!(client.is_authenticated());
        client.close().await;
        let key = host_key(&server.url()).unwrap();
        let known = KnownHosts::load(&kh).unwrap();
        assert_eq!(known.get(&key).unwrap().fingerprint, fp);

        // Known: connects without asking.
        let silent = Scripted::new(&[]);
        let client = open(with_login(), Some(&kh), &silent).await.unwrap();
        client.close().await;
        assert!(silent.shown.lock().unwrap().is_empty());
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_changed_certificate_is_refused_loudly() {
        let server = wss_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        let key = host_key(&server.url()).unwrap();
        let old = Fingerprint([0xAB; 32]);
        KnownHosts::load(&kh).unwrap().add(&key, old).unwrap();
        let yes = Scripted::new(&["yes"]);
        let err = open(ConnectOptions::new(server.url()), Some(&kh), &yes)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HAS CHANGED"), "{text}");
        assert!(text.contains(&old.to_string()), "{text}");
        assert!(text.contains(&server.fingerprint().unwrap()), "{text}");
        assert!(text.contains("remove line 2 of"), "{text}");
        assert_eq!(err.exit(), super::super::Exit::Connection);
        assert!(
            yes.shown.lock().unwrap().is_empty(),
            "a changed host is never offered"
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn typing_the_fingerprint_accepts_and_a_wrong_one_refuses() {
        let server = wss_mock().await;
        let fp = server.fingerprint().unwrap().to_owned();
        let wrong = Scripted::new(&[&"00".repeat(32)]);
        assert!(
            open(ConnectOptions::new(server.url()), None, &wrong)
                .await
                .is_err()
        );
        let right = Scripted::new(&["maybe", &fp]);
        let client = open(ConnectOptions::new(server.url()), None, &right)
            .await
            .unwrap();
        assert_eq!(right.shown.lock().unwrap().len(), 2);
        client.close().await;
        server.shutdown().await;
    }
}
