//! A cache of precompiled components, so that a host starts in a fraction of a millisecond instead of
//! compiling for ~70 ms.
//!
//! Precompiled code is machine code that wasmtime maps and runs without validating it: a file that
//! someone else wrote could run anything. So this cache only loads a file that
//! - lies in a directory owned by this process's user and writable by nobody else (on Unix), which
//!   the cache creates with mode 0700 when it does not exist;
//! - is named after its key: SHA-256 over the component's bytes, the wasmtime version and the engine's
//!   settings (`Engine::precompile_compatibility_hash`), so that no other component, wasmtime or
//!   configuration ever matches;
//! - starts with this host's header and the same key;
//! - has the SHA-256 digest that the host recorded in a sidecar file when it wrote it.
//!
//! The digest and the header do not make the file trustworthy by themselves (whoever can write the
//! directory can write both); the directory's ownership does, and they catch torn or damaged files.
//! Files are written to a temporary name and renamed into place, so a reader never sees half a file.
//! Anything unexpected means "compile again", never an error.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The wasmtime this host links (the workspace pins it exactly).
const WASMTIME_VERSION: &str = "wasmtime 48.0.8";
/// Starts every file this cache writes.
const HEADER: &[u8; 16] = b"NEWTERMS-CWASM1\n";

/// Where the precompiled code of one component for one engine lives.
pub(crate) struct PrecompiledCache {
    key: [u8; 32],
    code: PathBuf,
    sidecar: PathBuf,
}

impl PrecompiledCache {
    /// The cache entry of `component` for `engine` in `dir`; `None` when `dir` cannot be created or
    /// is not a directory that only this user can write.
    pub(crate) fn new(dir: &Path, engine: &Engine, component: &[u8]) -> Option<Self> {
        ensure_private_dir(dir)?;
        let mut hasher = Sha256::new();
        hasher.update(WASMTIME_VERSION.as_bytes());
        hasher.update(Sha256::digest(component));
        let mut settings = DigestHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut settings);
        hasher.update(settings.0.finalize());
        let key: [u8; 32] = hasher.finalize().into();
        let name = hex(&key);
        Some(Self {
            key,
            code: dir.join(format!("{name}.cwasm")),
            sidecar: dir.join(format!("{name}.sha256")),
        })
    }

    /// The precompiled component, if this host wrote a sound entry for this key.
    pub(crate) fn load(&self, engine: &Engine) -> Option<Component> {
        let file = fs::read(&self.code).ok()?;
        let recorded = fs::read_to_string(&self.sidecar).ok()?;
        if recorded.trim() != hex(&Sha256::digest(&file)) {
            return None;
        }
        let rest = file.strip_prefix(HEADER.as_slice())?;
        let code = rest.strip_prefix(self.key.as_slice())?;
        deserialize(engine, code)
    }

    /// Writes the entry for `component`; failures leave no entry and are otherwise ignored.
    pub(crate) fn store(&self, component: &Component) {
        let Ok(code) = component.serialize() else {
            return;
        };
        let mut file = Vec::with_capacity(HEADER.len() + self.key.len() + code.len());
        file.extend_from_slice(HEADER);
        file.extend_from_slice(&self.key);
        file.extend_from_slice(&code);
        let digest = hex(&Sha256::digest(&file));
        let written = crate::durable::write_atomically(&self.code, &file)
            .and_then(|()| crate::durable::write_atomically(&self.sidecar, digest.as_bytes()));
        if written.is_err() {
            let _ = fs::remove_file(&self.sidecar);
        }
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> Option<Component> {
    // SAFETY: `Component::deserialize` trusts `code` to be wasmtime's own output. It is: the bytes
    // were read from a file named by a key that covers the component, wasmtime's version and the
    // engine's settings, carrying our header and that key, whose SHA-256 matches the digest this host
    // recorded when it wrote the file from `Component::serialize`, in a directory that only this user
    // can write (checked before). wasmtime checks the version and settings again on load.
    unsafe { Component::deserialize(engine, code) }.ok()
}

/// Creates `dir` (mode 0700 on Unix) if needed, and says whether only this user can write it.
fn ensure_private_dir(dir: &Path) -> Option<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).ok()?;
    let metadata = fs::symlink_metadata(dir).ok()?;
    if !metadata.is_dir() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if metadata.mode() & 0o022 != 0 {
            return None;
        }
        // A file this process creates is owned by its user: the directory must be owned by it too.
        let probe = dir.join(format!(".owner-probe-{}", std::process::id()));
        let owner = fs::File::create(&probe)
            .and_then(|file| file.metadata())
            .map(|probe| probe.uid());
        let _ = fs::remove_file(&probe);
        if owner.ok()? != metadata.uid() {
            return None;
        }
    }
    Some(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Feeds `Hash` output into SHA-256: a stable digest of the engine's settings (std's `DefaultHasher`
/// promises no stability between Rust releases).
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        0 // never used: the digest is read from `self.0`
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{EMBEDDED_COMPONENT, Limits, RuleComponent, RuleConfig, Sandbox};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("newterms-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn works(component: &RuleComponent) {
        let mut rule = component.instantiate(&RuleConfig::default()).unwrap();
        assert_eq!(rule.process_event("{}").unwrap(), Ok(vec![]));
    }

    #[test]
    fn writes_then_loads_only_what_it_wrote() {
        let dir = scratch("round-trip");
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        let engine = sandbox.engine();
        let cache = PrecompiledCache::new(&dir, engine, EMBEDDED_COMPONENT).unwrap();
        assert!(cache.load(engine).is_none(), "empty cache");

        works(&RuleComponent::embedded_cached(&sandbox, &dir).unwrap());
        assert!(cache.load(engine).is_some(), "written by the first load");
        works(&RuleComponent::embedded_cached(&sandbox, &dir).unwrap());

        // Another component's key never matches.
        let other = PrecompiledCache::new(&dir, engine, b"other bytes").unwrap();
        assert!(other.load(engine).is_none());

        // A damaged file is refused, then rewritten by the next load.
        let mut bytes = fs::read(&cache.code).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&cache.code, &bytes).unwrap();
        assert!(cache.load(engine).is_none(), "digest mismatch");
        works(&RuleComponent::embedded_cached(&sandbox, &dir).unwrap());
        assert!(cache.load(engine).is_some(), "rewritten");

        // A file that matches its sidecar but lacks this host's header and key is refused.
        let foreign = b"\0asm not ours".to_vec();
        fs::write(&cache.code, &foreign).unwrap();
        fs::write(&cache.sidecar, hex(&Sha256::digest(&foreign))).unwrap();
        assert!(cache.load(engine).is_none(), "foreign file");

        // No sidecar, no load.
        works(&RuleComponent::embedded_cached(&sandbox, &dir).unwrap());
        fs::remove_file(&cache.sidecar).unwrap();
        assert!(cache.load(engine).is_none(), "no sidecar");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_directory_others_can_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("shared");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        assert!(PrecompiledCache::new(&dir, sandbox.engine(), EMBEDDED_COMPONENT).is_none());
        // Loading still works: it compiles, and writes nothing there.
        works(&RuleComponent::embedded_cached(&sandbox, &dir).unwrap());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
