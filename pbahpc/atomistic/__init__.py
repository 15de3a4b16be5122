"""Atomistic sampling engines for the replica role."""
