//! A Garage server on loopback for the archive tests, started (once per
//! test binary, or on its own for a test that stops it) by `tools/garage`,
//! which stops it when the test process exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use strongroom::archive::{S3Archive, S3Config};

/// One running Garage server.
pub struct Garage {
    dir: PathBuf,
    config: S3Config,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/garage")
}

impl Garage {
    /// Starts a server of its own (a test that stops and restarts it).
    pub fn start_new() -> Garage {
        // Removed by tools/garage once this process exits.
        let dir = tempfile::Builder::new()
            .prefix("strongroom-garage-")
            .tempdir()
            .unwrap()
            .keep();
        let garage = Garage {
            config: S3Config::default(),
            dir,
        };
        garage.start();
        let env = std::fs::read_to_string(garage.dir.join("env")).unwrap();
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("STRONGROOM_TEST_S3_{name}=")))
                .unwrap_or_else(|| panic!("{name} in tools/garage's env file"))
                .to_owned()
        };
        Garage {
            config: S3Config {
                endpoint: Some(var("ENDPOINT")),
                region: Some(var("REGION")),
                bucket: var("BUCKET"),
                prefix: String::new(),
                access_key_id: Some(var("ACCESS_KEY_ID")),
                secret_access_key: Some(var("SECRET_ACCESS_KEY")),
            },
            ..garage
        }
    }

    /// (Re)starts the server, on the same port with the same data.
    pub fn start(&self) {
        let status = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&self.dir)
            .arg(std::process::id().to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "tools/garage start failed (is Garage installed? bash tools/garage install)"
        );
    }

    /// Stops the server (its data stays for the next start).
    pub fn stop(&self) {
        let status = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Where a new archive in this server's bucket would live: a folder of
    /// its own, so tests sharing the server never see each other's objects.
    pub fn config(&self) -> S3Config {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        S3Config {
            prefix: format!(
                "test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ),
            ..self.config.clone()
        }
    }

    /// A new, empty archive in this server's bucket.
    pub fn archive(&self) -> S3Archive {
        S3Archive::new(&self.config()).unwrap()
    }

    /// The server's folder (its objects' raw bytes are under `data/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The server this test binary shares.
pub fn shared() -> &'static Garage {
    static SHARED: OnceLock<Garage> = OnceLock::new();
    SHARED.get_or_init(Garage::start_new)
}
