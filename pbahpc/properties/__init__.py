"""Properties computed with the trained potential: free energy, diffusion, interface/strain energy, voltage, structure."""
from . import engine  # noqa: F401  (registers the engine)
