//! MIA Lab datasets: readers for the official file formats (CIFAR-10/100 binary, MNIST and
//! Fashion-MNIST IDX), users' image folders and tabular CSV; deterministic member/non-member
//! splits; and fetching the official archives with checksum checks.

pub mod cifar;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod folder;
pub mod idx;
pub mod kind;
pub mod split;
pub mod tabular;

pub use dataset::{Dataset, Samples};
pub use error::DataError;
pub use kind::{DatasetKind, LoadOptions};
pub use split::{Split, SplitSizes};
