#!/usr/bin/env bash
# Start a local Ray "cluster" (head node only) to submit jobs to, as you would to a real cluster:
#   cluster/start-local.sh && RAY_AUTH_MODE=token RAY_ADDRESS=http://127.0.0.1:8265 ray job submit \
#       --runtime-env cluster/runtime_env.yaml -- tripwire train --config pipelines/configs/demo.yaml
# Ray 2.59+ requires a token on local clusters; both sides read ~/.ray/auth_token in token mode.
set -euo pipefail
VENV="${VENV:-.venv}"
export RAY_AUTH_MODE=token
"$VENV/bin/ray" get-auth-token --generate >/dev/null
"$VENV/bin/ray" start --head --num-cpus="${NUM_CPUS:-$(nproc)}" --dashboard-host=127.0.0.1 --disable-usage-stats
echo "stop with: $VENV/bin/ray stop   (note: stops every Ray instance on this machine)"
