"""Machine-learned potentials: training and grading engines for the trainer role."""
