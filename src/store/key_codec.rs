//! Store keys: the only big-endian integers of strongroom, so that keys sort
//! by tenant, then scope, then token.
//!
//! ```text
//! data key = 0x01 | tenant u64 BE | scope_kind u8 | subject u64 BE | token [16]
//! meta key = 0x00 | name
//! ```

use crate::crypto::scope_key::Token;
use crate::format::{STORE_KEY_LEN, STORE_NS_DATA, TOKEN_LEN};
use crate::scope::Scope;

/// Length of the prefix shared by all keys of one scope.
pub(crate) const SCOPE_PREFIX_LEN: usize = STORE_KEY_LEN - TOKEN_LEN;

/// The prefix of every key of `scope`.
pub(crate) fn scope_prefix(scope: Scope) -> [u8; SCOPE_PREFIX_LEN] {
    let (kind, subject) = scope.encode_kind();
    let mut key = [0u8; SCOPE_PREFIX_LEN];
    key[0] = STORE_NS_DATA;
    key[1..9].copy_from_slice(&scope.tenant.0.to_be_bytes());
    key[9] = kind;
    key[10..18].copy_from_slice(&subject.to_be_bytes());
    key
}

/// The prefix of every key a shred of `scope` removes: a tenant's own scope
/// and all its subjects for a tenant, the one scope for a subject.
pub(crate) fn shred_prefix(scope: Scope) -> Vec<u8> {
    let prefix = scope_prefix(scope);
    match scope.subject {
        None => prefix[..9].to_vec(),
        Some(_) => prefix.to_vec(),
    }
}

/// The store key of the record with `token` in `scope`.
pub(crate) fn data_key(scope: Scope, token: &Token) -> [u8; STORE_KEY_LEN] {
    let mut key = [0u8; STORE_KEY_LEN];
    key[..SCOPE_PREFIX_LEN].copy_from_slice(&scope_prefix(scope));
    key[SCOPE_PREFIX_LEN..].copy_from_slice(token);
    key
}

/// The scope and token of a data key, if `key` is one.
pub(crate) fn decode_data_key(key: &[u8]) -> Option<(Scope, Token)> {
    let token = token_of(key)?;
    let tenant = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let subject = u64::from_be_bytes(key[10..18].try_into().ok()?);
    Some((Scope::decode_kind(tenant, key[9], subject)?, token))
}

/// The token of a data key, if `key` is one.
pub(crate) fn token_of(key: &[u8]) -> Option<Token> {
    if key.len() != STORE_KEY_LEN || key[0] != STORE_NS_DATA {
        return None;
    }
    key[SCOPE_PREFIX_LEN..].try_into().ok()
}

/// The smallest key after every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    unreachable!("store prefixes start with a namespace byte below 0xff")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{SubjectId, TenantId};

    #[test]
    fn keys_sort_by_tenant_then_scope_then_token() {
        let t = |n| TenantId(n);
        let a = data_key(Scope::tenant(t(1)), &[0xff; TOKEN_LEN]);
        let b = data_key(Scope::subject(t(1), SubjectId(0)), &[0; TOKEN_LEN]);
        let c = data_key(Scope::subject(t(1), SubjectId(256)), &[0; TOKEN_LEN]);
        let d = data_key(Scope::tenant(t(2)), &[0; TOKEN_LEN]);
        assert!(a < b && b < c && c < d);
        assert_eq!(token_of(&c), Some([0; TOKEN_LEN]));
        let prefix = scope_prefix(Scope::tenant(t(1)));
        assert!(a.starts_with(&prefix) && a.as_slice() < prefix_end(&prefix).as_slice());
        assert!(b.as_slice() >= prefix_end(&prefix).as_slice());
    }
}
