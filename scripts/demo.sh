#!/usr/bin/env bash
# Placeholder for the main demo: set up, build the release binary, and show
# what is in any shipped weights. Sampling from them arrives with a later issue.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$script_dir/.."

"$script_dir/setup.sh" --data-optional

echo "demo: swift build -c release"
swift build -c release

echo "demo: sampling images from the shipped weights arrives with a later issue."
found=0
for w in weights/*.safetensors; do
    [ -e "$w" ] || continue
    found=1
    echo "demo: .build/release/ddpm info $w"
    status=0
    .build/release/ddpm info "$w" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "demo: warning: 'ddpm info $w' exited with status $status" >&2
    fi
done
if [ "$found" -eq 0 ]; then
    echo "demo: no weights/*.safetensors yet; nothing to inspect."
fi
exit 0
