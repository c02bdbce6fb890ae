//! The runs a student made, side by side: each finished run's recipe, accuracy, ε with its δ
//! and every attack over its draws, and how each attack compares with the first run on the
//! same images and splits. Runs on the same images with the same member split and shadow
//! count train draw `j` on the same images (the target on the members, shadow `j` on the same
//! seeded half), so their per-draw AUCs pair up and the difference's interval says whether a
//! recipe changed the attack by more than the noise.

use mia_core::lab::{Interval, LabAttack, paired_difference};

use crate::lab_state::{LabDefense, LabImage, LabSettings, RunRecord};

/// How a run's attack compares with the first run on the same images and splits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Versus {
    /// It is that first run.
    Baseline,
    /// Paired with run `number`: the mean difference with its interval.
    Paired(usize, Interval),
    /// No earlier run on the same images and splits.
    Unpaired,
}

impl Versus {
    /// Whether the difference is larger than its noise (its interval excludes 0).
    pub fn beyond_noise(&self) -> bool {
        matches!(self, Self::Paired(_, d) if d.lo > 0.0 || d.hi < 0.0)
    }
}

/// How `runs[i]`'s `attack` compares with the first run of `runs` on the same images and
/// splits.
pub fn versus(runs: &[RunRecord], i: usize, attack: LabAttack) -> Versus {
    let Some(run) = runs.get(i) else { return Versus::Unpaired };
    let Some(base) = runs.iter().find(|r| r.pairing == run.pairing) else {
        return Versus::Unpaired;
    };
    if base.number == run.number {
        return Versus::Baseline;
    }
    match (run.attack(attack), base.attack(attack)) {
        (Some(a), Some(b)) => match paired_difference(a, b) {
            Some(d) => Versus::Paired(base.number, d),
            None => Versus::Unpaired,
        },
        _ => Versus::Unpaired,
    }
}

/// The recipe in a few words: defense and strength, network, epochs, options.
pub fn recipe(s: &LabSettings) -> String {
    let defense = match (s.defense, s.defense.strength()) {
        (LabDefense::DpSgd, _) => format!("DP-SGD σ {}, C {}", s.strength, s.clip),
        (d, Some(_)) => format!("{} {}", d.value(), s.strength),
        (d, None) => d.value().to_string(),
    };
    let net = match (s.fine_tune, s.hidden) {
        (true, _) => "fine-tuned".to_string(),
        (false, 0) => "linear head".to_string(),
        (false, h) => format!("{h}-unit head"),
    };
    let early = s.early_stopping.map(|p| format!(", early stop {p}")).unwrap_or_default();
    format!("{defense}; {net}, {} epochs{early}", s.epochs)
}

/// The key that pairs runs: the images (ids, classes, roles), the split seed, the shadow
/// count and whether early stopping set images aside (FNV-1a).
pub fn pairing(images: &[LabImage], split_seed: u64, settings: &LabSettings) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for im in images {
        eat(im.id);
        eat(im.class as u64);
        eat(u64::from(im.member));
    }
    eat(split_seed);
    eat(settings.shadows as u64);
    eat(u64::from(settings.early_stopping.is_some()));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use mia_core::lab::AttackDraws;

    /// Draws whose leave-out means are `aucs` (so the jackknife pairs them group by group).
    fn draws(aucs: &[f64]) -> Vec<AttackDraws> {
        let out: Vec<(f64, f64)> = aucs.iter().map(|&v| (v, v)).collect();
        let both = (aucs.to_vec(), aucs.to_vec());
        vec![AttackDraws::from_parts(LabAttack::LiraOnline, both, 0.05, &out).unwrap()]
    }

    fn run(number: usize, pairing: u64, aucs: &[f64]) -> RunRecord {
        RunRecord {
            number,
            recipe: String::new(),
            pairing,
            accuracy: (1.0, 0.5),
            epsilon: None,
            draws: draws(aucs),
        }
    }

    #[test]
    fn runs_on_the_same_images_pair_with_the_first_and_others_do_not() {
        let base = [0.70, 0.62, 0.66, 0.75, 0.68];
        let lower: Vec<f64> = base.iter().map(|x| x - 0.1).collect();
        let same: Vec<f64> =
            base.iter().zip([0.01, -0.01, 0.0, 0.01, -0.01]).map(|(x, e)| x + e).collect();
        let runs = [run(1, 7, &base), run(2, 7, &lower), run(3, 9, &lower), run(4, 7, &same)];
        let a = LabAttack::LiraOnline;
        assert_eq!(versus(&runs, 0, a), Versus::Baseline);
        let v = versus(&runs, 1, a);
        assert!(matches!(v, Versus::Paired(1, d) if (d.mean + 0.1).abs() < 1e-12), "{v:?}");
        assert!(v.beyond_noise());
        assert_eq!(versus(&runs, 2, a), Versus::Baseline, "first on its own images");
        assert!(!versus(&runs, 3, a).beyond_noise(), "within the noise");
        assert_eq!(versus(&runs, 9, a), Versus::Unpaired);
    }

    #[test]
    fn the_pairing_key_follows_images_roles_split_and_shadows() {
        let im = |id, member| LabImage {
            id,
            class: 0,
            pixels: std::rc::Rc::new(Vec::new()),
            preview: String::new(),
            member,
        };
        let images = vec![im(0, true), im(1, false)];
        let s = LabSettings::default();
        let key = pairing(&images, 1, &s);
        assert_eq!(key, pairing(&images, 1, &LabSettings { epochs: 3, ..s.clone() }));
        assert_ne!(key, pairing(&images, 2, &s), "another split");
        assert_ne!(key, pairing(&[im(0, false), im(1, true)], 1, &s), "roles flipped");
        assert_ne!(key, pairing(&images, 1, &LabSettings { shadows: 8, ..s }), "shadows");
    }

    #[test]
    fn a_recipe_reads_in_a_few_words() {
        let s = LabSettings { defense: LabDefense::DpSgd, strength: 4.0, ..LabSettings::default() };
        assert_eq!(recipe(&s), "DP-SGD σ 4, C 1; linear head, 60 epochs");
        let ls = LabSettings {
            defense: LabDefense::LabelSmoothing,
            strength: 0.1,
            early_stopping: Some(5),
            ..LabSettings::default()
        };
        assert_eq!(recipe(&ls), "label-smoothing 0.1; linear head, 60 epochs, early stop 5");
    }
}
