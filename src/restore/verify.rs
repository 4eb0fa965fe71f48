//! Verify: every object of an archive checked with the master key alone,
//! nothing restored: the keyring's copies open and hold together, every
//! backup's manifest opens and names only objects that exist and open,
//! every piece's frames pass their CRCs and MAC chain, the chain runs on
//! across pieces, and the log has no gap from the oldest backup to the
//! newest piece. With `deep`, every record in the pieces is opened with the
//! archive's keyring too (records of destroyed scopes are skipped: their
//! keys are meant to be gone).
//!
//! Problems are reported, each naming its object, and verify goes on: an
//! operator wants the whole list, not the first. Only what stops every
//! check (a wrong master key, an archive that does not answer) is an
//! error.
//!
//! **Incremental**: what a run has verified is recorded in the archive
//! itself (`<history>/verified/<run:020>.state`, sealed like every object),
//! so that a later run, on any machine, fetches only objects it has not
//! verified (by name and size; objects never change), and continues the
//! MAC chain from the last verified piece.

use std::collections::BTreeMap;
use std::path::Path;

use super::history::{History, PieceName};
use crate::archive::{Archive, ArchiveError, object};
use crate::clock::SystemClock;
use crate::crypto::keyring::{ChainKey, Keyring, Manifest, place_copy};
use crate::crypto::record;
use crate::crypto::root::RootKey;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{KEYRING_MANIFEST_FILE, MAC_LEN};
use crate::fs::{Files, OsFileSystem};
use crate::options::MasterKeySource;
use crate::ship::names;
use crate::wal::entry::Op;
use crate::wal::read_piece;

/// What a verify found.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Histories verified.
    pub histories: usize,
    /// Objects fetched and checked by this run.
    pub objects_checked: u64,
    /// Bytes fetched by this run.
    pub bytes_fetched: u64,
    /// Objects an earlier run had verified, not fetched again.
    pub objects_skipped: u64,
    /// Records opened (with `deep`).
    pub records_opened: u64,
    /// Every problem, each naming its object.
    pub problems: Vec<Problem>,
}

/// One thing wrong in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The object (or, for a gap, the piece after it).
    pub object: String,
    /// What is wrong.
    pub what: String,
}

/// What a verify checks, and how.
#[derive(Clone)]
pub struct VerifyOptions {
    master_key: MasterKeySource,
    deep: bool,
    incremental: bool,
    progress: Option<std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("deep", &self.deep)
            .field("incremental", &self.incremental)
            .finish_non_exhaustive()
    }
}

impl VerifyOptions {
    /// A verify with `master_key` (the archive's current one):
    /// incremental, not deep.
    pub fn new(master_key: MasterKeySource) -> VerifyOptions {
        VerifyOptions {
            master_key,
            deep: false,
            incremental: true,
            progress: None,
        }
    }

    /// Called with (bytes fetched, bytes to fetch at most) as the run goes,
    /// history by history.
    pub fn progress(mut self, progress: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(std::sync::Arc::new(progress));
        self
    }

    /// Also open every record of every piece with the archive's keyring.
    pub fn deep(mut self, deep: bool) -> Self {
        self.deep = deep;
        self
    }

    /// Skip what an earlier run verified (default); `false` checks
    /// everything again.
    pub fn incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }
}

/// Verifies every history of `archive`.
pub fn verify(archive: &dyn Archive, options: &VerifyOptions) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for log_id in super::history::histories(archive)? {
        let history = match History::open(archive, log_id, &options.master_key) {
            Ok(h) => h,
            Err(e) if is_systemic(&e) => return Err(e),
            Err(e) => {
                report.problem(names::keyring_manifest_folder(&log_id), &e);
                continue;
            }
        };
        Run {
            history: &history,
            options,
            report: &mut report,
            to_fetch: 0,
        }
        .history()?;
        report.histories += 1;
    }
    tracing::info!(
        histories = report.histories,
        objects = report.objects_checked,
        skipped = report.objects_skipped,
        problems = report.problems.len(),
        "verify: done"
    );
    Ok(report)
}

impl VerifyReport {
    fn problem(&mut self, object: impl Into<String>, error: &dyn std::fmt::Display) {
        let object = object.into();
        tracing::warn!(%object, problem = %error, "verify: a problem");
        self.problems.push(Problem {
            object,
            what: error.to_string(),
        });
    }
}

/// An error that stops every check, not a problem of one object.
fn is_systemic(e: &Error) -> bool {
    matches!(
        e,
        Error::WrongMasterKey
            | Error::MasterKeySource(_)
            | Error::Archive(ArchiveError::Unavailable { .. } | ArchiveError::Config(_))
    )
}

/// What a run has verified of one history: objects by name and size, the
/// objects each verified backup names, and where the log's chain stood
/// after the verified pieces.
#[derive(Debug, Default)]
pub(crate) struct State {
    verified: BTreeMap<String, u64>,
    /// For each verified backup manifest, the SST objects it names.
    backups: BTreeMap<String, Vec<String>>,
    /// (LSN, MAC) of the last frame of the verified, contiguous log.
    chain: Option<(u64, [u8; MAC_LEN])>,
}

const STATE_MAGIC: &[u8; 8] = b"SRVERIFY";
const STATE_VERSION: u32 = 1;

/// A little reader for the state's fields, every read bounds-checked.
struct Fields<'a> {
    name: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn bad(&self, what: &'static str) -> Error {
        ArchiveError::corrupt(self.name, self.at as u64, CorruptionKind::Malformed(what)).into()
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let got = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| self.bad("a verify state cut short"))?;
        self.at += n;
        Ok(got)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn text(&mut self) -> Result<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
        let bytes = self.take(usize::from(len))?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(self.bad("a name in a verify state is not text")),
        }
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).expect("object names are at most 512 bytes");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

impl State {
    /// `magic | version u32 | chain lsn u64 | chain mac [32] | count u64 |
    /// (name, size u64) * count | backups u64 | (name, count u64, name *
    /// count) * backups`, names as `len u16 | UTF-8`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = STATE_MAGIC.to_vec();
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        let (lsn, mac) = self.chain.unwrap_or((0, [0; MAC_LEN]));
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(&mac);
        out.extend_from_slice(&(self.verified.len() as u64).to_le_bytes());
        for (name, size) in &self.verified {
            put_text(&mut out, name);
            out.extend_from_slice(&size.to_le_bytes());
        }
        out.extend_from_slice(&(self.backups.len() as u64).to_le_bytes());
        for (name, objects) in &self.backups {
            put_text(&mut out, name);
            out.extend_from_slice(&(objects.len() as u64).to_le_bytes());
            for object in objects {
                put_text(&mut out, object);
            }
        }
        out
    }

    pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<State> {
        let mut r = Fields { name, bytes, at: 0 };
        if r.take(8)? != STATE_MAGIC {
            return Err(r.bad("not a verify state"));
        }
        let version = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        if version != STATE_VERSION {
            return Err(ArchiveError::UnsupportedVersion {
                name: name.to_owned(),
                found: version,
                supported: STATE_VERSION,
            }
            .into());
        }
        let lsn = r.u64()?;
        let mac: [u8; MAC_LEN] = r.take(MAC_LEN)?.try_into().expect("a MAC");
        let mut state = State {
            chain: (lsn > 0).then_some((lsn, mac)),
            ..State::default()
        };
        // Counts are bounded by the bytes that remain (each entry takes
        // at least 2 of them), so a forged count cannot make this spin.
        for _ in 0..r.u64()?.min(bytes.len() as u64) {
            let object = r.text()?;
            let size = r.u64()?;
            state.verified.insert(object, size);
        }
        for _ in 0..r.u64()?.min(bytes.len() as u64) {
            let backup = r.text()?;
            let mut objects = Vec::new();
            for _ in 0..r.u64()?.min(bytes.len() as u64) {
                objects.push(r.text()?);
            }
            state.backups.insert(backup, objects);
        }
        if r.at != bytes.len() {
            return Err(r.bad("bytes after a verify state"));
        }
        Ok(state)
    }
}

/// A keyring opened from the archive's copies, and the scratch folder its
/// files are in (removed when dropped, after the keyring).
struct Opened {
    keyring: Keyring,
    _files: ScratchDir,
}

struct Run<'a> {
    history: &'a History<'a>,
    options: &'a VerifyOptions,
    report: &'a mut VerifyReport,
    /// Bytes of this history's objects not verified before: what this run
    /// fetches at most (for progress).
    to_fetch: u64,
}

impl Run<'_> {
    fn history(&mut self) -> Result<()> {
        let h = self.history;
        let (state_names, mut state) = self.read_state()?;
        let listed: BTreeMap<String, u64> = h
            .archive
            .list(&format!("{}/", names::history(&h.log_id)))?
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        // Objects gone since (retention) are forgotten.
        state.verified.retain(|name, _| listed.contains_key(name));
        state.backups.retain(|name, _| listed.contains_key(name));
        self.to_fetch = listed
            .iter()
            .filter(|(name, size)| state.verified.get(*name) != Some(size))
            .map(|(_, size)| size)
            .sum();
        let keyring = self.keyring(&mut state, &listed)?;
        let backups = h.backups()?;
        for backup in &backups {
            self.backup(&backup.name, &listed, &mut state)?;
        }
        let oldest = backups.first().map_or(0, |b| b.lsn);
        let keyring = keyring.as_ref().map(|k| &k.keyring);
        self.log(&h.pieces()?, oldest, keyring, &mut state)?;
        // What this run checked stands whether or not its state can be put
        // (a read-only credential): the next run then checks it again.
        if let Err(e) = self.write_state(&state_names, &state) {
            if is_systemic(&e) {
                return Err(e);
            }
            tracing::warn!(error = %e, "verify: the state of this run could not be kept");
        }
        Ok(())
    }

    /// The newest verify state (empty for a full run), and every state
    /// object's name.
    fn read_state(&mut self) -> Result<(Vec<String>, State)> {
        let h = self.history;
        let mut names: Vec<(u64, String)> = h
            .archive
            .list(&names::verify_folder(&h.log_id))?
            .into_iter()
            .filter_map(|o| Some((names::parse_verify_state(&o.name)?, o.name)))
            .collect();
        names.sort();
        let names: Vec<String> = names.into_iter().map(|(_, name)| name).collect();
        let newest = match names.last() {
            Some(newest) if self.options.incremental => newest,
            _ => return Ok((names, State::default())),
        };
        let state = match h.get(newest).and_then(|b| State::decode(newest, &b)) {
            Ok(state) => state,
            Err(e) if is_systemic(&e) => return Err(e),
            Err(e) => {
                // A damaged state costs a full verify, not a wrong one.
                self.report.problem(newest.clone(), &e);
                State::default()
            }
        };
        Ok((names, state))
    }

    /// Puts this run's state, then deletes the older ones.
    fn write_state(&mut self, old: &[String], state: &State) -> Result<()> {
        let h = self.history;
        let run = old
            .last()
            .and_then(|n| names::parse_verify_state(n))
            .map_or(1, |n| n + 1);
        let name = names::verify_state(&h.log_id, run);
        h.archive
            .put(&name, object::seal(&h.archive_key, &name, &state.encode()))?;
        for stale in old {
            h.archive.delete(stale)?;
        }
        Ok(())
    }

    /// Whether an earlier run verified `name` at `size`.
    fn known(&mut self, state: &State, name: &str, size: u64) -> bool {
        let known = state.verified.get(name) == Some(&size);
        if known {
            self.report.objects_skipped += 1;
        }
        known
    }

    /// Fetches and opens `name`.
    fn fetch(&mut self, name: &str) -> Result<Vec<u8>> {
        let sealed = self.history.archive.get(name)?;
        self.report.objects_checked += 1;
        self.report.bytes_fetched += sealed.len() as u64;
        if let Some(progress) = &self.options.progress {
            progress(
                self.report.bytes_fetched,
                self.to_fetch.max(self.report.bytes_fetched),
            );
        }
        Ok(object::open(&self.history.archive_key, name, &sealed)?)
    }

    /// Records the problem of one object's check, or marks it verified;
    /// returns whether it passed. Systemic errors stop the run.
    fn settle(
        &mut self,
        name: &str,
        size: u64,
        state: &mut State,
        checked: Result<()>,
    ) -> Result<bool> {
        match checked {
            Ok(()) => {
                state.verified.insert(name.to_owned(), size);
                Ok(true)
            }
            Err(e) if is_systemic(&e) => Err(e),
            Err(e) => {
                state.verified.remove(name);
                self.report.problem(name, &e);
                Ok(false)
            }
        }
    }

    /// The newest keyring copies open and hold together as a keyring, and
    /// the retired keys open. Skipped when an earlier run verified the same
    /// copies, unless `deep` needs the keyring. Returns it, if opened.
    fn keyring(
        &mut self,
        state: &mut State,
        listed: &BTreeMap<String, u64>,
    ) -> Result<Option<Opened>> {
        let h = self.history;
        let size = |name: &str| listed.get(name).copied().unwrap_or(0);
        let mut copies = h.keyring_copies()?;
        copies.push(h.manifest_name.clone());
        let retired = h.retired()?;
        let all_known = copies
            .iter()
            .chain(retired.iter().map(|(n, _)| n))
            .all(|n| state.verified.get(n) == Some(&size(n)));
        if all_known && !self.options.deep {
            self.report.objects_skipped += (copies.len() + retired.len()) as u64;
            return Ok(None);
        }
        let scratch = ScratchDir::new()?;
        let files = Files::new(std::sync::Arc::new(OsFileSystem));
        let mut whole = true;
        for name in &copies[..copies.len() - 1] {
            let checked = self.fetch(name).and_then(|bytes| {
                place_copy(&files, scratch.path(), &h.root, &bytes, name, None).map(drop)
            });
            whole &= self.settle(name, size(name), state, checked)?;
        }
        // The manifest's copy was opened with the history.
        let manifest_path = scratch.path().join(KEYRING_MANIFEST_FILE);
        let bytes = h.manifest.encode(&ChainKey::new(&h.root));
        files.write_atomic(&manifest_path, &bytes)?;
        let opened = Manifest::decode(&manifest_path, &bytes).and_then(|manifest| {
            Keyring::open(
                &files,
                scratch.path(),
                manifest,
                RootKey::from_secret(h.root.secret().clone()),
                std::sync::Arc::new(SystemClock),
            )
        });
        let keyring = match opened {
            Ok(keyring) => keyring,
            Err(e) if is_systemic(&e) => return Err(e),
            Err(e) => {
                if whole {
                    self.report.problem(
                        names::keyring_root(&h.log_id),
                        &format!("the newest copies do not open together: {e}"),
                    );
                }
                state.verified.remove(&h.manifest_name);
                return Ok(None);
            }
        };
        // Every subject key unwraps under its tenant's keys, now rather
        // than at a restore's first read of that subject.
        if let Err(e) = keyring.load_every_subject_shard() {
            if is_systemic(&e) {
                return Err(e);
            }
            self.report.problem(
                names::keyring_root(&h.log_id),
                &format!("a subject shard does not open with its tenant's keys: {e}"),
            );
        }
        state
            .verified
            .insert(h.manifest_name.clone(), size(&h.manifest_name));
        for (name, _) in &retired {
            let checked = self
                .fetch(name)
                .and_then(|bytes| keyring.add_retired(&bytes, name));
            self.settle(name, size(name), state, checked)?;
        }
        Ok(Some(Opened {
            keyring,
            _files: scratch,
        }))
    }

    /// A backup's manifest opens, and every SST it names exists, has the
    /// size it says, and opens (each SST fetched once, however many
    /// backups share it).
    fn backup(
        &mut self,
        name: &str,
        listed: &BTreeMap<String, u64>,
        state: &mut State,
    ) -> Result<()> {
        let size = listed.get(name).copied().unwrap_or(0);
        let named: Vec<(String, u64)> = match state.backups.get(name) {
            Some(objects) if self.known(state, name, size) => {
                objects.iter().map(|o| (o.clone(), u64::MAX)).collect()
            }
            _ => {
                let manifest = self
                    .fetch(name)
                    .and_then(|b| Ok(crate::ship::backup::BackupManifest::decode(name, &b)?));
                match manifest {
                    Ok(m) => m
                        .files
                        .iter()
                        .filter_map(|f| match &f.body {
                            crate::ship::backup::Body::Object(o) => Some((o.clone(), f.size)),
                            _ => None,
                        })
                        .collect(),
                    Err(e) => {
                        self.settle(name, size, state, Err(e))?;
                        return Ok(());
                    }
                }
            }
        };
        let mut whole = true;
        for (object, file_size) in &named {
            let Some(&object_size) = listed.get(object) else {
                whole = false;
                self.report.problem(
                    name,
                    &format!("names {object}, which is not in the archive"),
                );
                continue;
            };
            if self.known(state, object, object_size) {
                continue;
            }
            let checked = self.fetch(object).and_then(|bytes| {
                if bytes.len() as u64 == *file_size {
                    Ok(())
                } else {
                    Err(ArchiveError::corrupt(
                        object,
                        0,
                        CorruptionKind::Malformed("an SST of another size than its backup says"),
                    )
                    .into())
                }
            });
            whole &= self.settle(object, object_size, state, checked)?;
        }
        if whole {
            state.verified.insert(name.to_owned(), size);
            state
                .backups
                .insert(name.to_owned(), named.into_iter().map(|(o, _)| o).collect());
        } else {
            state.verified.remove(name);
            state.backups.remove(name);
        }
        Ok(())
    }

    /// Every piece opens and passes its frames' checks (with `deep`, every
    /// record opens too); each piece that continues the log is linked to
    /// the frame before it; and no LSN after the oldest backup (`oldest`)
    /// is missing.
    fn log(
        &mut self,
        pieces: &[PieceName],
        oldest: u64,
        keyring: Option<&Keyring>,
        state: &mut State,
    ) -> Result<()> {
        let h = self.history;
        // The end of the verified, linked log; and the highest LSN any
        // piece seen holds (a gap is only what no piece holds).
        let mut chain = state.chain;
        let mut covered = chain.map_or(0, |c| c.0);
        for piece in pieces {
            if chain.is_some_and(|(lsn, _)| piece.last <= lsn)
                && self.known(state, &piece.name, piece.size)
            {
                continue;
            }
            let needed = covered.max(oldest) + 1;
            if piece.last > oldest && piece.first > needed {
                self.report.problem(
                    piece.name.clone(),
                    &format!(
                        "a gap in the log: no piece holds LSN {needed} to {}",
                        piece.first - 1
                    ),
                );
                chain = None;
            }
            covered = covered.max(piece.last);
            let mut last = None;
            let mut link = None;
            let mut opened = 0u64;
            let deep = if self.options.deep { keyring } else { None };
            let checked = self.fetch(&piece.name).and_then(|bytes| {
                let source = Path::new(&piece.name);
                read_piece(source, &bytes, &h.mac_key, &h.log_id, |frame| {
                    link.get_or_insert(frame.prev_mac);
                    last = Some((frame.header.lsn, frame.mac));
                    // Frames at or below the oldest backup may be under
                    // versions retention has dropped: no restore reads them.
                    if let Some(keyring) = deep.filter(|_| frame.header.lsn > oldest) {
                        opened += open_records(keyring, frame, source)?;
                    }
                    Ok(())
                })
                .map(drop)
            });
            self.report.records_opened += opened;
            let checked = checked.and_then(|()| match (chain, link) {
                (Some((lsn, mac)), Some(link)) if piece.first == lsn + 1 && link != mac => Err(
                    Error::corruption(Path::new(&piece.name), 0, CorruptionKind::MacChain),
                ),
                _ => Ok(()),
            });
            if self.settle(&piece.name, piece.size, state, checked)?
                && let Some(end) = last
                && chain.is_none_or(|c| end.0 > c.0)
            {
                chain = Some(end);
            }
        }
        state.chain = chain;
        Ok(())
    }
}

/// Opens every record a frame puts, with the keyring (destroyed scopes
/// skipped). Returns how many it opened.
fn open_records(keyring: &Keyring, frame: &crate::wal::LogFrame<'_>, source: &Path) -> Result<u64> {
    let bad = |kind| Error::corruption(source, 0, kind);
    let mut opened = 0;
    for entry in &frame.entries {
        let Op::Put(sealed) = entry.op else { continue };
        if keyring.is_destroyed(entry.scope)? {
            continue;
        }
        let version = record::key_version(sealed).ok_or_else(|| bad(CorruptionKind::RecordAuth))?;
        let key = keyring
            .lookup(entry.scope, Some(version))?
            .ok_or_else(|| bad(CorruptionKind::MissingKey))?;
        let lease = key
            .lease_ungated()
            .map_err(|_| bad(CorruptionKind::MissingKey))?;
        record::open(&lease, &entry.token, sealed).map_err(|_| bad(CorruptionKind::RecordAuth))?;
        opened += 1;
    }
    Ok(opened)
}

const SCRATCH_PREFIX: &str = "strongroom-verify-";

/// A scratch folder for the keyring's copies, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// A new folder only its owner can read (it holds wrapped keys), after
    /// removing those that runs killed before they could clean up left
    /// (older than an hour: a run in progress elsewhere keeps its own).
    fn new() -> Result<ScratchDir> {
        let temp = std::env::temp_dir();
        if let Ok(entries) = std::fs::read_dir(&temp) {
            for entry in entries.flatten() {
                let stale = entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(SCRATCH_PREFIX)
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(3600));
                if stale {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let mut name = [0u8; 8];
        crate::crypto::fill_random(&mut name);
        let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let path = temp.join(format!("{SCRATCH_PREFIX}{hex}"));
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
