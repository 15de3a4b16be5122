#!/usr/bin/env bash
# Submit the paper-scale MnFePBA campaign (inputs/production-mnfepba.yaml) through jobscripts/slurm.sh,
# which does the work (pre-flight, USR1 -> checkpoint -> requeue); this script only sizes the job.
#
#   jobscripts/production.sh [extra sbatch options, e.g. --account=... --partition=...]
#
# Allocation: NODES + VASP_NODES = 3 + 16 nodes. The pbahpc step runs on NODES x TASKS_PER_NODE = 3 x 32
# = 96 MPI ranks (PBAHPC_NODES/PBAHPC_NTASKS, read by slurm.sh); the other 16 nodes stay free for the
# oracle's VASP steps, one per oracle rank. Layout (`pbahpc check inputs/production-mnfepba.yaml
# --ranks 96` prints it; tests/test_production_input.py checks that the two agree):
#   ranks  0-47  12 GCMC-MD replicas (3 temperatures x 4 Na chemical potentials), 4 ranks each, one LAMMPS
#                instance with the level-12 MTP per replica
#   ranks 48-75  MTP trainer (28 ranks, fit parallel over configurations)
#   ranks 76-91  oracle (16 ranks; each launches VASP as a job step of its own on one of the
#                VASP_NODES extra nodes: `srun --exact -N 1 -n 32 vasp_std` (oracle.vasp.command))
#   ranks 92-95  P2D continuum cell (4 PETSc ranks)
# sbatch options on the command line override slurm.sh's #SBATCH lines; "$@" comes last so callers win.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=3
TASKS_PER_NODE=32
VASP_NODES=16
export PBAHPC_NODES=$NODES PBAHPC_NTASKS=$((NODES * TASKS_PER_NODE))
exec sbatch --job-name=pbahpc-production --nodes=$((NODES + VASP_NODES)) --ntasks-per-node="$TASKS_PER_NODE" \
    --time=24:00:00 "$@" jobscripts/slurm.sh inputs/production-mnfepba.yaml
