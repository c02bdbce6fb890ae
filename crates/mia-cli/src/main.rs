//! The `mia` command: train target and shadow models with privacy defenses, run membership
//! inference attacks, write reports, and manage datasets.
//! Errors print `error:` with the cause chain and a `hint:`, and exit with status 1.

mod commands;

use clap::{Parser, Subcommand};
use mia_core::models::import::ImportError;

/// MIA Lab: membership inference attacks and defenses.
#[derive(Parser)]
#[command(name = "mia", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Train a target model with a training-time defense into a run directory.
    Train(Box<commands::train::TrainArgs>),
    /// Train shadow models for a target run (or this shard's share of them).
    Shadows(commands::shadows::ShadowsArgs),
    /// Run membership inference attacks on a run (or on .npy logits) and write attacks.json.
    Attack(Box<commands::attack::AttackArgs>),
    /// Write a Markdown/HTML report, a CSV and plots from the attack results of runs.
    Report(commands::report::ReportArgs),
    /// Write the web bundle (weights, reference sample, LiRA statistics, measured attacks).
    Export(Box<commands::export::ExportArgs>),
    /// Turn a PyTorch state_dict or a safetensors file into a model of the zoo (for
    /// `mia export --model`), optionally checking its logits against the original's.
    Import(Box<commands::import::ImportArgs>),
    /// Train the class-conditional generator on a run's non-member images and write
    /// synthetic images per class (for `mia train --prune S --synthetic-dir DIR`).
    Generate(Box<commands::generate::GenerateArgs>),
    /// Store a bundle's weights at f16 where the reference sample's AUCs do not move.
    Shrink(commands::shrink::ShrinkArgs),
    /// Add to a bundle the index of its models' training images, so the page recognises them
    /// among uploads (bundles exported before `mia export` wrote it).
    Index(commands::index::IndexArgs),
    /// Run the browser lab's experiment natively, many times: each attack's mean AUC over
    /// independent image draws and member splits, with its standard error.
    Lab(Box<commands::lab::LabArgs>),
    /// Write a lab prepared in advance (images, recipe, instructions and questions) as a lab
    /// file the page opens from `?lab=` (see docs/teaching/).
    PrepareLab(commands::prepare_lab::PrepareLabArgs),
    /// Measure training, shadow-training and attack-scoring throughput against references.
    Bench(Box<commands::bench::BenchArgs>),
    /// Download or inspect datasets.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
}

/// mimalloc keeps freed tensor buffers for reuse; with glibc's malloc every buffer over the mmap
/// threshold went back to the OS and the next op page-faulted it in again (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Train(args) => commands::train::run(*args),
        Command::Shadows(args) => commands::shadows::run(args),
        Command::Attack(args) => commands::attack::run(*args),
        Command::Report(args) => commands::report::run(args),
        Command::Export(args) => commands::export::run(*args),
        Command::Import(args) => commands::import::run(*args),
        Command::Shrink(args) => commands::shrink::run(args),
        Command::Index(args) => commands::index::run(args),
        Command::Generate(args) => commands::generate::run(*args),
        Command::Lab(args) => commands::lab::run(*args),
        Command::PrepareLab(args) => commands::prepare_lab::run(args),
        Command::Bench(args) => commands::bench::run(*args),
        Command::Data(cmd) => commands::data::run(cmd),
    };
    if let Err(err) = result {
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        if let Some(hint) = hint(&err) {
            eprintln!("hint: {hint}");
        }
        std::process::exit(1);
    }
}

fn core_hint(e: &mia_core::CoreError) -> String {
    use mia_core::CoreError as C;
    match e {
        C::BadDefense { .. } => "a defense is `name[:key=value,...]`, chained with `+`; see the \
             inference-defense table in docs/cli.md or `mia attack --help`"
            .into(),
        C::DefenseContext(_) => "HAMP and HyGA-ANI need `mia attack --run` with shadows".into(),
        _ => "check --model against the dataset's input shape".into(),
    }
}

fn import_hint(e: &ImportError) -> String {
    match e {
        ImportError::UnknownFormat { .. } => {
            "save `torch.save(model.state_dict(), 'model.pt')` or a \
             .safetensors file; ONNX graphs are not read (docs/import.md says why)"
                .into()
        }
        ImportError::BadKeyMap { .. } => {
            "the part of --key-map before `=` is a regular expression".into()
        }
        ImportError::Pytorch { .. } | ImportError::Safetensors { .. } => "is it a state_dict? A \
             checkpoint dictionary around one needs --top-level-key (e.g. state_dict, net)"
            .into(),
        ImportError::Corrupt { .. } => "the file is damaged: save it again".into(),
        ImportError::Mismatch { .. } => "rename the file's keys with --key-map REGEX=REPLACEMENT \
             (a checkpoint dictionary: --top-level-key state_dict); docs/import.md lists each \
             architecture's key names"
            .into(),
        ImportError::Model(e) => core_hint(e),
    }
}

/// The first hint any error in the chain offers.
fn hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|e| {
        if let Some(e) = e.downcast_ref::<mia_train::TrainError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<mia_data::DataError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<mia_attack::AttackError>() {
            Some(e.hint())
        } else if let Some(e) = e.downcast_ref::<mia_report::ReportError>() {
            Some(e.hint())
        } else if let Some(e) = e.downcast_ref::<mia_core::CoreError>() {
            Some(core_hint(e))
        } else if let Some(e) = e.downcast_ref::<ImportError>() {
            Some(import_hint(e))
        } else {
            e.downcast_ref::<commands::Hinted>().map(|h| h.hint.clone())
        }
    })
}
