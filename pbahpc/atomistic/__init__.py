"""Atomistic sampling engines for the replica role."""
from . import gcmc_replica, lattice_gas  # noqa: F401  (register the engines)
