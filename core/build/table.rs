//! A table of the files a crate ships from a folder, built by the crates'
//! build scripts (`build.rs`, `core/build.rs`) so a file is shipped by
//! adding it (no table kept by hand).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A `&[(name, text)]` of every `*.<ext>` file under `root`, named by its
/// path below `root` without the extension, in name order.
pub fn write_table(root: &Path, ext: &str, out: &Path) {
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
