//! The archive an operator's command reads: a local folder, or a bucket on
//! an S3-compatible server (`s3://BUCKET/PREFIX`).

use std::sync::Arc;

use anyhow::{Context, bail};
use strongroom::archive::{Archive, LocalArchive, S3Archive, S3Config};

/// The archive, from the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct ArchiveArgs {
    /// The archive: a local folder, or s3://BUCKET/PREFIX on an
    /// S3-compatible server (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY).
    #[arg(long, value_name = "FOLDER|s3://BUCKET/PREFIX")]
    pub archive: String,
    /// The S3 server's URL (default: AWS itself). Plain http is allowed for
    /// a loopback address only.
    #[arg(long, env = "AWS_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The S3 region.
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
}

impl ArchiveArgs {
    pub fn open(&self) -> anyhow::Result<Arc<dyn Archive>> {
        let Some(rest) = self.archive.strip_prefix("s3://") else {
            return Ok(Arc::new(LocalArchive::new(&self.archive)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("no bucket in {:?}: s3://BUCKET/PREFIX", self.archive);
        }
        let config = S3Config {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
            ..S3Config::default()
        };
        Ok(Arc::new(S3Archive::new(&config).with_context(|| {
            format!("the archive {}", self.archive)
        })?))
    }
}
