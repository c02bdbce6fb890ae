//! MIA Lab trainer: the training loop, the training-time defenses (the [`TrainingDefense`]
//! trait and its built-in implementations), optimisers and schedules, checkpoints with exact
//! resume, and the run directory that attack tools consume.

pub mod advreg;
pub mod augment;
pub mod bench;
pub mod config;
pub use mia_core::defense;
pub mod device;
pub mod distill;
pub mod dp;
pub mod epochs;
pub mod error;
pub mod generator;
pub mod job;
pub mod masks;
pub mod mmd;
pub mod prune;
pub mod run;
pub mod selena;
pub mod shadows;
pub mod signals;
pub mod soft;
pub mod trainer;

pub use config::{DefenseConfig, OptimizerConfig, OptimizerKind, Schedule, TrainConfig};
pub use defense::TrainingDefense;
pub use device::DeviceChoice;
pub use epochs::{EpochMetrics, Observer};
pub use error::TrainError;
pub use shadows::{ShadowObserver, ShadowOptions, Shard, shadows};
pub use signals::{SignalRequest, defense_signals};
pub use trainer::{Summary, train};
