//! Objects in an S3 bucket under a prefix: where `provision backup --to
//! s3://BUCKET/PREFIX` keeps backups. The same configuration, credential
//! chain (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`…) and HTTP client
//! as the EC2 driver; the permissions needed are exactly
//! `examples/s3-backup-iam-policy.json`.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_sdk_s3::Client;
use provision_provider::ProviderError;

/// The part size of a multipart upload (S3 wants at least 5 MiB a part
/// but the last, and at most 10,000 parts: archives up to 160 GB).
pub const PART_SIZE: usize = 16 << 20;

/// A failed S3 call, naming the object and saying what to do.
#[derive(Debug, thiserror::Error)]
#[error("s3://{bucket}/{key}: {operation} failed: {message}")]
pub struct S3Error {
    pub operation: &'static str,
    pub bucket: String,
    pub key: String,
    pub message: String,
    /// The object (or the bucket) is not there.
    pub not_found: bool,
}

/// The objects of one bucket under one prefix.
pub struct S3Objects {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Objects {
    /// A client from the standard chain for `bucket`, objects under `prefix`
    /// (no leading or trailing `/`).
    pub async fn connect(bucket: &str, prefix: &str) -> Result<S3Objects, ProviderError> {
        let config = crate::client::load(None, None).await?;
        // A custom endpoint (MinIO, a private endpoint, a test cloud) is
        // reached by path: virtual-hosted names (BUCKET.host) need DNS the
        // endpoint seldom has.
        let path_style = config.endpoint_url().is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style)
            .build();
        Ok(S3Objects {
            client: Client::from_conf(s3),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn error<E, R>(&self, operation: &'static str, key: &str, err: SdkError<E, R>) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let (message, not_found) = match err.code() {
            Some(code @ ("AccessDenied" | "AllAccessDisabled")) => (
                format!(
                    "not allowed ({code}): the credentials lack permission for s3:{operation} on this \
                     bucket and prefix; grant the actions in examples/s3-backup-iam-policy.json"
                ),
                false,
            ),
            Some("NoSuchBucket") => (
                format!(
                    "the bucket {} does not exist: create it (`aws s3 mb s3://{}`) or give another",
                    self.bucket, self.bucket
                ),
                true,
            ),
            Some(code @ ("NoSuchKey" | "NotFound")) => (format!("no such object ({code})"), true),
            Some(code @ ("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken")) => (
                format!(
                    "the credentials were refused ({code}): check AWS_PROFILE or the access keys, the region and the endpoint"
                ),
                false,
            ),
            _ => (DisplayErrorContext(&err).to_string(), false),
        };
        S3Error {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            message,
            not_found,
        }
    }

    /// Writes `name`, encrypted at rest (SSE-S3): backups hold a cluster's keys.
    pub async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), S3Error> {
        let key = self.key(name);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| self.error("PutObject", &key, e))?;
        Ok(())
    }

    /// Writes the file at `path` as `name`, encrypted at rest (SSE-S3): in
    /// one PutObject up to [`PART_SIZE`], in parts beyond (a multipart
    /// upload, read from the file a part at a time: memory stays at one
    /// part, and S3's 5 GB PutObject cap does not apply). A failed upload
    /// is aborted, so no parts are left to be billed.
    pub async fn put_file(&self, name: &str, path: &std::path::Path) -> Result<(), S3Error> {
        use tokio::io::AsyncReadExt;
        let key = self.key(name);
        let local = |e: std::io::Error| S3Error {
            operation: "PutObject",
            bucket: self.bucket.clone(),
            key: key.clone(),
            message: format!("reading {}: {e}", path.display()),
            not_found: false,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let size = file.metadata().await.map_err(local)?.len();
        if size <= PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).await.map_err(local)?;
            return self.put(name, &bytes).await;
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", &key, e))?;
        let Some(id) = upload.upload_id().map(str::to_string) else {
            return Err(S3Error {
                operation: "CreateMultipartUpload",
                bucket: self.bucket.clone(),
                key,
                message: "the answer had no upload id".into(),
                not_found: false,
            });
        };
        let uploaded = async {
            let mut parts = Vec::new();
            let mut number = 1;
            loop {
                let mut part = Vec::with_capacity(PART_SIZE);
                (&mut file)
                    .take(PART_SIZE as u64)
                    .read_to_end(&mut part)
                    .await
                    .map_err(local)?;
                if part.is_empty() {
                    break;
                }
                let done = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&key)
                    .upload_id(&id)
                    .part_number(number)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .map_err(|e| self.error("UploadPart", &key, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(done.e_tag().map(str::to_string))
                        .build(),
                );
                number += 1;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.error("CompleteMultipartUpload", &key, e))?;
            Ok(())
        }
        .await;
        if uploaded.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&id)
                .send()
                .await;
        }
        uploaded
    }

    /// Reads `name` into `to` as it downloads (never whole in memory),
    /// refused beyond `limit` bytes (whoever can write the bucket chooses
    /// its objects' sizes); returns its size.
    pub async fn get_to(
        &self,
        name: &str,
        to: &mut (dyn std::io::Write + Send),
        limit: u64,
    ) -> Result<u64, S3Error> {
        let key = self.key(name);
        let failed = |message: String| S3Error {
            operation: "GetObject",
            bucket: self.bucket.clone(),
            key: key.clone(),
            message,
            not_found: false,
        };
        let mut object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.error("GetObject", &key, e))?;
        let too_large =
            |size: u64| format!("the object is {size} bytes or more, beyond the {limit} read here");
        let announced = object.content_length().unwrap_or(0).max(0) as u64;
        if announced > limit {
            return Err(failed(too_large(announced)));
        }
        let mut size = 0u64;
        while let Some(bytes) = object
            .body
            .try_next()
            .await
            .map_err(|e| failed(format!("the download broke off: {e}")))?
        {
            size += bytes.len() as u64;
            if size > limit {
                return Err(failed(too_large(size)));
            }
            to.write_all(&bytes)
                .map_err(|e| failed(format!("the download could not be written here: {e}")))?;
        }
        Ok(size)
    }

    /// The names of the objects directly under the prefix.
    pub async fn names(&self) -> Result<Vec<String>, S3Error> {
        let prefix = self.key("");
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListBucket", &prefix, e))?;
            for object in page.contents() {
                if let Some(name) = object.key().and_then(|k| k.strip_prefix(&prefix)) {
                    if !name.is_empty() && !name.contains('/') {
                        names.push(name.to_string());
                    }
                }
            }
        }
        Ok(names)
    }

    /// Deletes `name`; one that is not there is success (S3's own answer).
    pub async fn delete(&self, name: &str) -> Result<(), S3Error> {
        let key = self.key(name);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", &key, e))?;
        Ok(())
    }
}
