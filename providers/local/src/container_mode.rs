//! How node containers get the rights systemd and an inner dockerd need,
//! and what this machine remembers of it per engine.
//!
//! `--privileged` is what kind uses; engines whose bounding set lacks
//! CAP_SYS_RESOURCE (rootless, some sandboxes) refuse to start such a
//! container ("unable to apply caps"), and get an explicit capability set
//! instead. Finding out costs a container created, refused and made again
//! before any other node may start, so the answer is kept in the user's
//! cache directory under the engine's ID (`docker info`). A stale answer is
//! harmless: a refused privileged start still falls back, and the
//! capability set works on every engine.

use std::path::{Path, PathBuf};

use tracing::debug;

/// Not known yet for this engine.
pub const UNKNOWN: u8 = 0;
pub const PRIVILEGED: u8 = 1;
pub const CAPS: u8 = 2;

/// `$XDG_CACHE_HOME/provision`, else `~/.cache/provision`.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("provision"))
}

/// The file that holds `engine_id`'s mode: the ID as the engine gives it
/// (`XXXX:XXXX:…` or a UUID), kept to characters a file name may hold.
fn file(dir: &Path, engine_id: &str) -> Option<PathBuf> {
    let id: String = engine_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(128)
        .collect();
    (!id.is_empty()).then(|| dir.join(format!("local-engine-{id}.mode")))
}

/// The mode remembered for `engine_id`, or [`UNKNOWN`].
pub fn remembered(dir: &Path, engine_id: &str) -> u8 {
    let Some(path) = file(dir, engine_id) else {
        return UNKNOWN;
    };
    match std::fs::read_to_string(&path).as_deref().map(str::trim) {
        Ok("privileged") => PRIVILEGED,
        Ok("caps") => CAPS,
        _ => UNKNOWN,
    }
}

/// Keeps `mode` for `engine_id`. A cache that cannot be written costs the
/// next run the same discovery, nothing more.
pub fn remember(dir: &Path, engine_id: &str, mode: u8) {
    let (Some(path), text) = (
        file(dir, engine_id),
        match mode {
            PRIVILEGED => "privileged\n",
            CAPS => "caps\n",
            _ => return,
        },
    ) else {
        return;
    };
    // Written whole then renamed: a concurrent reader sees the old file or
    // the new one.
    let tmp = path.with_extension(format!("mode.{}", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, text))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        debug!(path = %path.display(), error = %e, "cannot remember the engine's container mode");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_is_remembered_per_engine() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("provision");
        assert_eq!(remembered(&cache, "AB12:CD34"), UNKNOWN);
        remember(&cache, "AB12:CD34", CAPS);
        assert_eq!(remembered(&cache, "AB12:CD34"), CAPS);
        assert_eq!(remembered(&cache, "other-engine"), UNKNOWN);
        remember(&cache, "AB12:CD34", PRIVILEGED);
        assert_eq!(remembered(&cache, "AB12:CD34"), PRIVILEGED);
        // Nothing but the mode file is left behind.
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    }

    #[test]
    fn an_id_cannot_name_a_path_outside_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("provision");
        remember(&cache, "../../etc/x", CAPS);
        assert!(!dir.path().join("etc").exists());
        assert_eq!(remembered(&cache, "../../etc/x"), CAPS);
        assert_eq!(remembered(&cache, "/.."), UNKNOWN, "no name is left");
        remember(&cache, "/..", CAPS);
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    }
}
