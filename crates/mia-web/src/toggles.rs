//! The page's inference-defense toggles: one per defense of mia-core's catalogue that the page
//! offers, each parameter on its slider, and the chain the enabled ones make.

use mia_core::inference::catalogue::CATALOGUE;
use mia_core::inference::{Chain, Defense};

/// One toggleable inference-time defense and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Toggle {
    /// The spec name (`temperature`, …).
    pub name: &'static str,
    /// What the user reads.
    pub title: &'static str,
    /// On or off.
    pub enabled: bool,
    /// Parameters: key, value, min, max, step.
    pub params: Vec<(&'static str, f32, f32, f32, f32)>,
}

impl Toggle {
    /// The `--defense` spec (`name` or `name:key=value,…`).
    pub fn spec(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(k, v, ..)| format!("{k}={v}")).collect();
        if params.is_empty() {
            self.name.to_string()
        } else {
            format!("{}:{}", self.name, params.join(","))
        }
    }
}

/// The defenses the lab offers, off by default: the catalogue's (`mia_core::inference::
/// catalogue`), each parameter at its default on its slider.
pub fn toggles() -> Vec<Toggle> {
    CATALOGUE
        .iter()
        .filter(|e| e.in_page)
        .map(|e| Toggle {
            name: e.name,
            title: e.title,
            enabled: false,
            params: e
                .params
                .iter()
                .map(|p| (p.key, p.start as f32, p.min as f32, p.max as f32, p.step as f32))
                .collect(),
        })
        .collect()
}

/// The chain of the enabled toggles (in list order).
pub fn chain(toggles: &[Toggle]) -> Result<Chain, String> {
    let steps: Vec<Defense> = toggles
        .iter()
        .filter(|t| t.enabled)
        .map(|t| Defense::parse(&t.spec()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    Ok(Chain { steps })
}
