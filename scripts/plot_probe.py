#!/usr/bin/env python3
"""Training-probe curves of several runs side by side: the probe's accuracy and Frechet distance
(each run's eval.csv, written by `ddpm train` with train.eval_every) against the training step,
one line per run; the table adds each run's training time (its loss.csv, seconds column).

    python3 scripts/plot_probe.py OUT.png LABEL=RUN_DIR ...

Prints a Markdown table (one row per run: the probe's last values and the step time) and writes
the plot to OUT.png (needs matplotlib)."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_run(run_dir):
    seconds = {int(r["step"]): float(r["seconds"]) for r in read_csv(f"{run_dir}/loss.csv")}
    # A resumed run redoes its last probe: keep one row per step, the later one.
    probe = {int(r["step"]): (float(r["accuracy"]), float(r["frechet"])) for r in read_csv(f"{run_dir}/eval.csv")}
    steps = sorted(s for s in probe if s in seconds)
    return steps, [seconds[s] for s in steps], [probe[s][0] for s in steps], [probe[s][1] for s in steps]


def main():
    if len(sys.argv) < 3 or any("=" not in a for a in sys.argv[2:]):
        sys.exit(__doc__)
    out, runs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    fig, (ax_acc, ax_fd) = plt.subplots(1, 2, figsize=(11, 4.2))
    print("| run | steps | training time | s / step | probe accuracy | probe Frechet |")
    print("|---|---|---|---|---|---|")
    for label, run_dir in runs:
        steps, seconds, accuracy, frechet = load_run(run_dir)
        if not steps:
            sys.exit(f"{run_dir}: no probe rows with a matching loss.csv step")
        ax_acc.plot(steps, [100 * a for a in accuracy], marker="o", ms=3, label=label)
        ax_fd.plot(steps, frechet, marker="o", ms=3, label=label)
        print(f"| {label} | {steps[-1]} | {seconds[-1]:.0f} s | {seconds[-1] / steps[-1]:.3f} | "
              f"{100 * accuracy[-1]:.1f} % | {frechet[-1]:.2f} |")
    ax_acc.set(xlabel="training step", ylabel="probe accuracy (%)", title="requested digit read back")
    ax_fd.set(xlabel="training step", ylabel="probe Frechet distance", title="Frechet distance to the test set")
    ax_fd.set_yscale("log")
    for ax in (ax_acc, ax_fd):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
