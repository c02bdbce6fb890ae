//! The view in the page's URL, so that a link reproduces what its author saw:
//!
//! `?model=erm&defenses=temperature:t=10;round:d=2&attacker=adaptive&thresholds=loss:-0.07`
//!
//! | key | value |
//! |---|---|
//! | `model` | a model id of the bundle |
//! | `defenses` | the inference defenses that are on, `;`-separated, each `name` or `name:key=value,…` (the `--defense` syntax of `mia attack`) |
//! | `attacker` | `naive` or `adaptive` |
//! | `thresholds` | dragged thresholds, `,`-separated `attack:value` (display scale) |
//! | `backend` | `webgpu` or `flex` (read at start only, see [`crate::hooks`]) |
//!
//! Parsing is pure (tested natively): a bad part becomes a message and the rest still applies.
//! The page writes the URL back with `history.replaceState`, relative to the page, so the link
//! works under any sub-path.

use mia_core::bundle::BrowserAttack;

use crate::analysis::Attacker;
use crate::toggles::Toggle;

/// One defense of a link: its name and the parameters given (`name:key=value,…`).
pub type DefenseSpec = (String, Vec<(String, f32)>);

/// A view read from a URL's query (every part optional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// `model=`.
    pub model: Option<String>,
    /// `defenses=`: the defenses that are on, with the parameters given (the others keep their
    /// defaults); `None` when the key is absent (nothing changes).
    pub defenses: Option<Vec<DefenseSpec>>,
    /// `attacker=`.
    pub attacker: Option<Attacker>,
    /// `thresholds=`.
    pub thresholds: Vec<(BrowserAttack, f32)>,
    /// What could not be read, for the page's messages.
    pub errors: Vec<String>,
}

/// Decodes `%XX` escapes and `+` (as `URLSearchParams` does); `None` when malformed.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encodes what a query value may not hold as is (the spec syntax's `:`, `=`, `,` and `;` stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b':'
            | b'='
            | b','
            | b';' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A finite number, or an error naming what it was for.
fn number(v: &str, what: &str) -> Result<f32, String> {
    v.trim()
        .parse::<f32>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("the link's {what} `{v}` is not a number"))
}

/// One `name` or `name:key=value,…`.
fn defense(spec: &str) -> Result<DefenseSpec, String> {
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let params = rest
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("the link's defense parameter `{p}` is not key=value"))?;
            Ok((k.to_string(), number(v, &format!("{name} {k}"))?))
        })
        .collect::<Result<_, String>>()?;
    Ok((name.to_string(), params))
}

/// Reads a view from a URL query (`?a=b&c=d`, with or without the `?`).
pub fn parse(query: &str) -> View {
    let mut view = View::default();
    for pair in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(v) = decode(v) else {
            view.errors.push(format!("the link's `{k}` is not URL-encoded text"));
            continue;
        };
        match k {
            "model" => view.model = Some(v),
            "attacker" => match v.as_str() {
                "naive" => view.attacker = Some(Attacker::Naive),
                "adaptive" => view.attacker = Some(Attacker::Adaptive),
                _ => {
                    view.errors.push(format!("the link's attacker `{v}` is not naive or adaptive"))
                }
            },
            "defenses" => {
                let mut on = Vec::new();
                for spec in v.split(';').filter(|s| !s.is_empty()) {
                    match defense(spec) {
                        Ok(d) => on.push(d),
                        Err(e) => view.errors.push(e),
                    }
                }
                view.defenses = Some(on);
            }
            "thresholds" => {
                for item in v.split(',').filter(|s| !s.is_empty()) {
                    let parsed = item.split_once(':').ok_or_else(|| {
                        format!("the link's threshold `{item}` is not attack:value")
                    });
                    let parsed = parsed.and_then(|(a, t)| {
                        let attack = BrowserAttack::parse(a)
                            .ok_or_else(|| format!("the link names an unknown attack `{a}`"))?;
                        Ok((attack, number(t, &format!("{a} threshold"))?))
                    });
                    match parsed {
                        Ok(t) => view.thresholds.push(t),
                        Err(e) => view.errors.push(e),
                    }
                }
            }
            _ => {} // backend (read at start), or a key of another page's
        }
    }
    view
}

/// Applies the defense part of a view to the page's toggles: exactly the named defenses are
/// on; their parameters are set (clamped to the slider's range, with a message when that
/// changed them). Returns the messages.
pub fn apply_defenses(toggles: &mut [Toggle], on: &[DefenseSpec]) -> Vec<String> {
    let mut errors = Vec::new();
    toggles.iter_mut().for_each(|t| t.enabled = false);
    for (name, params) in on {
        let Some(t) = toggles.iter_mut().find(|t| t.name == name) else {
            errors.push(format!("the link names an unknown defense `{name}`"));
            continue;
        };
        t.enabled = true;
        for (k, v) in params {
            let Some(p) = t.params.iter_mut().find(|p| p.0 == k) else {
                errors.push(format!("the defense {name} has no parameter `{k}`"));
                continue;
            };
            p.1 = v.clamp(p.2, p.3);
            if p.1 != *v {
                errors.push(format!("{name} {k} = {v} is outside {}…{}; using {}", p.2, p.3, p.1));
            }
        }
    }
    errors
}

/// The query that reproduces a view (`?…`, keys in a fixed order; parameters that are at their
/// defaults are still written, so the link does not depend on a later version's defaults).
pub fn format(
    model: &str,
    toggles: &[Toggle],
    attacker: Attacker,
    thresholds: &[(BrowserAttack, f32)],
) -> String {
    let mut parts = vec![format!("model={}", encode(model))];
    let on: Vec<String> = toggles.iter().filter(|t| t.enabled).map(Toggle::spec).collect();
    if !on.is_empty() {
        parts.push(format!("defenses={}", encode(&on.join(";"))));
    }
    if attacker == Attacker::Adaptive {
        parts.push("attacker=adaptive".into());
    }
    let mut th: Vec<_> = thresholds.to_vec();
    th.sort_by_key(|(a, _)| BrowserAttack::ALL.iter().position(|x| x == a));
    if !th.is_empty() {
        let items: Vec<String> = th.iter().map(|(a, t)| format!("{}:{t}", a.name())).collect();
        parts.push(format!("thresholds={}", encode(&items.join(","))));
    }
    format!("?{}", parts.join("&"))
}

/// The keys [`format`] writes.
pub const KEYS: [&str; 4] = ["model", "defenses", "attacker", "thresholds"];

/// The decoded value of `key` in a URL query, if present and well encoded.
pub fn param(query: &str, key: &str) -> Option<String> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| decode(v))
}

/// Whether a query names any part of an explore view.
pub fn names_a_view(query: &str) -> bool {
    query.trim_start_matches('?').split('&').any(|kv| {
        let k = kv.split_once('=').map_or(kv, |(k, _)| k);
        KEYS.contains(&k)
    })
}

/// `query` without the keys in `drop` (another view's: `view`, `lab`), as `?…` (or `?`).
pub fn without(query: &str, drop: &[&str]) -> String {
    let kept: Vec<&str> = query
        .trim_start_matches('?')
        .split('&')
        .filter(|kv| {
            let k = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !kv.is_empty() && !drop.contains(&k)
        })
        .collect();
    format!("?{}", kept.join("&"))
}

/// `current` (the page's query) with the view's keys replaced by `view`'s (a [`format`]
/// result); other keys (`backend`, `tour`, another page's) are kept, after the view's.
pub fn merge(current: &str, view: &str) -> String {
    let view = view.trim_start_matches('?');
    let others = current.trim_start_matches('?').split('&').filter(|kv| {
        let k = kv.split_once('=').map_or(*kv, |(k, _)| k);
        !kv.is_empty() && !KEYS.contains(&k)
    });
    let parts: Vec<&str> = std::iter::once(view).filter(|v| !v.is_empty()).chain(others).collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toggles::toggles;

    #[test]
    fn params_are_found_and_other_views_keys_dropped() {
        let q = "?view=lab&lab=labs%2Foverfitting.json&backend=flex";
        assert_eq!(param(q, "lab").as_deref(), Some("labs/overfitting.json"));
        assert_eq!(param(q, "view").as_deref(), Some("lab"));
        assert_eq!(param(q, "model"), None);
        assert_eq!(param("?tour", "tour").as_deref(), Some(""));
        assert_eq!(without(q, &["view", "lab"]), "?backend=flex");
        assert_eq!(without("?view=lab", &["view"]), "?");
        assert!(names_a_view("?backend=flex&attacker=adaptive"));
        assert!(!names_a_view(q));
    }

    #[test]
    fn a_full_query_is_read() {
        let v = parse(
            "?model=relaxloss&defenses=temperature:t=4;label&attacker=adaptive&thresholds=loss:-0.5,lira-online-fixed:2",
        );
        assert_eq!(v.model.as_deref(), Some("relaxloss"));
        assert_eq!(v.attacker, Some(Attacker::Adaptive));
        let d = v.defenses.unwrap();
        assert_eq!(
            d,
            vec![("temperature".into(), vec![("t".into(), 4.0)]), ("label".into(), vec![])]
        );
        assert_eq!(v.thresholds, vec![(BrowserAttack::Loss, -0.5), (BrowserAttack::Lira, 2.0)]);
        assert!(v.errors.is_empty());
    }

    #[test]
    fn an_empty_query_asks_for_nothing() {
        assert_eq!(parse(""), View::default());
        assert_eq!(parse("?backend=flex"), View::default(), "backend is read elsewhere");
    }

    #[test]
    fn bad_parts_become_messages_and_the_rest_applies() {
        let v = parse(
            "model=erm&attacker=sneaky&thresholds=loss:abc,nope:1,confidence:2&defenses=round:d=x;topk:k=3",
        );
        assert_eq!(v.model.as_deref(), Some("erm"));
        assert_eq!(v.attacker, None);
        assert_eq!(v.thresholds, vec![(BrowserAttack::Confidence, 2.0)]);
        assert_eq!(v.defenses, Some(vec![("topk".into(), vec![("k".into(), 3.0)])]));
        assert_eq!(v.errors.len(), 4, "{:?}", v.errors);
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        for q in ["thresholds=loss:NaN", "thresholds=loss:inf", "defenses=temperature:t=NaN"] {
            assert_eq!(parse(q).errors.len(), 1, "{q}");
        }
    }

    #[test]
    fn malformed_escapes_are_an_error_not_a_panic() {
        for q in ["model=%", "model=%4", "model=%zz", "model=%FF%FE"] {
            let v = parse(q);
            assert_eq!((v.model, v.errors.len()), (None, 1), "{q}");
        }
        assert_eq!(parse("model=my%20model").model.as_deref(), Some("my model"));
    }

    #[test]
    fn defenses_are_applied_exactly_and_clamped() {
        let mut t = toggles();
        t[0].enabled = true; // topk on before: the link turns it off
        let errors = apply_defenses(
            &mut t,
            &[
                ("temperature".into(), vec![("t".into(), 1e6)]),
                ("bogus".into(), vec![]),
                ("round".into(), vec![("q".into(), 1.0)]),
            ],
        );
        let on: Vec<&str> = t.iter().filter(|t| t.enabled).map(|t| t.name).collect();
        assert_eq!(on, ["round", "temperature"]);
        let temp = t.iter().find(|t| t.name == "temperature").unwrap();
        assert_eq!(temp.params[0].1, 50.0, "clamped to the slider's range");
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn format_then_parse_reproduces_the_view() {
        let mut t = toggles();
        apply_defenses(
            &mut t,
            &[("gaussian".into(), vec![("sigma".into(), 0.25)]), ("dynanoise".into(), vec![])],
        );
        let th = [(BrowserAttack::Lira, 1.5), (BrowserAttack::Confidence, -0.25)];
        let q = format("my model", &t, Attacker::Adaptive, &th);
        let v = parse(&q);
        assert_eq!(v.model.as_deref(), Some("my model"));
        assert_eq!(v.attacker, Some(Attacker::Adaptive));
        assert_eq!(v.thresholds, vec![th[1], th[0]], "in display order");
        let mut back = toggles();
        assert!(apply_defenses(&mut back, &v.defenses.unwrap()).is_empty());
        assert_eq!(back, t);
        assert!(v.errors.is_empty());
    }

    #[test]
    fn merge_replaces_the_view_and_keeps_other_keys() {
        let q = merge("?backend=flex&model=erm&tour&attacker=adaptive", "?model=dp&defenses=label");
        assert_eq!(q, "?model=dp&defenses=label&backend=flex&tour");
        assert_eq!(merge("", "?model=erm"), "?model=erm");
        assert_eq!(merge("?model=a", "?model=a"), "?model=a");
    }

    #[test]
    fn a_naive_view_without_defenses_is_just_the_model() {
        assert_eq!(format("erm", &toggles(), Attacker::Naive, &[]), "?model=erm");
    }
}
