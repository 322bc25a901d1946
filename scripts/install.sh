#!/usr/bin/env bash
# Installs ddpm under a prefix, so `ddpm` runs from anywhere on PATH and a stock lua5.4 can
# `require "ddpm"`:
#
#   scripts/install.sh --prefix DIR [--from BUILD_DIR]
#
#   DIR/bin/ddpm                 the command (put DIR/bin on PATH)
#   DIR/share/ddpm/scripts/      the bundled recipes, configs, samplers and schedules
#   DIR/share/ddpm/weights/      the shipped weights and classifier (the default --weights)
#   DIR/lib/lua/5.4/ddpm.so      the Lua C module: LUA_CPATH="DIR/lib/lua/5.4/?.so;;" lua5.4
#
#   --from BUILD_DIR  install the products already built there (e.g. .build/release) instead of
#                     running `swift build -c release`
# The binary finds its recipes in DIR/share/ddpm/scripts (an ancestor of DIR/bin); MNIST still
# comes from --data, $DDPM_DATA or ./data/mnist. Running it again replaces an installation.
set -euo pipefail

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

prefix=""
from=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { echo "install: --prefix needs a folder" >&2; exit 2; }; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#*=}"; shift ;;
        --from) [ $# -ge 2 ] || { echo "install: --from needs a build folder" >&2; exit 2; }; from="$2"; shift 2 ;;
        --from=*) from="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$prefix" ]; then
    echo "install: --prefix DIR is required (e.g. --prefix \$HOME/.local)" >&2
    exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
if [ -z "$from" ]; then
    swift build -c release --product ddpm
    swift build -c release --product DDPMLua
    from="$(swift build -c release --show-bin-path)"
fi
for f in "$from/ddpm" "$from/libDDPMLua.so"; do
    [ -f "$f" ] || { echo "install: $f not found (build it, or leave out --from)" >&2; exit 1; }
done

mkdir -p "$prefix/bin" "$prefix/share/ddpm" "$prefix/lib/lua/5.4"
prefix="$(cd "$prefix" && pwd)"
share="$prefix/share/ddpm"
# each piece is copied next to its place, then renamed over the old one
install -m 755 "$from/ddpm" "$prefix/bin/.ddpm.tmp-$$"
mv -f "$prefix/bin/.ddpm.tmp-$$" "$prefix/bin/ddpm"
install -m 755 "$from/libDDPMLua.so" "$prefix/lib/lua/5.4/.ddpm.so.tmp-$$"
mv -f "$prefix/lib/lua/5.4/.ddpm.so.tmp-$$" "$prefix/lib/lua/5.4/ddpm.so"
for part in scripts weights; do
    rm -rf "$share/.$part.tmp-$$"
    cp -R "$part" "$share/.$part.tmp-$$"
    rm -rf "$share/$part"
    mv "$share/.$part.tmp-$$" "$share/$part"
done
echo "install: ddpm -> $prefix/bin/ddpm (recipes and weights in $share)"
echo "install: Lua module -> $prefix/lib/lua/5.4/ddpm.so (LUA_CPATH=\"$prefix/lib/lua/5.4/?.so;;\")"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "install: add $prefix/bin to PATH to run ddpm by name" ;;
esac
