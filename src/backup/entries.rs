//! The file names in a backup's archive (a gzip'd tar, as the backup
//! scripts write it), for `provision backup verify`: enough of the tar
//! format (POSIX ustar headers, GNU long names) to list, nothing more.

use std::io::Read;

/// The names of the entries of the gzip'd tar `archive`, in order.
pub fn entries(archive: &[u8]) -> std::io::Result<Vec<String>> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(archive).read_to_end(&mut tar)?;
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut names = Vec::new();
    let mut at = 0;
    let mut long_name: Option<String> = None;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let field = |range: std::ops::Range<usize>| {
            let raw = &header[range];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        };
        let size_text = field(124..136);
        let size = u64::from_str_radix(size_text.trim(), 8)
            .map_err(|_| bad("a tar header's size is not octal"))? as usize;
        let data = at + 512;
        let next = data + size.div_ceil(512) * 512;
        if data + size > tar.len() {
            return Err(bad("the tar ends inside an entry"));
        }
        match header[156] {
            // GNU: the next entry's name, too long for its header.
            b'L' => {
                let raw = &tar[data..data + size];
                let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
                long_name = Some(String::from_utf8_lossy(&raw[..end]).into_owned());
            }
            // Extended headers: not entries of their own.
            b'x' | b'g' => {}
            _ => {
                let name = long_name.take().unwrap_or_else(|| {
                    let (prefix, name) = (field(345..500), field(0..100));
                    if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    }
                });
                names.push(name);
            }
        }
        at = next;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gzipped_tar_s_names_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let long = "d/".to_string() + &"x".repeat(120);
        std::fs::create_dir_all(dir.path().join("swarm/raft")).unwrap();
        std::fs::write(dir.path().join("swarm/raft/wal"), b"log").unwrap();
        std::fs::create_dir_all(dir.path().join(&long).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(&long), b"").unwrap();
        let out = std::process::Command::new("tar")
            .args(["-czf", "-", "-C"])
            .arg(dir.path())
            .args(["swarm", "d"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let names = entries(&out.stdout).unwrap();
        assert!(names.contains(&"swarm/raft/wal".to_string()), "{names:?}");
        assert!(names.contains(&long), "{names:?}");
        assert!(entries(b"not gzip").is_err());
    }
}
