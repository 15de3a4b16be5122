"""Training an MTP on labelled configurations, MPI-parallel over configurations.

The loss is motep's default one (so the numbers compare with motep's trainer), averaged over the
configurations c with N_c atoms and volume V_c:

    L = 1/n sum_c [ w_E (dE_c / N_c)^2 + w_F / N_c sum_i |dF_ci|^2 + w_S (V_c / N_c)^2 sum_ab dsigma_cab^2 ]

Energy, forces and stress are linear in theta = (moment_coeffs, species_coeffs) at fixed radial
coefficients c, so theta is solved out exactly (weighted least squares from the normal equations, with a
small ridge relative to the diagonal: the basis is rank-deficient from level 16 on, Cayley-Hamilton) and
L-BFGS runs over c alone on the reduced loss (variable projection; see train for the older alternation).
The native evaluator (pbahpc.mlip.evaluator, on pair_style mtp's site kernels) gives each configuration's
design rows (basis values, their position and strain derivatives) and then the loss gradient over the
radial coefficients directly, as the radial derivative of the energy's directional derivative along the
residuals (motep's train mode, ``engine="cext"``, forms the full radial Jacobians of every force instead).
The normal equations are streamed: each configuration's rows are folded into X^T X and X^T y and
dropped. Configurations are dealt to the ranks by atom count and the sums Allreduced once per pass on
the communicator passed in; every rank ends with the same
potential. In the same wall time, either reaches a lower loss than L-BFGS over all parameters
(motep's default); see tools/bench_train.py.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.stress import voigt_6_to_full_3x3_stress
from ase.units import GPa
from scipy.linalg import solve
from scipy.optimize import minimize

from .mtp_file import MTPData, format_mtp
from .templates import build_template

DEFAULT_WEIGHTS = (1.0, 0.01, 0.001)  # energy, forces, stress: MLIP's and motep's defaults


def labels(atoms: Atoms) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """(energy eV, forces eV/A or None, stress 3x3 eV/A^3 (ASE sign) or None) of a labelled
    configuration, from its calculator results or else ``atoms.info``/``atoms.arrays``."""
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = results.get("energy", atoms.info.get("energy"))
    if energy is None:
        raise ValueError(f"configuration {atoms.get_chemical_formula()} has no energy label")
    forces = results.get("forces", atoms.arrays.get("forces"))
    stress = results.get("stress", atoms.info.get("stress"))
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        stress = voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)
    if stress is not None and not (atoms.pbc.all() and atoms.cell.rank == 3):
        stress = None  # a cluster has no stress
    return float(energy), None if forces is None else np.asarray(forces, dtype=float), stress


def to_motep(data: MTPData, species: tuple[str, ...]):
    """motep's MTPData for our file content, through the file format both sides read and write."""
    from motep.io.mlip.mtp import read_mtp

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pot.mtp"
        path.write_text(format_mtp(data), encoding="utf-8")
        theirs = read_mtp(path)
    theirs.species = [atomic_numbers[s] for s in species]
    return theirs


def _from_motep(theirs, template: MTPData) -> MTPData:
    out = MTPData(species_count=template.species_count, min_dist=template.min_dist, max_dist=template.max_dist,
                  radial_basis_size=template.radial_basis_size, radial_funcs_count=template.radial_funcs_count,
                  alpha_index_basic=template.alpha_index_basic, alpha_index_times=template.alpha_index_times,
                  alpha_moment_mapping=template.alpha_moment_mapping, potential_name=template.potential_name,
                  scaling=float(theirs.scaling),
                  radial_coeffs=np.array(theirs.radial_coeffs, dtype=float),
                  species_coeffs=np.array(theirs.species_coeffs, dtype=float),
                  moment_coeffs=np.array(theirs.moment_coeffs, dtype=float))
    out.check()
    return out


@dataclass
class _Config:
    """One local configuration, as little as a pass needs: its neighbour vectors (computed once, motep's
    padded layout: ``js`` -1 and ``rs`` at the cutoff where an atom has fewer neighbours), species
    indices, labels and row scales. The basis data of a pass are made, used and dropped per configuration."""

    js: np.ndarray  # (atoms, max neighbours) neighbour indices
    rs: np.ndarray  # (atoms, max neighbours, 3) neighbour vectors, A
    itypes: np.ndarray  # species index per atom
    counts: np.ndarray  # atoms per species
    volume: float  # A^3 (0 without a stress label)
    energy: float
    forces: np.ndarray | None
    stress: np.ndarray | None
    scale_e: float  # residual row scales: sqrt(weight / n_configs) times the per-atom normalisation
    scale_f: float
    scale_s: float


def balance(sizes: list[int], ranks: int) -> list[list[int]]:
    """Indices of the configurations each rank evaluates: largest first to the least loaded rank (a pass
    costs ~ atoms), so ranks finish together when sizes differ widely. The same on every rank."""
    load, out = [0] * ranks, [[] for _ in range(ranks)]
    for k in sorted(range(len(sizes)), key=lambda k: (-sizes[k], k)):
        r = min(range(ranks), key=lambda r: (load[r], r))
        load[r] += sizes[k]
        out[r].append(k)
    return [sorted(o) for o in out]


def _neighbours(atoms: Atoms, data, engine_class) -> tuple[np.ndarray, np.ndarray]:
    """motep's neighbour indices and vectors of ``atoms`` within the cutoff (what its train mode caches)."""
    engine = engine_class(data, mode="train")
    engine.update_neighbor_list(atoms)
    return engine._neighbors, engine._interatomic_vectors


class _Problem:
    """The loss on this rank's share of the configurations, summed over the communicator.

    A pass streams: each configuration's design rows (energy, 3N forces, 9 stress) are evaluated, folded
    into X^T X, X^T y, y.y and the loss, its residuals give its share of the radial gradient, and all is
    dropped, so the memory held is the neighbour vectors (~1.3 KB per atom at a 5 A cutoff) plus one configuration's
    basis data. The sums travel in one Allreduce of (m^2 + m + 2 + n_radial) doubles per pass."""

    def __init__(self, configs: list[Atoms], data, species: tuple[str, ...], comm, weights, engine: str):
        from motep.calculator import make_mtp_engine

        if engine not in ("native", "cext"):
            raise ValueError(f"training engine {engine!r}: 'native' or 'cext' (motep's train mode)")
        self.data, self.comm = data, comm
        self.native = None
        if engine == "native":
            from .evaluator import Evaluator

            self.native = Evaluator(data)
        w_e, w_f, w_s = weights
        n = len(configs)
        engine_class = make_mtp_engine("cext")  # its neighbour list
        numbers = np.array([atomic_numbers[s] for s in species])
        mine = balance([len(a) for a in configs], comm.Get_size())[comm.Get_rank()]
        self.local = []
        for atoms in (configs[k] for k in mine):
            energy, forces, stress = labels(atoms)
            natoms = len(atoms)
            unknown = set(atoms.numbers) - set(numbers)
            if unknown:
                raise ValueError(f"configuration has species {sorted(unknown)} outside {species}")
            volume = atoms.get_volume() if stress is not None else 0.0
            js, rs = _neighbours(Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc), data,
                                 engine_class)
            itypes = np.array([list(numbers).index(z) for z in atoms.numbers], dtype=np.int32)
            self.local.append(_Config(
                js=js, rs=rs, itypes=itypes,
                counts=np.bincount(itypes, minlength=len(numbers)).astype(float),
                volume=volume,
                energy=energy, forces=forces, stress=stress,
                scale_e=np.sqrt(w_e / n) / natoms, scale_f=np.sqrt(w_f / (n * natoms)),
                scale_s=np.sqrt(w_s / n) * volume / natoms))
        self.n_linear = data.alpha_scalar_moments + data.species_count
        self.passes = 0

    def basis(self, c: _Config):
        """The design of one configuration at the current coefficients: (basis values (asm), d/dR (asm, N, 3),
        sum_n dB/dr_n (x) r_n (asm, 3, 3), unsymmetrised), and with motep's engine its radial Jacobians
        (dE/dc (k), d(dE/dR)/dc (k, N, 3), of the strain derivative (k, 3, 3)), c the radial coefficients."""
        if self.native is not None:
            return (*self.native.design(c.js, c.rs, c.itypes), None)
        from motep.potentials.mtp.base import MomentBasisData, RadialBasisData
        from motep.potentials.mtp.cext import _mtp_cext

        mbd, rbd = MomentBasisData(mode="train"), RadialBasisData(mode="train")
        natoms, k = len(c.itypes), self.data.radial_coeffs.size
        mbd.initialize(natoms, self.data)
        rbd.initialize(natoms, self.data)
        mbd.clean()
        rbd.clean()
        _mtp_cext.calc_train(c.js, c.rs, c.itypes, c.itypes[c.js], self.data, rbd, mbd)
        return (mbd.vatoms.sum(axis=-1), mbd.dbdris, mbd.dbdeps,
                (mbd.dvdcs.reshape(k, natoms).sum(axis=-1), mbd.dgdcs.reshape(k, -1), mbd.dsdcs.reshape(k, 9)))

    def radial(self, c: _Config, jac, energy: float, displacements: np.ndarray, strain: np.ndarray) -> np.ndarray:
        """d/dc of energy E + sum_i dE/dR_i . displacements_i + sum_ab dE/dstrain_ab strain_ab (see basis)."""
        if jac is None:
            return self.native.radial(c.js, c.rs, c.itypes, energy, displacements, strain)
        dedcs, dgdcs, dsdcs = jac
        return energy * dedcs + dgdcs @ displacements.ravel() + dsdcs @ strain.ravel()

    def evaluate(self, gradient: bool) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray | None]:
        """One pass at the current coefficients: normal equations (A, b, y.y) of the linear coefficients,
        the loss, and (if asked) its gradient over the radial coefficients at fixed linear coefficients."""
        m, asm = self.n_linear, self.data.alpha_scalar_moments
        k = self.data.radial_coeffs.size
        theta = np.concatenate([self.data.moment_coeffs, self.data.species_coeffs])
        # one buffer, one Allreduce: A (m x m), b (m), y.y, the loss, the radial gradient (k)
        buf = np.zeros(m * m + m + 2 + (k if gradient else 0))
        a, b = buf[:m * m].reshape(m, m), buf[m * m:m * m + m]
        sums, grad = buf[m * m + m:m * m + m + 2], buf[m * m + m + 2:]
        if self.native is not None:
            self.native.update()
        for c in self.local:
            values, dbdris, dbdeps, jac = self.basis(c)
            natoms = len(c.itypes)
            # energy row: the moment part and the species counts
            x = c.scale_e * np.concatenate([values, c.counts])
            y = c.scale_e * c.energy
            r = x @ theta - y
            a += np.outer(x, x)
            b += x * y
            sums += (y * y, r * r)
            # force and stress rows touch only the moment coefficients; the gradient's directions are
            # 2 x residual x row scale (d loss / d prediction) on the forces (-dE/dR) and the stress (strain / V)
            directions = [2.0 * r * c.scale_e, np.zeros((natoms, 3)), np.zeros((3, 3))]
            if c.forces is not None:
                x = -c.scale_f * dbdris.reshape(asm, -1)  # (asm, rows)
                y = c.scale_f * c.forces.ravel()
                r = theta[:asm] @ x - y
                a[:asm, :asm] += x @ x.T
                b[:asm] += x @ y
                sums += (y @ y, r @ r)
                directions[1] = -2.0 * c.scale_f * r.reshape(natoms, 3)
            if c.stress is not None:
                x = c.scale_s * 0.5 / c.volume * (dbdeps + dbdeps.transpose(0, 2, 1)).reshape(asm, 9)
                y = c.scale_s * c.stress.ravel()
                r = theta[:asm] @ x - y
                a[:asm, :asm] += x @ x.T
                b[:asm] += x @ y
                sums += (y @ y, r @ r)
                r = r.reshape(3, 3)
                directions[2] = c.scale_s / c.volume * (r + r.T)
            if gradient:
                grad += self.radial(c, jac, *directions)
        self.passes += 1
        if self.comm.Get_size() > 1:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, buf)
        return a, b, float(sums[0]), float(sums[1]), grad.copy() if gradient else None


def solve_linear(a: np.ndarray, b: np.ndarray, ridge: float, fixed: np.ndarray | None = None) -> np.ndarray:
    """argmin |X theta - y|^2 + ridge sum_j A_jj theta_j^2 from A = X^T X, b = X^T y: the ridge is relative
    to each column's norm, so it is scale-free and only fixes directions the data leave undetermined.
    ``fixed``: values of the last len(fixed) coefficients (the species coefficients), solved for the rest."""
    if fixed is not None and len(fixed):
        k = len(a) - len(fixed)
        free = solve_linear(a[:k, :k], b[:k] - a[:k, k:] @ fixed, ridge)
        return np.concatenate([free, fixed])
    d = np.sqrt(np.diag(a))
    d[d == 0] = 1.0  # a species absent from the data: its coefficient stays 0
    z = solve(a / np.outer(d, d) + ridge * np.eye(len(d)), b / d, assume_a="pos")
    return z / d


def initial(template: MTPData | int, species: tuple[str, ...], seed: int, *, min_dist: float = 2.0,
            max_dist: float = 5.0, radial_basis_size: int = 8) -> MTPData:
    """The starting potential: the template's coefficients if trained, else random radial coefficients
    (uniform +-0.1 as motep's) and zero linear ones (they are solved for before they are used)."""
    if isinstance(template, int):
        template = build_template(template).data(len(species), min_dist, max_dist, radial_basis_size)
    if template.species_count != len(species):
        raise ValueError(f"the template has {template.species_count} species, {len(species)} given")
    data = MTPData(**{k: getattr(template, k) for k in template.__dataclass_fields__})
    if data.radial_coeffs is None:
        rng = np.random.default_rng(seed)
        s, rfc, rbs = data.species_count, data.radial_funcs_count, data.radial_basis_size
        data.radial_coeffs = rng.uniform(-0.1, 0.1, (s, s, rfc, rbs))
    if data.moment_coeffs is None:
        data.moment_coeffs = np.zeros(data.alpha_scalar_moments)
    if data.species_coeffs is None:
        data.species_coeffs = np.zeros(data.species_count)
    return data


def train(configs: list[Atoms], template: MTPData | int, species: tuple[str, ...], comm, *,
          weights: tuple[float, float, float] = DEFAULT_WEIGHTS, seed: int = 0, max_iter: int = 20,
          radial_steps: int = 10, ridge: float = 1e-10, tol: float = 1e-6, engine: str = "native",
          method: str = "varpro", progress=None, min_dist: float = 2.0, max_dist: float = 5.0,
          radial_basis_size: int = 8, isolated_eV: tuple[float, ...] | None = None) -> tuple[MTPData, dict[str, float]]:
    """Fit an MTP to ``configs`` (the same full list on every rank of ``comm``).

    ``template``: an MTPData (untrained template, or a trained potential to continue from) or a level
    (then ``min_dist``/``max_dist`` in A and ``radial_basis_size`` shape its radial basis).
    ``method`` "varpro" (variable projection): L-BFGS over the radial coefficients c of the reduced loss
    L(c) = min_theta L(c, theta), each evaluation solving the linear coefficients exactly first (a pass
    without derivatives), then a pass with the gradient at that theta, which is dL/dc by the envelope
    theorem; ``max_iter`` L-BFGS iterations (one line search's evaluations each), ending early when the
    last 10 iterations lowered the loss by less than 10 ``tol`` relative. "alternation": ``max_iter``
    alternations of the linear solve and ``radial_steps`` L-BFGS iterations at fixed theta (each starting
    its curvature memory afresh), ending when one lowers the loss by less than ``tol`` relative. On the
    demo's 52 labelled frames, level 6, from the same random starts, ~440 passes reach a loss 11-25x lower
    with varpro (RMSE 4.5-8.3 vs 23-50 meV/atom; tools/bench_train.py prints both). ``radial_steps=0``:
    the linear fit only, radial coefficients kept (either method). Returns the potential (identical on
    every rank) and the RMSEs on ``configs`` (see ``rmse``) plus the final ``loss`` and number of ``passes``
    (evaluations of every configuration with derivatives). ``progress(alternation, passes, loss)``, if
    given, is called on every rank after each pass. ``engine``: the evaluator, "native" or "cext" (motep's
    train mode: the same numbers to round-off, slower; kept as the benchmark's reference).

    Warm start: from a trained potential (``template`` with coefficients, e.g. the previous iteration's on
    a training set that has since grown) the radial coefficients are kept and the linear ones solved for on
    the whole set, and ``tol`` ends the retraining as soon as an alternation gains little, which after a
    few % of new data is after a few alternations (tools/bench_train.py).

    ``isolated_eV``: the reference's energy of each species' isolated atom (eV, species order), held as the
    species coefficients (an MTP atom without neighbours has exactly that energy). Fitted freely they are
    nearly degenerate with the moment terms of atoms that always have neighbours, so the energy of taking
    an atom out to vacuum -- GCMC's insertion energy under ``isolated zero`` -- is left undetermined
    (measured: +2.9 eV where the reference has -1.1 eV); held, it is the reference's.
    """
    if method not in ("varpro", "alternation"):
        raise ValueError(f"training method {method!r}: 'varpro' or 'alternation'")
    species = tuple(species)
    start = initial(template, species, seed, min_dist=min_dist, max_dist=max_dist,
                    radial_basis_size=radial_basis_size)
    theirs = to_motep(start, species)
    problem = _Problem(configs, theirs, species, comm, weights, engine)
    asm = theirs.alpha_scalar_moments
    shape = theirs.radial_coeffs.shape
    fixed = None
    if isolated_eV is not None:
        if len(isolated_eV) != len(species):
            raise ValueError(f"isolated_eV has {len(isolated_eV)} values for {len(species)} species")
        fixed = np.asarray(isolated_eV, dtype=float)

    def set_linear(a, b, yy) -> float:
        """Solve for the linear coefficients; returns the loss there (from the normal equations)."""
        theta = solve_linear(a, b, ridge, fixed)
        theirs.moment_coeffs, theirs.species_coeffs = theta[:asm].copy(), theta[asm:].copy()
        return max(float(theta @ a @ theta - 2 * theta @ b + yy), 0.0)

    def fun(x):
        theirs.radial_coeffs = x.reshape(shape).copy()
        a, b, yy, value, grad = problem.evaluate(gradient=True)
        last.update(x=x.copy(), a=a, b=b, yy=yy)
        if progress is not None:
            progress(it + 1, problem.passes, value)  # fun runs inside the loop below
        return value, grad

    a, b, yy, *_ = problem.evaluate(gradient=False)
    current = set_linear(a, b, yy)
    if method == "varpro" and radial_steps:
        current = _varpro(problem, theirs, set_linear, max_iter, tol, progress)
    last: dict = {}
    for it in range(max_iter if radial_steps and method == "alternation" else 0):
        x0 = theirs.radial_coeffs.ravel().copy()
        result = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": radial_steps})
        if not np.array_equal(last["x"], result.x):  # the line search ended elsewhere: evaluate there
            fun(result.x)
        # the design matrix does not depend on the linear coefficients: re-solve without a new pass
        previous, current = current, set_linear(last["a"], last["b"], last["yy"])
        if previous - current < tol * previous:
            break
    trained = _from_motep(theirs, start)
    errors = rmse(trained, species, configs, comm)
    errors.update(loss=current, passes=problem.passes)
    return trained, errors


def _varpro(problem: _Problem, theirs, set_linear, max_iter: int, tol: float, progress) -> float:
    """L-BFGS over the radial coefficients of the loss with the linear coefficients solved out (see train);
    leaves ``theirs`` at the best point evaluated and returns the loss there."""
    shape = theirs.radial_coeffs.shape
    best: dict = {}
    history: list[float] = []

    def fun(x):
        theirs.radial_coeffs = x.reshape(shape).copy()
        a, b, yy, *_ = problem.evaluate(gradient=False)
        set_linear(a, b, yy)
        *_, value, grad = problem.evaluate(gradient=True)  # at the solved theta: the reduced loss' gradient
        if not best or value < best["loss"]:
            best.update(loss=value, x=x.copy(), theta=(theirs.moment_coeffs.copy(), theirs.species_coeffs.copy()))
        if progress is not None:
            progress(len(history) + 1, problem.passes, value)
        return value, grad

    def converged(intermediate_result):
        history.append(float(intermediate_result.fun))
        if len(history) > 10 and history[-11] - history[-1] < 10 * tol * history[-1]:
            raise StopIteration  # scipy ends the minimisation and keeps the last iterate

    minimize(fun, theirs.radial_coeffs.ravel().copy(), jac=True, method="L-BFGS-B", callback=converged,
             options={"maxiter": max_iter, "maxcor": 20})
    theirs.radial_coeffs = best["x"].reshape(shape).copy()
    theirs.moment_coeffs, theirs.species_coeffs = best["theta"]
    return best["loss"]


def loss(mtp: MTPData, species: tuple[str, ...], configs: list[Atoms], comm=None, *,
         weights: tuple[float, float, float] = DEFAULT_WEIGHTS, engine: str = "native") -> float:
    """The training loss of a potential on ``configs`` (see the module docstring)."""
    problem = _Problem(configs, to_motep(mtp, species), tuple(species), comm or _self_comm(), weights, engine)
    return problem.evaluate(gradient=False)[3]


def _self_comm():
    """MPI.COMM_SELF: what serial callers (comm=None) get."""
    from mpi4py import MPI

    return MPI.COMM_SELF


def rmse(mtp: MTPData, species: tuple[str, ...], configs: list[Atoms], comm=None, *,
         engine: str = "cext") -> dict[str, float]:
    """Root-mean-square errors of a potential on labelled ``configs``: ``energy`` per atom (eV/atom),
    ``forces`` per component (eV/A), ``stress`` per component of the 3x3 tensor (GPa; periodic
    configurations with a stress label only). ``comm`` (optional) splits the configurations over ranks."""
    from motep.calculator import MTP

    comm = comm or _self_comm()
    theirs = to_motep(mtp, tuple(species))
    sums = np.zeros(6)  # squared errors and counts of energy, forces, stress
    for atoms in configs[comm.Get_rank()::comm.Get_size()]:
        energy, forces, stress = labels(atoms)
        copy = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        copy.calc = MTP(theirs, engine=engine)
        sums[0:2] += ((copy.get_potential_energy() - energy) / len(atoms)) ** 2, 1
        if forces is not None:
            sums[2:4] += np.sum((copy.get_forces() - forces) ** 2), forces.size
        if stress is not None:
            predicted = voigt_6_to_full_3x3_stress(copy.get_stress())
            sums[4:6] += np.sum(((predicted - stress) / GPa) ** 2), 9
    if comm.Get_size() > 1:
        from mpi4py import MPI

        comm.Allreduce(MPI.IN_PLACE, sums)
    return {name: float(np.sqrt(sums[2 * k] / sums[2 * k + 1])) if sums[2 * k + 1] else float("nan")
            for k, name in enumerate(("energy", "forces", "stress"))}
