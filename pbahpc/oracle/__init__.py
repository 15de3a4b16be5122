"""Reference calculators that label configurations for training."""
from . import ase_oracle, lattice_gas  # noqa: F401  (register the engines)
