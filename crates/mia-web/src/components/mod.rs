//! One component per file.

pub mod about;
pub mod attack_card;
pub mod camera;
pub mod charts;
pub mod defense_panel;
pub mod glossary;
pub mod header;
pub mod lab;
pub mod lab_card;
pub mod lab_compare;
pub mod lab_settings;
pub mod messages;
pub mod model_select;
pub mod tour;
pub mod uploads;
