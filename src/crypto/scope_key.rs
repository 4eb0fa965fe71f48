//! The key of one scope (a tenant, or a subject inside it) at one version,
//! and the two keys derived from it: the record sealing key and the token key.

use super::SecretKey;
use crate::format::{KDF_SCOPE_SEAL, KDF_SCOPE_TOKEN, TOKEN_LEN};
use crate::scope::Scope;

/// A token: the keyed PRF (keyed BLAKE3, truncated to 128 bits) of a user
/// key under its scope's token key. The store is keyed by tokens, so user
/// keys never reach the disk in clear.
pub(crate) type Token = [u8; TOKEN_LEN];

/// The usable form of one scope key version.
#[derive(Debug)]
pub(crate) struct ScopeKey {
    scope: Scope,
    version: u32,
    seal: SecretKey,
    token: SecretKey,
}

impl ScopeKey {
    /// Derives the scope's working keys from its root key (a subject's key,
    /// which both seals and tokenises).
    pub(crate) fn derive(scope: Scope, version: u32, root: &SecretKey) -> ScopeKey {
        ScopeKey::derive_split(scope, version, root, root)
    }

    /// Derives the working keys of a scope whose sealing key is versioned
    /// apart from its token key (a tenant: sealing versions rotate, the token
    /// key stays for the tenant's life, so rotation moves no record).
    pub(crate) fn derive_split(
        scope: Scope,
        version: u32,
        seal_root: &SecretKey,
        token_root: &SecretKey,
    ) -> ScopeKey {
        ScopeKey {
            scope,
            version,
            seal: seal_root.derive(KDF_SCOPE_SEAL),
            token: token_root.derive(KDF_SCOPE_TOKEN),
        }
    }

    pub(crate) fn scope(&self) -> Scope {
        self.scope
    }

    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn seal_key(&self) -> &SecretKey {
        &self.seal
    }

    /// The token of `user_key` in this scope.
    pub(crate) fn token(&self, user_key: &[u8]) -> Token {
        let hash = blake3::keyed_hash(self.token.expose(), user_key);
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
        let a = ScopeKey::derive(scope, 1, &SecretKey::random());
        let b = ScopeKey::derive(scope, 1, &SecretKey::random());
        assert_eq!(a.token(b"k"), a.token(b"k"));
        assert_ne!(a.token(b"k"), a.token(b"l"));
        assert_ne!(a.token(b"k"), b.token(b"k"));
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
