"""The MPI driver: rank layout, role groups, stages, synchronisation, checkpoint/restart."""
from .campaign import EXIT_FAILED, EXIT_OK, EXIT_REQUEUE, EXIT_USAGE, PIPELINE, Driver, syncs_per_iteration
from .layout import Group, RankLayout, plan, split

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REQUEUE", "EXIT_USAGE", "PIPELINE", "Driver", "Group",
           "RankLayout", "plan", "split", "syncs_per_iteration"]
