#!/usr/bin/env bash
# Set up (MNIST optional), then run the test suite.
#
#   scripts/test.sh [swift test arguments...]    e.g. scripts/test.sh --filter AutogradTests
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$script_dir/.."

"$script_dir/setup.sh" --data-optional

echo "test: swift test $*"
status=0
swift test "$@" || status=$?
echo "test: swift test exited with status $status"
exit "$status"
