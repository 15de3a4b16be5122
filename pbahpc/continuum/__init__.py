"""Continuum (cell-level) models for the continuum role."""
from . import regular_solution  # noqa: F401  (registers the engine)
