#!/usr/bin/env bash
# SLURM node sweep of `pbahpc scaling` (strong/weak scaling of GCMC-MD, training, labelling, P2D and a
# whole AL iteration), then the merged tables.
#
#   jobscripts/scaling.sh SPEC.yaml [NODES...]      # on the login node (default nodes: 1 2 4 8)
#       submits one job per node count K (K x TASKS_PER_NODE ranks: the spec's `ranks` must list
#       them) writing OUT/nodes-K, and a merge job that runs after all of them (afterany):
#       pbahpc scaling merge OUT/nodes-* --out OUT/merged
#   sbatch --nodes=8 jobscripts/scaling.sh SPEC.yaml 1 2 4 8
#       one job with sub-steps: the same node counts one after another inside one allocation
#       (each point's srun takes K nodes), then the merge.
#
# Env: TASKS_PER_NODE (default 32), SCALING_OUT (default runs/scaling-<spec name>), PBAHPC_VENV,
# SCALING_TIME (per-job limit, default 02:00:00). Each point runs as its own job step through
# PBAHPC_LAUNCHER (set below to srun; the sweep itself runs on the batch node, no MPI).
#
#SBATCH --job-name=pbahpc-scaling
#SBATCH --cpus-per-task=1
#SBATCH --time=02:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

spec=${1:?usage: scaling.sh SPEC.yaml [NODES...]}
shift
nodes=("$@")
[ ${#nodes[@]} -gt 0 ] || nodes=(1 2 4 8)
tpn=${TASKS_PER_NODE:-32}
name=$(basename "$spec" .yaml)
out=${SCALING_OUT:-runs/scaling-$name}
here=${SLURM_SUBMIT_DIR:-$PWD}
venv=${PBAHPC_VENV:-$here/.venv}

# ---- site setup: edit this block ------------------------------------------------------------------
# module load gcc openmpi petsc lammps
# shellcheck source=/dev/null
[ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
# ---------------------------------------------------------------------------------------------------

run_nodes() {  # run the spec's points with K x tpn ranks on K nodes into $out/nodes-K
    local k=$1 ranks=$(( $1 * tpn ))
    # --exact: each point's step gets exactly its K nodes and ranks; add --mpi=pmix if the site needs it
    export PBAHPC_LAUNCHER="srun --exact --kill-on-bad-exit=1 --nodes=$k --ntasks-per-node=$tpn -n {ranks}"
    echo "[scaling] $(date -Is) $k node(s), $ranks rank(s) -> $out/nodes-$k"
    pbahpc scaling run "$spec" --out "$out/nodes-$k" --ranks "$ranks" --no-plots
}

if [ -z "${SLURM_JOB_ID:-}" ]; then
    # login node: one job per node count, then the merge job
    mkdir -p "$out"
    ids=()
    for k in "${nodes[@]}"; do
        id=$(sbatch --parsable --nodes="$k" --ntasks-per-node="$tpn" --time="${SCALING_TIME:-02:00:00}" \
             --job-name="scaling-n$k" --export=ALL,SCALING_POINT="$k",SCALING_OUT="$out" "$0" "$spec" "$k")
        echo "[scaling] submitted $k node(s): job $id"
        ids+=("$id")
    done
    dep=$(IFS=:; echo "${ids[*]}")
    mdirs=()
    for k in "${nodes[@]}"; do mdirs+=("$out/nodes-$k"); done
    id=$(sbatch --parsable --nodes=1 --ntasks=1 --time=00:20:00 --job-name=scaling-merge \
         --dependency="afterany:$dep" --output="$out/merge-%j.out" \
         --wrap ". '$venv/bin/activate' && pbahpc scaling merge ${mdirs[*]} --out '$out/merged'")
    echo "[scaling] merge job $id after $dep -> $out/merged (scaling.h5, scaling.txt, plots/)"
    exit 0
fi

# inside an allocation
rc=0
if [ -n "${SCALING_POINT:-}" ]; then           # one job per node count (submitted above)
    run_nodes "$SCALING_POINT" || rc=$?
else                                            # one job, the node counts as sub-steps
    for k in "${nodes[@]}"; do
        if [ "$k" -gt "${SLURM_JOB_NUM_NODES:-1}" ]; then
            echo "[scaling] skipping $k node(s): the allocation has ${SLURM_JOB_NUM_NODES:-1}"; continue
        fi
        run_nodes "$k" || rc=$?
    done
    pbahpc scaling merge "$out"/nodes-* --out "$out/merged" || rc=$?
fi
exit $rc
