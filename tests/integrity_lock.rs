//! One process per database: a second opener, in another process or in
//! this one, is refused with `Error::InUse` before it reads or writes any
//! file, and the lock goes with the process that held it, however it ends.
//!
//! The holder is a real second process: this test binary run again with
//! `HOLDER_DIR` set (the sled habit), which opens the database, writes,
//! says `ready`, waits for a line on stdin, writes again and closes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use common::{open, options, snapshot_files};
use strongroom::forensic::decrypt_everything;
use strongroom::{Db, Error, Options, TenantId};

const HOLDER_DIR: &str = "STRONGROOM_TEST_HOLDER_DIR";

/// The holder's side: runs only in the child process.
#[test]
fn holder_process() {
    let Some(dir) = std::env::var_os(HOLDER_DIR) else {
        return;
    };
    let db = open(Path::new(&dir));
    let tenant = db.tenant(TenantId(1));
    tenant.put(b"before", b"1").unwrap();
    // Settled: the key's anchor written now, not while the other process
    // compares the files.
    db.run_maintenance().unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    tenant.put(b"after", b"2").unwrap();
    db.close().unwrap();
    println!("closed");
}

fn spawn_holder(dir: &Path) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holder_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_DIR, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_for(&mut out, "ready");
    (child, out)
}

fn wait_for(out: &mut BufReader<ChildStdout>, word: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the holder ended before saying {word}"
        );
        if line.trim_end().ends_with(word) {
            return;
        }
    }
}

fn assert_in_use(result: Result<impl Sized, Error>, dir: &Path) {
    match result {
        Err(Error::InUse { path }) => assert_eq!(path, dir),
        Err(other) => panic!("expected InUse, got {other}"),
        Ok(_) => panic!("expected InUse, the open succeeded"),
    }
}

#[test]
fn a_second_process_is_refused_and_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (mut holder, mut out) = spawn_holder(dir.path());

    let before = snapshot_files(dir.path());
    assert_in_use(Db::open(dir.path(), options()), dir.path());
    assert_in_use(decrypt_everything(dir.path(), &options()), dir.path());
    // A wrong key is not even looked at: the lock comes first.
    assert_in_use(Db::open(dir.path(), Options::with_key([1; 32])), dir.path());
    let after = snapshot_files(dir.path());
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(changed.is_empty(), "a refused open changed {changed:?}");

    // The holder goes on writing, and closes.
    writeln!(holder.stdin.as_mut().unwrap()).unwrap();
    wait_for(&mut out, "closed");
    assert!(holder.wait().unwrap().success());

    let db = open(dir.path());
    let tenant = db.tenant(TenantId(1));
    assert_eq!(tenant.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(tenant.get(b"after").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn the_lock_is_released_when_its_process_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut holder, _out) = spawn_holder(dir.path());
    assert_in_use(Db::open(dir.path(), options()), dir.path());
    holder.kill().unwrap(); // SIGKILL: no destructor runs
    holder.wait().unwrap();
    let db = open(dir.path());
    let tenant = db.tenant(TenantId(1));
    assert_eq!(tenant.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_second_open_in_the_same_process_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.tenant(TenantId(2)).put(b"k", b"v").unwrap();
    assert_in_use(Db::open(dir.path(), options()), dir.path());
    assert_in_use(decrypt_everything(dir.path(), &options()), dir.path());
    db.close().unwrap();
    assert_eq!(decrypt_everything(dir.path(), &options()).unwrap().len(), 2);
    let db = open(dir.path());
    assert_eq!(
        db.tenant(TenantId(2)).get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_folder_of_other_files_is_refused_without_a_lock_file_left_in_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    assert!(matches!(
        Db::open(dir.path(), options()),
        Err(Error::NotADatabase(_))
    ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the user's own file"
    );
}
