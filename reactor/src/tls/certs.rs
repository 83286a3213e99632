//! Certificates that just work: load a chain and key from PEM files with
//! errors that name the file and the problem, or generate a self-signed
//! certificate once and keep it in a state directory.
//!
//! Gemini clients pin a server certificate on first use, so a generated
//! certificate must survive restarts: it is written atomically (temp file +
//! rename, key mode 0600) and reused while it is valid for the requested
//! names.
//!
//! Generated keys are ECDSA P-256 ([`KeyAlgorithm::EcdsaP256`]): Ed25519 is
//! cheaper to sign with, but Chromium, Firefox and Safari do not accept
//! Ed25519 server certificates, and the HTTPS/WSS listener serves browsers.
//! P-256 is supported by every TLS stack Gemini clients use (OpenSSL,
//! Go crypto/tls, rustls, GnuTLS, Python's `ssl`).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use super::info::rfc3339;

/// File name of the generated certificate inside the state directory.
pub const GENERATED_CERT_FILE: &str = "cert.pem";
/// File name of the generated private key inside the state directory.
pub const GENERATED_KEY_FILE: &str = "key.pem";
/// Lifetime of a generated certificate: long, because Gemini clients pin it
/// and an expiry forces every client to re-trust a new one.
pub const GENERATED_VALIDITY_DAYS: i64 = 20 * 365;
/// Backdating of a generated certificate, so a peer whose clock is a little
/// behind ours does not see it as not yet valid.
pub const GENERATED_BACKDATE_SECS: i64 = 24 * 3600;
/// Largest certificate or key file read: real ones are a few KiB; this stops
/// a mistaken path (a disk image, /dev/zero) from eating memory.
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// Why a certificate or key could not be loaded, checked or generated. Every
/// variant names the file concerned.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertError {
    /// The file does not exist.
    Missing(PathBuf),
    /// The file exists but could not be read (permissions, a directory, too
    /// large, an I/O error).
    Unreadable(PathBuf, io::Error),
    /// The file holds no PEM `CERTIFICATE` block.
    NoCertificate(PathBuf),
    /// The file holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    NoKey(PathBuf),
    /// A PEM block or certificate could not be decoded.
    Malformed(PathBuf, String),
    /// The key is of a kind the crypto provider cannot sign with.
    UnsupportedKey(PathBuf, String),
    /// The private key does not belong to the certificate.
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate's not-after date is in the past (RFC 3339 given).
    Expired(PathBuf, String),
    /// The certificate's not-before date is in the future (RFC 3339 given).
    NotYetValid(PathBuf, String),
    /// rcgen could not generate a certificate (for instance a host name that
    /// is not a valid DNS name).
    Generate(String),
    /// The state directory or a generated file could not be written.
    Write(PathBuf, io::Error),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Missing(p) => write!(f, "{}: file not found", p.display()),
            CertError::Unreadable(p, e) => write!(f, "{}: cannot read: {e}", p.display()),
            CertError::NoCertificate(p) => {
                write!(f, "{}: no PEM CERTIFICATE block in file", p.display())
            }
            CertError::NoKey(p) => write!(
                f,
                "{}: no PEM private key (PKCS#8, RSA or EC PRIVATE KEY) in file",
                p.display()
            ),
            CertError::Malformed(p, why) => write!(f, "{}: malformed: {why}", p.display()),
            CertError::UnsupportedKey(p, why) => {
                write!(f, "{}: unsupported private key: {why}", p.display())
            }
            CertError::KeyMismatch { cert, key } => write!(
                f,
                "{}: private key does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            CertError::Expired(p, when) => {
                write!(f, "{}: certificate expired at {when}", p.display())
            }
            CertError::NotYetValid(p, when) => {
                write!(f, "{}: certificate not valid before {when}", p.display())
            }
            CertError::Generate(why) => write!(f, "cannot generate a certificate: {why}"),
            CertError::Write(p, e) => write!(f, "{}: cannot write: {e}", p.display()),
        }
    }
}

impl std::error::Error for CertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CertError::Unreadable(_, e) | CertError::Write(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Key algorithm for generated certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256: accepted by every client. The default.
    EcdsaP256,
    /// Ed25519: cheaper handshakes, but refused by browsers.
    Ed25519,
}

impl KeyAlgorithm {
    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A certificate generated (or reused) in a state directory.
#[derive(Debug)]
pub struct GeneratedCert {
    /// Path of the PEM certificate.
    pub cert_path: PathBuf,
    /// Path of the PEM private key (mode 0600).
    pub key_path: PathBuf,
    /// The loaded chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// `SHA256:` + upper-case hex of the certificate DER: what a client pins.
    pub fingerprint: String,
    /// True when it was created now, false when an existing one was reused.
    pub created: bool,
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// SHA-256 of a certificate's DER encoding.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// `SHA256:` followed by the upper-case hex SHA-256 of `der`: Jetforce's
/// `TLS_CLIENT_HASH` format, also used to log our own fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = sha256(der);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("SHA256:");
    push_hex_upper(&mut out, &digest);
    out
}

/// Appends upper-case hex of `bytes` to `out`.
pub(crate) fn push_hex_upper(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, CertError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CertError::Missing(path.to_path_buf()));
        }
        Err(e) => return Err(CertError::Unreadable(path.to_path_buf(), e)),
    };
    if meta.len() > MAX_PEM_FILE_BYTES {
        return Err(CertError::Unreadable(
            path.to_path_buf(),
            io::Error::new(io::ErrorKind::InvalidData, "file too large"),
        ));
    }
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CertError::Missing(path.to_path_buf()),
        _ => CertError::Unreadable(path.to_path_buf(), e),
    })
}

/// Parses every PEM `CERTIFICATE` block of `pem` (other blocks are skipped,
/// so a combined cert+key file works).
pub fn parse_chain(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        match item {
            Ok(cert) => chain.push(cert),
            Err(e) => return Err(CertError::Malformed(path.to_path_buf(), e.to_string())),
        }
    }
    if chain.is_empty() {
        return Err(CertError::NoCertificate(path.to_path_buf()));
    }
    Ok(chain)
}

/// Parses the first private key (PKCS#8, PKCS#1 or SEC1) in `pem`.
pub fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    use rustls::pki_types::pem::Error as PemError;
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(PemError::NoItemsFound) => Err(CertError::NoKey(path.to_path_buf())),
        Err(e) => Err(CertError::Malformed(path.to_path_buf(), e.to_string())),
    }
}

/// Loads a certificate chain (end-entity first) from a PEM file.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    parse_chain(&read_limited(path)?, path)
}

/// Loads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    parse_key(&read_limited(path)?, path)
}

/// Checks that `der` is a well-formed certificate valid at `now` (Unix
/// seconds).
pub fn check_validity(der: &[u8], now: i64, path: &Path) -> Result<(), CertError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| CertError::Malformed(path.to_path_buf(), e.to_string()))?;
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        return Err(CertError::Expired(
            path.to_path_buf(),
            rfc3339(&validity.not_after),
        ));
    }
    if validity.not_before.timestamp() > now {
        return Err(CertError::NotYetValid(
            path.to_path_buf(),
            rfc3339(&validity.not_before),
        ));
    }
    Ok(())
}

/// Builds a signing key from a chain and key, checking that the key belongs
/// to the end-entity certificate and that the certificate is valid now.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, CertError> {
    let Some(end_entity) = chain.first() else {
        return Err(CertError::NoCertificate(cert_path.to_path_buf()));
    };
    check_validity(end_entity, unix_now(), cert_path)?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::UnsupportedKey(key_path.to_path_buf(), e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        // The provider cannot derive the public key: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            })
        }
        Err(e) => Err(CertError::Malformed(cert_path.to_path_buf(), e.to_string())),
    }
}

/// Loads and checks a chain and key from PEM files (they may be the same
/// file).
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = load_chain(cert_path)?;
    let key = load_key(key_path)?;
    certified_key(chain, key, provider, cert_path, key_path)
}

/// The names a generated certificate must cover: the given host names,
/// `localhost`, each once, case-insensitively, in order.
fn wanted_names(hostnames: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(hostnames.len() + 1);
    for name in hostnames
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .chain(std::iter::once("localhost".to_string()))
    {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// True when the certificate's SANs include every name (DNS names
/// case-insensitively, IP literals as IP SANs).
fn covers_names(der: &[u8], names: &[String]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    names.iter().all(|name| {
        let ip: Option<IpAddr> = name.parse().ok();
        san.value.general_names.iter().any(|gn| match (gn, ip) {
            (GeneralName::DNSName(dns), None) => dns.eq_ignore_ascii_case(name),
            (GeneralName::IPAddress(bytes), Some(IpAddr::V4(v4))) => *bytes == v4.octets(),
            (GeneralName::IPAddress(bytes), Some(IpAddr::V6(v6))) => *bytes == v6.octets(),
            _ => false,
        })
    })
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory
/// with `mode`, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let werr = |e| CertError::Write(tmp.clone(), e);
    // A stale temp file from a crash would make create_new fail.
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(werr)?;
    file.write_all(bytes).map_err(werr)?;
    // The umask may have narrowed the mode; never widened. Set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(werr)?;
    file.sync_all().map_err(werr)?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| CertError::Write(path.to_path_buf(), e))
}

/// Returns the certificate kept in `state_dir` when it is loadable, valid
/// now and covers `hostnames` (+ `localhost`); otherwise generates a new
/// self-signed one with `alg`, stores it (`cert.pem`, `key.pem` mode 0600)
/// and returns it. Log `fingerprint` and the paths.
pub fn generate_or_load(
    state_dir: &Path,
    hostnames: &[String],
    alg: KeyAlgorithm,
    provider: &CryptoProvider,
) -> Result<GeneratedCert, CertError> {
    let cert_path = state_dir.join(GENERATED_CERT_FILE);
    let key_path = state_dir.join(GENERATED_KEY_FILE);
    let names = wanted_names(hostnames);

    if let Ok(key) = load_certified_key(&cert_path, &key_path, provider) {
        if let Some(der) = key.cert.first() {
            if covers_names(der, &names) {
                let fingerprint = fingerprint(der);
                return Ok(GeneratedCert {
                    cert_path,
                    key_path,
                    key,
                    fingerprint,
                    created: false,
                });
            }
        }
    }

    fs::create_dir_all(state_dir).map_err(|e| CertError::Write(state_dir.to_path_buf(), e))?;
    let (cert_pem, key_pem) = generate_pem(&names, alg, unix_now())?;
    // Key first: a crash between the renames leaves a mismatched pair, which
    // fails to load and is regenerated at the next start.
    write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
    let key = load_certified_key(&cert_path, &key_path, provider)?;
    let fingerprint = key.cert.first().map(|d| fingerprint(d)).unwrap_or_default();
    Ok(GeneratedCert {
        cert_path,
        key_path,
        key,
        fingerprint,
        created: true,
    })
}

/// Generates a self-signed certificate for `names` (the first is the common
/// name; IP literals become IP SANs) valid from `now` minus a day for
/// [`GENERATED_VALIDITY_DAYS`]. Returns (certificate PEM, PKCS#8 key PEM).
pub fn generate_pem(
    names: &[String],
    alg: KeyAlgorithm,
    now: i64,
) -> Result<(String, String), CertError> {
    let gen = |e: rcgen::Error| CertError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(gen)?;
    let cn = names.first().cloned().unwrap_or_else(|| "localhost".into());
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let start = now.saturating_sub(GENERATED_BACKDATE_SECS);
    let end = now.saturating_add(GENERATED_VALIDITY_DAYS.saturating_mul(86_400));
    let to_time = |secs: i64| {
        ASN1Time::from_timestamp(secs)
            .map(|t| t.to_datetime())
            .map_err(|e| CertError::Generate(e.to_string()))
    };
    params.not_before = to_time(start)?;
    params.not_after = to_time(end)?;
    let key = rcgen::KeyPair::generate_for(alg.rcgen()).map_err(gen)?;
    let cert = params.self_signed(&key).map_err(gen)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::provider::provider;
    use super::*;

    /// A temporary directory under /tmp, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("torsion-tls-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// RSA-2048 key in PKCS#1 (`RSA PRIVATE KEY`) and its self-signed
    /// certificate (CN=rsa.test, valid 2026..2126), made with openssl.
    pub(crate) const RSA_PKCS1_KEY: &str = include_str!("testdata/rsa-pkcs1.key");
    pub(crate) const RSA_CERT: &str = include_str!("testdata/rsa.crt");
    /// P-256 key in SEC1 (`EC PRIVATE KEY`) and its self-signed certificate
    /// (CN=ec.test, valid 2026..2126), made with openssl.
    pub(crate) const EC_SEC1_KEY: &str = include_str!("testdata/ec-sec1.key");
    pub(crate) const EC_CERT: &str = include_str!("testdata/ec.crt");

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_pkcs8_pkcs1_and_sec1() {
        let dir = TempDir::new("load");
        let (cert, key) =
            generate_pem(&["a.test".into()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
        assert!(key.contains("BEGIN PRIVATE KEY"));
        let cases = [
            (cert.as_str(), key.as_str()),
            (RSA_CERT, RSA_PKCS1_KEY),
            (EC_CERT, EC_SEC1_KEY),
        ];
        for (i, (c, k)) in cases.iter().enumerate() {
            let cp = write(&dir.0, &format!("c{i}.pem"), c);
            let kp = write(&dir.0, &format!("k{i}.pem"), k);
            let ck = load_certified_key(&cp, &kp, &provider()).unwrap();
            assert_eq!(ck.cert.len(), 1);
            // A combined file (cert + key) works for both paths.
            let both = write(&dir.0, &format!("b{i}.pem"), &format!("{c}{k}"));
            load_certified_key(&both, &both, &provider()).unwrap();
        }
        assert!(RSA_PKCS1_KEY.contains("BEGIN RSA PRIVATE KEY"));
        assert!(EC_SEC1_KEY.contains("BEGIN EC PRIVATE KEY"));
    }

    #[test]
    fn errors_name_the_file_and_problem() {
        let dir = TempDir::new("errors");
        let p = provider();
        let missing = dir.0.join("nope.pem");
        let e = load_certified_key(&missing, &missing, &p).unwrap_err();
        assert!(
            matches!(e, CertError::Missing(ref f) if *f == missing),
            "{e}"
        );
        assert!(e.to_string().contains("nope.pem"));

        let empty = write(&dir.0, "empty.pem", "hello\n");
        let e = load_chain(&empty).unwrap_err();
        assert!(matches!(e, CertError::NoCertificate(_)), "{e}");
        let e = load_key(&empty).unwrap_err();
        assert!(matches!(e, CertError::NoKey(_)), "{e}");

        let e = load_chain(&dir.0).unwrap_err();
        assert!(matches!(e, CertError::Unreadable(..)), "{e}");

        let (c1, _) =
            generate_pem(&["a.test".into()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
        let (_, k2) =
            generate_pem(&["a.test".into()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
        let cp = write(&dir.0, "c.pem", &c1);
        let kp = write(&dir.0, "k.pem", &k2);
        let e = load_certified_key(&cp, &kp, &p).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not match"));

        // Expired: valid for 20 years from 60 years ago.
        let old = unix_now() - 60 * 365 * 86_400;
        let (c, k) = generate_pem(&["old.test".into()], KeyAlgorithm::EcdsaP256, old).unwrap();
        let cp = write(&dir.0, "old.pem", &c);
        let kp = write(&dir.0, "oldk.pem", &k);
        let e = load_certified_key(&cp, &kp, &p).unwrap_err();
        assert!(matches!(e, CertError::Expired(..)), "{e}");
        assert!(e.to_string().contains("old.pem"));

        let future = unix_now() + 10 * 86_400;
        let (c, k) = generate_pem(&["new.test".into()], KeyAlgorithm::EcdsaP256, future).unwrap();
        let cp = write(&dir.0, "new.pem", &c);
        let kp = write(&dir.0, "newk.pem", &k);
        let e = load_certified_key(&cp, &kp, &p).unwrap_err();
        assert!(matches!(e, CertError::NotYetValid(..)), "{e}");

        let bad = write(
            &dir.0,
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let kp = write(&dir.0, "ok.pem", &k);
        let e = load_certified_key(&bad, &kp, &p).unwrap_err();
        assert!(matches!(e, CertError::Malformed(..)), "{e}");
    }

    #[test]
    fn generated_cert_persists_across_starts() {
        let dir = TempDir::new("persist");
        let state = dir.0.join("state");
        let names = vec!["Example.org".to_string(), "127.0.0.1".to_string()];
        let p = provider();
        let first = generate_or_load(&state, &names, KeyAlgorithm::EcdsaP256, &p).unwrap();
        assert!(first.created);
        let second = generate_or_load(&state, &names, KeyAlgorithm::EcdsaP256, &p).unwrap();
        assert!(!second.created);
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.key.cert, second.key.cert);
        assert!(first.fingerprint.starts_with("SHA256:"));
        assert_eq!(first.fingerprint.len(), 7 + 64);

        let mode = fs::metadata(&first.key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // SANs: each host name, localhost, and the IP as an IP SAN.
        let der = first.key.cert[0].as_ref();
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let gns = &san.value.general_names;
        assert!(gns.contains(&GeneralName::DNSName("example.org")));
        assert!(gns.contains(&GeneralName::DNSName("localhost")));
        assert!(gns.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        assert!(covers_names(der, &wanted_names(&["EXAMPLE.org".into()])));

        // A new host name means a new certificate.
        let third =
            generate_or_load(&state, &["other.org".into()], KeyAlgorithm::EcdsaP256, &p).unwrap();
        assert!(third.created);
        assert_ne!(third.fingerprint, first.fingerprint);

        // A corrupted pair is regenerated rather than refused.
        fs::write(&third.key_path, "garbage").unwrap();
        let fourth =
            generate_or_load(&state, &["other.org".into()], KeyAlgorithm::EcdsaP256, &p).unwrap();
        assert!(fourth.created);
        // No temp files are left behind.
        let leftovers: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn ed25519_generation_works() {
        let (c, k) = generate_pem(&["e.test".into()], KeyAlgorithm::Ed25519, unix_now()).unwrap();
        let chain = parse_chain(c.as_bytes(), Path::new("c")).unwrap();
        let key = parse_key(k.as_bytes(), Path::new("k")).unwrap();
        certified_key(chain, key, &provider(), Path::new("c"), Path::new("k")).unwrap();
    }

    #[test]
    fn fingerprint_format() {
        let f = fingerprint(b"abc");
        assert_eq!(
            f,
            "SHA256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }
}
