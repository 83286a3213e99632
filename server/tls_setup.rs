//! Certificates for the binary's TLS listeners: loaded from files or
//! generated once and kept in the state directory (Gemini clients pin a
//! capsule's certificate on first use, so it must not change at restart),
//! one per virtual host chosen by SNI, reloadable on SIGHUP.

use std::path::{Path, PathBuf};

use torsion_reactor::tls::{
    certs, load_ca_roots, CertSource, CertStore, ClientAuth, ServerTlsConfig,
};

/// A certificate chain file and its key file.
pub type CertFiles = (PathBuf, PathBuf);

/// What the flags and the config file say about certificates.
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    /// `--tls-certfile`.
    pub certfile: Option<PathBuf>,
    /// `--tls-keyfile`.
    pub keyfile: Option<PathBuf>,
    /// `--tls-cafile`.
    pub cafile: Option<PathBuf>,
    /// `--tls-capath`.
    pub capath: Option<PathBuf>,
    /// Where generated certificates live.
    pub state_dir: PathBuf,
    /// Names the default certificate covers (the capsule's `--hostname`).
    pub hostnames: Vec<String>,
    /// Virtual hosts: their names and, optionally, their own cert + key.
    pub vhosts: Vec<(Vec<String>, Option<CertFiles>)>,
}

/// The certificate store shared by every TLS listener, and the two server
/// configurations built on it.
pub struct TlsSetup {
    /// Reload with `store.reload()` (SIGHUP).
    pub store: CertStore,
    /// For Gemini: asks for a client certificate, accepts self-signed ones.
    pub gemini: ServerTlsConfig,
    /// For HTTPS/WSS: no client certificate (browsers would prompt).
    pub https: ServerTlsConfig,
    /// The certificate and key files generated (or kept) in the state
    /// directory: given to `--user` before privileges are dropped, so that
    /// SIGHUP can still read them.
    pub generated_files: Vec<PathBuf>,
}

/// The state directory when none is configured: systemd's
/// `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/torsion`, else
/// `~/.local/state/torsion`, else `./torsion-state`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several, colon-separated: use the first.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        return PathBuf::from(first);
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(xdg).join("torsion");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/torsion");
    }
    PathBuf::from("torsion-state")
}

/// A directory name for a virtual host's generated certificate.
fn vhost_dir(state_dir: &Path, names: &[String]) -> PathBuf {
    let first = names.first().map(String::as_str).unwrap_or("vhost");
    let safe: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join("vhosts").join(safe)
}

/// The certificate and key a generated certificate keeps in `dir`.
fn generated_pair(dir: &Path) -> [PathBuf; 2] {
    [
        dir.join(certs::GENERATED_CERT_FILE),
        dir.join(certs::GENERATED_KEY_FILE),
    ]
}

/// Loads or generates every certificate and builds the server configs.
pub fn build(opts: &TlsOptions) -> Result<TlsSetup, Box<dyn std::error::Error>> {
    let store = CertStore::new();
    let names: Vec<&str> = opts.hostnames.iter().map(String::as_str).collect();
    let source = match (&opts.certfile, &opts.keyfile) {
        (Some(cert), Some(key)) => CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (Some(cert), None) => CertSource::Files {
            // Jetforce allows the key inside the certificate file.
            cert: cert.clone(),
            key: cert.clone(),
        },
        (None, Some(_)) => return Err("--tls-keyfile needs --tls-certfile".into()),
        (None, None) => CertSource::Generated {
            state_dir: opts.state_dir.clone(),
            hostnames: opts.hostnames.clone(),
        },
    };
    let generated = matches!(source, CertSource::Generated { .. });
    let mut generated_files = Vec::new();
    if generated {
        generated_files.extend(generated_pair(&opts.state_dir));
    }
    let fingerprint = store.add_default(&names, source)?;
    if generated {
        log::info!(
            "TLS certificate for {} kept in {} (fingerprint {fingerprint})",
            opts.hostnames.join(", "),
            opts.state_dir.display()
        );
    } else {
        log::info!("TLS certificate loaded (fingerprint {fingerprint})");
    }
    for (vnames, files) in &opts.vhosts {
        let refs: Vec<&str> = vnames.iter().map(String::as_str).collect();
        let source = match files {
            Some((cert, key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            None => {
                let dir = vhost_dir(&opts.state_dir, vnames);
                generated_files.extend(generated_pair(&dir));
                CertSource::Generated {
                    state_dir: dir,
                    hostnames: vnames.clone(),
                }
            }
        };
        let fp = store.add(&refs, source)?;
        log::info!(
            "TLS certificate for {} (fingerprint {fp})",
            vnames.join(", ")
        );
    }
    let mut gemini = ServerTlsConfig::builder(store.clone()).client_auth(ClientAuth::Optional);
    if opts.cafile.is_some() || opts.capath.is_some() {
        let roots = load_ca_roots(opts.cafile.as_deref(), opts.capath.as_deref())?;
        gemini = gemini.ca_roots(roots);
    }
    let gemini = gemini.build()?;
    let https = ServerTlsConfig::builder(store.clone())
        .client_auth(ClientAuth::None)
        .alpn(&[b"http/1.1"])
        .build()?;
    Ok(TlsSetup {
        store,
        gemini,
        https,
        generated_files,
    })
}
