//! Where a cluster's backups are kept, as a template's `backup.to` or a
//! command's `--to` / `--from` gives it: a directory, or `s3://BUCKET/PREFIX`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A location that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{location} is not a backup location: {why} (give a directory, or s3://BUCKET/PREFIX)")]
pub struct LocationError {
    pub location: String,
    pub why: String,
}

/// A backup location as a person writes it: a directory, or `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Location, LocationError> {
        let bad = |why: &str| LocationError {
            location: s.to_string(),
            why: why.to_string(),
        };
        match s.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                // S3's bucket naming rules: 3-63 of a-z, 0-9, '.', '-'.
                let bucket_ok = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)
                    })
                    && bucket.as_bytes()[0].is_ascii_alphanumeric();
                if !bucket_ok {
                    return Err(bad(
                        "the bucket name must be 3-63 lowercase letters, digits, '.' or '-'",
                    ));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                })
            }
            None if s.contains("://") => Err(bad("only s3:// URLs are supported")),
            None if s.is_empty() => Err(bad("empty")),
            None => Ok(Location::Dir(PathBuf::from(s))),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl Location {
    /// Where the file `name` of this location is, as a person writes it.
    pub fn file(&self, name: &str) -> String {
        match self {
            Location::Dir(dir) => dir.join(name).display().to_string(),
            Location::S3 { .. } => format!("{}/{name}", self.to_string().trim_end_matches('/')),
        }
    }

    /// The location of a file written as [`Location::file`] gives it, and
    /// its name there.
    pub fn of_file(file: &str) -> Result<(Location, String), LocationError> {
        let bad = || LocationError {
            location: file.to_string(),
            why: "it names no file".into(),
        };
        match file.parse::<Location>()? {
            Location::Dir(path) => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(bad)?
                    .to_string();
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                Ok((Location::Dir(dir), name))
            }
            Location::S3 { bucket, prefix } => {
                let (dir, name) = prefix.rsplit_once('/').unwrap_or(("", &prefix));
                if name.is_empty() {
                    return Err(bad());
                }
                Ok((
                    Location::S3 {
                        bucket,
                        prefix: dir.to_string(),
                    },
                    name.to_string(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_name_their_files() {
        assert_eq!(
            "/var/backups/web".parse::<Location>().unwrap(),
            Location::Dir("/var/backups/web".into())
        );
        let s3: Location = "s3://team-backups/provision/web/".parse().unwrap();
        assert_eq!(
            s3,
            Location::S3 {
                bucket: "team-backups".into(),
                prefix: "provision/web".into()
            }
        );
        assert_eq!(
            s3.file("web-1.tar.gz"),
            "s3://team-backups/provision/web/web-1.tar.gz"
        );
        let bare: Location = "s3://team-backups".parse().unwrap();
        assert_eq!(bare.file("a.json"), "s3://team-backups/a.json");
        assert_eq!(
            Location::of_file("s3://team-backups/provision/web/web-1.tar.gz").unwrap(),
            (s3.clone(), "web-1.tar.gz".to_string())
        );
        assert_eq!(
            Location::of_file("/b/web-1.tar.gz").unwrap(),
            (Location::Dir("/b".into()), "web-1.tar.gz".to_string())
        );
        for bad in ["s3://Bad_Bucket/x", "s3://ab", "gs://bucket/x", ""] {
            let err = bad.parse::<Location>().unwrap_err().to_string();
            assert!(err.contains("not a backup location"), "{bad}: {err}");
        }
    }
}
