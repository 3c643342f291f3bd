//! The file names in a backup's archive (a gzip'd tar, as the backup
//! scripts write it), for `provision backup verify`: enough of the tar
//! format (POSIX ustar headers, GNU long names) to list, nothing more.

use std::io::Read;

/// The most of a GNU long name read (Linux's PATH_MAX is 4096).
const LONG_NAME_LIMIT: u64 = 64 * 1024;

/// The names of the entries of the gzip'd tar `archive` reads, in order;
/// read as a stream (an entry's data is skipped, never held).
pub fn entries(archive: impl Read) -> std::io::Result<Vec<String>> {
    let mut tar = flate2::read::GzDecoder::new(archive);
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut names = Vec::new();
    let mut long_name: Option<String> = None;
    let mut header = [0u8; 512];
    loop {
        match read_block(&mut tar, &mut header)? {
            false => break,
            true if header.iter().all(|b| *b == 0) => break,
            true => {}
        }
        let field = |range: std::ops::Range<usize>| {
            let raw = &header[range];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        };
        let size_text = field(124..136);
        let size = u64::from_str_radix(size_text.trim(), 8)
            .map_err(|_| bad("a tar header's size is not octal"))?;
        let padded = size.div_ceil(512) * 512;
        match header[156] {
            // GNU: the next entry's name, too long for its header.
            b'L' => {
                if size > LONG_NAME_LIMIT {
                    return Err(bad("a GNU long name longer than any path"));
                }
                let mut raw = vec![0u8; padded as usize];
                tar.read_exact(&mut raw)
                    .map_err(|_| bad("the tar ends inside an entry"))?;
                let raw = &raw[..size as usize];
                let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
                long_name = Some(String::from_utf8_lossy(&raw[..end]).into_owned());
                continue;
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
        let skipped = std::io::copy(&mut (&mut tar).take(padded), &mut std::io::sink())?;
        if skipped < size {
            return Err(bad("the tar ends inside an entry"));
        }
    }
    Ok(names)
}

/// Reads one 512-byte block; false at the end of the stream.
fn read_block(from: &mut impl Read, block: &mut [u8; 512]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        match from.read(&mut block[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the tar ends inside a header",
                ))
            }
            n => filled += n,
        }
    }
    Ok(true)
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
        let names = entries(&out.stdout[..]).unwrap();
        assert!(names.contains(&"swarm/raft/wal".to_string()), "{names:?}");
        assert!(names.contains(&long), "{names:?}");
        assert!(entries(&b"not gzip"[..]).is_err());
        // Cut inside an entry.
        assert!(entries(&out.stdout[..out.stdout.len() / 2]).is_err());
    }
}
