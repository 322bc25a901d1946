#!/usr/bin/env python3
"""Side-by-side benchmark: `ddpm bench` against PyTorch's torch_bench.py on this machine.

For each config it runs the training step and the no-grad forwards in both engines, one process
per (engine, config, measurement) so peak RSS and CPU use are per measurement, and prints a table:
our ms, PyTorch's ms, the ratio (ours / theirs), our GFLOP/s and share of the sgemm peak (measured
right before each of our runs, since the host's speed drifts), peak RSS of both and CPU utilisation
(busy cores / 2).

With --rounds N each measurement runs N times, the two engines alternating (ours, PyTorch, ours,
...), and the table shows each engine's median over the rounds: a host whose speed drifts between
stretches then slows both engines alike instead of whichever happened to run in the slow stretch.

  scripts/bench_compare.py                                  # reference, 32,3,128, both CPU presets
  scripts/bench_compare.py --rounds 3                       # the same, alternating 3 times
  scripts/bench_compare.py --config 16,2,32 --steps 3
  TORCH_PYTHON=~/torch-venv/bin/python scripts/bench_compare.py
  scripts/bench_compare.py --precision bf16 --torch-variant bf16   # ours in bf16, PyTorch's bf16 autocast

PyTorch: set TORCH_PYTHON to a python with torch installed (default: python3); without one the
table shows our numbers only and says how to get PyTorch. torch_bench.py is looked for in
--torch-bench, then ../shared/reference/torch_bench.py; with --torch-variant V PyTorch runs
torch_peers.py --variant V beside it instead (eager, channels_last, compile, bf16, ...).
--precision bf16 runs ours with bfloat16 products (CPUs with AVX512-BF16).
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
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the two engines this many times per measurement")
    ap.add_argument("--ddpm", default=os.path.join(ROOT, ".build/release/ddpm"))
    ap.add_argument("--torch-bench", default=os.path.join(ROOT, "..", "shared", "reference", "torch_bench.py"))
    ap.add_argument("--torch-variant", default=None, help="run torch_peers.py --variant V instead of torch_bench.py")
    ap.add_argument("--precision", default="fp32", help="ours: fp32 or bf16")
    a = ap.parse_args()
    torch_cmd = [a.torch_bench]
    if a.torch_variant:
        torch_cmd = [os.path.join(os.path.dirname(a.torch_bench), "torch_peers.py"), "--variant", a.torch_variant]
    if not os.path.exists(a.ddpm):
        sys.exit(f"{a.ddpm} not found: build it with `swift build -c release`")
    configs = [(c, c, (["--attention", a.attention] if a.attention != "even" else []) +
                (["--no-mid-attention"] if a.no_mid_attention else [])) for c in a.config] if a.config else PRESETS
    py = torch_python()
    if py is None or not os.path.exists(torch_cmd[0]):
        print("PyTorch not available: python3 -m venv ~/torch-venv && ~/torch-venv/bin/pip install torch safetensors,"
              " then TORCH_PYTHON=~/torch-venv/bin/python " + " ".join(sys.argv) +
              f" (torch_bench.py expected at {a.torch_bench})\n")
        py = None

    def sgemm_peak():
        recs, _, _, _ = run([a.ddpm, "bench", "--what", "params", "--config", "16,2,32"])
        return next((r["gflops"] for r in recs if r.get("kind") == "sgemm_peak"), None)

    peaks = []
    hdr = (f"{'config':<22} {'measure':<14} {'ours ms':>9} {'torch ms':>9} {'ratio':>6} {'GFLOP/s':>8} "
           f"{'peak%':>6} {'RSS ours':>9} {'RSS torch':>9} {'CPU ours':>8} {'CPU torch':>9}")
    print(hdr)
    print("-" * len(hdr))
    for label, cfg, extra in configs:
        common = ["--config", cfg, "--batch", str(a.batch)] + extra
        if a.steps:
            common += ["--steps", str(a.steps)]
        for what, batches in (("train", [a.batch]), ("fwd", [int(b) for b in a.fwd_batches.split(",")])):
            for b in batches:
                sel = ["--what", what] + (["--fwd-batches", str(b)] if what == "fwd" else [])
                kind = "train_step" if what == "train" else "fwd_nograd"
                mine, ref = [], []
                rss_o = rss_t = cpu_o = cpu_t = wall_o = wall_t = 0.0
                for _ in range(max(1, a.rounds)):
                    peak = sgemm_peak()
                    peaks += [peak] if peak else []
                    recs, rss, cpu, wall = run(
                        [a.ddpm, "bench", "--no-peak", "--precision", a.precision] + common + sel)
                    mine += [dict(r, peak=peak) for r in recs if r.get("kind") == kind]
                    rss_o, cpu_o, wall_o = max(rss_o, rss), cpu_o + cpu, wall_o + wall
                    if py:
                        recs, rss, cpu, wall = run([py] + torch_cmd + common + sel)
                        ref += [r for r in recs if r.get("kind") == kind]
                        rss_t, cpu_t, wall_t = max(rss_t, rss), cpu_t + cpu, wall_t + wall
                mine, ref = (lower_median(recs, key=lambda r: r["median_ms"]) for recs in (mine, ref))
                if mine is None:
                    continue
                ratio = f"{mine['median_ms'] / ref['median_ms']:.2f}" if ref else "-"
                pk = f"{100 * mine['gflops'] / mine['peak']:.0f}%" if mine["peak"] else "-"
                print(f"{label:<22} {what + ' b' + str(b):<14} {mine['median_ms']:>9.1f} "
                      f"{(ref['median_ms'] if ref else float('nan')):>9.1f} {ratio:>6} {mine['gflops']:>8.1f} {pk:>6} "
                      f"{rss_o:>8.0f}M {rss_t:>8.0f}M {cpu_o / wall_o / 2:>8.0%} "
                      f"{(cpu_t / wall_t / 2 if py and wall_t else 0):>9.0%}", flush=True)
    if peaks:
        print(f"\nsgemm peak (2048^3, both cores) before each of our runs: {min(peaks):.0f}-{max(peaks):.0f} GFLOP/s,"
              f" median {lower_median(peaks):.0f}; peak% is against the one right before the run")


if __name__ == "__main__":
    main()
