//! Format 1 to format 2, at open: every keyring file rewritten as a MAC
//! chain, anchored, and the format-2 manifest written last.
//!
//! Until the manifest is rewritten the keyring is format 1 and a crash
//! repeats the upgrade from the start, reading each file in whichever format
//! it is in by then. Format-1 files carry CRCs only: what they hold is taken
//! as it is (that is all format 1 could promise), and from here on is
//! protected.

use std::collections::BTreeMap;

use super::custody::Anchor;
use super::seals;
use super::shard::{self, KeyRecord, ShardId};
use super::{Keyring, subject_shard_id, tenant_shard};
use crate::error::Result;
use crate::format::{
    KEYRING_SHARD_SUFFIX, KEYRING_SUBJECTS_DIR, RECORD_ANCHOR, RECORD_DESTROYED, SEALS_FILE,
    TENANT_SHARDS,
};
use crate::scope::TenantId;

impl Keyring {
    /// Rewrites a format-1 keyring in format 2. The caller holds `write`.
    pub(super) fn upgrade(&self) -> Result<()> {
        tracing::info!(dir = %self.dir.display(), "keyring: upgrading format 1 to format 2");
        let mut tenant_records = BTreeMap::new();
        for shard in 0..TENANT_SHARDS {
            let id = tenant_shard(shard);
            let mut records = self.records_any_format(id)?;
            // Anchors of an earlier, interrupted upgrade are made anew.
            records.retain(|r| r.kind != RECORD_ANCHOR);
            tenant_records.insert(shard, records);
        }
        let destroyed: Vec<u64> = tenant_records
            .values()
            .flatten()
            .filter(|r| r.kind == RECORD_DESTROYED)
            .map(|r| r.id)
            .collect();
        let subjects_dir = self.dir.join(KEYRING_SUBJECTS_DIR);
        let tenant_dirs = if self.files.is_dir(&subjects_dir)? {
            self.files.list(&subjects_dir)?
        } else {
            Vec::new()
        };
        for name in tenant_dirs {
            let Ok(tenant) = u64::from_str_radix(&name, 16) else {
                continue;
            };
            if destroyed.contains(&tenant) {
                self.files.remove_dir_durable(&subjects_dir.join(&name))?;
                continue;
            }
            for file in self.files.list(&subjects_dir.join(&name))? {
                let Some(shard) = file
                    .strip_suffix(KEYRING_SHARD_SUFFIX)
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let id = subject_shard_id(TenantId(tenant), shard);
                let anchor = self.write_format_2(id, &self.records_any_format(id)?)?;
                let parent = (tenant % u64::from(TENANT_SHARDS)) as u32;
                let records = tenant_records.get_mut(&parent).expect("every shard");
                records.push(KeyRecord::anchor(tenant, shard, &anchor));
            }
        }
        let mut manifest = self.manifest.lock().next();
        for (shard, records) in &tenant_records {
            let id = tenant_shard(*shard);
            if !records.is_empty() || self.files.is_file(&self.shard_path(id))? {
                manifest.tenants[*shard as usize] = self.write_format_2(id, records)?;
            }
        }
        let seals_path = self.dir.join(SEALS_FILE);
        if let Some(bytes) = self.files.read_if_exists(&seals_path)? {
            let ledger = seals::decode(&seals_path, &bytes, &self.chain_key, true)?;
            let (bytes, chain) = seals::encode_pending(&self.chain_key, 1, &ledger.pending);
            self.files.write_atomic(&seals_path, &bytes)?;
            manifest.seals = chain.anchor();
        }
        self.files.write_atomic(
            &self.dir.join(super::KEYRING_MANIFEST_FILE),
            &manifest.encode(&self.chain_key),
        )?;
        tracing::info!(epoch = manifest.epoch, "keyring: upgraded to format 2");
        *self.manifest.lock() = manifest;
        Ok(())
    }

    /// A shard's whole records, in format 1 or 2 (a torn append left out).
    fn records_any_format(&self, id: ShardId) -> Result<Vec<KeyRecord>> {
        let path = self.shard_path(id);
        let Some(bytes) = self.files.read_if_exists(&path)? else {
            return Ok(Vec::new());
        };
        Ok(shard::decode(&path, &bytes, id, &self.chain_key, true)?.records)
    }

    /// Writes a shard in format 2, generation 1; returns its anchor.
    fn write_format_2(&self, id: ShardId, records: &[KeyRecord]) -> Result<Anchor> {
        let (bytes, chain) = shard::encode(&self.chain_key, id, 1, records);
        self.files.write_atomic(&self.shard_path(id), &bytes)?;
        Ok(chain.anchor())
    }
}
