//! Builds the table of built-in bootstrap scripts from the folders under
//! `scripts/bootstrap/` (one per orchestrator, plus `common` and `docker`),
//! so a script is shipped by adding its file: no table kept by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // At run time, not `env!`: a build script compiled for another clone
    // sharing this target dir is reused, and would read that clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("scripts/bootstrap");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .strip_prefix(&root)
            .expect("under scripts/bootstrap")
            .to_str()
            .expect("a UTF-8 script path")
            .trim_end_matches(".j2")
            .to_string();
        writeln!(
            table,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push(']');
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("builtin_scripts.rs");
    std::fs::write(out, table).expect("write the script table");
}

/// Every `*.j2` file under `dir`, and a rerun when a folder changes.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in std::fs::read_dir(dir).expect("read scripts/bootstrap") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "j2") {
            files.push(path);
        }
    }
}
