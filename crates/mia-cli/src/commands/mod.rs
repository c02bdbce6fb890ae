//! One module per subcommand.

pub mod attack;
pub mod bench;
pub mod data;
pub mod export;
pub mod generate;
pub mod index;
pub mod lab;
pub mod report;
pub mod shadows;
pub mod shrink;
pub mod train;

/// An error raised by the CLI itself, with a hint.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// The f32's shortest decimal as an f64 (0.53, not 0.5299999713897705), as `summary.json`
/// shows it.
pub fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Builds a [`Hinted`] error.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted { message: message.into(), hint: hint.into() }.into()
}
