//! Rendering the report's [`Block`]s as Markdown and self-contained HTML (plots inlined), and
//! every attack's numbers as `metrics.csv`.

use std::fmt::Write;

use mia_core::metrics::{privacy_score_fixed, privacy_score_published};

use crate::runs::RunResults;
use crate::sections::{Block, midput_base, tpr, train_cost};
use crate::svg::escape;

pub(crate) fn markdown(doc: &[Block]) -> String {
    let mut s = String::new();
    for b in doc {
        match b {
            Block::Heading(level, t) => {
                let _ = writeln!(s, "{} {t}\n", "#".repeat(*level));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "{t}\n");
            }
            Block::Table(head, rows) => {
                // A `|` inside a cell would end it.
                let cells = |r: &[String]| {
                    r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ")
                };
                let _ = writeln!(s, "| {} |", cells(head));
                let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
                for r in rows {
                    let _ = writeln!(s, "| {} |", cells(r));
                }
                s.push('\n');
            }
            Block::Plot { file, alt, reading } | Block::Image { file, alt, reading } => {
                let _ = writeln!(s, "![{alt}]({file})\n\n*{reading}*\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(s, "- {i}");
                }
                s.push('\n');
            }
        }
    }
    s
}

/// Inline markup of the Markdown text: `code` and *emphasis*.
fn inline(t: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut em = false;
    for c in escape(t).chars() {
        match c {
            '`' => {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            '*' if !code => {
                out.push_str(if em { "</em>" } else { "<em>" });
                em = !em;
            }
            _ => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding), for PNGs inlined in the HTML report.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn html(
    doc: &[Block],
    title: &str,
    svgs: &[(String, String)],
    pngs: &[(String, Vec<u8>)],
) -> String {
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:'DejaVu Sans',sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}table{{border-collapse:collapse;margin:1em 0;font-size:.9em}}td,th{{border:1px solid #ccc;padding:.3em .5em;text-align:left}}figure{{margin:1.5em 0}}figcaption{{font-style:italic}}svg{{max-width:100%;height:auto}}code{{background:#f3f3f3;padding:0 .2em}}</style></head><body>\n",
        escape(title)
    );
    for b in doc {
        match b {
            Block::Heading(level, t) => {
                let _ = writeln!(s, "<h{level}>{}</h{level}>", inline(t));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "<p>{}</p>", inline(t));
            }
            Block::Table(head, rows) => {
                s.push_str("<table><tr>");
                for h in head {
                    let _ = write!(s, "<th>{}</th>", inline(h));
                }
                s.push_str("</tr>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for c in r {
                        let _ = write!(s, "<td>{}</td>", inline(c));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
            Block::Plot { file, alt, reading } => {
                let svg = svgs.iter().find(|(n, _)| n == file).map_or("", |(_, v)| v.as_str());
                let _ = writeln!(
                    s,
                    "<figure aria-label=\"{}\">{svg}<figcaption>{}</figcaption></figure>",
                    escape(alt),
                    inline(reading)
                );
            }
            Block::Image { file, alt, reading } => {
                let png = pngs.iter().find(|(n, _)| n == file).map_or(&[][..], |(_, v)| v);
                let _ = writeln!(
                    s,
                    "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{}</figcaption></figure>",
                    escape(alt),
                    base64(png),
                    inline(reading)
                );
            }
            Block::List(items) => {
                s.push_str("<ul>");
                for i in items {
                    let _ = write!(s, "<li>{}</li>", inline(i));
                }
                s.push_str("</ul>\n");
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}

pub(crate) fn csv(runs: &[RunResults]) -> String {
    let mut s = String::from(
        "run,dataset,model,defense,test_acc,attack,family,auc,auc_distance,advantage,best_balanced_accuracy,\
         tpr_at_1pct_fpr,tpr_at_1pct_ci_lo,tpr_at_1pct_ci_hi,tpr_at_0.1pct_fpr,tpr_at_0.1pct_ci_lo,tpr_at_0.1pct_ci_hi,\
         tpr_at_0.01pct_fpr,calibrated_tpr,calibrated_fpr,calibrated_balanced_accuracy,privacy_score_published,\
         privacy_score_fixed,midput_published,midput_advantage,train_seconds,train_cost_vs_erm,shadows,queries,seconds,inference_defense,attacker\n",
    );
    let field = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6}"));
    let quote = |t: &str| {
        if t.contains([',', '"']) {
            format!("\"{}\"", t.replace('"', "\"\""))
        } else {
            t.to_string()
        }
    };
    for r in runs {
        let rep = &r.report;
        for a in &rep.attacks {
            let e = &a.evaluation;
            let t = |f: f64| tpr(a, f);
            let cal = a.calibrated.first();
            let base = midput_base(runs, r, &a.name);
            let mid = |advantage: bool| {
                base.as_ref().map(|m| if advantage { m.advantage(a) } else { m.published(a) })
            };
            let cols = [
                quote(&rep.label),
                quote(rep.dataset.as_deref().unwrap_or("")),
                quote(rep.model.as_deref().unwrap_or("")),
                quote(rep.defense.as_deref().unwrap_or("")),
                field(rep.test_acc),
                a.name.clone(),
                a.family.clone(),
                field(Some(e.auc)),
                field(Some(e.auc_distance)),
                field(Some(e.advantage)),
                field(Some(e.best_balanced_accuracy)),
                field(t(0.01).map(|x| x.tpr)),
                field(t(0.01).map(|x| x.ci95.0)),
                field(t(0.01).map(|x| x.ci95.1)),
                field(t(0.001).map(|x| x.tpr)),
                field(t(0.001).map(|x| x.ci95.0)),
                field(t(0.001).map(|x| x.ci95.1)),
                field(t(0.0001).map(|x| x.tpr)),
                field(cal.map(|c| c.tpr)),
                field(cal.map(|c| c.fpr)),
                field(cal.map(|c| c.balanced_accuracy)),
                field(rep.test_acc.map(|acc| privacy_score_published(acc, e.auc))),
                field(rep.test_acc.map(|acc| privacy_score_fixed(acc, e.auc))),
                field(mid(false)),
                field(mid(true)),
                field(r.train_seconds),
                field(train_cost(runs, r)),
                a.shadows.to_string(),
                a.queries.to_string(),
                format!("{:.4}", a.seconds),
                quote(rep.inference.as_ref().map_or("", |i| i.spec.as_str())),
                rep.inference.as_ref().map_or(String::new(), |i| i.attacker.clone()),
            ];
            let _ = writeln!(s, "{}", cols.join(","));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xFF, 0xEF]), "/+8=");
    }
}
