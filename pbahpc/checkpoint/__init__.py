"""HDF5 checkpoints for campaign restart: exact payload round trip, atomic writes, verified loads.

Serial h5py only; the driver gathers state to one writer rank before calling this.
"""

from .background import BackgroundWriter
from .h5format import SCHEMA_VERSION, CheckpointError, CorruptCheckpointError, read_checkpoint_file
from .rng import decode_rng, encode_rng
from .store import CheckpointStore, CheckpointWarning, LoadedCheckpoint, checkpoint_name, write_tree

__all__ = [
    "BackgroundWriter",
    "SCHEMA_VERSION",
    "CheckpointError",
    "CheckpointStore",
    "CheckpointWarning",
    "CorruptCheckpointError",
    "LoadedCheckpoint",
    "checkpoint_name",
    "decode_rng",
    "encode_rng",
    "read_checkpoint_file",
    "write_tree",
]
