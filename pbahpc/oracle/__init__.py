"""Reference calculators that label configurations for training."""
from . import lattice_gas  # noqa: F401  (registers the engine)
