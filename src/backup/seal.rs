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
    #[error("the archive's SHA-256 is {actual}; its manifest says {expected}: it was changed since the backup was taken (nothing was restored)")]
    Digest { expected: String, actual: String },
    #[error("the archive is not sealed as {FORMAT} (it does not start with its header)")]
    Header,
    #[error("chunk {chunk} of the archive does not open with this cluster's backup key: the archive was changed, belongs to another cluster, or the key is not the one it was sealed with (nothing was restored)")]
    Chunk { chunk: u32 },
    #[error("the archive ends before its last chunk: it was cut short (nothing was restored)")]
    Truncated,
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

/// `plain` sealed under `key` for the cluster `cluster_id`.
pub fn seal(key: &[u8], cluster_id: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let aead = aead_key(key)?;
    let mut id = [0u8; ID_LEN];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| SealError::Random)?;
    let chunks = plain.len().div_ceil(CHUNK).max(1);
    let mut out = Vec::with_capacity(MAGIC.len() + ID_LEN + plain.len() + chunks * TAG);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&id);
    for index in 0..chunks {
        let part = &plain[(index * CHUNK).min(plain.len())..((index + 1) * CHUNK).min(plain.len())];
        let last = index + 1 == chunks;
        let mut buf = part.to_vec();
        let aad = additional(&id, index as u32, last, cluster_id);
        aead.seal_in_place_append_tag(nonce(&id, index as u32), Aad::from(aad), &mut buf)
            .expect("a chunk of at most 1 MiB always seals");
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

/// The archive `sealed` opened with `key` for `cluster_id`; refused whole
/// at the first chunk that does not open.
pub fn open(key: &[u8], cluster_id: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let aead = aead_key(key)?;
    let body = sealed.strip_prefix(MAGIC).ok_or(SealError::Header)?;
    if body.len() < ID_LEN {
        return Err(SealError::Truncated);
    }
    let (id, mut rest) = body.split_at(ID_LEN);
    let id: [u8; ID_LEN] = id.try_into().expect("ID_LEN bytes");
    let mut plain = Vec::with_capacity(rest.len());
    let mut index: u32 = 0;
    loop {
        let take = rest.len().min(CHUNK + TAG);
        let (chunk, after) = rest.split_at(take);
        if chunk.len() < TAG {
            return Err(SealError::Truncated);
        }
        let last = after.is_empty();
        let mut buf = chunk.to_vec();
        let aad = additional(&id, index, last, cluster_id);
        let opened = aead
            .open_in_place(nonce(&id, index), Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Chunk { chunk: index })?;
        plain.extend_from_slice(opened);
        if last {
            return Ok(plain);
        }
        rest = after;
        index += 1;
    }
}

/// The SHA-256 of `bytes`, in lowercase hex, as a manifest keeps it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuses `bytes` unless they are the size and SHA-256 a manifest says.
pub fn check(bytes: &[u8], size: u64, sha256: &str) -> Result<(), SealError> {
    if bytes.len() as u64 != size {
        return Err(SealError::Size {
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(sha256) {
        return Err(SealError::Digest {
            expected: sha256.to_string(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
