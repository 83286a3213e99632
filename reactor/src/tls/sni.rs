//! Server certificates by name (SNI virtual hosts) with a default for
//! clients that send no name, swappable at run time (SIGHUP or an API call)
//! without touching established connections.
//!
//! The store is shared between worker threads, so it is an
//! `Arc<RwLock<Arc<Snapshot>>>`: a handshake takes the read lock just long
//! enough to clone one `Arc<CertifiedKey>`; a reload builds a whole new
//! snapshot off-lock and swaps it in. Established sessions keep the key they
//! were handed.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::{self, CertError, KeyAlgorithm};
use super::provider::provider;

/// Where a certificate comes from, so reload knows how to re-read it.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// A PEM chain and a PEM key (may be the same file), re-read on reload.
    Files {
        /// Certificate chain, end-entity first (`--tls-certfile`).
        cert: PathBuf,
        /// Private key (`--tls-keyfile`).
        key: PathBuf,
    },
    /// A self-signed certificate kept in `state_dir` for `hostnames`,
    /// generated on first use (see [`certs::generate_or_load`]).
    Generated {
        /// Directory holding `cert.pem` and `key.pem`.
        state_dir: PathBuf,
        /// Names the certificate must cover (`localhost` is added).
        hostnames: Vec<String>,
    },
    /// A key already in memory (tests, embedded certificates); reload keeps it.
    Static(Arc<CertifiedKey>),
}

impl CertSource {
    fn load(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, CertError> {
        match self {
            CertSource::Files { cert, key } => certs::load_certified_key(cert, key, provider),
            CertSource::Generated {
                state_dir,
                hostnames,
            } => certs::generate_or_load(state_dir, hostnames, KeyAlgorithm::EcdsaP256, provider)
                .map(|g| g.key),
            CertSource::Static(key) => Ok(key.clone()),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Lower-case names without trailing dot; `*.example.org` matches one
    /// label under example.org.
    names: Vec<String>,
    source: CertSource,
    key: Arc<CertifiedKey>,
}

#[derive(Debug, Default)]
struct Snapshot {
    entries: Vec<Entry>,
    /// Index into `entries` of the certificate for clients without (or with
    /// an unknown) SNI.
    default: usize,
}

/// Some certificates could not be reloaded; they keep serving the old ones.
#[derive(Debug)]
pub struct ReloadError {
    /// Entries whose new files were loaded and swapped in.
    pub reloaded: usize,
    /// One error per entry that kept its old certificate.
    pub errors: Vec<CertError>,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate reload: {} reloaded, {} kept old certificate",
            self.reloaded,
            self.errors.len()
        )?;
        for e in &self.errors {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReloadError {}

/// A shared, reloadable set of server certificates chosen by SNI. Cloning
/// gives another handle to the same store.
#[derive(Debug, Clone)]
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    state: Arc<RwLock<Arc<Snapshot>>>,
}

impl Default for CertStore {
    fn default() -> Self {
        Self::new()
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn matches(pattern: &str, name: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix("*.") {
        // One label: "a.example.org" matches, "example.org" and
        // "b.a.example.org" do not.
        match name.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        }
    } else {
        pattern.eq_ignore_ascii_case(name)
    }
}

impl CertStore {
    /// An empty store using the module's crypto provider. Add at least one
    /// certificate before handshakes: an empty store refuses them.
    pub fn new() -> Self {
        CertStore {
            provider: provider(),
            state: Arc::new(RwLock::new(Arc::new(Snapshot::default()))),
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a reload panicked mid-swap; the Arc
        // inside is still a complete snapshot.
        match self.state.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn replace(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        match self.state.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
    }

    fn insert(
        &self,
        names: &[&str],
        source: CertSource,
        make_default: bool,
    ) -> Result<String, CertError> {
        let key = source.load(&self.provider)?;
        let fingerprint = key
            .cert
            .first()
            .map(|c| certs::fingerprint(c))
            .unwrap_or_default();
        let old = self.snapshot();
        let mut entries = old.entries.clone();
        let names: Vec<String> = names.iter().map(|n| normalise(n)).collect();
        // A name belongs to one entry: the newest wins.
        for e in &mut entries {
            e.names.retain(|n| !names.contains(n));
        }
        let was_empty = entries.is_empty();
        entries.push(Entry { names, source, key });
        let default = if make_default || was_empty {
            entries.len().saturating_sub(1)
        } else {
            old.default
        };
        self.replace(Snapshot { entries, default });
        Ok(fingerprint)
    }

    /// Loads a certificate and serves it to clients asking for any of
    /// `names` (case-insensitive; `*.example.org` wildcards one label). The
    /// first certificate added is also the default. Returns its fingerprint
    /// (`SHA256:HEX`) for the log.
    pub fn add(&self, names: &[&str], source: CertSource) -> Result<String, CertError> {
        self.insert(names, source, false)
    }

    /// Like [`Self::add`], and makes it the certificate for clients that send
    /// no SNI or an unknown name.
    pub fn add_default(&self, names: &[&str], source: CertSource) -> Result<String, CertError> {
        self.insert(names, source, true)
    }

    /// The certificate for a client asking for `server_name`: exact name,
    /// then wildcard, then the default. `None` only when the store is empty.
    pub fn resolve_name(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let snap = self.snapshot();
        if let Some(name) = server_name {
            let name = name.trim_end_matches('.');
            let exact = snap.entries.iter().find(|e| {
                e.names
                    .iter()
                    .any(|p| !p.starts_with("*.") && matches(p, name))
            });
            let found = exact.or_else(|| {
                snap.entries.iter().find(|e| {
                    e.names
                        .iter()
                        .any(|p| p.starts_with("*.") && matches(p, name))
                })
            });
            if let Some(e) = found {
                return Some(e.key.clone());
            }
        }
        snap.entries.get(snap.default).map(|e| e.key.clone())
    }

    /// Re-reads every file-backed certificate and swaps in the new ones for
    /// future handshakes. An entry whose new files fail to load keeps its
    /// old certificate and is reported in the error; the others are swapped
    /// anyway. Returns how many entries were re-read.
    pub fn reload(&self) -> Result<usize, ReloadError> {
        let old = self.snapshot();
        let mut entries = old.entries.clone();
        let mut errors = Vec::new();
        let mut reloaded = 0usize;
        for e in &mut entries {
            if matches!(e.source, CertSource::Static(_)) {
                continue;
            }
            match e.source.load(&self.provider) {
                Ok(key) => {
                    e.key = key;
                    reloaded = reloaded.saturating_add(1);
                }
                Err(err) => errors.push(err),
            }
        }
        self.replace(Snapshot {
            entries,
            default: old.default,
        });
        if errors.is_empty() {
            Ok(reloaded)
        } else {
            Err(ReloadError { reloaded, errors })
        }
    }

    /// (names, fingerprint) of every certificate served, default first, for
    /// the start-up log.
    pub fn fingerprints(&self) -> Vec<(Vec<String>, String)> {
        let snap = self.snapshot();
        let mut out: Vec<(Vec<String>, String)> = Vec::with_capacity(snap.entries.len());
        let order = std::iter::once(snap.default)
            .chain((0..snap.entries.len()).filter(|i| *i != snap.default));
        for i in order {
            if let Some(e) = snap.entries.get(i) {
                let fp = e
                    .key
                    .cert
                    .first()
                    .map(|c| certs::fingerprint(c))
                    .unwrap_or_default();
                out.push((e.names.clone(), fp));
            }
        }
        out
    }

    /// True when no certificate has been added.
    pub fn is_empty(&self) -> bool {
        self.snapshot().entries.is_empty()
    }
}

/// rustls's view of a [`CertStore`].
#[derive(Debug)]
pub(crate) struct SniResolver(pub(crate) CertStore);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.resolve_name(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::super::certs::tests::TempDir;
    use super::super::certs::{generate_pem, unix_now};
    use super::*;

    fn files(dir: &TempDir, tag: &str, name: &str) -> CertSource {
        let (c, k) =
            generate_pem(&[name.to_string()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
        let cert = dir.0.join(format!("{tag}.crt"));
        let key = dir.0.join(format!("{tag}.key"));
        std::fs::write(&cert, c).unwrap();
        std::fs::write(&key, k).unwrap();
        CertSource::Files { cert, key }
    }

    fn fp(k: &Arc<CertifiedKey>) -> String {
        certs::fingerprint(&k.cert[0])
    }

    #[test]
    fn resolves_by_name_wildcard_and_default() {
        let dir = TempDir::new("sni");
        let store = CertStore::new();
        assert!(store.is_empty());
        assert!(store.resolve_name(Some("a.test")).is_none());
        let fa = store.add(&["a.test"], files(&dir, "a", "a.test")).unwrap();
        let fb = store.add(&["B.Test."], files(&dir, "b", "b.test")).unwrap();
        let fw = store
            .add(&["*.wild.test"], files(&dir, "w", "x.wild.test"))
            .unwrap();
        assert_ne!(fa, fb);
        assert_eq!(fp(&store.resolve_name(Some("a.test")).unwrap()), fa);
        assert_eq!(fp(&store.resolve_name(Some("b.TEST")).unwrap()), fb);
        assert_eq!(fp(&store.resolve_name(Some("b.test.")).unwrap()), fb);
        assert_eq!(fp(&store.resolve_name(Some("x.wild.test")).unwrap()), fw);
        // Wildcards cover one label only; unknown names get the default.
        assert_eq!(fp(&store.resolve_name(Some("y.x.wild.test")).unwrap()), fa);
        assert_eq!(fp(&store.resolve_name(Some("wild.test")).unwrap()), fa);
        assert_eq!(fp(&store.resolve_name(None).unwrap()), fa);

        let fd = store
            .add_default(&["d.test"], files(&dir, "d", "d.test"))
            .unwrap();
        assert_eq!(fp(&store.resolve_name(None).unwrap()), fd);
        assert_eq!(fp(&store.resolve_name(Some("nope.test")).unwrap()), fd);
        assert_eq!(store.fingerprints()[0].1, fd);
        assert_eq!(store.fingerprints().len(), 4);
    }

    #[test]
    fn reload_swaps_good_files_and_keeps_old_on_bad() {
        let dir = TempDir::new("reload");
        let store = CertStore::new();
        let src = files(&dir, "a", "a.test");
        let first = store.add(&["a.test"], src.clone()).unwrap();
        let other = files(&dir, "b", "b.test");
        store.add(&["b.test"], other).unwrap();

        // New good files for a.test.
        let CertSource::Files { cert, key } = &src else {
            unreachable!()
        };
        let (c, k) = generate_pem(&["a.test".into()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
        std::fs::write(cert, &c).unwrap();
        std::fs::write(key, &k).unwrap();
        assert_eq!(store.reload().unwrap(), 2);
        let second = fp(&store.resolve_name(Some("a.test")).unwrap());
        assert_ne!(first, second);

        // A bad key: the old certificate stays, the error names the file.
        std::fs::write(key, "not a key").unwrap();
        let err = store.reload().unwrap_err();
        assert_eq!(err.reloaded, 1);
        assert_eq!(err.errors.len(), 1);
        assert!(err.to_string().contains("a.key"), "{err}");
        assert_eq!(fp(&store.resolve_name(Some("a.test")).unwrap()), second);

        // Removing the file is also kept-old.
        std::fs::remove_file(cert).unwrap();
        assert!(matches!(
            store.reload().unwrap_err().errors[0],
            CertError::Missing(_)
        ));
        assert_eq!(fp(&store.resolve_name(Some("a.test")).unwrap()), second);
    }

    #[test]
    fn wildcard_matching() {
        assert!(matches("*.a.b", "x.a.b"));
        assert!(matches("*.a.b", "X.A.B"));
        assert!(!matches("*.a.b", ".a.b"));
        assert!(!matches("*.a.b", "a.b"));
        assert!(!matches("*.a.b", "y.x.a.b"));
        assert!(matches("a.b", "A.B"));
        assert!(!matches("a.b", "a.bc"));
    }
}
