//! One attack: histograms with the undefended ghost, a draggable threshold with live
//! TPR/FPR/advantage, AUC against the natively measured one, ROC on linear and log-log axes,
//! a sentence saying what the attack looks at, and a warning when a naive threshold flags
//! nothing or almost nothing after a defense (a miscalibrated attacker, not a protected model).

use mia_core::bundle::BrowserAttack;
use yew::prelude::*;

use super::charts::{Histogram, Mark, RocChart, range};
use super::glossary::Term;
use crate::analysis::{AttackView, Attacker};

/// Props.
#[derive(Properties, PartialEq)]
pub struct AttackCardProps {
    /// The attack on the released outputs.
    pub view: AttackView,
    /// The same attack before the inference defense.
    pub ghost: Option<AttackView>,
    /// Membership of the reference sample.
    pub member: Vec<bool>,
    /// AUC measured natively on the reference sample (manifest).
    pub native_auc: Option<f64>,
    /// The threshold in use (dragged or the attacker's).
    pub threshold: f32,
    /// Upload markers.
    pub marks: Vec<Mark>,
    /// The attacker in use.
    pub attacker: Attacker,
    /// Whether the adaptive attacker can be chosen.
    pub adaptive_available: bool,
    /// Threshold dragged (None = reset).
    pub on_threshold: Callback<Option<f32>>,
    /// Switch to the adaptive attacker.
    pub on_adaptive: Callback<()>,
}

/// What the histogram's x axis shows for `id`.
pub fn axis(id: BrowserAttack) -> &'static str {
    match id {
        BrowserAttack::Confidence => "log-odds of the true class's probability →  member",
        BrowserAttack::Loss => "−log10(loss) →  member",
        BrowserAttack::ModifiedEntropy => "−log10(modified entropy) →  member",
        BrowserAttack::Lira => "log likelihood ratio (in vs out) →  member",
    }
}

/// The largest share of members and of non-members a threshold may still flag for the card to
/// call the naive attacker silenced: one in a hundred.
const SILENCED_SHARE: f64 = 0.01;

/// Whether a threshold that flagged `before` = (TPR, FPR) without the defense (None: no defense
/// is on) flags at most [`SILENCED_SHARE`] of either group, `after`, behind it.
fn silenced(before: Option<(f64, f64)>, (tpr, fpr): (f64, f64)) -> bool {
    let flags = |t: f64, f: f64| t > SILENCED_SHARE || f > SILENCED_SHARE;
    before.is_some_and(|(t, f)| flags(t, f)) && !flags(tpr, fpr)
}

/// The warning shown when a naive threshold, after a defense, flags no image or almost none
/// (at most [`SILENCED_SHARE`] of either group) where it flagged more without the defense.
fn naive_warning(p: &AttackCardProps, tpr: f64, fpr: f64) -> Html {
    let before = p.ghost.as_ref().map(|g| g.rates(&p.member, p.threshold));
    if !(p.attacker == Attacker::Naive && silenced(before, (tpr, fpr))) {
        return html! {};
    }
    let flags = if tpr == 0.0 && fpr == 0.0 {
        "lies beyond every score, so it flags nothing".to_string()
    } else {
        format!(
            "lies beyond almost every score, so it flags almost nothing ({:.1}% of members, {:.1}% of non-members)",
            100.0 * tpr,
            100.0 * fpr
        )
    };
    let cb = p.on_adaptive.clone();
    html! {
        <p class="warning" data-testid="naive-warning">
            { format!("The naive attacker's threshold, calibrated on undefended shadow models, now {flags}. That is an attacker who does not know about the defense, not protection: the AUC above still says how far apart members and non-members are. ") }
            if p.adaptive_available {
                <button onclick={Callback::from(move |_| cb.emit(()))}>{ "use the adaptive attacker" }</button>
            }
        </p>
    }
}

/// The card.
#[function_component(AttackCard)]
pub fn attack_card(p: &AttackCardProps) -> Html {
    let v = &p.view;
    let ghost_scores = p.ghost.as_ref().map(|g| g.scores.clone());
    let r = range(&[&v.scores, ghost_scores.as_deref().unwrap_or(&[])]);
    let (tpr, fpr) = v.rates(&p.member, p.threshold);
    let non_members = p.member.iter().filter(|m| !**m).count().max(1);
    let name = v.id.name();
    let on_input = {
        let cb = p.on_threshold.clone();
        Callback::from(move |e: InputEvent| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            if let Ok(t) = input.value().parse::<f32>() {
                cb.emit(Some(t));
            }
        })
    };
    let reset = {
        let cb = p.on_threshold.clone();
        Callback::from(move |_| cb.emit(None))
    };
    let step = (r.1 - r.0) / 500.0;
    html! {
        <section class="card" data-testid={format!("attack-{name}")}>
            <h3>{ name }</h3>
            <p class="explain">{ crate::analysis::explain(v.id) }</p>
            <Histogram scores={v.scores.clone()} ghost={ghost_scores} member={p.member.clone()} threshold={p.threshold} range={r} marks={p.marks.clone()} axis={axis(v.id)} />
            <div class="threshold">
                <label><Term name="threshold" />{ " " }
                    <input type="range" min={r.0.to_string()} max={r.1.to_string()} step={step.to_string()}
                        value={p.threshold.clamp(r.0, r.1).to_string()} oninput={on_input} data-testid={format!("threshold-{name}")} />
                </label>
                <button onclick={reset} title="back to the threshold the attacker calibrated on its shadow models">{ "attacker's" }</button>
            </div>
            <p class="readout">
                <span><Term name="AUC" />{ " " }<b data-testid={format!("auc-{name}")}>{ format!("{:.3}", v.auc) }</b></span>
                { p.native_auc.map(|a| html! { <span class="muted">{ format!(" (measured natively {a:.3})") }</span> }).unwrap_or_default() }
                { p.ghost.as_ref().map(|g| html! { <span class="muted">{ format!(" · without the defense {:.3}", g.auc) }</span> }).unwrap_or_default() }
                <br />
                { format!("at threshold {:.2}: ", p.threshold) }<Term name="TPR" />{ format!(" {:.1}% · ", 100.0 * tpr) }<Term name="FPR" />{ format!(" {:.1}% · ", 100.0 * fpr) }<Term name="advantage" />{ format!(" {:.3}", tpr - fpr) }
                <br />
                <span class="muted">{ format!("{} non-members: FPR moves in steps of {:.2}%, so rates below that cannot be resolved here.", non_members, 100.0 / non_members as f64) }</span>
            </p>
            { naive_warning(p, tpr, fpr) }
            <div class="rocs">
                <RocChart roc={v.roc.clone()} ghost={p.ghost.as_ref().map(|g| g.roc.clone())} log={false} />
                <RocChart roc={v.roc.clone()} ghost={p.ghost.as_ref().map(|g| g.roc.clone())} log={true} />
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::silenced;

    #[test]
    fn a_threshold_is_silenced_when_a_defense_leaves_it_flagging_at_most_one_percent() {
        // No flag at all, and the bundle's case: 0.0 % of members, 0.2 % of non-members.
        assert!(silenced(Some((0.905, 0.554)), (0.0, 0.0)));
        assert!(silenced(Some((0.905, 0.554)), (0.0, 0.002)));
        // Still flagging more than 1 % of either group: not silenced.
        assert!(!silenced(Some((0.905, 0.554)), (0.02, 0.0)));
        assert!(!silenced(Some((0.905, 0.554)), (0.0, 0.011)));
        // Without a defense, or when it flagged almost nothing before either, no warning.
        assert!(!silenced(None, (0.0, 0.0)));
        assert!(!silenced(Some((0.005, 0.001)), (0.0, 0.0)));
    }
}
