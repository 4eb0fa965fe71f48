//! The key of one scope (a tenant, or a subject inside it) at one version,
//! and the two keys derived from it: the record sealing key and the token key.
//!
//! Every use of a key goes through a [`Lease`], which a scope's [`Gate`]
//! grants only while the scope is live: a shred or a seal revokes the keys
//! that snapshots and scans hold, from the moment it returns. Destruction
//! also wipes the key bytes, as soon as the leases in use (reads already
//! opening a record) are returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};

use super::SecretKey;
use crate::format::{KDF_SCOPE_SEAL, KDF_SCOPE_TOKEN, TOKEN_LEN};
use crate::scope::Scope;

/// A token: the keyed PRF (keyed BLAKE3, truncated to 128 bits) of a user
/// key under its scope's token key. The store is keyed by tokens, so user
/// keys never reach the disk in clear.
pub(crate) type Token = [u8; TOKEN_LEN];

/// Why a scope's keys may not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// Sealed until `deadline_us` (its own seal, or its tenant's).
    Sealed { deadline_us: u64 },
    /// Destroyed (it, or its tenant).
    Shredded,
}

/// A scope's lifecycle as its keys' users see it, in one atomic: live,
/// sealed until a deadline, or shredded. The keyring sets it; every lease
/// reads it.
#[derive(Debug, Default)]
pub(crate) struct Gate(AtomicU64);

/// Gate values: 0 is live, `u64::MAX` shredded, anything else the deadline of
/// a seal (a seal's deadline is never 0 nor `u64::MAX`: `seal` clamps it).
const GATE_LIVE: u64 = 0;
const GATE_SHREDDED: u64 = u64::MAX;

impl Gate {
    pub(crate) fn set_live(&self) {
        self.0.store(GATE_LIVE, Ordering::SeqCst);
    }

    pub(crate) fn set_sealed(&self, deadline_us: u64) {
        self.0
            .store(deadline_us.clamp(1, GATE_SHREDDED - 1), Ordering::SeqCst);
    }

    pub(crate) fn set_shredded(&self) {
        self.0.store(GATE_SHREDDED, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), Revoked> {
        match self.0.load(Ordering::SeqCst) {
            GATE_LIVE => Ok(()),
            GATE_SHREDDED => Err(Revoked::Shredded),
            deadline_us => Err(Revoked::Sealed { deadline_us }),
        }
    }
}

/// The working keys of one scope version.
#[derive(Debug)]
pub(crate) struct Material {
    seal: SecretKey,
    token: SecretKey,
}

/// The usable form of one scope key version.
#[derive(Debug)]
pub(crate) struct ScopeKey {
    scope: Scope,
    version: u32,
    /// The scope's gate, and for a subject its tenant's.
    gates: [Arc<Gate>; 2],
    /// `None` once wiped (the scope destroyed).
    material: RwLock<Option<Material>>,
}

/// A key in use: the scope was live when it was taken, and its bytes stay
/// until it is dropped (a destruction waits for it, then wipes them).
pub(crate) struct Lease<'k> {
    key: &'k ScopeKey,
    material: RwLockReadGuard<'k, Option<Material>>,
}

impl ScopeKey {
    /// Derives the scope's working keys from its root key (a subject's key,
    /// which both seals and tokenises), behind `gates` (the scope's own, and
    /// its tenant's; a tenant's own twice).
    pub(crate) fn derive(
        scope: Scope,
        version: u32,
        root: &SecretKey,
        gates: [Arc<Gate>; 2],
    ) -> ScopeKey {
        ScopeKey::derive_split(scope, version, root, root, gates)
    }

    /// Derives the working keys of a scope whose sealing key is versioned
    /// apart from its token key (a tenant: sealing versions rotate, the token
    /// key stays for the tenant's life, so rotation moves no record).
    pub(crate) fn derive_split(
        scope: Scope,
        version: u32,
        seal_root: &SecretKey,
        token_root: &SecretKey,
        gates: [Arc<Gate>; 2],
    ) -> ScopeKey {
        ScopeKey {
            scope,
            version,
            gates,
            material: RwLock::new(Some(Material {
                seal: seal_root.derive(KDF_SCOPE_SEAL),
                token: token_root.derive(KDF_SCOPE_TOKEN),
            })),
        }
    }

    /// A key behind a gate of its own that stays live: for tests and tools.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn ungated(scope: Scope, version: u32, root: &SecretKey) -> ScopeKey {
        let gate = Arc::new(Gate::default());
        ScopeKey::derive(scope, version, root, [Arc::clone(&gate), gate])
    }

    pub(crate) fn scope(&self) -> Scope {
        self.scope
    }

    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    /// The key, for use, if its scope (and its tenant) is live.
    pub(crate) fn lease(&self) -> Result<Lease<'_>, Revoked> {
        self.check_live()?;
        self.lease_ungated()
    }

    /// Whether the scope (and its tenant) is live: two atomic loads. Every
    /// version of a scope shares its gates.
    pub(crate) fn check_live(&self) -> Result<(), Revoked> {
        self.gates.iter().try_for_each(|gate| gate.check())
    }

    /// The key whatever its scope's state, unless it is wiped: for the
    /// forensic check (what could the keys in hand still open?) and for the
    /// engine's own work on a scope it is destroying.
    pub(crate) fn lease_ungated(&self) -> Result<Lease<'_>, Revoked> {
        let material = self.material.read();
        if material.is_none() {
            return Err(Revoked::Shredded);
        }
        Ok(Lease {
            key: self,
            material,
        })
    }

    /// Wipes the key bytes, once every lease in use is returned: the scope
    /// is destroyed, and its gate already says so.
    pub(crate) fn wipe(&self) {
        debug_assert!(
            self.gates
                .iter()
                .any(|g| g.check() == Err(Revoked::Shredded))
        );
        self.material.write().take();
    }

    /// Whether the key bytes are still in memory (for tests).
    #[cfg(test)]
    pub(crate) fn is_wiped(&self) -> bool {
        self.material.read().is_none()
    }
}

impl Lease<'_> {
    fn material(&self) -> &Material {
        self.material.as_ref().expect("a lease holds the key bytes")
    }

    pub(crate) fn scope(&self) -> Scope {
        self.key.scope
    }

    pub(crate) fn version(&self) -> u32 {
        self.key.version
    }

    pub(crate) fn seal_key(&self) -> &SecretKey {
        &self.material().seal
    }

    /// The token of `user_key` in this scope.
    pub(crate) fn token(&self, user_key: &[u8]) -> Token {
        let hash = blake3::keyed_hash(self.material().token.expose(), user_key);
        let mut token = [0u8; TOKEN_LEN];
        token.copy_from_slice(&hash.as_bytes()[..TOKEN_LEN]);
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::TenantId;

    #[test]
    fn tokens_depend_on_the_key_and_the_user_key() {
        let scope = Scope::tenant(TenantId(1));
        let a = ScopeKey::ungated(scope, 1, &SecretKey::random());
        let b = ScopeKey::ungated(scope, 1, &SecretKey::random());
        let (a, b) = (a.lease().unwrap(), b.lease().unwrap());
        assert_eq!(a.token(b"k"), a.token(b"k"));
        assert_ne!(a.token(b"k"), a.token(b"l"));
        assert_ne!(a.token(b"k"), b.token(b"k"));
    }

    #[test]
    fn a_gate_revokes_leases_and_a_wipe_waits_for_the_ones_in_use() {
        let scope = Scope::tenant(TenantId(1));
        let (own, tenant) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
        let key = Arc::new(ScopeKey::derive(
            scope,
            1,
            &SecretKey::random(),
            [Arc::clone(&own), Arc::clone(&tenant)],
        ));
        let token = key.lease().unwrap().token(b"k");
        tenant.set_sealed(77);
        assert_eq!(key.lease().err(), Some(Revoked::Sealed { deadline_us: 77 }));
        tenant.set_live();
        own.set_sealed(5);
        assert_eq!(key.lease().err(), Some(Revoked::Sealed { deadline_us: 5 }));
        own.set_live();
        let in_use = key.lease().unwrap();
        own.set_shredded();
        assert_eq!(key.lease().err(), Some(Revoked::Shredded));
        let wiper = {
            let key = Arc::clone(&key);
            std::thread::spawn(move || key.wipe())
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        // The lease taken before the shred still works, and holds the wipe.
        assert_eq!(in_use.token(b"k"), token);
        assert!(!wiper.is_finished());
        drop(in_use);
        wiper.join().unwrap();
        assert!(key.is_wiped());
        assert_eq!(key.lease_ungated().err(), Some(Revoked::Shredded));
    }

    /// BLAKE3's published keyed-hash vector (input of length 0, the test
    /// vectors' key), as a check that the PRF is the standard one.
    #[test]
    fn keyed_blake3_matches_the_published_vector() {
        let key: [u8; 32] = *b"whats the Elvish word for friend";
        let hash = blake3::keyed_hash(&key, b"");
        assert_eq!(
            hash.to_hex().as_str(),
            "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"
        );
    }
}

/// Every key version of a scope that can open its records (newest last),
/// taken at one moment: a snapshot or scan holds on to it, so records it
/// sees under a version retired since still open.
#[derive(Debug, Clone)]
pub(crate) struct ScopeKeys(Vec<std::sync::Arc<ScopeKey>>);

impl ScopeKeys {
    /// `keys` in version order; at least one.
    pub(crate) fn new(keys: Vec<std::sync::Arc<ScopeKey>>) -> ScopeKeys {
        assert!(!keys.is_empty(), "a scope with keys has at least one");
        debug_assert!(keys.windows(2).all(|w| w[0].version() < w[1].version()));
        ScopeKeys(keys)
    }

    /// The version new writes seal under. Its token key is every version's.
    pub(crate) fn newest(&self) -> &std::sync::Arc<ScopeKey> {
        self.0.last().expect("at least one key")
    }

    /// The key of `version`, if this set holds it.
    pub(crate) fn at(&self, version: u32) -> Option<&std::sync::Arc<ScopeKey>> {
        self.0.iter().find(|k| k.version() == version)
    }
}

impl ScopeKeys {
    /// The versions of both sets (taken before and after a view of the
    /// store, so that the view's records open whatever rotated between).
    pub(crate) fn union(a: Option<ScopeKeys>, b: Option<ScopeKeys>) -> Option<ScopeKeys> {
        match (a, b) {
            (Some(a), Some(b)) => {
                let mut keys = a.0;
                for key in b.0 {
                    if !keys.iter().any(|k| k.version() == key.version()) {
                        keys.push(key);
                    }
                }
                keys.sort_by_key(|k| k.version());
                Some(ScopeKeys(keys))
            }
            (a, b) => a.or(b),
        }
    }
}
