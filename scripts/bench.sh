#!/usr/bin/env bash
# The responder against `openssl ocsp` on this machine (benchmarks/README.md).
# Installs wrk (system-deps bench group), then runs benchmarks/run.py; extra arguments go
# to it, e.g. scripts/bench.sh --duration 10 --skip-big. Prints PASS/MISS per target of
# issue 3 and exits 0 whatever the verdicts; non-zero only if it could not measure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/system-deps.sh" base bench
"$here/bootstrap.sh"
source "$here/env.sh"
cd "$PKIOPS_ROOT"
exec python benchmarks/run.py "$@"
