#!/usr/bin/env bash
# The main job: set up, build in release mode, and write a digit sheet (out/sheet.png, row r =
# digit r) and denoising GIFs (out/gifs/) from the shipped weights in weights/, then the same
# sheet from the distilled student (out/sheet-distilled.png) and the fast preset (out/sheet-fast.png);
# each sheet's line ends with its time.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$script_dir/.."

"$script_dir/setup.sh" --data-optional

echo "demo: swift build -c release"
swift build -c release

weights=weights/mnist-small.safetensors
if [ ! -e "$weights" ]; then
    echo "demo: $weights is missing (it ships with the repository; is this a partial checkout?)."
    echo "demo: train a tiny model instead:  .build/release/ddpm train --config configs/tiny.lua --out runs/tiny"
    exit 1
fi
.build/release/ddpm info "$weights" | head -4
.build/release/ddpm sample --weights "$weights" --out out/sheet.png
.build/release/ddpm gif --weights "$weights" --out out/gifs
if [ -e weights/mnist-small-distilled.safetensors ]; then
    # the distilled student: 2 unguided DDIM steps, one forward each (its metadata says so)
    .build/release/ddpm sample --weights weights/mnist-small-distilled.safetensors --out out/sheet-distilled.png
fi
if [ -e weights/mnist-fast.safetensors ]; then
    .build/release/ddpm sample --weights weights/mnist-fast.safetensors --out out/sheet-fast.png
fi
echo "demo: wrote out/sheet.png, out/gifs/, out/sheet-distilled.png and out/sheet-fast.png"
