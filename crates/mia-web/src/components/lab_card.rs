//! One attack on the student's own images: what it does, member and held-out histograms with
//! a draggable threshold, AUC, TPR at the lowest FPR the lab can resolve (stated), and the ROC.

use mia_core::lab::{AttackDraws, LabAttack};
use mia_core::metrics::{Confusion, roc};
use yew::prelude::*;

use super::charts::{Histogram, RocChart, range};
use super::glossary::Term;

/// Props.
#[derive(Properties, PartialEq)]
pub struct LabCardProps {
    /// The attack.
    pub attack: LabAttack,
    /// Attack name.
    pub name: AttrValue,
    /// Scores of the images (higher = member).
    pub scores: Vec<f32>,
    /// Membership.
    pub member: Vec<bool>,
    /// AUC of the student's own target.
    pub auc: f64,
    /// The attack over every draw of the run (mean and interval).
    #[prop_or_default]
    pub draws: Option<AttackDraws>,
    /// Scores without the inference-time defenses (when some are on).
    #[prop_or_default]
    pub ghost: Option<Vec<f32>>,
    /// Threshold in use.
    pub threshold: f32,
    /// Threshold dragged.
    pub on_threshold: Callback<f32>,
}

/// What `attack` does, in words for a student (Explore's cards explain theirs the same way).
pub fn explain(attack: LabAttack) -> &'static str {
    match attack {
        LabAttack::Loss => {
            "The training loss (cross-entropy) on the image's true class. Training drives the loss of members down, so a low loss hints \"member\"; the score is the loss turned around, so members sit to the right."
        }
        LabAttack::Confidence => {
            "How sure your model is of the true class, as log-odds log(p / (1 − p)) so that 99 % and 99.99 % stay apart. Models are usually surer on the images they trained on."
        }
        LabAttack::ModifiedEntropy => {
            "Song & Mittal's modified entropy: the model's uncertainty, counting confidence in a wrong class against the image. A sharper version of the confidence test; further right = more certain of the true class."
        }
        LabAttack::LiraOnline => {
            "LiRA (Carlini et al.): for this very image, how confident the shadow models are when they trained on it and when they did not, as two bell curves; the score is how much likelier your model's confidence is under the first. The strongest test here."
        }
        LabAttack::LiraOffline => {
            "LiRA with only the shadow models that did not train on the image: how far your model's confidence lies above theirs. Weaker than online LiRA, but it needs no shadow trained on the image itself, as an attacker without it would have."
        }
        LabAttack::RmiaOnline => {
            "RMIA (Zarifzadeh et al.): how much likelier this image is under your model than under the shadow models, compared with the same ratio for your other images. Strong even with few shadow models."
        }
    }
}

/// The card.
#[function_component(LabCard)]
pub fn lab_card(p: &LabCardProps) -> Html {
    let r = range(&[&p.scores, p.ghost.as_deref().unwrap_or(&[])]);
    let ghost_roc = p.ghost.as_ref().and_then(|g| roc(g, &p.member).ok());
    let c = Confusion::at(&p.scores, &p.member, p.threshold);
    let held_out = p.member.iter().filter(|m| !**m).count().max(1);
    let step_fpr = 1.0 / held_out as f64;
    let curve = roc(&p.scores, &p.member).ok();
    let low = curve.as_ref().map_or(0.0, |c| c.tpr_at_fpr(step_fpr));
    let on_input = {
        let cb = p.on_threshold.clone();
        Callback::from(move |e: InputEvent| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            if let Ok(t) = input.value().parse::<f32>() {
                cb.emit(t);
            }
        })
    };
    html! {
        <section class="card" data-testid={format!("lab-attack-{}", p.name)}>
            <h3>{ p.name.clone() }</h3>
            <p class="explain" data-testid={format!("lab-explain-{}", p.name)}>{ explain(p.attack) }</p>
            <Histogram scores={p.scores.clone()} ghost={p.ghost.clone()} member={p.member.clone()} threshold={p.threshold} range={r} marks={Vec::new()} axis={"score →  member"} />
            <div class="threshold">
                <label><Term name="threshold" />{ " " }
                    <input type="range" min={r.0.to_string()} max={r.1.to_string()} step={((r.1 - r.0) / 200.0).to_string()} value={p.threshold.clamp(r.0, r.1).to_string()} oninput={on_input} />
                </label>
            </div>
            <p class="readout">
                <Term name="AUC" />{ " (your model) " }<b data-testid={format!("lab-auc-{}", p.name)}>{ format!("{:.3}", p.auc) }</b>
                { format!(" · at threshold {:.2}: ", p.threshold) }<Term name="TPR" />{ format!(" {:.0}% · ", 100.0 * c.tpr()) }<Term name="FPR" />{ format!(" {:.0}%", 100.0 * c.fpr()) }
                <br />
                <span class="muted">{ format!("TPR {:.0}% at FPR ≤ {:.1}%: with {held_out} held-out images that is the smallest non-zero FPR this lab can measure.", 100.0 * low, 100.0 * step_fpr) }</span>
            </p>
            { p.draws.as_ref().map(interval).unwrap_or_default() }
            { ghost_roc.as_ref().map(|g| html! { <span class="muted">{ format!("without the defenses: AUC {:.3}", g.auc()) }</span> }).unwrap_or_default() }
            { curve.map(|c| html! { <div class="rocs"><RocChart roc={c.clone()} ghost={ghost_roc.clone()} log={false} /><RocChart roc={c} ghost={ghost_roc.clone()} log={true} /></div> }).unwrap_or_default() }
        </section>
    }
}

/// The attack's mean AUC and TPR over the run's draws with their 95 % intervals, where a rerun
/// with another split lands, and a flag when the AUC lies below chance beyond its error.
fn interval(d: &AttackDraws) -> Html {
    let (a, t, r) = (&d.auc, &d.tpr, d.auc.rerun());
    html! {
        <p class="readout" data-testid={format!("lab-interval-{}", d.attack.name())} data-mean={format!("{:.4}", a.mean)} data-lo={format!("{:.4}", a.lo)} data-hi={format!("{:.4}", a.hi)}
            data-rerun-lo={format!("{:.4}", r.lo)} data-rerun-hi={format!("{:.4}", r.hi)}>
            <b>{ format!("AUC {:.3}", a.mean) }</b>{ format!(" (95 % interval {:.3}–{:.3}, mean of {} draws)", a.lo, a.hi, a.draws) }
            { format!(" · TPR at FPR ≤ {:.1}%: {:.0}% ({:.0}–{:.0}%)", 100.0 * d.fpr, 100.0 * t.mean, 100.0 * t.lo.max(0.0), 100.0 * t.hi.min(1.0)) }
            <br /><span class="muted" data-testid={format!("lab-rerun-{}", d.attack.name())}>{ format!("A rerun on these images with another split lands in {:.3}–{:.3} (95 %): compare classmates' numbers with this.", r.lo, r.hi) }</span>
            if a.below(0.5) {
                <br /><span class="caution" data-testid={format!("lab-below-chance-{}", d.attack.name())}>{ "Below chance beyond its error: this attack ranks held-out images above members more often than noise explains. The lab reports it as measured instead of flipping it." }</span>
            }
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_attack_is_explained_once() {
        let texts: Vec<&str> = LabAttack::ALL.iter().map(|a| explain(*a)).collect();
        for (a, t) in LabAttack::ALL.iter().zip(&texts) {
            assert!(t.len() > 60, "{a:?}");
            assert_eq!(texts.iter().filter(|u| *u == t).count(), 1, "{a:?} shares its text");
        }
    }
}
