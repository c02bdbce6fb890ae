#!/usr/bin/env python3
"""The per-recipe table of docs/results.md from `bench/baselines.sh`'s report.

Usage: python3 bench/baselines_table.py [REPORT_DIR] [RUN ...]
(default runs/baselines/report and every run in its metrics.csv, in file order).

A row per run (the undefended-output rows only): train / test accuracy, sparsity, adaptive
LiRA online (per-example variance) AUC and TPR at 0.1 % FPR, SAMIA and nn-top3 AUC, the
strongest attack (highest TPR at 0.1 % FPR) and the fixed privacy score of that attack
(test accuracy − |AUC − 0.5|).
"""
import csv
import json
import sys
from pathlib import Path


def main() -> None:
    report = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/baselines/report")
    wanted = sys.argv[2:]
    rows: dict[str, dict[str, dict[str, str]]] = {}
    with open(report / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["inference_defense"]:
                continue
            rows.setdefault(r["run"], {})[r["attack"]] = r
    runs = wanted or list(rows)
    print("| recipe | train / test acc | sparsity | LiRA online AUC / TPR@0.1 % | SAMIA AUC "
          "| nn-top3 AUC | strongest attack (TPR@0.1 %) | fixed privacy score |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        attacks = rows.get(run)
        if not attacks:
            print(f"| {run} | no attacks in the report | | | | | | |")
            continue
        summary = json.loads((report.parent / run / "summary.json").read_text())
        sparsity = summary.get("sparsity")

        def cell(name: str, tpr: bool = False) -> str:
            a = attacks.get(name)
            if a is None:
                return "–"
            auc = f"{float(a['auc']):.3f}"
            return f"{auc} / {100 * float(a['tpr_at_0.1pct_fpr']):.2f} %" if tpr else auc

        best = max(attacks.values(), key=lambda a: float(a["tpr_at_0.1pct_fpr"]))
        print(
            f"| {run} | {summary['train_acc']:.3f} / {summary['test_acc']:.3f} "
            f"| {'–' if sparsity is None else f'{sparsity:.2f}'} "
            f"| {cell('lira-online', True)} | {cell('samia')} | {cell('nn-top3')} "
            f"| `{best['attack']}` ({100 * float(best['tpr_at_0.1pct_fpr']):.2f} %) "
            f"| {float(best['privacy_score_fixed']):.3f} |"
        )


if __name__ == "__main__":
    main()
