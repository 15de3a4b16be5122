"""Strong/weak scaling sweeps: ``pbahpc scaling run SPEC.yaml --out DIR`` and ``pbahpc scaling merge``.

sweep.py reads the spec and runs each point as its own MPI job (runner.py, or ``pbahpc run`` for a
whole AL iteration); tables.py turns the points into speed-up/efficiency tables (HDF5, text, plots)
and merges result directories (one per SLURM job).
"""
from .tables import merge, speedup, strong_efficiency, weak_efficiency

__all__ = ["merge", "speedup", "strong_efficiency", "weak_efficiency"]
