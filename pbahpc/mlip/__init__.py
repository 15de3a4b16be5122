"""Machine-learned potentials: training and grading engines for the trainer role."""
from . import pair_fit  # noqa: F401  (registers the engine)
from . import trainer_engine  # noqa: F401  (registers the engine)
