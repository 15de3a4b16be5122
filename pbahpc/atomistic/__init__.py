"""Atomistic sampling engines for the replica role."""
from . import lattice_gas  # noqa: F401  (registers the engine)
