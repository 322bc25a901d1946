#!/usr/bin/env python3
"""Table and plot of `ddpm eval --json` results: one series per sampler setting, network
evaluations per image on x; accuracy, Frechet ratio and diversity ratio on y.

    python3 scripts/plot_eval.py OUT.png [--ref "LABEL=ACCURACY,FRECHET_RATIO,DIVERSITY_RATIO"] RESULT.json ...

Prints a Markdown table (one row per result, sorted by series and evaluations) and writes the
plot to OUT.png (needs matplotlib). A series is sampler + sampler options + guidance + guided
timesteps. --ref draws a dotted line per panel for a setting known from elsewhere."""
import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series_name(r):
    opts = f" ({r['sampler_options']})" if r.get("sampler_options") else ""
    guided = r["guidance_interval"]
    return f"{r['sampler']}{opts}, w = {r['guidance']:g} at {guided}"


def main():
    out, rest = sys.argv[1], sys.argv[2:]
    refs, paths = [], []
    while rest:
        if rest[0] == "--ref":
            label, values = rest[1].split("=", 1)
            refs.append((label, [float(v) for v in values.split(",")]))
            rest = rest[2:]
        else:
            paths.append(rest[0])
            rest = rest[1:]
    results = [json.load(open(p)) for p in paths]
    groups = defaultdict(list)
    for r in results:
        groups[series_name(r)].append(r)
    print("| sampler | steps | network evaluations | accuracy | worst class | Fréchet (floor) | ratio "
          "| diversity (real) | ratio | sampling 1000 digits |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in sorted(groups):
        for r in sorted(groups[name], key=lambda r: r["network_evaluations"]):
            worst = min(r["accuracy_per_class"].values())
            print(f"| {name} | {r['steps']} | {r['network_evaluations']} | {r['accuracy']:.1f} % | {worst:.0f} % "
                  f"| {r['frechet']:.2f} ({r['frechet_real']:.2f}) | {r['frechet_ratio']:.2f} "
                  f"| {r['diversity']:.2f} ({r['diversity_real']:.2f}) | {r['diversity_ratio']:.3f} "
                  f"| {r['sampling_seconds']:.0f} s |")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [("accuracy", "accuracy of the requested digit (%)", 99, "target >= 99 %"),
              ("frechet_ratio", "Fréchet distance / real floor", 2, "target <= 2x"),
              ("diversity_ratio", "diversity / real", 0.9, "target >= 0.9x")]
    markers = "os^vDPX*"
    for p, (ax, (key, label, target, target_label)) in enumerate(zip(axes, panels)):
        for k, name in enumerate(sorted(groups)):
            rs = sorted(groups[name], key=lambda r: r["network_evaluations"])
            ax.plot([r["network_evaluations"] for r in rs], [r[key] for r in rs], marker=markers[k % len(markers)],
                    label=name)
        ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=target_label)
        for ref_label, values in refs:
            ax.axhline(values[p], color="black", linestyle=":", linewidth=1, label=ref_label)
        ax.set_xlabel("network evaluations per image (guided steps count twice)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
