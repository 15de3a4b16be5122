"""Continuum (cell-level) models for the continuum role."""
