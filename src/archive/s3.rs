//! Backups kept in an S3 bucket under a prefix (or a service that speaks
//! its API), through the ec2 crate's S3 client: built with the `ec2`
//! feature, as it shares the AWS SDK's stack.

use std::path::Path;

use async_trait::async_trait;

use super::store::{check_name, BackupError, BackupStore, Location};

/// A bucket and prefix on S3 (or a service that speaks its API).
pub struct S3Store {
    objects: provision_provider_ec2::s3::S3Objects,
    location: Location,
}

impl S3Store {
    pub async fn connect(bucket: &str, prefix: &str) -> Result<S3Store, BackupError> {
        let location = Location::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        };
        let objects = provision_provider_ec2::s3::S3Objects::connect(bucket, prefix)
            .await
            .map_err(|e| BackupError::S3 {
                location: location.to_string(),
                message: e.to_string(),
            })?;
        Ok(S3Store { objects, location })
    }

    fn error(&self, e: provision_provider_ec2::s3::S3Error) -> BackupError {
        if e.not_found && e.operation == "GetObject" {
            return BackupError::NotFound {
                location: format!("s3://{}/{}", e.bucket, e.key),
            };
        }
        BackupError::S3 {
            location: self.location.to_string(),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl BackupStore for S3Store {
    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        self.objects
            .put(check_name(name)?, bytes)
            .await
            .map_err(|e| self.error(e))
    }

    async fn put_file(&self, name: &str, path: &Path) -> Result<(), BackupError> {
        self.objects
            .put_file(check_name(name)?, path)
            .await
            .map_err(|e| self.error(e))
    }

    async fn get_to(
        &self,
        name: &str,
        to: &mut (dyn std::io::Write + Send),
        limit: u64,
    ) -> Result<u64, BackupError> {
        self.objects
            .get_to(check_name(name)?, to, limit)
            .await
            .map_err(|e| self.error(e))
    }

    async fn names(&self) -> Result<Vec<String>, BackupError> {
        self.objects.names().await.map_err(|e| self.error(e))
    }

    async fn delete(&self, name: &str) -> Result<(), BackupError> {
        self.objects
            .delete(check_name(name)?)
            .await
            .map_err(|e| self.error(e))
    }
}
