#!/usr/bin/env bash
# Re-record the sample traces from the reference app: a few seconds of normal
# traffic, then the same with each fault switched on. Run from anywhere:
#   sample_traces/regenerate.sh            (uses .venv/bin/flowscope, else flowscope on PATH)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
flowscope="${FLOWSCOPE:-$here/../.venv/bin/flowscope}"
[ -x "$flowscope" ] || flowscope=flowscope

record() {
    local name=$1
    shift
    "$flowscope" reference-app --otlp-file "$here/$name.jsonl" \
        --duration 4s --rate 6 --concurrency 4 --users 3 --seed 1 --no-progress "$@" >/dev/null
    echo "$name.jsonl: $(wc -c <"$here/$name.jsonl") bytes, $(wc -l <"$here/$name.jsonl") requests"
}

record normal
record wallet-lock --fault wallet-lock=80
record slow-risk --fault slow-risk=150
record failing-matching --fault failing-matching=0.5
record n-plus-one --fault n-plus-one=1
record slow-user-db --fault slow-user-db=120
record order-manager-503 --fault order-manager-503=0.5
