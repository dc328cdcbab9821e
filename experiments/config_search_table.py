"""The results table of docs/config_search.md from the JSON reports of
experiments/config_search.sh and config_search_mnist.sh: python experiments/config_search_table.py runs"""

from __future__ import annotations

import glob
import json
import sys


def cfg(m: dict) -> str:
    return ",".join(map(str, m["config"]))


def num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


print(
    "| seed | model | Tg | accuracy model r / MAE (pts), held-back n | EC vs measured energy r | chosen | checked "
    "| test accuracy chosen / checked / uniform (%) | chosen - uniform (pts) | checked - uniform (pts) "
    "| measured energy chosen / checked / uniform (µJ, test) |"
)
print("|---|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(f"{sys.argv[1]}/config_search*_s*/search_*.json")):
    r = json.load(open(f))
    v, c, k, u = r["validation"], r["chosen"], r["checked"], r["uniform"]
    name = f.split("/")[-2].replace("config_search", "nmnist").replace("nmnist_mnist", "mnist").rsplit("_s", 1)[0]
    model = f"{name} {f.split('search_')[-1].split('_')[0]} ({r['stages']} stages)"
    acc = f"{100 * c['test_accuracy']:.1f} / {100 * k['test_accuracy']:.1f} / {100 * u['test_accuracy']:.1f}"
    # reports before 2026-12-05 gave pJ (energy_pj), later ones µJ (energy_uj)
    uj = lambda m: m["energy_uj"] if "energy_uj" in m else m["energy_pj"] / 1e6
    en = f"{uj(c):.2f} / {uj(k):.2f} / {uj(u):.2f}"
    print(
        f"| {r['seed']} | {model} | {u['config'][0]} | {num(v['pearson_r'])} / {100 * v['mae']:.2f}, {v['n']} "
        f"| {num(r['energy_model_pearson_r'])} | {cfg(c)} | {cfg(k)} | {acc} "
        f"| {100 * r['test_accuracy_difference']:+.2f} | {100 * r['checked_test_accuracy_difference']:+.2f} | {en} |"
    )
