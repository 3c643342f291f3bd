//! Builds the tables of what the binary ships from its folders, so a file
//! is shipped by adding it (no table kept by hand): the bootstrap scripts
//! under `scripts/bootstrap/` (one folder per orchestrator, plus `common`
//! and `docker`), and the cluster templates in `cluster-templates/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // At run time, not `env!`: a build script compiled for another clone
    // sharing this target dir is reused, and would read that clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let manifest_dir = Path::new(&manifest_dir);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    write_table(
        &manifest_dir.join("scripts/bootstrap"),
        "j2",
        &out.join("builtin_scripts.rs"),
    );
    write_table(
        &manifest_dir.join("cluster-templates"),
        "yaml",
        &out.join("builtin_templates.rs"),
    );
}

/// A `&[(name, text)]` of every `*.<ext>` file under `root`, named by its
/// path below `root` without the extension, in name order.
fn write_table(root: &Path, ext: &str, out: &Path) {
    let mut files = Vec::new();
    collect(root, ext, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .strip_prefix(root)
            .expect("under its root")
            .to_str()
            .expect("a UTF-8 path")
            .trim_end_matches(&format!(".{ext}"))
            .to_string();
        writeln!(
            table,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push(']');
    std::fs::write(out, table).expect("write the table");
}

/// Every `*.<ext>` file under `dir`, and a rerun when a folder changes.
fn collect(dir: &Path, ext: &str, files: &mut Vec<PathBuf>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, ext, files);
        } else if path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
}
