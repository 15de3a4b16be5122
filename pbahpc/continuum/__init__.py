"""Continuum (cell-level) models for the continuum role."""
from . import p2d_engine, regular_solution  # noqa: F401  (each registers its engine)
