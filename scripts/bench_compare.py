#!/usr/bin/env python3
"""Side-by-side benchmark: `ddpm bench` against PyTorch's torch_bench.py on this machine.

For each config it runs the training step and the no-grad forwards in each engine, one process
per (engine, config, measurement) so peak RSS is per measurement, and prints a row per measurement:
each engine's median ms, the ratio of our best to PyTorch's fastest, our peak RSS and PyTorch's
lowest (plain text, or a markdown table with --markdown); the sgemm peak measured before each
round shows how the host's speed drifted.

With --rounds N each measurement runs N times, the engines alternating (ours, PyTorch, ours,
...), and the table shows each engine's median over the rounds: a host whose speed drifts between
stretches then slows both engines alike instead of whichever happened to run in the slow stretch.

  scripts/bench_compare.py                                  # reference, 32,3,128, both CPU presets
  scripts/bench_compare.py --rounds 3                       # the same, alternating 3 times
  scripts/bench_compare.py --config 16,2,32 --steps 3
  TORCH_PYTHON=~/torch-venv/bin/python scripts/bench_compare.py
  scripts/bench_compare.py --precision fp32,bf16 --torch-variant eager,channels_last,bf16,compile,ort \\
      --config 32,3,128 --attention 0,0,1 --rounds 3    # both our precisions against every PyTorch variant

PyTorch: set TORCH_PYTHON to a python with torch installed (default: python3); without one the
table shows our numbers only and says how to get PyTorch. torch_bench.py is looked for in
--torch-bench, then ../shared/reference/torch_bench.py; with --torch-variant V PyTorch runs
torch_peers.py --variant V for each V of a comma list instead (eager, channels_last, compile, bf16
(autocast), ort, ...), one column each, every engine taking its turn in each round. --precision
fp32,bf16 gives ours a column per precision (bf16: CPUs with AVX512-BF16; elsewhere its column
stays empty). The ratio is our best column against PyTorch's fastest, which it names.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = [  # (label, config, extra flags)
    ("reference", "64,4,128", []),
    ("32,3,128", "32,3,128", []),
    ("cpu preset", "32,3,128", ["--attention", "0,0,1"]),
    ("fast cpu preset", "16,3,128", ["--attention", "0,0,1"]),
]


WRAPPER = ("import resource, subprocess, sys\n"
           "r = subprocess.run(sys.argv[1:]).returncode\n"
           "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
           "sys.stderr.write('\\nRUSAGE %d %f\\n' % (u.ru_maxrss, u.ru_utime + u.ru_stime))\n"
           "sys.exit(r)\n")


def run(cmd):
    """Runs cmd in a fresh wrapper process; returns (json records, its peak RSS in MB, CPU
    seconds, wall seconds). The wrapper's RUSAGE_CHILDREN covers exactly this one command."""
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", WRAPPER] + cmd, capture_output=True, text=True)
    wall = time.time() - t0
    rss, cpu = 0.0, 0.0
    for line in p.stderr.splitlines():
        if line.startswith("RUSAGE "):
            _, kb, sec = line.split()
            rss, cpu = int(kb) / 1024, float(sec)
    if p.returncode != 0:
        sys.stderr.write(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}\n")
        return [], rss, cpu, wall
    recs = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return recs, rss, cpu, wall


def lower_median(items, key=None):
    """The middle item (the lower of the two middle ones for an even count), or None."""
    items = sorted(items, key=key)
    return items[(len(items) - 1) // 2] if items else None


def torch_python():
    py = os.environ.get("TORCH_PYTHON", "python3")
    ok = subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0
    return py if ok else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", help="base,levels,time_dim (repeatable); default: the three presets")
    ap.add_argument("--attention", default="even")
    ap.add_argument("--no-mid-attention", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--fwd-batches", default="10,100")
    ap.add_argument("--what", default="train,fwd", help="train, fwd or both")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the engines this many times per measurement")
    ap.add_argument("--ddpm", default=os.path.join(ROOT, ".build/release/ddpm"))
    ap.add_argument("--torch-bench", default=os.path.join(ROOT, "..", "shared", "reference", "torch_bench.py"))
    ap.add_argument("--torch-variant", default=None,
                    help="comma list of torch_peers.py variants (eager, channels_last, bf16, compile, ort, ...) "
                         "instead of torch_bench.py, one column each")
    ap.add_argument("--precision", default="fp32", help="ours: comma list of fp32, bf16, one column each")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    a = ap.parse_args()
    peers = os.path.join(os.path.dirname(a.torch_bench), "torch_peers.py")
    variants = a.torch_variant.split(",") if a.torch_variant else ["torch_bench"]
    torch_cmds = {v: ([a.torch_bench] if v == "torch_bench" else [peers, "--variant", v]) for v in variants}
    precisions = a.precision.split(",")
    if not os.path.exists(a.ddpm):
        sys.exit(f"{a.ddpm} not found: build it with `swift build -c release`")
    configs = [(c, c, (["--attention", a.attention] if a.attention != "even" else []) +
                (["--no-mid-attention"] if a.no_mid_attention else [])) for c in a.config] if a.config else PRESETS
    py = torch_python()
    if py is None or not all(os.path.exists(c[0]) for c in torch_cmds.values()):
        print("PyTorch not available: python3 -m venv ~/torch-venv && ~/torch-venv/bin/pip install torch safetensors,"
              " then TORCH_PYTHON=~/torch-venv/bin/python " + " ".join(sys.argv) +
              f" (torch_bench.py expected at {a.torch_bench})\n")
        py = None

    def sgemm_peak():
        recs, _, _, _ = run([a.ddpm, "bench", "--what", "params", "--config", "16,2,32"])
        return next((r["gflops"] for r in recs if r.get("kind") == "sgemm_peak"), None)

    ours_cols = [f"ours {p}" for p in precisions]
    torch_cols = [f"torch {v}" for v in variants] if py else []
    cols = ours_cols + torch_cols
    peaks = []
    if a.markdown:
        print("| config | measure | " + " | ".join(f"{c} ms" for c in cols) +
              " | best ours / fastest PyTorch | peak RSS ours MB | lowest PyTorch RSS MB |")
        print("|---|---|" + "---|" * (len(cols) + 3))
    else:
        print("columns: " + ", ".join(cols) + " (median ms over the rounds)")
    for label, cfg, extra in configs:
        common = ["--config", cfg, "--batch", str(a.batch)] + extra
        if a.steps:
            common += ["--steps", str(a.steps)]
        measures = [("train", [a.batch]), ("fwd", [int(b) for b in a.fwd_batches.split(",")])]
        for what, batches in (m for m in measures if m[0] in a.what.split(",")):
            for b in batches:
                sel = ["--what", what] + (["--fwd-batches", str(b)] if what == "fwd" else [])
                kind = "train_step" if what == "train" else "fwd_nograd"
                got = {c: [] for c in cols}
                rss = {c: 0.0 for c in cols}
                for _ in range(max(1, a.rounds)):
                    peak = sgemm_peak()
                    peaks += [peak] if peak else []
                    commands = [(f"ours {p}", [a.ddpm, "bench", "--no-peak", "--precision", p] + common + sel)
                                for p in precisions]
                    commands += [(f"torch {v}", [py] + torch_cmds[v] + common + sel) for v in variants] if py else []
                    for col, cmd in commands:
                        recs, r, _, _ = run(cmd)
                        got[col] += [x for x in recs if x.get("kind") == kind]
                        rss[col] = max(rss[col], r)
                med = {c: lower_median(got[c], key=lambda r: r["median_ms"]) for c in cols}
                best_ours = min((med[c]["median_ms"] for c in ours_cols if med[c]), default=None)
                best_torch = min(((med[c]["median_ms"], c) for c in torch_cols if med[c]), default=None)
                cells = [f"{med[c]['median_ms']:.1f}" if med[c] else "-" for c in cols]
                ratio = f"{best_ours / best_torch[0]:.2f} vs {best_torch[1][6:]}" if best_ours and best_torch else "-"
                rss_o = max(rss[c] for c in ours_cols)
                rss_t = min((rss[c] for c in torch_cols if med[c]), default=0)
                if a.markdown:
                    print(f"| {label} | {what} b{b} | " + " | ".join(cells) + f" | {ratio} | {rss_o:.0f} | {rss_t:.0f} |",
                          flush=True)
                else:
                    print(f"{label:<18} {what + ' b' + str(b):<12} " + " ".join(f"{x:>10}" for x in cells) +
                          f"  ratio {ratio}  RSS ours {rss_o:.0f}M torch(min) {rss_t:.0f}M", flush=True)
    if peaks:
        print(f"\nsgemm peak (2048^3, both cores) before each round: {min(peaks):.0f}-{max(peaks):.0f} GFLOP/s,"
              f" median {lower_median(peaks):.0f}")


if __name__ == "__main__":
    main()
