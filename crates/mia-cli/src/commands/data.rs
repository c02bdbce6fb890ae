//! `mia data fetch` and `mia data info`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use mia_data::DatasetKind;
use mia_data::LoadOptions;
use mia_data::fetch::{Http, Outcome};

/// Dataset subcommands.
#[derive(Subcommand)]
pub enum DataCommand {
    /// Download a dataset's official files (md5-checked) into a folder.
    Fetch {
        /// cifar10, cifar100, mnist or fashion-mnist.
        name: String,
        /// Destination folder.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print a dataset's size, shape and classes.
    Info(InfoArgs),
}

/// Arguments of `mia data info`.
#[derive(Args)]
pub struct InfoArgs {
    /// Dataset kind.
    #[arg(long)]
    dataset: String,
    /// Folder (or CSV file) holding it.
    #[arg(long)]
    data_dir: PathBuf,
    /// Image size for folder datasets.
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    /// Convert folder images to grayscale.
    #[arg(long)]
    grayscale: bool,
    /// CSV label column.
    #[arg(long)]
    label_column: Option<String>,
}

/// Runs a data subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Fetch { name, dir } => {
            let kind: DatasetKind = name.parse()?;
            for outcome in mia_data::fetch::fetch(kind, &dir, &Http)? {
                match outcome {
                    Outcome::AlreadyPresent(p) => println!("ok (already present): {}", p.display()),
                    Outcome::Downloaded(p) => println!("downloaded: {}", p.display()),
                }
            }
            println!("{kind} is ready in {}", dir.display());
        }
        DataCommand::Info(a) => {
            let kind: DatasetKind = a.dataset.parse()?;
            let opts = LoadOptions {
                image_size: a.image_size,
                grayscale: a.grayscale,
                label_column: a.label_column,
            };
            let ds = kind.load(&a.data_dir, &opts)?;
            println!("dataset:  {}", ds.name);
            println!("examples: {}", ds.len());
            println!("input:    {} (channels x height x width)", ds.input);
            println!("classes:  {}", ds.num_classes());
            for (name, count) in ds.class_names.iter().zip(ds.class_counts()) {
                println!("  {name:<16} {count}");
            }
        }
    }
    Ok(())
}
