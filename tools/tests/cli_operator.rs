//! The operator's `strongroom restore`, `verify` and `archive`, run as the
//! real binary: `--json` output parsed, exit codes, one-line errors, and a
//! restore killed with SIGKILL half-way and run again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use strongroom::archive::LocalArchive;
use strongroom::{ArchiveOptions, Db, Options, RetentionPolicy, TenantId};

const KEY: [u8; 32] = [0x5a; 32];

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    command.env_remove("AWS_ENDPOINT").env_remove("AWS_REGION");
    command
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A database that shipped to an archive, with a key file.
struct Setup {
    dir: tempfile::TempDir,
    archive: PathBuf,
    key_file: PathBuf,
    /// The last commit.
    last_lsn: u64,
}

fn setup(writes: usize, value_len: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex(&KEY)).unwrap();
    let db = Db::open(
        dir.path().join("db"),
        Options::with_key(KEY).segment_bytes_max(64 << 10).archive(
            ArchiveOptions::new(Arc::new(LocalArchive::new(&archive)))
                .ship_interval(Duration::from_millis(20))
                .backup_interval(None)
                .retention(None),
        ),
    )
    .unwrap();
    let mut last = 0;
    for i in 0..writes {
        let tenant = db.tenant(TenantId(1 + (i % 2) as u64));
        last = tenant
            .put(format!("k{i}").as_bytes(), &vec![b'v'; value_len])
            .unwrap()
            .0;
        if i == writes / 2 {
            db.backup_now().unwrap();
        }
    }
    db.ship_now().unwrap();
    db.close().unwrap();
    Setup {
        dir,
        archive,
        key_file,
        last_lsn: last,
    }
}

impl Setup {
    fn restore(&self, into: &Path, extra: &[&str]) -> Output {
        bin()
            .arg("restore")
            .arg("--archive")
            .arg(&self.archive)
            .arg("--key-file")
            .arg(&self.key_file)
            .arg("--into")
            .arg(into)
            .args(extra)
            .output()
            .unwrap()
    }
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Everything a restored database holds, by tenant and key.
fn contents(dir: &Path) -> BTreeMap<(u64, Vec<u8>), Vec<u8>> {
    let db = Db::open(dir, Options::with_key(KEY)).unwrap();
    let mut out = BTreeMap::new();
    for tenant in [1, 2] {
        for item in db.tenant(TenantId(tenant)).scan().unwrap() {
            let (k, v) = item.unwrap();
            out.insert((tenant, k), v);
        }
    }
    db.close().unwrap();
    out
}

/// The one line a failing command prints, and its exit code.
fn failure(output: &Output) -> (i32, String) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("strongroom: error: "), "{stderr}");
    (output.status.code().unwrap(), stderr)
}

#[test]
fn restore_and_archive_from_the_command_line() {
    let s = setup(200, 100);
    // What the archive holds.
    let listed = bin()
        .args(["archive", "--json", "--archive"])
        .arg(&s.archive)
        .arg("--key-file")
        .arg(&s.key_file)
        .output()
        .unwrap();
    let listed = json(&listed);
    let histories = listed["histories"].as_array().unwrap();
    assert_eq!(histories.len(), 1);
    assert_eq!(histories[0]["newest_lsn"], s.last_lsn);
    assert_eq!(histories[0]["oldest_lsn"], 0);
    assert_eq!(histories[0]["backups"].as_array().unwrap().len(), 1);
    let human = bin()
        .args(["archive", "--archive"])
        .arg(&s.archive)
        .arg("--key-file")
        .arg(&s.key_file)
        .output()
        .unwrap();
    assert!(human.status.success());
    assert!(String::from_utf8_lossy(&human.stdout).contains("restores to any LSN from 0 to 200"));

    // The latest moment.
    let latest = s.dir.path().join("latest");
    let report = json(&s.restore(&latest, &["--json"]));
    assert_eq!(report["lsn"], s.last_lsn);
    assert_eq!(report["history"], histories[0]["name"]);
    assert!(report["backup"]["lsn"].as_u64().unwrap() > 0);
    assert_eq!(contents(&latest).len(), 200);
    // An LSN, and a time before the first commit.
    let at_50 = s.dir.path().join("at-50");
    assert_eq!(
        json(&s.restore(&at_50, &["--json", "--lsn", "50"]))["lsn"],
        50
    );
    assert_eq!(contents(&at_50).len(), 50);
    let empty = s.dir.path().join("empty");
    let report = json(&s.restore(&empty, &["--json", "--at", "1 day ago"]));
    assert_eq!(
        (report["lsn"].as_u64(), report["commit_time"].is_null()),
        (Some(0), true)
    );
    // One tenant.
    let tenant = s.dir.path().join("tenant-2");
    json(&s.restore(&tenant, &["--json", "--tenant", "2"]));
    let only = contents(&tenant);
    assert!(only.len() == 100 && only.keys().all(|(t, _)| *t == 2));
    // Human output.
    let human = s.restore(&s.dir.path().join("human"), &["--lsn", "7"]);
    assert!(human.status.success());
    assert!(String::from_utf8_lossy(&human.stdout).contains("to LSN 7"));

    // Failures: one line each, with its exit code.
    let (code, line) = failure(&s.restore(&latest, &[]));
    assert_eq!(code, 7, "{line}");
    assert!(line.contains("not empty"), "{line}");
    let wrong_key = s.dir.path().join("wrong.key");
    std::fs::write(&wrong_key, hex(&[1; 32])).unwrap();
    let output = bin()
        .arg("restore")
        .arg("--archive")
        .arg(&s.archive)
        .arg("--key-file")
        .arg(&wrong_key)
        .arg("--into")
        .arg(s.dir.path().join("wrong"))
        .output()
        .unwrap();
    let (code, line) = failure(&output);
    assert_eq!(code, 3, "{line}");
    assert!(line.contains("wrong master key"), "{line}");
    let output = bin()
        .args(["restore", "--archive"])
        .arg(s.dir.path().join("no-such-archive"))
        .arg("--key-file")
        .arg(&s.key_file)
        .arg("--into")
        .arg(s.dir.path().join("missing"))
        .output()
        .unwrap();
    let (code, line) = failure(&output);
    assert_eq!(code, 4, "{line}");
    assert!(line.contains("does not exist"), "{line}");
    let (code, line) = failure(&s.restore(&s.dir.path().join("past"), &["--lsn", "999"]));
    assert_eq!(code, 6, "{line}");
    assert!(line.contains("past the last frame"), "{line}");
    let (code, line) = failure(&s.restore(&s.dir.path().join("bad-time"), &["--at", "soon"]));
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("not a time"), "{line}");
    // No master key at all is a usage error.
    let output = bin()
        .args(["restore", "--archive"])
        .arg(&s.archive)
        .arg("--into")
        .arg(s.dir.path().join("no-key"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_target_before_the_oldest_backup_names_the_oldest_moment() {
    let s = setup(60, 10);
    // A second backup, then a retention that keeps only the newest: the
    // log below it goes.
    let db = Db::open(
        s.dir.path().join("db"),
        Options::with_key(KEY).archive(
            ArchiveOptions::new(Arc::new(LocalArchive::new(&s.archive)))
                .backup_interval(None)
                .retention(Some(RetentionPolicy {
                    hourly: Duration::ZERO,
                    daily: Duration::ZERO,
                    weekly: Duration::ZERO,
                    monthly: None,
                })),
        ),
    )
    .unwrap();
    db.tenant(TenantId(1)).put(b"more", b"x").unwrap();
    let newest = db.backup_now().unwrap();
    db.apply_retention().unwrap();
    db.close().unwrap();
    let (code, line) = failure(&s.restore(&s.dir.path().join("early"), &["--lsn", "5"]));
    assert_eq!(code, 6, "{line}");
    assert!(
        line.contains(&format!(
            "the oldest moment the archive reaches: LSN {}",
            newest.applied_lsn.0
        )),
        "{line}"
    );
    let early = json(&s.restore(
        &s.dir.path().join("ok"),
        &["--json", "--lsn", &newest.applied_lsn.0.to_string()],
    ));
    assert_eq!(early["lsn"], newest.applied_lsn.0);
}

/// Whether a restore into `dir` has yet to finish: not started, killed
/// before its record was in place (a lock file, perhaps the record's
/// temporary file), or recorded as unfinished.
fn unfinished(dir: &Path) -> bool {
    let names: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
        Err(_) => return true,
    };
    names.iter().all(|n| n == "LOCK" || n == "RESTORING.tmp") || dir.join("RESTORING").exists()
}

#[test]
fn a_restore_killed_half_way_and_run_again_gives_the_same_database() {
    let s = setup(12_000, 1000);
    let reference = s.dir.path().join("reference");
    json(&s.restore(&reference, &["--json", "--threads", "1"]));
    let expected = contents(&reference);
    assert_eq!(expected.len(), 12_000);
    let into = s.dir.path().join("killed");
    let mut killed = 0;
    for delay_ms in [2, 5, 10, 20, 40, 70, 100, 140, 200, 300] {
        let mut child = bin()
            .arg("restore")
            .arg("--archive")
            .arg(&s.archive)
            .arg("--key-file")
            .arg(&s.key_file)
            .arg("--into")
            .arg(&into)
            .args(["--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        if !unfinished(&into) {
            break; // it finished before this kill
        }
        if into.join("RESTORING").exists() {
            // Half-restored: not a database yet.
            assert!(matches!(
                Db::open(&into, Options::with_key(KEY)),
                Err(strongroom::Error::RestoreIncomplete(_))
            ));
        }
    }
    assert!(killed > 0, "at least one restore was killed half-way");
    if unfinished(&into) {
        json(&s.restore(&into, &["--json", "--threads", "1"]));
    }
    assert!(!unfinished(&into));
    assert!(
        contents(&into) == expected,
        "the same database as an uninterrupted restore"
    );
}

#[test]
fn verify_from_the_command_line_passes_a_sound_archive_and_names_a_damaged_object() {
    let s = setup(100, 100);
    let verify = |extra: &[&str]| {
        bin()
            .args(["verify", "--archive"])
            .arg(&s.archive)
            .arg("--key-file")
            .arg(&s.key_file)
            .args(extra)
            .output()
            .unwrap()
    };
    let first = json(&verify(&["--json", "--deep"]));
    assert!(first["problems"].as_array().unwrap().is_empty(), "{first}");
    // The records after the backup (taken half-way) are opened.
    assert!(first["records_opened"].as_u64().unwrap() >= 49, "{first}");
    // The second run has nothing new to fetch.
    let second = json(&verify(&["--json"]));
    assert_eq!(second["objects_checked"], 0, "{second}");
    // A flipped bit in a piece: exit 5, and the piece named.
    let piece = walk(&s.archive)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&piece).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&piece, bytes).unwrap();
    let output = verify(&["--full"]);
    assert_eq!(output.status.code(), Some(5));
    let name = piece.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&name),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_key_lifecycle_and_the_archive_from_the_command_line() {
    let s = setup(40, 10);
    let db_dir = s.dir.path().join("db");
    let on_db = |args: &[&str]| {
        bin()
            .args(args)
            .arg("--db")
            .arg(&db_dir)
            .arg("--key-file")
            .arg(&s.key_file)
            .arg("--archive")
            .arg(&s.archive)
            .arg("--json")
            .output()
            .unwrap()
    };
    // A subject sealed, then its shred cancelled; a tenant shredded now.
    let sealed = json(&on_db(&[
        "shred",
        "--tenant",
        "1",
        "--subject",
        "5",
        "--grace",
        "1h",
    ]));
    assert_eq!(sealed["state"], "sealed");
    assert!(sealed["deadline"].is_string());
    let cancelled = json(&on_db(&["cancel-shred", "--tenant", "1", "--subject", "5"]));
    assert_eq!(cancelled["cancelled"], true);
    let (code, line) = failure(&on_db(&["cancel-shred", "--tenant", "1", "--subject", "5"]));
    assert_eq!(code, 1, "{line}");
    let shredded = json(&on_db(&["shred", "--tenant", "2", "--now"]));
    assert_eq!(
        (
            shredded["state"].as_str(),
            shredded["archive_behind"].as_bool()
        ),
        (Some("shredded"), Some(false))
    );
    // A rotation, a backup, and retention's dry run.
    assert_eq!(json(&on_db(&["rotate-key", "--tenant", "1"]))["version"], 2);
    let backup = json(&on_db(&["backup"]));
    assert!(backup["lsn"].as_u64().unwrap() >= s.last_lsn);
    // Both backups fall in one hour: the newest of the hour is kept.
    let plan = json(&on_db(&["retention", "--dry-run"]));
    assert_eq!(plan["kept_backups"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(
        plan["deleted_backups"].as_array().unwrap().len(),
        1,
        "{plan}"
    );
    assert_eq!(plan["dry_run"], true);
    // The archive knows of the shred: a restore to a moment when tenant 2
    // had records reports it destroyed.
    let before = s.last_lsn.to_string();
    let restored = json(&s.restore(
        &s.dir.path().join("after-shred"),
        &["--json", "--lsn", &before],
    ));
    let destroyed = restored["destroyed"].as_array().unwrap();
    assert!(
        destroyed
            .iter()
            .any(|d| d["tenant"] == 2 && d["subject"].is_null()),
        "{restored}"
    );
    // The master key rotates: the old key is refused (exit 3), the new one opens.
    let new_key = s.dir.path().join("new.key");
    std::fs::write(&new_key, hex(&[0x33; 32])).unwrap();
    let rotated = bin()
        .args(["rotate-master-key", "--json", "--db"])
        .arg(&db_dir)
        .arg("--key-file")
        .arg(&s.key_file)
        .arg("--new-key-file")
        .arg(&new_key)
        .output()
        .unwrap();
    assert_eq!(json(&rotated)["rotated"], true);
    let (code, line) = failure(&on_db(&["backup"]));
    assert_eq!(code, 3, "{line}");
    let with_new = bin()
        .args(["backup", "--json", "--db"])
        .arg(&db_dir)
        .arg("--key-file")
        .arg(&new_key)
        .arg("--archive")
        .arg(&s.archive)
        .output()
        .unwrap();
    json(&with_new);
    // A database in use by an application: exit 7, nothing done.
    let db = Db::open(&db_dir, Options::with_key([0x33; 32])).unwrap();
    let busy = bin()
        .args(["shred", "--now", "--tenant", "1", "--db"])
        .arg(&db_dir)
        .arg("--key-file")
        .arg(&new_key)
        .output()
        .unwrap();
    let (code, line) = failure(&busy);
    assert_eq!(code, 7, "{line}");
    assert_eq!(
        db.tenant(TenantId(1)).state().unwrap(),
        strongroom::ScopeState::Live
    );
    db.close().unwrap();
}

#[test]
fn a_standby_and_its_promotion_from_the_command_line() {
    let s = setup(30, 10);
    let folder = s.dir.path().join("standby");
    let run = |args: &[&str], place: &str| {
        bin()
            .args(args)
            .arg("--archive")
            .arg(&s.archive)
            .arg("--key-file")
            .arg(&s.key_file)
            .arg(place)
            .arg(&folder)
            .arg("--json")
            .output()
            .unwrap()
    };
    let status = json(&run(&["standby", "--once"], "--into"));
    assert_eq!(status["applied_lsn"], s.last_lsn);
    // The primary goes on; the standby catches up at its next run.
    let db = Db::open(
        s.dir.path().join("db"),
        Options::with_key(KEY).archive(
            ArchiveOptions::new(Arc::new(LocalArchive::new(&s.archive))).backup_interval(None),
        ),
    )
    .unwrap();
    let lsn = db.tenant(TenantId(1)).put(b"later", b"write").unwrap();
    db.ship_now().unwrap();
    db.close().unwrap();
    let status = json(&run(&["standby", "--once"], "--into"));
    assert_eq!(status["applied_lsn"], lsn.0);
    // Promoted: a second history, and the folder takes writes.
    let promoted = json(&run(&["promote"], "--db"));
    assert_eq!(
        (promoted["promoted"].as_bool(), promoted["lsn"].as_u64()),
        (Some(true), Some(lsn.0))
    );
    let listed = bin()
        .args(["archive", "--json", "--archive"])
        .arg(&s.archive)
        .arg("--key-file")
        .arg(&s.key_file)
        .output()
        .unwrap();
    assert_eq!(json(&listed)["histories"].as_array().unwrap().len(), 2);
    let db = Db::open(&folder, Options::with_key(KEY)).unwrap();
    assert_eq!(
        db.tenant(TenantId(1)).get(b"later").unwrap().as_deref(),
        Some(&b"write"[..])
    );
    db.tenant(TenantId(1)).put(b"mine", b"now").unwrap();
    db.close().unwrap();
}

#[test]
fn inspect_shows_metadata_and_plaintext_only_when_asked() {
    let s = setup(20, 10);
    let db_dir = s.dir.path().join("db");
    let inspect = |args: &[&str]| {
        bin()
            .arg("inspect")
            .args(args)
            .arg("--key-file")
            .arg(&s.key_file)
            .arg("--json")
            .output()
            .unwrap()
    };
    let db_arg = db_dir.to_str().unwrap();
    let log = inspect(&["log", "--db", db_arg]);
    let text = String::from_utf8_lossy(&log.stdout).into_owned();
    let listed = json(&log);
    let frames = listed["frames"].as_array().unwrap();
    assert!(!frames.is_empty());
    assert_eq!(frames.last().unwrap()["lsn"], s.last_lsn);
    assert_eq!(frames.last().unwrap()["entries"][0]["op"], "put");
    assert!(listed["records"].as_array().unwrap().is_empty());
    assert!(
        !text.contains("\"k1") && !text.contains("vvvvvvvv"),
        "no plaintext: {text}"
    );
    let decrypted = json(&inspect(&["log", "--db", db_arg, "--decrypt"]));
    assert!(
        decrypted["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "k19" && r["value"] == "vvvvvvvvvv")
    );
    let scope = json(&inspect(&["scope", "--db", db_arg, "--tenant", "1"]));
    assert_eq!(
        (scope["state"].as_str(), scope["records"].as_u64()),
        (Some("live"), Some(10))
    );
    let listed = bin()
        .args(["archive", "--json", "--archive"])
        .arg(&s.archive)
        .arg("--key-file")
        .arg(&s.key_file)
        .output()
        .unwrap();
    let backup = json(&listed)["histories"][0]["backups"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let files = bin()
        .args([
            "inspect",
            "backup",
            "--json",
            "--name",
            &backup,
            "--archive",
        ])
        .arg(&s.archive)
        .arg("--key-file")
        .arg(&s.key_file)
        .output()
        .unwrap();
    let files = json(&files);
    let files = files["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["file"].as_str().unwrap().ends_with(".sst") && f["object"].is_string())
    );
    assert!(
        files
            .iter()
            .any(|f| f["file"] == "CURRENT" && f["object"].is_null())
    );
}
