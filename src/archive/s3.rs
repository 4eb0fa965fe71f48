//! An archive in an S3-compatible bucket, through the `object_store` crate.
//!
//! The engine's API stays synchronous: each call runs on a small runtime of
//! the archive's own (one worker thread) and the calling thread waits for
//! it on a channel, so a call from inside an application's own async
//! runtime blocks that thread but never panics. Retries inside a call are
//! few and short (the shipper has its own backoff, and a call that hangs
//! for minutes would hold up a shred's archive step).
//!
//! Plain HTTP is allowed for a loopback endpoint only (a test server, a
//! local proxy); anything else must be HTTPS.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use super::{Archive, ArchiveError, ArchiveOp, ObjectInfo, check_name, check_prefix};

/// Where an S3 archive lives. Credentials left `None` come from the standard
/// `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ENDPOINT`,
/// `AWS_REGION`).
#[derive(Clone, Default)]
pub struct S3Config {
    /// The server's URL, such as `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:3900`; `None`: AWS (or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// The region (Garage's default is `garage`); `None`: `AWS_REGION`.
    pub region: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// Folder inside the bucket that holds this archive (`""`: the root).
    pub prefix: String,
    /// Access key id; `None`: from the environment.
    pub access_key_id: Option<String>,
    /// Secret access key; `None`: from the environment.
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Tries per call, and how long a call may take in all.
const RETRIES_MAX: usize = 2;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Objects larger than this are put in parts of `PART_LEN` (S3's smallest
/// part is 5 MiB), at most `PARTS_IN_FLIGHT` at once.
const MULTIPART_ABOVE: usize = 8 << 20;
const PART_LEN: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 2;

/// An archive in an S3-compatible bucket.
pub struct S3Archive {
    store: Arc<dyn ObjectStore>,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// `bucket/prefix`, for messages.
    place: String,
}

impl fmt::Debug for S3Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Archive({})", self.place)
    }
}

impl S3Archive {
    /// Connects to the bucket (lazily: nothing is sent before the first
    /// call).
    pub fn new(config: &S3Config) -> Result<S3Archive, ArchiveError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: RETRIES_MAX,
                retry_timeout: CALL_TIMEOUT,
                ..RetryConfig::default()
            });
        let mut client = ClientOptions::new()
            .with_timeout(CALL_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT);
        // The endpoint from the config or the environment, checked here
        // (and `AWS_ALLOW_HTTP` ignored: the client options below replace
        // the environment's).
        let endpoint = config.endpoint.clone().or_else(|| {
            ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|var| std::env::var(var).ok())
        });
        if let Some(endpoint) = &endpoint {
            let url = url::Url::parse(endpoint)
                .map_err(|e| ArchiveError::Config(format!("endpoint {endpoint:?}: {e}")))?;
            match url.scheme() {
                "https" => {}
                "http" if is_loopback(&url) => client = client.with_allow_http(true),
                "http" => {
                    return Err(ArchiveError::Config(format!(
                        "plain HTTP is allowed for a loopback endpoint only, not {endpoint}"
                    )));
                }
                other => {
                    return Err(ArchiveError::Config(format!(
                        "endpoint {endpoint:?}: scheme {other:?} is neither https nor http"
                    )));
                }
            }
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let s3 = builder
            .with_client_options(client)
            .build()
            .map_err(|e| ArchiveError::Config(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match config.prefix.trim_matches('/') {
            "" => Arc::new(s3),
            prefix => {
                check_name(prefix)?;
                Arc::new(PrefixStore::new(s3, prefix))
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strongroom-archive")
            .enable_all()
            .build()
            .map_err(|e| ArchiveError::Config(format!("archive runtime: {e}")))?;
        Ok(S3Archive {
            store,
            runtime: Some(runtime),
            place: format!("{}/{}", config.bucket, config.prefix),
        })
    }

    /// Runs `call` on the archive's runtime and waits for it.
    fn run<T: Send + 'static>(&self, call: impl Future<Output = T> + Send + 'static) -> T {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().expect("set until dropped");
        runtime.spawn(async move {
            // The receiver waits until this sends.
            let _ = done.send(call.await);
        });
        result
            .recv()
            .expect("the archive runtime runs every call it is given to its end")
    }
}

impl Drop for S3Archive {
    fn drop(&mut self) {
        // Without waiting: dropping a runtime blocks, and panics when done
        // from an async context (an application that drops its `Db` in a
        // task). No call is in flight: each waits for its end.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Whether `url`'s host is a loopback address (the host as a URL parser
/// reads it: user info and ports are not the host).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn object_error(op: ArchiveOp, name: &str, e: object_store::Error) -> ArchiveError {
    match e {
        object_store::Error::NotFound { .. } => ArchiveError::NotFound {
            name: name.to_owned(),
        },
        other => ArchiveError::Unavailable {
            op,
            name: name.to_owned(),
            message: other.to_string(),
        },
    }
}

/// The object-store path of folder `prefix` (`None` for the top).
fn folder_path(prefix: &str) -> Result<Option<ObjectPath>, ArchiveError> {
    check_prefix(prefix)?;
    prefix.strip_suffix('/').map(object_path).transpose()
}

fn object_path(name: &str) -> Result<ObjectPath, ArchiveError> {
    check_name(name)?;
    ObjectPath::parse(name).map_err(|_| ArchiveError::InvalidName(name.to_owned()))
}

impl Archive for S3Archive {
    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        let path = object_path(name)?;
        let store = Arc::clone(&self.store);
        if bytes.len() <= MULTIPART_ABOVE {
            return self
                .run(async move { store.put(&path, PutPayload::from(bytes)).await })
                .map(|_| ())
                .map_err(|e| object_error(ArchiveOp::Put, name, e));
        }
        // In parts, each a request of its own under the call timeout, so
        // that an object of any size goes through an uplink of a few
        // hundred KiB/s (one request for a 64 MiB SST would need 2 MiB/s).
        self.run(async move {
            let upload = store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_LEN);
            for part in bytes.chunks(PART_LEN) {
                if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    let _ = writer.abort().await;
                    return Err(e);
                }
                writer.write(part);
            }
            writer.finish().await
        })
        .map(|_| ())
        .map_err(|e| object_error(ArchiveOp::Put, name, e))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let path = object_path(name)?;
        let store = Arc::clone(&self.store);
        self.run(async move { store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| object_error(ArchiveOp::Get, name, e))
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, ArchiveError> {
        let path = object_path(name)?;
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let store = Arc::clone(&self.store);
        let got = self.run(async move {
            let size = store.head(&path).await?.size;
            let range = range.start.min(size)..range.end.min(size);
            if range.is_empty() {
                return Ok(Default::default());
            }
            store.get_range(&path, range).await
        });
        got.map(|b| b.to_vec())
            .map_err(|e| object_error(ArchiveOp::Get, name, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ArchiveError> {
        let folder = folder_path(prefix)?;
        let store = Arc::clone(&self.store);
        let listed =
            self.run(async move { store.list(folder.as_ref()).try_collect::<Vec<_>>().await });
        let mut out: Vec<ObjectInfo> = listed
            .map_err(|e| object_error(ArchiveOp::List, prefix, e))?
            .into_iter()
            .map(|meta| ObjectInfo {
                name: meta.location.to_string(),
                size: meta.size,
                modified: Some(meta.last_modified.into()),
            })
            // An object of another name is not one of ours.
            .filter(|o| check_name(&o.name).is_ok())
            .collect();
        out.sort();
        Ok(out)
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        let folder = folder_path(prefix)?;
        let store = Arc::clone(&self.store);
        let listed = self.run(async move { store.list_with_delimiter(folder.as_ref()).await });
        let mut out: Vec<String> = listed
            .map_err(|e| object_error(ArchiveOp::List, prefix, e))?
            .common_prefixes
            .into_iter()
            .map(|p| format!("{p}/"))
            .filter(|f| f.starts_with(prefix) && check_prefix(f).is_ok())
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), ArchiveError> {
        let path = object_path(name)?;
        let store = Arc::clone(&self.store);
        match self.run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error(ArchiveOp::Delete, name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_dropped_inside_an_async_task_does_not_panic() {
        let config = S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
            bucket: "b".into(),
            region: Some("garage".into()),
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            ..S3Config::default()
        };
        let archive = S3Archive::new(&config).unwrap();
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        outer.block_on(async move { drop(archive) });
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        for yes in [
            "http://127.0.0.1:3900",
            "http://localhost:3900/",
            "http://[::1]:3900",
            "http://127.0.0.2",
        ] {
            assert!(is_loopback(&url::Url::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "http://10.0.0.1:3900",
            "http://example.com",
            "http://127.0.0.1.example.com",
            "http://127.0.0.1@example.com",
            "http://localhost:3900@example.com/",
            "http://[::1]@example.com",
        ] {
            assert!(!is_loopback(&url::Url::parse(no).unwrap()), "{no}");
        }
        for refused in [
            "http://s3.example.com",
            "http://127.0.0.1@example.com",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            let config = S3Config {
                endpoint: Some(refused.into()),
                bucket: "b".into(),
                region: Some("garage".into()),
                ..S3Config::default()
            };
            assert!(
                matches!(S3Archive::new(&config), Err(ArchiveError::Config(_))),
                "{refused}"
            );
        }
    }
}
