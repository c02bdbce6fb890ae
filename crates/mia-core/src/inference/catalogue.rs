//! The one list of inference-time defenses: each one's name, what it releases, its source,
//! whether it keeps the label, and each parameter's default and range. [`Defense::parse`]
//! takes its defaults and its list of names from here, the page builds its toggles and sliders
//! from it, `mia attack --help` prints [`help`], and a test holds docs/cli.md's table to it.
//!
//! [`Defense::parse`]: super::Defense::parse

/// One parameter of a defense.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    /// Its key in a spec (`d` in `round:d=2`).
    pub key: &'static str,
    /// The value a spec that leaves it out gets; `None`: a spec must give it.
    pub default: Option<f64>,
    /// Where the page's slider starts (the default when there is one).
    pub start: f64,
    /// The page's slider range and step (values outside are clamped there; the parser checks
    /// the defense's own limits).
    pub min: f64,
    /// Upper end of the slider.
    pub max: f64,
    /// Slider step.
    pub step: f64,
}

/// One inference-time defense.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// Its name in a spec.
    pub name: &'static str,
    /// What the page calls it.
    pub title: &'static str,
    /// Whether it keeps the predicted label: `yes`, `no` or `no (ties)`.
    pub keeps_label: &'static str,
    /// Whether the page offers it as a toggle (HyGA-ANI needs input gradients it cannot
    /// compute for an upload).
    pub in_page: bool,
    /// Its parameters, in spec order.
    pub params: &'static [Param],
}

const fn p(key: &'static str, default: f64, min: f64, max: f64, step: f64) -> Param {
    Param { key, default: Some(default), start: default, min, max, step }
}

const fn required(key: &'static str, start: f64, min: f64, max: f64, step: f64) -> Param {
    Param { key, default: None, start, min, max, step }
}

const fn entry(
    name: &'static str,
    title: &'static str,
    keeps_label: &'static str,
    params: &'static [Param],
) -> Entry {
    Entry { name, title, keeps_label, in_page: true, params }
}

/// Every inference-time defense, in the order the page lists them.
pub const CATALOGUE: [Entry; 12] = [
    entry("topk", "Top-k release", "yes", &[p("k", 1.0, 1.0, 9.0, 1.0)]),
    entry("label", "Label only", "yes", &[]),
    entry("round", "Rounding", "no (ties)", &[p("d", 2.0, 0.0, 4.0, 1.0)]),
    entry("cap", "Confidence cap (redistributed)", "yes", &[required("c", 0.6, 0.15, 1.0, 0.05)]),
    entry(
        "clip",
        "Clip-renormalise (the broken cap)",
        "no (ties)",
        &[required("c", 0.6, 0.15, 1.0, 0.05)],
    ),
    entry("temperature", "Temperature", "yes", &[required("t", 10.0, 0.1, 50.0, 0.1)]),
    entry("gaussian", "Gaussian noise", "no", &[required("sigma", 0.1, 0.0, 1.0, 0.01)]),
    entry(
        "reverse-sigmoid",
        "Reverse sigmoid",
        "no",
        &[p("beta", 1.0, 0.0, 2.0, 0.05), p("gamma", 0.1, 0.01, 1.0, 0.01)],
    ),
    entry(
        "dynanoise",
        "DynaNoise",
        "no",
        &[
            p("sigma2", 0.3, 0.0, 3.0, 0.05),
            p("lambda", 2.0, 0.0, 10.0, 0.5),
            p("t", 10.0, 0.1, 50.0, 0.1),
            p("m", 1.0, 1.0, 8.0, 1.0),
        ],
    ),
    entry("hamp", "HAMP output modification", "yes", &[]),
    entry("memguard", "MemGuard", "yes", &[p("budget", 1.0, 0.0, 2.0, 0.05)]),
    Entry {
        in_page: false,
        ..entry(
            "hyga",
            "HyGA-ANI",
            "no",
            &[
                p("alpha", 2.0, 0.0, 10.0, 0.1),
                p("beta", 0.05, 0.0, 1.0, 0.01),
                p("sigma-max", 1.5, 0.0, 5.0, 0.1),
                p("kappa", 0.1, 0.0, 1.0, 0.01),
            ],
        )
    },
];

/// The defense called `name`.
pub fn find(name: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.name == name)
}

/// Every name, comma-separated (for error messages).
pub fn names() -> String {
    CATALOGUE.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

impl Entry {
    /// The spec with every parameter at its default (`…` where a spec must give it):
    /// `round:d=2`, `cap:c=…`, `label`.
    pub fn spec_with_defaults(&self) -> String {
        if self.params.is_empty() {
            return self.name.to_string();
        }
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match p.default {
                Some(v) => format!("{}={v}", p.key),
                None => format!("{}=…", p.key),
            })
            .collect();
        format!("{}:{}", self.name, params.join(","))
    }
}

/// What `mia attack --help` says of `--inference-defense`: the spec syntax and every defense
/// with its defaults.
pub fn help() -> String {
    let mut out = String::from(
        "Also attack through an inference-time defense, as a naive attacker (undefended \
         shadows, plus fixed thresholds 0.9/0.5) and as an adaptive one (shadows passed \
         through the same defense); repeatable. A spec is `name[:key=value,...]`, steps \
         chained with `+`, e.g. `temperature:t=2+round:d=2`. The defenses, with their \
         defaults (… = required):",
    );
    for e in &CATALOGUE {
        out.push_str(&format!("\n  {:<44} {}", e.spec_with_defaults(), e.title));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::Defense;

    #[test]
    fn every_entry_parses_at_its_defaults_and_the_page_starts() {
        for e in &CATALOGUE {
            let at_start: Vec<String> =
                e.params.iter().map(|p| format!("{}={}", p.key, p.start)).collect();
            let spec = if at_start.is_empty() {
                e.name.to_string()
            } else {
                format!("{}:{}", e.name, at_start.join(","))
            };
            let d = Defense::parse(&spec).unwrap_or_else(|err| panic!("{spec}: {err}"));
            assert_eq!(d.name(), e.name);
            for p in e.params {
                assert!(
                    p.min <= p.start && p.start <= p.max && p.step > 0.0,
                    "{}.{}",
                    e.name,
                    p.key
                );
                assert!(p.default.is_none_or(|v| v == p.start), "{}.{}", e.name, p.key);
            }
        }
    }

    #[test]
    fn left_out_parameters_take_the_catalogues_default_and_required_ones_are_asked_for() {
        assert_eq!(Defense::parse("round").unwrap(), Defense::Round { d: 2 });
        assert_eq!(Defense::parse("topk").unwrap(), Defense::TopK { k: 1 });
        let err = Defense::parse("cap").unwrap_err().to_string();
        assert!(err.contains("missing parameter `c`"), "{err}");
        let err = Defense::parse("blur").unwrap_err().to_string();
        assert!(err.contains(&names()), "the error lists every defense: {err}");
    }

    #[test]
    fn hyga_defaults_are_its_parameters_defaults() {
        let parsed = Defense::parse("hyga").unwrap();
        assert_eq!(parsed, Defense::Hyga(crate::inference::hyga::HygaParams::default()));
    }

    #[test]
    fn the_help_lists_every_defense_with_its_defaults() {
        let h = help();
        for e in &CATALOGUE {
            assert!(h.contains(&e.spec_with_defaults()), "{}", e.name);
        }
        assert!(h.contains("round:d=2") && h.contains("cap:c=…"));
    }
}
