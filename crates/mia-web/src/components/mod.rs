//! One component per file.

pub mod attack_card;
pub mod charts;
pub mod defense_panel;
pub mod glossary;
pub mod header;
pub mod messages;
pub mod model_select;
pub mod tour;
pub mod uploads;
