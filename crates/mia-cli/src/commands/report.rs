//! `mia report`: turns the attack results of one or more runs into a Markdown + HTML report,
//! a CSV of every metric and SVG/PNG plots.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use mia_core::layout::RunLayout;
use mia_report::{ReportOptions, RunResults};

/// Arguments of `mia report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Folders written by `mia attack` (run directories or its --out folders).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Report title.
    #[arg(long, default_value = "MIA Lab report")]
    title: String,
    /// Write the SVG plots only (no PNG copies).
    #[arg(long)]
    no_png: bool,
    /// Rows in each run's most-vulnerable-examples table.
    #[arg(long, default_value_t = 10)]
    vulnerable: usize,
    /// Leave out the inference-defense results found under each folder's `inference/`.
    #[arg(long)]
    no_inference: bool,
}

/// `dir` and, unless told otherwise, every `dir/inference/SPEC/{naive,adaptive}` folder that
/// `mia attack --inference-defense` wrote, in name order.
fn folders(dir: &Path, with_inference: bool) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if !with_inference {
        return out;
    }
    out.extend(RunLayout::new(dir).defended_outputs());
    out
}

/// Runs `mia report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let runs = args
        .runs
        .iter()
        .flat_map(|r| folders(r, !args.no_inference))
        .map(|r| RunResults::load(&r))
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ReportOptions { title: args.title.clone(), png: !args.no_png, vulnerable: args.vulnerable };
    let files = mia_report::write(&runs, &args.out, &options)?;
    println!("wrote {} files; open {}", files.len(), args.out.join("report.html").display());
    Ok(())
}
