"""pbahpc: from atoms to the electrode, MPI-parallel."""
__version__ = "0.1.0"
