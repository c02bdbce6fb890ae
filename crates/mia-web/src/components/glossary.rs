//! The words the lab uses, defined once: [`Term`] shows a word with its definition on hover
//! (and focus), [`Glossary`] lists them all in a folding panel.

use yew::prelude::*;

/// Every term and its plain-language definition.
pub const TERMS: &[(&str, &str)] = &[
    (
        "member",
        "An image the model was trained on. A membership inference attack tries to tell members from non-members using only the model's outputs.",
    ),
    (
        "non-member",
        "An image the model never saw during training (here: held-out images of the same kind).",
    ),
    (
        "threshold",
        "The attack calls an image a member when its score is at or above the threshold. Moving it trades catching more members against wrongly flagging more non-members.",
    ),
    (
        "TPR",
        "True-positive rate: the fraction of members the attack flags at its threshold. Higher = the attack finds more of the training set.",
    ),
    (
        "FPR",
        "False-positive rate: the fraction of non-members the attack wrongly flags at its threshold. An attack is only worrying when it finds members at a low FPR.",
    ),
    (
        "advantage",
        "TPR − FPR at the threshold: how much better than a coin the attack does there. 0 = no better than guessing.",
    ),
    (
        "AUC",
        "Area under the ROC curve: the chance that a random member scores above a random non-member. 0.5 = guessing, 1 = perfect. Values below 0.5 are no protection either: flipping the attack's answer gives 1 − AUC.",
    ),
    (
        "ROC",
        "The curve of TPR against FPR as the threshold moves from strict to lenient. The log-log view zooms into the low-FPR corner where confident attacks live.",
    ),
    (
        "shadow model",
        "A model the attacker trains itself, on data it chose, to learn how models behave on images they did and did not train on. The attack's thresholds and LiRA's statistics come from shadow models.",
    ),
    (
        "LiRA",
        "The likelihood-ratio attack (Carlini et al. 2022): for each image, compare the model's confidence with the shadow models that trained on it and those that did not, and ask which group it resembles.",
    ),
    (
        "naive attacker",
        "Calibrated on undefended shadow models: it does not know an inference-time defense is on, so a defense can move every score past its threshold without hiding anything.",
    ),
    (
        "adaptive attacker",
        "Passes its shadow models' outputs through the same defense before calibrating, as a real attacker who knows the defense would. The honest test of a defense.",
    ),
    (
        "training-time defense",
        "Changes how the model is trained (label smoothing, RelaxLoss, dropout, …). Each choice is a different shipped model.",
    ),
    (
        "inference-time defense",
        "Changes only what the model releases (rounding, noise, top-k, …); the model itself is unchanged.",
    ),
    (
        "log-odds",
        "log(p / (1 − p)) of a probability p: it keeps 99 % (4.6) and 99.99 % (9.2) apart where the probabilities look the same.",
    ),
];

/// The definition of `name`.
pub fn definition(name: &str) -> Option<&'static str> {
    TERMS.iter().find(|(t, _)| t.eq_ignore_ascii_case(name)).map(|t| t.1)
}

/// Props of [`Term`].
#[derive(Properties, PartialEq)]
pub struct TermProps {
    /// A name from [`TERMS`].
    pub name: AttrValue,
    /// The text shown (defaults to the name).
    #[prop_or_default]
    pub text: Option<AttrValue>,
}

/// A word with its definition on hover and keyboard focus.
#[function_component(Term)]
pub fn term(p: &TermProps) -> Html {
    let text = p.text.clone().unwrap_or_else(|| p.name.clone());
    match definition(&p.name) {
        Some(d) => html! { <abbr class="term" title={d} tabindex="0">{ text }</abbr> },
        None => html! { <>{ text }</> },
    }
}

/// The folding glossary.
#[function_component(Glossary)]
pub fn glossary() -> Html {
    html! {
        <details class="panel glossary" id="glossary" data-testid="glossary">
            <summary><h2>{ "Glossary" }</h2></summary>
            <dl>
                { for TERMS.iter().map(|(t, d)| html! { <><dt>{ *t }</dt><dd>{ *d }</dd></> }) }
            </dl>
        </details>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_term_has_a_sentence_and_lookup_ignores_case() {
        assert!(TERMS.iter().all(|(t, d)| !t.is_empty() && d.ends_with('.')));
        assert_eq!(definition("fpr"), definition("FPR"));
        assert!(definition("nonsense").is_none());
    }
}
