//! Builds the table of the cluster templates the core ships, from the
//! workspace's `cluster-templates/` (one per orchestrator).

#[path = "build/table.rs"]
mod table;

use std::path::{Path, PathBuf};

fn main() {
    // At run time, not `env!`: a build script compiled for another clone
    // sharing this target dir is reused, and would read that clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    table::write_table(
        &Path::new(&manifest_dir).join("../cluster-templates"),
        "yaml",
        &out.join("builtin_templates.rs"),
    );
}
