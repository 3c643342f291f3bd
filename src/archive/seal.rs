//! Archives are sealed before they are stored, and checked before anything
//! is restored from them. A backup holds a cluster's most secret state (a
//! Swarm's raft key, which opens every docker secret; Kubernetes's CA keys
//! and an etcd snapshot with every Secret), and whoever can write a backup
//! location must not be able to plant a CA or a raft log.
//!
//! The seal: ChaCha20-Poly1305 (ring's AEAD) under the cluster's backup key
//! (32 random bytes, kept in the state store beside the SSH key: see
//! [`KEY_FILE`]), over chunks of 1 MiB. Each chunk's nonce is the archive's
//! random 8-byte id and the chunk's index; its additional data binds it to
//! that id and index, whether it is the last, and the cluster's id. So a
//! chunk cannot be dropped, reordered, cut off at the end, moved into
//! another archive, or an archive into another cluster, without [`open`]
//! refusing it. The manifest's SHA-256 and size of the sealed bytes are
//! checked first ([`check`]): a wrong download is told apart from a wrong
//! key.

use std::io::{Read, Write};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::rand::{SecureRandom, SystemRandom};

/// The cluster file (in the state store) that holds its backup key.
pub use crate::state::BACKUP_KEY_FILE as KEY_FILE;

/// What a sealed archive starts with (and a manifest's `sealed` names).
pub const FORMAT: &str = "provision-seal-v1";
const MAGIC: &[u8; 8] = b"PVSEAL01";
const ID_LEN: usize = 8;
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the cluster's backup key ({KEY_FILE} in the state store) is {0} bytes, not 32: the state store was changed by hand or is damaged")]
    KeyLength(usize),
    #[error("the archive is sealed, and the cluster has no backup key ({KEY_FILE}) in the state store: restore it with the state it was taken with (`provision state import` of an export that holds the key)")]
    NoKey,
    #[error("no random bytes from the system for a backup key or archive id")]
    Random,
    #[error("the archive is {actual} bytes; its manifest says {expected}: it was cut short or changed since the backup was taken (nothing was restored)")]
    Size { expected: u64, actual: u64 },
    #[error("the archive is larger; its manifest says {expected} bytes: it was changed since the backup was taken (nothing was restored)")]
    Larger { expected: u64 },
    #[error("the archive's SHA-256 is {actual}; its manifest says {expected}: it was changed since the backup was taken (nothing was restored)")]
    Digest { expected: String, actual: String },
    #[error("the archive is not sealed as {FORMAT} (it does not start with its header)")]
    Header,
    #[error("chunk {chunk} of the archive does not open with this cluster's backup key: the archive was changed, belongs to another cluster, or the key is not the one it was sealed with (nothing was restored)")]
    Chunk { chunk: u32 },
    #[error("the archive ends before its last chunk: it was cut short (nothing was restored)")]
    Truncated,
    #[error("reading or writing the archive here: {0}")]
    Io(#[source] std::io::Error),
}

/// A new backup key: 32 random bytes.
pub fn new_key() -> Result<Vec<u8>, SealError> {
    let mut key = vec![0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| SealError::Random)?;
    Ok(key)
}

fn aead_key(key: &[u8]) -> Result<LessSafeKey, SealError> {
    let unbound =
        UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| SealError::KeyLength(key.len()))?;
    Ok(LessSafeKey::new(unbound))
}

fn nonce(id: &[u8; ID_LEN], index: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..ID_LEN].copy_from_slice(id);
    n[ID_LEN..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn additional(id: &[u8; ID_LEN], index: u32, last: bool, cluster_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + ID_LEN + 5 + cluster_id.len());
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(id);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad.extend_from_slice(cluster_id.as_bytes());
    aad
}

/// Seals what is written to it under a cluster's key into `out`, as it
/// comes: at most one chunk (1 MiB) is held, so an archive of any size
/// streams through in bounded memory. [`Sealer::finish`] seals the last
/// chunk (a chunk is known to be the last only then).
pub struct Sealer<W: Write> {
    aead: LessSafeKey,
    id: [u8; ID_LEN],
    cluster_id: String,
    index: u32,
    pending: Vec<u8>,
    out: W,
    started: bool,
}

impl<W: Write> Sealer<W> {
    pub fn new(key: &[u8], cluster_id: &str, out: W) -> Result<Sealer<W>, SealError> {
        let aead = aead_key(key)?;
        let mut id = [0u8; ID_LEN];
        SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| SealError::Random)?;
        Ok(Sealer {
            aead,
            id,
            cluster_id: cluster_id.to_string(),
            index: 0,
            pending: Vec::with_capacity(CHUNK + TAG),
            out,
            started: false,
        })
    }

    /// Seals the first `len` pending bytes as chunk `index` into `out`.
    fn seal_chunk(&mut self, len: usize, last: bool) -> std::io::Result<()> {
        if !self.started {
            self.out.write_all(MAGIC)?;
            self.out.write_all(&self.id)?;
            self.started = true;
        }
        let rest = self.pending.split_off(len);
        let mut buf = std::mem::replace(&mut self.pending, rest);
        let aad = additional(&self.id, self.index, last, &self.cluster_id);
        self.aead
            .seal_in_place_append_tag(nonce(&self.id, self.index), Aad::from(aad), &mut buf)
            .expect("a chunk of at most 1 MiB always seals");
        self.out.write_all(&buf)?;
        self.index += 1;
        Ok(())
    }

    /// Seals what is pending as the last chunk; returns `out`.
    pub fn finish(mut self) -> std::io::Result<W> {
        let len = self.pending.len();
        self.seal_chunk(len, true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(data);
        // A full chunk is sealed once more follows it: only then is it
        // known not to be the last.
        while self.pending.len() > CHUNK {
            self.seal_chunk(CHUNK, false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads up to `buf.len()` bytes: fewer only at the end.
fn read_full(from: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match from.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Opens the sealed archive read from `sealed` with `key` for
/// `cluster_id`, writing the archive to `plain` chunk by chunk; refused at
/// the first chunk that does not open (what was written before it must
/// then be thrown away: check a whole archive before using any of it).
/// Returns the archive's size.
pub fn open_stream(
    key: &[u8],
    cluster_id: &str,
    mut sealed: impl Read,
    mut plain: impl Write,
) -> Result<u64, SealError> {
    let aead = aead_key(key)?;
    let mut head = [0u8; 8 + ID_LEN];
    let got = read_full(&mut sealed, &mut head).map_err(SealError::Io)?;
    if got < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
        return Err(SealError::Header);
    }
    if got < head.len() {
        return Err(SealError::Truncated);
    }
    let id: [u8; ID_LEN] = head[MAGIC.len()..].try_into().expect("ID_LEN bytes");
    let mut buf = vec![0u8; CHUNK + TAG];
    // One byte read past a full chunk says whether another follows.
    let mut carried: Option<u8> = None;
    let mut index: u32 = 0;
    let mut size = 0u64;
    loop {
        let mut len = 0;
        if let Some(b) = carried.take() {
            buf[0] = b;
            len = 1;
        }
        len += read_full(&mut sealed, &mut buf[len..]).map_err(SealError::Io)?;
        if len < TAG {
            return Err(SealError::Truncated);
        }
        let last = if len < buf.len() {
            true
        } else {
            let mut one = [0u8; 1];
            match read_full(&mut sealed, &mut one).map_err(SealError::Io)? {
                0 => true,
                _ => {
                    carried = Some(one[0]);
                    false
                }
            }
        };
        let aad = additional(&id, index, last, cluster_id);
        let opened = aead
            .open_in_place(nonce(&id, index), Aad::from(aad), &mut buf[..len])
            .map_err(|_| SealError::Chunk { chunk: index })?;
        plain.write_all(opened).map_err(SealError::Io)?;
        size += opened.len() as u64;
        if last {
            plain.flush().map_err(SealError::Io)?;
            return Ok(size);
        }
        index += 1;
    }
}

/// A writer (or reader) that passes bytes on and keeps their SHA-256 and
/// count, so an archive is hashed as it streams to where it is kept (or
/// from where it was kept).
pub struct Digesting<W> {
    inner: W,
    digest: ring::digest::Context,
    len: u64,
}

impl<W> Digesting<W> {
    pub fn new(inner: W) -> Digesting<W> {
        Digesting {
            inner,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }

    /// The writer, and the SHA-256 (lowercase hex) and count of what passed.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(self.digest.finish().as_ref()), self.len)
    }
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.digest.update(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses an archive of `size` bytes with SHA-256 `sha256` (as counted by
/// [`Digesting`]) unless they are what its manifest says.
pub fn matches(
    size: u64,
    sha256: &str,
    expected: u64,
    expected_sha256: &str,
) -> Result<(), SealError> {
    if size != expected {
        return Err(SealError::Size {
            expected,
            actual: size,
        });
    }
    if !sha256.eq_ignore_ascii_case(expected_sha256) {
        return Err(SealError::Digest {
            expected: expected_sha256.to_string(),
            actual: sha256.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-256 of `bytes`, in lowercase hex, as a manifest keeps it.
    fn sha256_hex(bytes: &[u8]) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    }

    fn seal(key: &[u8], cluster_id: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut sealer = Sealer::new(key, cluster_id, Vec::new())?;
        sealer.write_all(plain).map_err(SealError::Io)?;
        sealer.finish().map_err(SealError::Io)
    }

    fn open(key: &[u8], cluster_id: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut plain = Vec::new();
        open_stream(key, cluster_id, sealed, &mut plain)?;
        Ok(plain)
    }

    fn check(bytes: &[u8], size: u64, sha256: &str) -> Result<(), SealError> {
        matches(bytes.len() as u64, &sha256_hex(bytes), size, sha256)
    }

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn what_is_sealed_opens_with_the_key_and_cluster_only() {
        let key = new_key().unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5] {
            let data = plain(len);
            let sealed = seal(&key, "id-web", &data).unwrap();
            assert!(sealed.starts_with(MAGIC));
            // Nothing of the archive is readable in the sealed bytes.
            if len >= 64 {
                assert!(!sealed.windows(64).any(|w| w == &data[..64]), "{len}");
            }
            assert_eq!(open(&key, "id-web", &sealed).unwrap(), data, "{len}");
            assert!(matches!(
                open(&key, "id-api", &sealed),
                Err(SealError::Chunk { chunk: 0 })
            ));
            let other = new_key().unwrap();
            assert!(open(&other, "id-web", &sealed).is_err());
        }
    }

    #[test]
    fn a_stream_sealed_in_small_writes_opens_as_one_sealed_whole() {
        let key = new_key().unwrap();
        for len in [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let data = plain(len);
            let mut sealer = Sealer::new(&key, "id", Vec::new()).unwrap();
            for part in data.chunks(4099) {
                sealer.write_all(part).unwrap();
            }
            let sealed = sealer.finish().unwrap();
            // The layout archives sealed whole had: header, then 1 MiB
            // chunks each with its tag (one empty chunk for nothing).
            let chunks = len.div_ceil(CHUNK).max(1);
            assert_eq!(
                sealed.len(),
                MAGIC.len() + ID_LEN + len + chunks * TAG,
                "{len}"
            );
            let mut out = Vec::new();
            assert_eq!(
                open_stream(&key, "id", &sealed[..], &mut out).unwrap(),
                len as u64
            );
            assert_eq!(out, data, "{len}");
            let mut digesting = Digesting::new(Vec::new());
            digesting.write_all(&sealed).unwrap();
            let (copy, sum, count) = digesting.finish();
            assert_eq!((copy, count), (sealed.clone(), sealed.len() as u64));
            assert_eq!(sum, sha256_hex(&sealed));
        }
    }

    #[test]
    fn a_flipped_byte_a_cut_or_a_dropped_chunk_is_refused() {
        let key = new_key().unwrap();
        let data = plain(2 * CHUNK + 100);
        let sealed = seal(&key, "id", &data).unwrap();
        let mut flipped = sealed.clone();
        flipped[MAGIC.len() + ID_LEN + CHUNK + 3] ^= 1;
        assert!(matches!(
            open(&key, "id", &flipped),
            Err(SealError::Chunk { chunk: 0 })
        ));
        // Cut at a chunk boundary: the new last chunk was not sealed as last.
        let cut = &sealed[..MAGIC.len() + ID_LEN + 2 * (CHUNK + TAG)];
        assert!(matches!(
            open(&key, "id", cut),
            Err(SealError::Chunk { chunk: 1 })
        ));
        // The middle chunk dropped.
        let head = MAGIC.len() + ID_LEN;
        let mut dropped = sealed[..head + CHUNK + TAG].to_vec();
        dropped.extend_from_slice(&sealed[head + 2 * (CHUNK + TAG)..]);
        assert!(open(&key, "id", &dropped).is_err());
        assert!(matches!(
            open(&key, "id", b"not sealed"),
            Err(SealError::Header)
        ));
        assert!(matches!(
            aead_key(&[0u8; 16]),
            Err(SealError::KeyLength(16))
        ));
    }

    #[test]
    fn the_manifest_s_size_and_digest_are_checked() {
        let bytes = b"archive".to_vec();
        let sum = sha256_hex(&bytes);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        check(&bytes, 7, &sum).unwrap();
        assert!(matches!(
            check(&bytes, 8, &sum),
            Err(SealError::Size {
                expected: 8,
                actual: 7
            })
        ));
        let mut flipped = bytes.clone();
        flipped[0] ^= 1;
        assert!(matches!(
            check(&flipped, 7, &sum),
            Err(SealError::Digest { .. })
        ));
    }
}
