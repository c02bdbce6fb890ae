#!/usr/bin/env python3
"""The per-recipe table of docs/results.md from `bench/baselines.sh`'s report.

Usage: python3 bench/baselines_table.py [--runs DIR] [--cost DIR] [REPORT_DIR] [RUN ...]
(default runs/baselines/report and every run in its metrics.csv, in file order; the runs'
folders, for their summary.json, in DIR, by default the report's parent folder). With --cost,
the training seconds come from DIR/RUN/summary.json, the quiet re-timing of
`bench/baselines_cost.sh`, instead of the report's (the targets' own, trained on busy cores).

A row per run on its undefended outputs, and one more per inference-time defense the report
holds for it (the adaptive attacker's rows: e.g. HAMP's training plus its output
modification): train / test accuracy, training seconds and their ratio to the ERM run, ε of
DP-SGD runs, adaptive LiRA online (per-example variance) and RMIA online AUC / TPR at 0.1 %
FPR, label-only, SAMIA and nn-top3 AUC, the strongest attack (highest TPR at 0.1 % FPR) and
its fixed privacy score (test accuracy − |AUC − 0.5|).
"""
import csv
import json
import sys
from pathlib import Path

COLUMNS = ("recipe", "train / test acc", "train s (× ERM)", "ε", "LiRA online",
           "RMIA online", "label-only", "SAMIA", "nn-top3", "strongest (TPR@0.1 %)",
           "fixed privacy score")


def read(report: Path) -> dict[tuple[str, str], dict[str, dict[str, str]]]:
    """metrics.csv rows by (run, view) and attack; the view is "" for the undefended outputs
    and "SPEC" for the adaptive attacker through an inference-time defense."""
    rows: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    with open(report / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            spec = r["inference_defense"]
            if spec and r["attacker"] != "adaptive":
                continue
            # The report names a defended view "RUN + SPEC (attacker)"; its folder is RUN.
            run = r["run"].split(" + ")[0] if spec else r["run"]
            rows.setdefault((run, spec), {})[r["attack"]] = r
    return rows


def quiet_seconds(cost: Path, run: str) -> float | None:
    """`wall_seconds` of the quiet re-timing of `run`, if there is one."""
    summary = cost / run / "summary.json"
    if not summary.is_file():
        return None
    return float(json.loads(summary.read_text())["wall_seconds"])


def cost_cell(cost: Path | None, run: str, some: dict[str, str]) -> str:
    """Training seconds and their ratio to ERM's: quiet ones under `cost`, else the report's."""
    if cost is not None:
        seconds, erm = quiet_seconds(cost, run), quiet_seconds(cost, "erm")
        if seconds is None:
            return "–"
        return f"{seconds:.0f}" + (f" ({seconds / erm:.1f}×)" if erm else "")
    if not some.get("train_seconds"):
        return "–"
    cell = f"{float(some['train_seconds']):.0f}"
    if some.get("train_cost_vs_erm"):
        cell += f" ({float(some['train_cost_vs_erm']):.1f}×)"
    return cell


def row(runs: Path, cost: Path | None, run: str, view: str,
        attacks: dict[str, dict[str, str]]) -> str:
    summary = json.loads((runs / run / "summary.json").read_text())
    dp = summary.get("dp")

    def cell(name: str, tpr: bool = False) -> str:
        a = attacks.get(name)
        if a is None:
            return "–"
        auc = f"{float(a['auc']):.3f}"
        return f"{auc} / {100 * float(a['tpr_at_0.1pct_fpr']):.2f} %" if tpr else auc

    some = next(iter(attacks.values()))
    # Test accuracy of the outputs the attacks saw (an output modification can change it).
    test_acc = float(some["test_acc"])
    best = max(attacks.values(), key=lambda a: float(a["tpr_at_0.1pct_fpr"]))
    cells = [
        run + (f" + `{view}`" if view else ""),
        f"{summary['train_acc']:.3f} / {test_acc:.3f}",
        cost_cell(cost, run, some),
        f"{dp['epsilon']:.2f}" if dp else "–",
        cell("lira-online", True),
        cell("rmia-online", True),
        cell("label-only"),
        cell("samia"),
        cell("nn-top3"),
        f"`{best['attack']}` ({100 * float(best['tpr_at_0.1pct_fpr']):.2f} %)",
        f"{float(best['privacy_score_fixed']):.3f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    args = sys.argv[1:]
    runs_dir = cost = None
    while args[:1] in (["--runs"], ["--cost"]):
        if args[0] == "--runs":
            runs_dir = Path(args[1])
        else:
            cost = Path(args[1])
        args = args[2:]
    report = Path(args[0] if args else "runs/baselines/report")
    runs_dir = runs_dir or report.parent
    rows = read(report)
    runs = args[1:] or list(dict.fromkeys(run for run, _ in rows))
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for run in runs:
        views = [v for r, v in rows if r == run]
        if not views:
            print(f"| {run} | no attacks in the report |" + " |" * (len(COLUMNS) - 2))
        for view in views:
            print(row(runs_dir, cost, run, view, rows[(run, view)]))


if __name__ == "__main__":
    main()
