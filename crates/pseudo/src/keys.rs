//! The custodian key: 32 random bytes in a file outside the data directory, mode 0600.
//! Purpose keys (one per identifier, later per project and for the audit log) are derived
//! from it with HKDF-SHA256, so one file is all the custodian has to guard.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

const HEADER: &str =
    "# niji custodian key: keep it outside the data directory, mode 0600, never share it";
const KEY_LEN: usize = 32;
const HKDF_SALT: &[u8] = b"niji custodian key v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key file must not be inside the data directory ({data_dir})")]
    InsideDataDir { data_dir: PathBuf },
    #[error("a key file already exists at {0}; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("the key file {path} is readable or writable by others (mode {mode:o}); run chmod 600")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("no key file at {0}: create one with `niji keys init`")]
    Missing(PathBuf),
    #[error("the key file {0} is not a niji key file")]
    Malformed(PathBuf),
    #[error("key file I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the system random source failed")]
    Random,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a key is for. Each purpose has its own HKDF label, so a leak of one derived key
/// exposes nothing of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Id1,
    Id2,
    Id5,
    ResearchId,
    /// Keyed hashes of individual insured numbers in the person registry.
    NumberIndex,
    AuditLog,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Id1 => "niji/id1/v1",
            Purpose::Id2 => "niji/id2/v1",
            Purpose::Id5 => "niji/id5/v1",
            Purpose::ResearchId => "niji/research-id/v1",
            Purpose::NumberIndex => "niji/number-index/v1",
            Purpose::AuditLog => "niji/audit-log/v1",
        }
    }
}

/// The custodian's master key. Its bytes never leave this type: `Debug` shows the public
/// fingerprint only, and memory is wiped on drop.
pub struct CustodianKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for CustodianKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustodianKey({})", self.version())
    }
}

impl CustodianKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|_| KeyError::Random)?;
        Ok(Self { bytes })
    }

    /// A key from known bytes: for tests and known-answer checks only.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// `v1:` and 16 hex digits of an HMAC over a fixed label: identifies the key in manifests
    /// and audit entries without revealing it.
    pub fn version(&self) -> String {
        let tag = crate::ident::IdHasher::from_key_bytes(self.bytes.as_ref())
            .hash(&[b"niji key fingerprint"]);
        format!("v1:{}", &crate::ident::hex32(&tag)[..16])
    }

    /// The purpose key for `purpose` (HKDF-SHA256, 32 bytes).
    pub fn derive(&self, purpose: Purpose) -> Zeroizing<[u8; KEY_LEN]> {
        self.derive_labelled(purpose.label().as_bytes())
    }

    /// A purpose key for a label built at run time (for example one per project).
    pub fn derive_labelled(&self, label: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), self.bytes.as_ref());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        hk.expand(label, out.as_mut())
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF length"));
        out
    }

    /// Creates a new key file at `path`. Refuses a path inside `data_dir` (resolving symlinks
    /// and `..`) and never overwrites an existing key.
    pub fn init(path: &Path, data_dir: &Path) -> Result<Self, KeyError> {
        let resolved_key = resolve(path).map_err(io(path))?;
        let resolved_data = resolve(data_dir).map_err(io(data_dir))?;
        if resolved_key.starts_with(&resolved_data) {
            return Err(KeyError::InsideDataDir {
                data_dir: data_dir.to_path_buf(),
            });
        }
        if path.exists() {
            return Err(KeyError::Exists(path.to_path_buf()));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io(parent))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o700)).map_err(io(parent))?;
        }
        let key = Self::generate()?;
        let mut text = Zeroizing::new(format!("{HEADER}\nversion=1\nkey="));
        text.push_str(&crate::ident::hex32(&key.bytes));
        text.push('\n');
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io(path))?;
        file.write_all(text.as_bytes()).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        Ok(key)
    }

    /// Loads the key at `path`, refusing a file that group or others may read or write.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing(path.to_path_buf()));
            }
            Err(e) => return Err(io(path)(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = fs::read_to_string(path).map_err(io(path))?;
        let parsed = parse_key_file(&text);
        text.zeroize();
        parsed
            .map(Self::from_bytes)
            .ok_or_else(|| KeyError::Malformed(path.to_path_buf()))
    }
}

fn parse_key_file(text: &str) -> Option<[u8; KEY_LEN]> {
    let mut version_ok = false;
    let mut key = None;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        match line.split_once('=') {
            Some(("version", "1")) => version_ok = true,
            Some(("key", hex)) => key = decode_hex32(hex),
            _ => return None,
        }
    }
    key.filter(|_| version_ok)
}

fn decode_hex32(hex: &str) -> Option<[u8; KEY_LEN]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 2 * KEY_LEN {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|v| v as u8);
    let mut out = [0u8; KEY_LEN];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// An absolute path with symlinks resolved as far as the path exists, so `a/../b` and links
/// into the data directory are recognised.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize()?;
    for part in rest.into_iter().rev() {
        if part == ".." {
            resolved.pop();
        } else if part != "." {
            resolved.push(part);
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_owner_only_file_outside_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key_path = dir.path().join("keys/custodian.key");
        let key = CustodianKey::init(&key_path, &data).unwrap();
        let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = CustodianKey::load(&key_path).unwrap();
        assert_eq!(loaded.version(), key.version());
        assert!(matches!(
            CustodianKey::init(&key_path, &data),
            Err(KeyError::Exists(_))
        ));
    }

    #[test]
    fn refuses_key_inside_data_dir_even_through_dotdot_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("store")).unwrap();
        for inside in [
            data.join("k.key"),
            data.join("store/../k.key"),
            data.join("new/sub/k.key"),
        ] {
            assert!(
                matches!(
                    CustodianKey::init(&inside, &data),
                    Err(KeyError::InsideDataDir { .. })
                ),
                "{inside:?}"
            );
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        assert!(matches!(
            CustodianKey::init(&link.join("k.key"), &data),
            Err(KeyError::InsideDataDir { .. })
        ));
        assert!(!data.join("k.key").exists());
    }

    #[test]
    fn refuses_a_key_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("custodian.key");
        CustodianKey::init(&key_path, &dir.path().join("data")).unwrap();
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = CustodianKey::load(&key_path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { mode: 0o644, .. }));
    }

    #[test]
    fn errors_and_debug_never_show_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("custodian.key");
        let key = CustodianKey::init(&key_path, &dir.path().join("data")).unwrap();
        let hex = crate::ident::hex32(&key.bytes);
        assert!(!format!("{key:?}").contains(&hex[..16]));
        let text = fs::read_to_string(&key_path).unwrap();
        fs::write(&key_path, text.replace("version=1", "version=9")).unwrap();
        let err = CustodianKey::load(&key_path).unwrap_err().to_string();
        assert!(!err.contains(&hex[..16]), "{err}");
    }

    #[test]
    fn purpose_keys_differ_and_are_deterministic() {
        let key = CustodianKey::from_bytes([7; 32]);
        assert_ne!(*key.derive(Purpose::Id1), *key.derive(Purpose::Id2));
        assert_eq!(
            *key.derive(Purpose::Id5),
            *CustodianKey::from_bytes([7; 32]).derive(Purpose::Id5)
        );
        assert_ne!(
            *key.derive(Purpose::Id5),
            *CustodianKey::from_bytes([8; 32]).derive(Purpose::Id5)
        );
    }

    #[test]
    fn hkdf_rfc5869_case_1() {
        let ikm = [0x0b_u8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        let expected =
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }
}
