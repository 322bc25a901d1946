#!/usr/bin/env bash
# Set up a fresh Debian machine for ddpm-swift. Safe to run again and again.
#
#   scripts/setup.sh [--no-data] [--data-optional] [--dataset mnist|fashion]
#
#   1. Installs the C libraries the package links against (Lua 5.4, OpenBLAS,
#      libpng, giflib, zlib, Open MPI with its mpirun) plus pkg-config, and the
#      lua5.4 interpreter (for the Lua C module's test), if any of them is missing.
#   2. Puts the four MNIST files (gzipped, as the code reads them) into
#      data/mnist/ under the repo root. Sources, in order:
#        $DDPM_MNIST_MIRROR (a folder holding the .gz files),
#        ../shared/data/mnist next to the repo root (or /work/shared/data/mnist),
#        a download from the public MNIST mirrors.
#
#   --no-data        skip step 2
#   --data-optional  if MNIST can't be found, warn and exit 0 instead of failing
#   --dataset fashion  step 2 for Fashion-MNIST instead of MNIST: installs Debian's
#                    dataset-fashion-mnist (its files go to /usr/share/datasets/fashion-mnist)
#                    unless data/fashion-mnist already holds the four files, and links
#                    data/fashion-mnist to it (scripts/configs/fashion.lua trains on it)
set -euo pipefail

APT_PACKAGES=(liblua5.4-dev libopenblas-dev libpng-dev libgif-dev zlib1g-dev libopenmpi-dev openmpi-bin
              pkg-config lua5.4)
PKG_CONFIG_MODULES=(lua5.4 openblas libpng libgif zlib ompi-c)
MNIST_FILES=(
    train-images-idx3-ubyte.gz
    train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz
    t10k-labels-idx1-ubyte.gz
)
MNIST_URLS=(
    https://ossci-datasets.s3.amazonaws.com/mnist/
    https://storage.googleapis.com/cvdf-datasets/mnist/
)
CONNECT_TIMEOUT=10   # seconds to reach a host
MAX_TIME=300         # seconds for one whole file (train images are ~9.5 MB)

usage() {
    # The comment block at the top of this file, without the '#'s.
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

want_data=1
data_optional=0
dataset=mnist
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-data) want_data=0 ;;
        --data-optional) data_optional=1 ;;
        --dataset)
            [ "$#" -ge 2 ] || { echo "setup: --dataset needs mnist or fashion" >&2; exit 2; }
            dataset="$2"; shift ;;
        --dataset=*) dataset="${1#--dataset=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$dataset" in
    mnist|fashion) ;;
    *) echo "setup: --dataset must be mnist or fashion, got '$dataset'" >&2; exit 2 ;;
esac

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
cd "$repo_root"

log() { echo "setup: $*"; }
warn() { echo "setup: warning: $*" >&2; }

# ---------------------------------------------------------------- packages --

# Prints the names of missing pkg-config modules and programs (nothing when all are there).
missing_modules() {
    if ! command -v lua5.4 >/dev/null 2>&1; then
        echo "lua5.4"
    fi
    if ! command -v pkg-config >/dev/null 2>&1; then
        echo "pkg-config"
        return
    fi
    local m
    for m in "${PKG_CONFIG_MODULES[@]}"; do
        if pkg-config --exists "$m"; then
            continue
        fi
        # Some giflib packages ship no .pc file; the header is what matters.
        if [ "$m" = libgif ] && [ -f /usr/include/gif_lib.h ]; then
            continue
        fi
        echo "$m"
    done
    # the launcher (openmpi-bin) is a separate package from the library
    command -v mpirun >/dev/null 2>&1 || echo "mpirun"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "setup: need root to run: $*" >&2
        echo "setup: run this script as root, or install sudo." >&2
        return 1
    fi
}

missing="$(missing_modules | tr '\n' ' ')"
missing="${missing% }"
if [ -z "$missing" ]; then
    log "system libraries: all present (${PKG_CONFIG_MODULES[*]})"
else
    log "system libraries: missing: $missing"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: apt-get not found; install these packages by hand: ${APT_PACKAGES[*]}" >&2
        exit 1
    fi
    log "installing: ${APT_PACKAGES[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${APT_PACKAGES[@]}"
    still="$(missing_modules | tr '\n' ' ')"
    still="${still% }"
    if [ -n "$still" ]; then
        echo "setup: still missing after apt-get install: $still" >&2
        exit 1
    fi
    log "system libraries: installed"
fi

# -------------------------------------------------------------------- data --

if [ "$want_data" -eq 0 ]; then
    log "data: skipped (--no-data)"
    exit 0
fi

valid_gz() { [ -s "$1" ] && gzip -t "$1" 2>/dev/null; }

# Fashion-MNIST: the same four file names as MNIST, from Debian's dataset-fashion-mnist.
if [ "$dataset" = fashion ]; then
    fashion_dir="$repo_root/data/fashion-mnist"
    debian_dir=/usr/share/datasets/fashion-mnist
    complete() {
        local name
        for name in "${MNIST_FILES[@]}"; do valid_gz "$1/$name" || return 1; done
    }
    if complete "$fashion_dir"; then
        log "data: Fashion-MNIST ready in data/fashion-mnist/ (already there)"
        exit 0
    fi
    if ! complete "$debian_dir"; then
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "setup: apt-get not found; put Fashion-MNIST's four .gz files (MNIST's names)" \
                 "in data/fashion-mnist/" >&2
            exit 1
        fi
        log "installing: dataset-fashion-mnist"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist ||
            { as_root env DEBIAN_FRONTEND=noninteractive apt-get update &&
              as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist; }
        complete "$debian_dir" || { echo "setup: dataset-fashion-mnist did not install $debian_dir/*.gz" >&2; exit 1; }
    fi
    if [ -e "$fashion_dir" ] && [ ! -L "$fashion_dir" ]; then
        echo "setup: data/fashion-mnist exists but lacks the four files; remove it and run this again" >&2
        exit 1
    fi
    mkdir -p "$repo_root/data"
    ln -sfn "$debian_dir" "$fashion_dir"
    log "data: Fashion-MNIST ready: data/fashion-mnist -> $debian_dir"
    exit 0
fi

data_dir="$repo_root/data/mnist"
mkdir -p "$data_dir"

# Moves a verified temporary file into place; removes it when it is no good.
install_file() {
    local tmp="$1" dest="$2"
    chmod 0644 "$tmp"
    if valid_gz "$tmp"; then
        mv -f "$tmp" "$dest"
        return 0
    fi
    rm -f "$tmp"
    return 1
}

copy_from() {
    local dir="$1" name="$2" dest="$data_dir/$2" tmp
    [ -f "$dir/$name" ] || return 1
    tmp="$(mktemp "$data_dir/.$name.XXXXXX")"
    if cp "$dir/$name" "$tmp"; then
        install_file "$tmp" "$dest" && return 0
        warn "$dir/$name is not a valid gzip file; ignoring it"
        return 1
    fi
    rm -f "$tmp"
    return 1
}

download() {
    local url="$1" name="$2" dest="$data_dir/$2" tmp ok=1
    tmp="$(mktemp "$data_dir/.$name.XXXXXX")"
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --connect-timeout "$CONNECT_TIMEOUT" --max-time "$MAX_TIME" -o "$tmp" "$url" && ok=0
    elif command -v wget >/dev/null 2>&1; then
        wget -q --tries=1 --timeout="$CONNECT_TIMEOUT" -O "$tmp" "$url" && ok=0
    else
        warn "neither curl nor wget is installed; cannot download"
    fi
    if [ "$ok" -eq 0 ] && install_file "$tmp" "$dest"; then
        return 0
    fi
    rm -f "$tmp"
    return 1
}

mirrors=()
if [ -n "${DDPM_MNIST_MIRROR:-}" ]; then
    if [ -d "$DDPM_MNIST_MIRROR" ]; then
        mirrors+=("$DDPM_MNIST_MIRROR")
    else
        warn "DDPM_MNIST_MIRROR=$DDPM_MNIST_MIRROR is not a folder; ignoring it"
    fi
fi
# the workplace's offline mirror sits next to the checkout (../shared) or at /work/shared
for candidate in "$repo_root/../shared/data/mnist" "$repo_root/../../shared/data/mnist" /work/shared/data/mnist; do
    if [ -d "$candidate" ]; then
        mirrors+=("$(cd "$candidate" && pwd)")
    fi
done

present=0
missing_files=()
for name in "${MNIST_FILES[@]}"; do
    dest="$data_dir/$name"
    if [ -e "$dest" ]; then
        if valid_gz "$dest"; then
            present=$((present + 1))
            continue
        fi
        warn "data/mnist/$name is corrupt; fetching it again"
        rm -f "$dest"
    fi
    got=""
    for dir in ${mirrors[@]+"${mirrors[@]}"}; do
        if copy_from "$dir" "$name"; then
            got="copied from $dir"
            break
        fi
    done
    if [ -z "$got" ]; then
        for base in "${MNIST_URLS[@]}"; do
            if download "$base$name" "$name"; then
                got="downloaded from $base"
                break
            fi
        done
    fi
    if [ -n "$got" ]; then
        log "data: $name $got"
    else
        missing_files+=("$name")
    fi
done

if [ "${#missing_files[@]}" -eq 0 ]; then
    log "data: MNIST ready in data/mnist/ ($present already there, $(( ${#MNIST_FILES[@]} - present )) fetched)"
    exit 0
fi

{
    echo "setup: MNIST is incomplete. Missing from $data_dir:"
    for name in "${missing_files[@]}"; do
        echo "    $name"
    done
    echo "setup: looked in: \$DDPM_MNIST_MIRROR (${DDPM_MNIST_MIRROR:-not set}), $repo_root/../shared/data/mnist,"
    echo "       and tried to download from: ${MNIST_URLS[*]}"
    echo "setup: to fix, either"
    echo "         set DDPM_MNIST_MIRROR=/path/to/folder (holding the .gz files) and run this again, or"
    echo "         put the .gz files in data/mnist/ yourself."
} >&2
if [ "$data_optional" -eq 1 ]; then
    warn "continuing without MNIST (--data-optional); anything that needs it will not find it"
    exit 0
fi
exit 1
