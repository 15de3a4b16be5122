"""Exact, checkpointable snapshots of numpy Generators."""

from __future__ import annotations

from typing import Any

import numpy as np


def encode_rng(gen: np.random.Generator) -> dict[str, Any]:
    """Snapshot ``gen`` as a plain dict that CheckpointStore stores losslessly.

    Holds the bit generator's ``state`` (128-bit ints, uint arrays) and its SeedSequence, so that
    after decode_rng both the draw stream and later ``gen.spawn()`` children match the original.
    """
    bit_gen = gen.bit_generator
    seed_seq = bit_gen.seed_seq
    encoded_seq: dict[str, Any] | None = None
    if isinstance(seed_seq, np.random.SeedSequence):  # not SeedlessSeedSequence
        entropy = seed_seq.entropy
        if not isinstance(entropy, (int, np.ndarray)):
            # A sequence of ints (maybe numpy ints): SeedSequence uses only their values.
            entropy = [int(x) for x in entropy]
        encoded_seq = {
            "entropy": entropy,
            "spawn_key": [int(k) for k in seed_seq.spawn_key],
            "pool_size": int(seed_seq.pool_size),
            "n_children_spawned": int(seed_seq.n_children_spawned),
        }
    return {"bit_generator": type(bit_gen).__name__, "state": bit_gen.state, "seed_seq": encoded_seq}


def decode_rng(d: dict[str, Any]) -> np.random.Generator:
    """Rebuild the Generator snapshotted by encode_rng, at exactly the same stream position."""
    name = d["bit_generator"]
    cls = getattr(np.random, name, None)
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise ValueError(f"unknown numpy bit generator {name!r}")
    seq = d["seed_seq"]
    seed = None
    if seq is not None:
        seed = np.random.SeedSequence(
            seq["entropy"],
            spawn_key=tuple(seq["spawn_key"]),
            pool_size=seq["pool_size"],
            n_children_spawned=seq["n_children_spawned"],
        )
    bit_gen = cls(seed)
    bit_gen.state = d["state"]  # overrides the seeding; numpy checks the generator name matches
    return np.random.Generator(bit_gen)
