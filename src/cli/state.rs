//! `provision state export|import`: every cluster of one store as JSON, and
//! back into another (SQLite ↔ etcd), ids, history and keys kept.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::session;
use super::Global;
use crate::state::{export_cluster, ClusterExport};

/// The file `state export` writes.
#[derive(serde::Serialize, serde::Deserialize)]
struct Export {
    /// Bumped when the layout changes, so an old binary refuses a new file.
    format: u32,
    /// Where it was exported from, for the reader.
    from: String,
    clusters: Vec<ClusterExport>,
}

const FORMAT: u32 = 1;

pub fn export(global: &Global, to: Option<&Path>) -> Result<()> {
    let session = session::open(global)?;
    let mut clusters = Vec::new();
    for record in session.store.clusters()? {
        let name = record.spec.name;
        // Under the cluster's lock, so no half-written change is exported.
        let _lock = session.lock(&name)?;
        if let Some(c) = export_cluster(&*session.store, &name)? {
            clusters.push(c);
        }
    }
    let export = Export {
        format: FORMAT,
        from: session.store.location(),
        clusters,
    };
    let text = serde_json::to_string_pretty(&export).expect("records always serialise");
    match to {
        Some(path) => crate::state::write_private_file(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}").context("writing the export to stdout")?;
        }
    }
    eprintln!(
        "exported {} cluster(s) from {}{}",
        export.clusters.len(),
        export.from,
        to.map(|p| format!(
            " to {} (mode 0600: it holds the clusters' private keys)",
            p.display()
        ))
        .unwrap_or_default()
    );
    Ok(())
}

pub fn import(global: &Global, file: &Path, replace: bool) -> Result<()> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the export from stdin")?;
    } else {
        text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    }
    let export: Export = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not what `provision state export` writes",
            file.display()
        )
    })?;
    if export.format != FORMAT {
        bail!(
            "{} is export format {}; this provision reads format {FORMAT}: use the provision that wrote it",
            file.display(),
            export.format
        );
    }
    // Every cluster checked before any is imported: nothing of a crafted
    // export is written.
    for c in &export.clusters {
        c.check()
            .with_context(|| format!("{}: nothing imported", file.display()))?;
    }
    let session = session::open(global)?;
    let here: Vec<String> = session
        .store
        .clusters()?
        .into_iter()
        .map(|c| c.spec.name)
        .collect();
    let clash: Vec<&str> = export
        .clusters
        .iter()
        .map(|c| c.record.spec.name.as_str())
        .filter(|n| here.iter().any(|h| h == n))
        .collect();
    if !clash.is_empty() && !replace {
        bail!(
            "{} already has cluster(s) {}: nothing imported. Add --replace to overwrite them with the export's",
            session.store.location(),
            clash.join(", ")
        );
    }
    for c in &export.clusters {
        let name = &c.record.spec.name;
        let _lock = session.lock(name)?;
        session
            .store
            .import_cluster(c)
            .with_context(|| format!("importing cluster {name}"))?;
        eprintln!(
            "imported cluster {name}: {} node(s), {} resource(s), {} event(s)",
            c.nodes.len(),
            c.resources.len(),
            c.events.len()
        );
    }
    eprintln!(
        "imported {} cluster(s) from {} into {}",
        export.clusters.len(),
        export.from,
        session.store.location()
    );
    Ok(())
}
