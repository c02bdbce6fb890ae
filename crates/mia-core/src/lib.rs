//! MIA Lab core: everything that must run both natively and in the browser (wasm32).
//!
//! It owns the model architectures ([`models`]), the single preprocessing path
//! ([`preprocess`]), posterior math ([`posterior`]) and the `.npy` array format used for
//! attack signals ([`npy`]), metrics and attack math ([`metrics`], [`scores`], [`lira`],
//! [`rmia`]), the attack models ([`classifier`]), the training-time defense losses
//! ([`defense`]), the inference-time defenses ([`inference`]), the DP accountant
//! ([`privacy`]) and lab mode's head training and audit ([`lab`]), and recognising a bundle's training images among uploads ([`recognise`]). Nothing here touches the network. The file system is written only through
//! [`files`], the one atomic writer every crate uses natively, and read only where a run
//! directory is listed ([`layout`], natively).

pub mod bundle;
pub mod classifier;
pub mod defense;
pub mod error;
pub mod files;
pub mod inference;
pub mod lab;
pub mod layout;
pub mod lira;
pub mod metrics;
pub mod mixup;
pub mod models;
pub mod npy;
pub mod posterior;
pub mod preprocess;
pub mod privacy;
pub mod recognise;
pub mod rmia;
pub mod rng;
pub mod scores;
pub mod shadows;
pub mod weights;

pub use error::CoreError;
pub use models::{Architecture, Model, ModelConfig};
pub use preprocess::{InputSpec, Normalization, Query};
