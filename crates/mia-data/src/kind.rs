//! The dataset kinds MIA Lab reads, and the dispatch from a kind and a path to its reader.

use std::path::Path;

use mia_core::Normalization;
use serde::{Deserialize, Serialize};

use crate::{DataError, Dataset, cifar, folder, idx, tabular};

/// The dataset kinds MIA Lab reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10, binary version.
    Cifar10,
    /// CIFAR-100, binary version (fine labels).
    Cifar100,
    /// MNIST, IDX (.gz or raw).
    Mnist,
    /// Fashion-MNIST, IDX (.gz or raw).
    FashionMnist,
    /// A folder with one sub-folder of PNG/JPEG images per class.
    Folder,
    /// A CSV file of numeric features and an integer label.
    Csv,
}

impl DatasetKind {
    /// Every kind.
    pub const ALL: [DatasetKind; 6] =
        [Self::Cifar10, Self::Cifar100, Self::Mnist, Self::FashionMnist, Self::Folder, Self::Csv];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Folder => "folder",
            Self::Csv => "csv",
        }
    }

    /// Reads the dataset from `path` (a directory, or the CSV file itself). The pool is every
    /// official file present: training files are required, test files are added when found.
    pub fn load(self, path: &Path, options: &LoadOptions) -> Result<Dataset, DataError> {
        match self {
            Self::Cifar10 => cifar::load_cifar10(path),
            Self::Cifar100 => cifar::load_cifar100(path),
            Self::Mnist => idx::load(path, "mnist", idx::MNIST_CLASSES, Normalization::mnist()),
            Self::FashionMnist => idx::load(
                path,
                "fashion-mnist",
                idx::FASHION_CLASSES,
                Normalization::fashion_mnist(),
            ),
            Self::Folder => folder::load(path, options.image_size, options.grayscale),
            Self::Csv => tabular::load(path, options.label_column.as_deref()),
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        let s = match s.as_str() {
            "cifar-10" => "cifar10",
            "cifar-100" => "cifar100",
            "fmnist" | "fashionmnist" => "fashion-mnist",
            "image-folder" => "folder",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| DataError::UnknownDataset(s.into()))
    }
}

/// Options some readers need.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadOptions {
    /// Side length images of a folder dataset are resized to.
    pub image_size: usize,
    /// Convert folder images to grayscale.
    pub grayscale: bool,
    /// CSV label column name (default: `label` if present, else the last column).
    pub label_column: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { image_size: 32, grayscale: false, label_column: None }
    }
}
