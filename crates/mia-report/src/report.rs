//! Building the report: loads each run's attack results, lays out the document
//! ([`crate::sections`]: cross-run numbers such as privacy scores and MIDPUT against an
//! undefended baseline, then one section per run), and writes `report.md`, `report.html`
//! (self-contained, plots inlined), `metrics.csv`, and every plot as SVG (and PNG).

use std::path::{Path, PathBuf};

use crate::ReportError;
use crate::render::{csv, html, markdown};
use crate::runs::{ReportOptions, RunResults};
use crate::sections::{Doc, document, unique_labels};

/// Writes the report for `runs` into `out` and returns the files written.
pub fn write(
    runs: &[RunResults],
    out: &Path,
    options: &ReportOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::Input { path: out.into(), reason: "no runs given".into() });
    }
    std::fs::create_dir_all(out).map_err(|e| ReportError::io(out, e))?;
    let doc = document(runs, &unique_labels(runs), options);
    write_files(&doc, runs, out, options)
}

/// Writes the plots (SVG, and PNG unless turned off), `report.md`, `report.html` and
/// `metrics.csv`, each atomically.
fn write_files(
    doc: &Doc,
    runs: &[RunResults],
    out: &Path,
    options: &ReportOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<(), ReportError> {
        let path = out.join(name);
        mia_core::files::write_atomic(&path, bytes).map_err(|e| ReportError::io(&path, e))?;
        files.push(path);
        Ok(())
    };
    for (name, svg) in &doc.svgs {
        put(name, svg.as_bytes())?;
        if options.png {
            put(&name.replace(".svg", ".png"), &crate::png::render(svg, 1.5)?)?;
        }
    }
    for (name, png) in &doc.pngs {
        put(name, png)?;
    }
    put("report.md", markdown(&doc.blocks).as_bytes())?;
    put("report.html", html(&doc.blocks, &options.title, &doc.svgs, &doc.pngs).as_bytes())?;
    put("metrics.csv", csv(runs).as_bytes())?;
    Ok(files)
}
