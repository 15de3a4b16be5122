"""Physical constants shared by the engines and the analyses (no imports: the lowest layer)."""

KB_EV_PER_K = 8.617333262e-5  # Boltzmann constant, eV/K (CODATA 2018, exact)
