"""Properties computed with the trained potential: free energy, diffusion, interface/strain energy, voltage, structure."""
