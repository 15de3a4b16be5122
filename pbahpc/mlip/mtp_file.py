"""MLIP `.mtp` potential files (MLIP-2 / MLIP-3 text format): read, write, and the data they hold.

The format is ``key = value`` lines in a fixed order (see ``format_mtp``); an untrained template has no
``radial_coeffs``, ``species_coeffs`` or ``moment_coeffs``, a trained potential has all three.

Element names are not part of the format: atom types are 0..species_count-1 and the mapping to elements
is kept outside the file, in our campaign configuration (the ordered species list), and handed to each
consumer in its own terms: ``pair_coeff * * pot.mtp Na Mn Fe C N`` style arguments for LAMMPS, or
``MTPData.species = [11, 25, 26, 6, 7]`` (atomic numbers) for motep. The format has no comments, so
nothing else can be stored in the file.

Floats are written with 17 significant digits (MLIP writes 16), so writing and reading back is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FLOAT = "{:.16e}"


def _empty_index() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.int64)


@dataclass
class MTPData:
    """Content of one `.mtp` file. Counts that follow from the arrays are properties, not fields."""

    species_count: int
    min_dist: float
    max_dist: float
    radial_basis_size: int
    radial_funcs_count: int
    alpha_index_basic: np.ndarray = field(default_factory=_empty_index)  # (n, 4): mu, a, b, c
    alpha_index_times: np.ndarray = field(default_factory=_empty_index)  # (n, 4): i, j, mult, k
    alpha_moment_mapping: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    version: str = "1.1.0"
    potential_name: str = "MTP1m"
    potential_tag: str = ""
    radial_basis_type: str = "RBChebyshev"
    scaling: float = 1.0
    radial_coeffs: np.ndarray | None = None  # (S, S, rfc, rbs): [centre type, neighbour type, mu, beta]
    species_coeffs: np.ndarray | None = None  # (S,)
    moment_coeffs: np.ndarray | None = None  # (alpha_scalar_moments,)

    def __post_init__(self) -> None:
        self.alpha_index_basic = np.asarray(self.alpha_index_basic, dtype=np.int64).reshape(-1, 4)
        self.alpha_index_times = np.asarray(self.alpha_index_times, dtype=np.int64).reshape(-1, 4)
        self.alpha_moment_mapping = np.asarray(self.alpha_moment_mapping, dtype=np.int64).reshape(-1)

    @property
    def alpha_index_basic_count(self) -> int:
        return len(self.alpha_index_basic)

    @property
    def alpha_index_times_count(self) -> int:
        return len(self.alpha_index_times)

    @property
    def alpha_moments_count(self) -> int:
        last_target = int(self.alpha_index_times[:, 3].max()) + 1 if self.alpha_index_times_count else 0
        return max(self.alpha_index_basic_count, last_target)

    @property
    def alpha_scalar_moments(self) -> int:
        return len(self.alpha_moment_mapping)

    @property
    def trained(self) -> bool:
        return self.radial_coeffs is not None

    @property
    def parameter_count(self) -> int:
        """Trainable parameters: moment, species and radial coefficients."""
        s = self.species_count
        return self.alpha_scalar_moments + s + s * s * self.radial_funcs_count * self.radial_basis_size

    def check(self) -> None:
        """Raise ValueError if the arrays are inconsistent with the counts or with each other."""
        s, rfc, rbs = self.species_count, self.radial_funcs_count, self.radial_basis_size
        if self.radial_basis_type != "RBChebyshev":  # the only radial basis MLIP and motep evaluate
            raise ValueError(f"radial_basis_type {self.radial_basis_type!r} is not supported (RBChebyshev)")
        if s < 1 or rfc < 1 or rbs < 2 or not 0 <= self.min_dist < self.max_dist:
            raise ValueError(f"bad sizes: species_count={s}, radial_funcs_count={rfc}, radial_basis_size={rbs}, "
                             f"min_dist={self.min_dist}, max_dist={self.max_dist}")
        if self.alpha_index_basic_count and self.alpha_index_basic[:, 0].max() >= rfc:
            raise ValueError("alpha_index_basic uses a radial function beyond radial_funcs_count")
        # every moment must be complete before it is read: read only basic or already written moments,
        # and never write a moment that has been read
        written, read = set(range(self.alpha_index_basic_count)), set()
        for n, (i, j, _, k) in enumerate(self.alpha_index_times.tolist()):
            if {i, j} - written or k in read or k in (i, j) or k < self.alpha_index_basic_count:
                raise ValueError(f"alpha_index_times entry {n} {{{i}, {j}, _, {k}}} is out of dependency order")
            read.update((i, j))
            written.add(k)
        m = self.alpha_moment_mapping
        if len(m) and (m.min() < 0 or m.max() >= self.alpha_moments_count):
            raise ValueError("alpha_moment_mapping refers to a moment that does not exist")
        trained = [self.radial_coeffs is not None, self.species_coeffs is not None, self.moment_coeffs is not None]
        if any(trained) and not all(trained):
            raise ValueError("a trained potential needs radial_coeffs, species_coeffs and moment_coeffs together")
        if all(trained):
            for name, shape in (("radial_coeffs", (s, s, rfc, rbs)), ("species_coeffs", (s,)),
                                ("moment_coeffs", (self.alpha_scalar_moments,))):
                if np.shape(getattr(self, name)) != shape:
                    raise ValueError(f"{name} has shape {np.shape(getattr(self, name))}, expected {shape}")


def _ints(rows: np.ndarray) -> str:
    return "{" + ", ".join("{" + ", ".join(str(int(v)) for v in row) + "}" for row in rows) + "}"


def _floats(values) -> str:
    return "{" + ", ".join(FLOAT.format(float(v)) for v in values) + "}"


def format_mtp(data: MTPData) -> str:
    """The file text, in MLIP's key order; ``scaling`` only when it is not 1."""
    data.check()
    lines = ["MTP", f"version = {data.version}", f"potential_name = {data.potential_name}"]
    if data.scaling != 1.0:
        lines.append(f"scaling = {FLOAT.format(data.scaling)}")
    lines += [f"species_count = {data.species_count}",
              f"potential_tag = {data.potential_tag}",
              f"radial_basis_type = {data.radial_basis_type}",
              f"\tmin_dist = {FLOAT.format(data.min_dist)}",
              f"\tmax_dist = {FLOAT.format(data.max_dist)}",
              f"\tradial_basis_size = {data.radial_basis_size}",
              f"\tradial_funcs_count = {data.radial_funcs_count}"]
    if data.trained:
        lines.append("\tradial_coeffs")
        for i in range(data.species_count):
            for j in range(data.species_count):
                lines.append(f"\t\t{i}-{j}")
                lines += [f"\t\t\t{_floats(row)}" for row in data.radial_coeffs[i, j]]
    lines += [f"alpha_moments_count = {data.alpha_moments_count}",
              f"alpha_index_basic_count = {data.alpha_index_basic_count}",
              f"alpha_index_basic = {_ints(data.alpha_index_basic)}",
              f"alpha_index_times_count = {data.alpha_index_times_count}",
              f"alpha_index_times = {_ints(data.alpha_index_times)}",
              f"alpha_scalar_moments = {data.alpha_scalar_moments}",
              "alpha_moment_mapping = {" + ", ".join(str(int(v)) for v in data.alpha_moment_mapping) + "}"]
    if data.trained:
        lines += [f"species_coeffs = {_floats(data.species_coeffs)}",
                  f"moment_coeffs = {_floats(data.moment_coeffs)}"]
    return "\n".join(lines) + "\n"


def write_mtp(path: str | Path, data: MTPData) -> None:
    Path(path).write_text(format_mtp(data), encoding="utf-8")


def _numbers(text: str, dtype) -> np.ndarray:
    cleaned = text.replace("{", " ").replace("}", " ").replace(",", " ").split()
    return np.array([dtype(v) for v in cleaned], dtype=dtype)


def _radial(rows: list[np.ndarray], shape: tuple[int, int, int, int]) -> np.ndarray:
    if len(rows) != shape[0] * shape[1] * shape[2] or any(len(r) != shape[3] for r in rows):
        raise ValueError(f"radial_coeffs: expected {shape[0] * shape[1]} blocks of {shape[2]} rows of {shape[3]}")
    return np.array(rows).reshape(shape)


_COUNTS = ("alpha_moments_count", "alpha_index_basic_count", "alpha_index_times_count", "alpha_scalar_moments")
_REQUIRED = ("species_count", "radial_basis_type", "min_dist", "max_dist", "radial_basis_size", "radial_funcs_count",
             "alpha_index_basic", "alpha_index_times", "alpha_moment_mapping", *_COUNTS)
_OPTIONAL = ("version", "potential_name", "potential_tag", "scaling", "species_coeffs", "moment_coeffs")


def parse_mtp(text: str) -> MTPData:
    """Parse file text. MLIP-3 ``.almtp`` text is accepted: the active-set block after ``#MVS_v`` is ignored."""
    lines = text.split("\n#MVS_v")[0].splitlines()
    if not lines or lines[0].strip() != "MTP":
        raise ValueError("not an MTP file: the first line must be 'MTP'")
    values: dict[str, str] = {}
    radial_rows: list[np.ndarray] = []
    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped or stripped == "radial_coeffs":
            continue
        if "=" not in stripped:
            if stripped.startswith("{"):
                radial_rows.append(_numbers(stripped, float))
            elif "-" not in stripped:  # pair headers ("0-1") only announce the next rows
                raise ValueError(f"line {number}: cannot parse {stripped!r}")
            continue
        key, value = (part.strip() for part in stripped.split("=", 1))
        if key in values:
            raise ValueError(f"line {number}: {key} given twice")
        values[key] = value
    unknown = sorted(set(values) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(f"unknown keys in MTP file: {', '.join(unknown)}")
    missing = [key for key in _REQUIRED if key not in values]
    if missing:
        raise ValueError(f"missing keys in MTP file: {', '.join(missing)}")
    s, rfc, rbs = int(values["species_count"]), int(values["radial_funcs_count"]), int(values["radial_basis_size"])
    data = MTPData(
        species_count=s, min_dist=float(values["min_dist"]), max_dist=float(values["max_dist"]),
        radial_basis_size=rbs, radial_funcs_count=rfc,
        alpha_index_basic=_numbers(values["alpha_index_basic"], int),
        alpha_index_times=_numbers(values["alpha_index_times"], int),
        alpha_moment_mapping=_numbers(values["alpha_moment_mapping"], int),
        version=values.get("version", "1.1.0"), potential_name=values.get("potential_name", ""),
        potential_tag=values.get("potential_tag", ""), radial_basis_type=values["radial_basis_type"],
        scaling=float(values.get("scaling", 1.0)),
        radial_coeffs=_radial(radial_rows, (s, s, rfc, rbs)) if radial_rows else None,
        species_coeffs=_numbers(values["species_coeffs"], float) if "species_coeffs" in values else None,
        moment_coeffs=_numbers(values["moment_coeffs"], float) if "moment_coeffs" in values else None)
    for key in _COUNTS:
        if int(values[key]) != getattr(data, key):
            raise ValueError(f"{key} = {values[key]} does not match the arrays ({getattr(data, key)})")
    data.check()
    return data


def read_mtp(path: str | Path) -> MTPData:
    return parse_mtp(Path(path).read_bytes().split(b"\n#MVS_v")[0].decode("utf-8"))
