//! `strongroom demo`: the engine's main job on the embedded default.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use strongroom::{
    Db, MasterKeySource, Options, ShredOptions, SubjectId, TenantId, WriteBatch, forensic,
};

/// Arguments of `strongroom demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Folder of the demo database (created; must not hold another database).
    #[arg(long, default_value = "strongroom-demo")]
    dir: PathBuf,
    /// Passphrase the master key is derived from (Argon2id). Demo only: real
    /// deployments pass a key file or an environment variable.
    #[arg(
        long,
        env = "STRONGROOM_DEMO_PASSPHRASE",
        default_value = "demo passphrase"
    )]
    passphrase: String,
    /// Records per tenant.
    #[arg(long, default_value_t = 1000)]
    records: u32,
    /// Remove the folder first if it exists.
    #[arg(long)]
    fresh: bool,
    /// Print only a JSON summary of what was shown (for scripts).
    #[arg(long)]
    json: bool,
}

/// `println!` unless `--json` asked for the summary alone.
macro_rules! say {
    ($args:expr, $($line:tt)*) => {
        if !$args.json {
            println!($($line)*);
        }
    };
}

const TENANTS: [(TenantId, &str); 2] = [(TenantId(1), "agency"), (TenantId(2), "school")];
const SUBJECTS: u64 = 10;

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if args.fresh && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    let options = || Options::new(MasterKeySource::Passphrase(args.passphrase.clone().into()));
    say!(args, "strongroom demo in {}", args.dir.display());

    let started = Instant::now();
    let db = Db::open(&args.dir, options())?;
    let before = count_records(&db)?;
    for (tenant, name) in TENANTS {
        let t = db.tenant(tenant);
        for i in 0..args.records {
            t.put(key(name, i).as_bytes(), value(name, i).as_bytes())?;
        }
        let mut batch = WriteBatch::new();
        for s in 0..SUBJECTS {
            batch.put_subject(SubjectId(s), "email", format!("person{s}@{name}.example"));
        }
        let lsn = t.write(batch)?;
        say!(
            args,
            "  wrote {} records to tenant {} ({name}) and {SUBJECTS} subject records in one batch (LSN {})",
            args.records,
            tenant.0,
            lsn.0
        );
    }
    say!(
        args,
        "  {} durable writes in {:.2?}",
        2 * (args.records + 1),
        started.elapsed()
    );
    db.close()?;
    say!(args, "  closed");

    let db = Db::open(&args.dir, options())?;
    say!(args, "  reopened");
    for (tenant, name) in TENANTS {
        let t = db.tenant(tenant);
        for i in 0..args.records {
            let got = t.get(key(name, i).as_bytes())?;
            ensure!(
                got.as_deref() == Some(value(name, i).as_bytes()),
                "record {i} of {name} lost"
            );
        }
        for s in 0..SUBJECTS {
            let email = t.subject(SubjectId(s)).get(b"email")?;
            ensure!(email.is_some(), "subject {s} of {name} lost");
        }
        let scanned = t.scan()?.count();
        say!(
            args,
            "  tenant {} ({name}): all {} records and {SUBJECTS} subjects read back; a scan sees {scanned}",
            tenant.0,
            args.records
        );
    }
    ensure!(count_records(&db)? >= before, "records went missing");

    // Crypto-shredding: the school leaves. Its keys are destroyed at once.
    let (school, _) = TENANTS[1];
    let started = Instant::now();
    db.shred_tenant(school, ShredOptions::immediate())?;
    say!(
        args,
        "  shredded tenant {} (school) in {:.2?}",
        school.0,
        started.elapsed()
    );
    match db.tenant(school).get(key("school", 0).as_bytes()) {
        Err(strongroom::Error::Shredded { .. }) => {
            say!(args, "  its records now read as: shredded")
        }
        other => bail!("a shredded tenant answered {other:?}"),
    }
    db.run_maintenance()?;
    db.close()?;

    let decryptable = forensic::decrypt_everything(&args.dir, &options())?;
    for (tenant, name) in TENANTS {
        let n = decryptable
            .iter()
            .filter(|d| d.scope.tenant == tenant)
            .count();
        say!(
            args,
            "  with the master key and every key left, tenant {} ({name}) decrypts {n} records from the log and store",
            tenant.0
        );
    }
    ensure!(
        decryptable.iter().all(|d| d.scope.tenant != school),
        "a shredded tenant's record still decrypts"
    );

    let (files, bytes, hits) =
        search_plaintext(&args.dir, &["agency", "school", "@agency.example"])?;
    say!(
        args,
        "  searched {files} files ({bytes} bytes) for the plaintext written: {hits} hits"
    );
    if hits > 0 {
        bail!("plaintext found on disk");
    }
    say!(
        args,
        "done: everything survived the reopen, nothing is readable at rest, and the shredded tenant is gone"
    );
    if args.json {
        let per_tenant: Vec<_> = TENANTS
            .iter()
            .map(|(t, name)| {
                serde_json::json!({
                    "tenant": t.0,
                    "name": name,
                    "decryptable_records": decryptable.iter().filter(|d| d.scope.tenant == *t).count(),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "dir": args.dir,
            "records_per_tenant": args.records,
            "subjects_per_tenant": SUBJECTS,
            "shredded_tenant": school.0,
            "tenants": per_tenant,
            "files_searched": files,
            "bytes_searched": bytes,
            "plaintext_hits": hits,
        });
        println!("{summary}");
    }
    Ok(())
}

fn key(tenant: &str, i: u32) -> String {
    format!("{tenant}/record/{i:06}")
}

fn value(tenant: &str, i: u32) -> String {
    format!("{tenant} record {i}: some personal data that must never reach the disk in clear")
}

fn count_records(db: &Db) -> anyhow::Result<usize> {
    let mut n = 0;
    for (tenant, _) in TENANTS {
        n += db.tenant(tenant).scan()?.count();
    }
    Ok(n)
}

/// Counts the files under `dir` and the occurrences of each needle in them.
fn search_plaintext(dir: &Path, needles: &[&str]) -> anyhow::Result<(usize, u64, usize)> {
    let (mut files, mut bytes, mut hits) = (0, 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
            continue;
        }
        let data = std::fs::read(&path)?;
        files += 1;
        bytes += data.len() as u64;
        for needle in needles {
            hits += data
                .windows(needle.len())
                .filter(|w| w == &needle.as_bytes())
                .count();
        }
    }
    Ok((files, bytes, hits))
}
