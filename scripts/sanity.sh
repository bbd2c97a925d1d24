#!/usr/bin/env bash
# ansible-test sanity on this collection, offline (see docs/testing.md).
# Extra arguments go to ansible-test, e.g. scripts/sanity.sh --test pylint
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/system-deps.sh" base
"$here/bootstrap.sh"
source "$here/env.sh"
exec python "$here/sanity.py" "$@"
