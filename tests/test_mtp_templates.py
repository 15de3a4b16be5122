"""Level-N MTP templates: counts against the published MLIP templates, the program against the definition of
the basis, rotation invariance, linear independence, equivalence with motep, and the `.mtp` file format."""
from __future__ import annotations

import string

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pbahpc.mlip.mtp_file import MTPData, format_mtp, parse_mtp, read_mtp, write_mtp
from pbahpc.mlip.templates import Contraction, build_template, moments, site_energy, write_template

# MLIP-2 untrained_mtps/NN.mtp = MLIP-3 MTP_templates/NN.almtp (mlip.md §1.4):
# level: (radial_funcs_count, alpha_moments_count, alpha_index_basic_count, alpha_index_times_count,
#         alpha_scalar_moments)
PUBLISHED = {2: (1, 1, 1, 0, 1), 4: (1, 2, 1, 1, 2), 6: (2, 8, 5, 5, 5), 8: (2, 18, 11, 14, 9),
             10: (3, 41, 25, 42, 16), 12: (3, 84, 46, 117, 29), 14: (4, 174, 81, 348, 52),
             16: (4, 350, 130, 969, 92), 18: (5, 718, 201, 2634, 163), 20: (5, 1352, 295, 6349, 288),
             22: (6, 2621, 421, 15431, 500), 24: (6, 4991, 581, 36170, 864), 26: (6, 9396, 706, 82520, 1464),
             28: (6, 17366, 866, 180069, 2445)}


def neighbourhoods(rng, batch: int, rfc: int, most: int = 12):
    """Random neighbourhoods: unit vectors (batch, most, 3) and radial values (batch, rfc, most) of rfc
    random smooth radial functions; a random number (2..most) of neighbours per neighbourhood."""
    v = rng.normal(size=(batch, most, 3))
    r = rng.uniform(2.0, 5.0, size=(batch, most))
    present = np.arange(most)[None] < rng.integers(2, most + 1, size=batch)[:, None]
    shapes = rng.normal(size=(rfc, 6))
    radial = np.stack([np.polynomial.chebyshev.chebval((r - 3.5) / 1.5, shapes[m]) for m in range(rfc)], axis=1)
    return v / np.linalg.norm(v, axis=-1, keepdims=True), radial * ((5.0 - r) ** 2 * present)[:, None]


def basis(template, unit, radial) -> np.ndarray:
    data = template.data()
    return moments(data, unit, radial)[data.alpha_moment_mapping].T  # (batch, functions)


def dense(c: Contraction, unit: np.ndarray, radial: np.ndarray) -> float:
    """The definition: full moment tensors contracted along the graph's edges with einsum."""
    letters, subscripts = iter(string.ascii_letters), [""] * len(c.factors)
    for i, j, m in c.edges:
        for _ in range(m):
            letter = next(letters)
            subscripts[i] += letter
            subscripts[j] += letter
    tensors = []
    for mu, nu in c.factors:
        t = radial[mu]
        for k in range(nu):
            t = t[..., None] * unit.reshape((len(unit),) + (1,) * k + (3,))
        tensors.append(t.sum(axis=0))
    return float(np.einsum(",".join(subscripts) + "->", *tensors))


@pytest.mark.parametrize("level", range(2, 23, 2))
def test_counts_match_published_templates(level):
    rfc, amc, basic, times, asm = PUBLISHED[level]
    data = build_template(level).data()
    assert (data.alpha_scalar_moments, data.radial_funcs_count, data.alpha_index_basic_count) == (asm, rfc, basic)
    if level <= 12:  # same program size; from 14 on the shared subset tensors need fewer entries than MLIP's chains
        assert (data.alpha_moments_count, data.alpha_index_times_count) == (amc, times)
    else:
        assert data.alpha_moments_count < amc and data.alpha_index_times_count < times


@pytest.mark.parametrize("level", [6, 10, 16])
def test_program_computes_the_contractions(level):
    rng = np.random.default_rng(level)
    template = build_template(level)
    unit, radial = neighbourhoods(rng, 3, template.radial_funcs_count)
    program = basis(template, unit, radial)
    for b in range(3):
        expected = [dense(c, unit[b], radial[b]) for c in template.functions]
        np.testing.assert_allclose(program[b], expected, rtol=1e-11, atol=1e-11 * np.abs(expected).max())


@pytest.mark.parametrize("level", [4, 10, 16, 20])
def test_rotation_invariance(level):
    rng = np.random.default_rng(level)
    template = build_template(level)
    unit, radial = neighbourhoods(rng, 20, template.radial_funcs_count)
    rotated = unit @ Rotation.random(random_state=rng).as_matrix().T
    before, after = basis(template, unit, radial), basis(template, rotated, radial)
    scale = np.abs(before).max(axis=0)  # per function: values span many orders of magnitude
    np.testing.assert_allclose(after / scale, before / scale, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("level,dependent", [(4, 0), (8, 0), (12, 0), (14, 0), (16, 1), (18, 2)])
def test_linear_independence(level, dependent):
    """Full rank up to level 14; from 16 on the 3-D identities (Cayley-Hamilton) that the published
    templates share make some functions dependent."""
    rng = np.random.default_rng(level)
    template = build_template(level)
    n = len(template.functions)
    unit, radial = neighbourhoods(rng, 3 * n + 100, template.radial_funcs_count)
    values = basis(template, unit, radial)
    values /= np.linalg.norm(values, axis=0)
    singular = np.linalg.svd(values, compute_uv=False)
    assert np.sum(singular > 1e-9 * singular[0]) == n - dependent


def test_level16_dependency_is_cayley_hamilton():
    """tr A^4 = 4/3 trA trA^3 - (trA)^2 trA^2 + 1/2 (trA^2)^2 + 1/6 (trA)^4 for A = M_{0,2}, trA = M_{0,0}."""
    a, m = (0, 0), (0, 2)
    wanted = {
        "trA4": Contraction((m, m, m, m), ((0, 1, 1), (0, 2, 1), (1, 3, 1), (2, 3, 1))),
        "trA_trA3": Contraction((a, m, m, m), ((1, 2, 1), (1, 3, 1), (2, 3, 1))),
        "trA2_trA2": Contraction((m, m, m, m), ((0, 1, 2), (2, 3, 2))),
        "trA_trA_trA2": Contraction((a, a, m, m), ((2, 3, 2),)),
        "trA4_scalar": Contraction((a, a, a, a), ()),
    }
    template = build_template(16)
    unit, radial = neighbourhoods(np.random.default_rng(3), 10, template.radial_funcs_count)
    values = basis(template, unit, radial)
    col = {name: values[:, template.functions.index(c)] for name, c in wanted.items()}
    np.testing.assert_allclose(col["trA4"], 4 / 3 * col["trA_trA3"] - col["trA_trA_trA2"] + col["trA2_trA2"] / 2
                               + col["trA4_scalar"] / 6, rtol=1e-10)


def random_trained(level: int, species: int, rng) -> MTPData:
    data = build_template(level).data(species_count=species, min_dist=2.0, max_dist=5.0, radial_basis_size=6)
    data.radial_coeffs = rng.uniform(-0.1, 0.1, (species, species, data.radial_funcs_count, 6))
    data.species_coeffs = rng.normal(size=species)
    data.moment_coeffs = rng.normal(size=data.alpha_scalar_moments)
    data.scaling = 0.7
    return data


def cluster(rng, count: int = 7):
    """Random positions at least 2 A apart in a 6 A box, so most atoms see several neighbours."""
    positions: list[np.ndarray] = []
    while len(positions) < count:
        p = rng.uniform(-3.0, 3.0, 3)
        if all(np.linalg.norm(p - q) > 2.0 for q in positions):
            positions.append(p)
    return np.array(positions)


@pytest.mark.parametrize("engine,level", [("numpy", 2), ("numpy", 6), ("numpy", 10), ("numpy", 16), ("cext", 20)])
def test_motep_gives_our_site_energies(tmp_path, engine, level):
    """Our file, read by motep, gives with motep's engine the site energies of our own evaluator."""
    motep_mtp = pytest.importorskip("motep.io.mlip.mtp")
    from ase import Atoms
    from motep.calculator import MTP

    rng = np.random.default_rng(level)
    data = random_trained(level, 2, rng)
    write_mtp(tmp_path / "pot.mtp", data)
    theirs = motep_mtp.read_mtp(tmp_path / "pot.mtp")
    theirs.species = [11, 25]  # the element mapping lives outside the file
    positions = cluster(rng)
    types = rng.integers(0, 2, len(positions))
    atoms = Atoms(numbers=np.array([11, 25])[types], positions=positions)
    atoms.calc = MTP(theirs, engine=engine)
    ours = []
    for i in range(len(positions)):
        vectors = np.delete(positions, i, axis=0) - positions[i]
        near = np.linalg.norm(vectors, axis=1) < data.max_dist
        ours.append(site_energy(data, vectors[near], types[i], np.delete(types, i)[near]))
    np.testing.assert_allclose(atoms.get_potential_energies(), ours, rtol=1e-12, atol=1e-12)
    assert site_energy(data, np.zeros((0, 3)), 1, np.zeros(0, dtype=int)) == data.species_coeffs[1]


def test_trained_file_round_trip(tmp_path):
    data = random_trained(10, 3, np.random.default_rng(0))
    write_mtp(tmp_path / "a.mtp", data)
    back = read_mtp(tmp_path / "a.mtp")
    for name in ("radial_coeffs", "species_coeffs", "moment_coeffs", "alpha_index_basic", "alpha_index_times",
                 "alpha_moment_mapping"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))  # bitwise: 17 digits
    assert (back.scaling, back.min_dist, back.max_dist, back.species_count) == (0.7, 2.0, 5.0, 3)
    assert format_mtp(back) == (tmp_path / "a.mtp").read_text()
    text = format_mtp(data).splitlines()
    assert text[:6] == ["MTP", "version = 1.1.0", "potential_name = MTP1m", "scaling = 6.9999999999999996e-01",
                        "species_count = 3", "potential_tag = "]
    assert text[11:14] == ["\tradial_coeffs", "\t\t0-0", "\t\t\t{" + ", ".join(
        f"{v:.16e}" for v in data.radial_coeffs[0, 0, 0]) + "}"]
    assert [line.split(" =")[0] for line in text[-9:]] == [
        "alpha_moments_count", "alpha_index_basic_count", "alpha_index_basic", "alpha_index_times_count",
        "alpha_index_times", "alpha_scalar_moments", "alpha_moment_mapping", "species_coeffs", "moment_coeffs"]


def test_write_template(tmp_path):
    written = write_template(6, 2, tmp_path / "06.mtp", min_dist=1.5, max_dist=6.0, radial_basis_size=10)
    text = (tmp_path / "06.mtp").read_text()
    assert text == (
        "MTP\nversion = 1.1.0\npotential_name = MTP1m\nspecies_count = 2\npotential_tag = \n"
        "radial_basis_type = RBChebyshev\n\tmin_dist = 1.5000000000000000e+00\n\tmax_dist = 6.0000000000000000e+00\n"
        "\tradial_basis_size = 10\n\tradial_funcs_count = 2\nalpha_moments_count = 8\nalpha_index_basic_count = 5\n"
        "alpha_index_basic = {{0, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}, {1, 0, 0, 0}}\n"
        "alpha_index_times_count = 5\n"
        "alpha_index_times = {{0, 0, 1, 5}, {1, 1, 1, 6}, {2, 2, 1, 6}, {3, 3, 1, 6}, {0, 5, 1, 7}}\n"
        "alpha_scalar_moments = 5\nalpha_moment_mapping = {0, 4, 5, 6, 7}\n")
    back = read_mtp(tmp_path / "06.mtp")
    assert not back.trained and back.parameter_count == written.parameter_count == 5 + 2 + 4 * 2 * 10
    assert [build_template(16).data(species_count=s).parameter_count for s in (1, 2, 3)] == [125, 222, 383]


def test_we_read_what_motep_writes(tmp_path):
    motep_mtp = pytest.importorskip("motep.io.mlip.mtp")
    data = random_trained(8, 2, np.random.default_rng(1))
    write_mtp(tmp_path / "ours.mtp", data)
    motep_mtp.write_mtp(tmp_path / "motep.mtp", motep_mtp.read_mtp(tmp_path / "ours.mtp"), legacy=True)
    back = read_mtp(tmp_path / "motep.mtp")
    for name in ("radial_coeffs", "species_coeffs", "moment_coeffs", "alpha_index_times", "alpha_moment_mapping"):
        np.testing.assert_allclose(getattr(back, name), getattr(data, name), rtol=1e-15)


@pytest.mark.parametrize("change,message", [
    (("alpha_scalar_moments = 5", "alpha_scalar_moments = 6"), "does not match"),
    (("potential_tag = ", "potential_tags = "), "unknown keys"),
    (("{0, 5, 1, 7}", "{0, 7, 1, 7}"), "dependency order"),
    (("alpha_moment_mapping = {0, 4, 5, 6, 7}", "alpha_moment_mapping = {0, 4, 5, 6, 8}"), "does not exist"),
    (("MTP\n", "MTQ\n"), "not an MTP file"),
    (("\tmax_dist", "\tmax_distance"), "unknown keys"),
    (("\tradial_funcs_count = 2\n", ""), "missing keys in MTP file: radial_funcs_count"),
    (("RBChebyshev", "RBShapeev"), "not supported"),
])
def test_bad_files_are_refused(change, message):
    text = format_mtp(build_template(6).data())
    assert change[0] in text
    with pytest.raises(ValueError, match=message):
        parse_mtp(text.replace(*change, 1))
