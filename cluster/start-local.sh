#!/usr/bin/env bash
# Start a local Ray "cluster" (head node only) to submit jobs to, as you would to a real cluster:
#   cluster/start-local.sh && RAY_ADDRESS=http://127.0.0.1:8265 ray job submit \
#       --runtime-env cluster/runtime_env.yaml -- tripwire train --config pipelines/configs/demo.yaml
set -euo pipefail
VENV="${VENV:-.venv}"
"$VENV/bin/ray" start --head --num-cpus="${NUM_CPUS:-$(nproc)}" --dashboard-host=127.0.0.1 --disable-usage-stats
echo "stop with: $VENV/bin/ray stop"
