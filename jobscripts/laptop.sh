#!/usr/bin/env bash
# Run a pbahpc campaign on a laptop/workstation with the venv's MPI:
#
#   jobscripts/laptop.sh [--resume-on-requeue] [CAMPAIGN.yaml] [extra `pbahpc run` arguments...]
#   NP=4 jobscripts/laptop.sh inputs/demo.yaml
#
# pbahpc exits 75 after writing a checkpoint ("requeue me"), e.g. on `kill -USR1 <mpiexec pid>`
# (hydra forwards USR1 to the ranks). With --resume-on-requeue the run is restarted and resumes
# from the checkpoint; otherwise the exit code is passed through.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PBAHPC_VENV:-$root/.venv}
export PATH="$venv/bin:$PATH"   # the venv's mpiexec must match the venv's libmpi
readonly requeue_rc=75

resume=0
if [ "${1:-}" = "--resume-on-requeue" ]; then
    resume=1
    shift
fi
campaign=${1:-inputs/demo.yaml}
[ $# -gt 0 ] && shift

if ! command -v pbahpc >/dev/null; then
    echo "laptop.sh: pbahpc not found in $venv/bin (run tools/setup.sh)" >&2
    exit 1
fi

starts=0
while :; do
    starts=$((starts + 1))
    mpiexec -n "${NP:-2}" pbahpc run "$campaign" "$@"
    rc=$?
    if [ "$rc" != "$requeue_rc" ] || [ "$resume" = 0 ]; then
        exit "$rc"
    fi
    # A guard against a campaign that checkpoints without progressing.
    if [ "$starts" -ge "${MAX_STARTS:-100}" ]; then
        echo "laptop.sh: still asking for a requeue after $starts starts; giving up" >&2
        exit "$rc"
    fi
    echo "laptop.sh: checkpointed (exit $rc); resuming (start $((starts + 1)))" >&2
done
