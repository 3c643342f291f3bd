//! Builds the table of the bootstrap scripts the binary ships, from
//! `scripts/bootstrap/` (one folder per orchestrator, plus `common` and
//! `docker`). The cluster templates are `core/build.rs`'s.

#[path = "core/build/table.rs"]
mod table;

use std::path::{Path, PathBuf};

fn main() {
    // At run time, not `env!`: a build script compiled for another clone
    // sharing this target dir is reused, and would read that clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    table::write_table(
        &Path::new(&manifest_dir).join("scripts/bootstrap"),
        "j2",
        &out.join("builtin_scripts.rs"),
    );
}
