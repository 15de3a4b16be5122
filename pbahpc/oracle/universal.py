"""``oracle.calculator: universal``: a pretrained universal potential as the oracle's ASE calculator.

The checkpoint is the file shipped inside the installed package (``pbahpc.config.universal.SHIPPED``),
passed to the package by path, so no model name reaches a loader that could download: the oracle runs
without network. One calculator per oracle rank, built once. Energies (eV) are the model's total
energies, on its own zero: Eq. 31 voltages need metallic Na from the same model (``na_metal_eV_per_atom``).
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings

from ..config.universal import SHIPPED, checkpoint_path, model_problem


def torch_threads(comm) -> int:
    """Torch threads for one oracle rank: the cores it may run on, shared by the oracle ranks of its node.

    Only the oracle computes in the label stage (every other rank sleeps at the sync point), so its ranks
    may use the node's cores; under a launcher that binds one core per rank (SLURM ``--cpus-per-task=1``)
    this is 1."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    ranks = node.Get_size()
    node.Free()
    return max(1, len(os.sched_getaffinity(0)) // ranks)


def universal_calculator(uc, threads: int = 1):
    """The ASE calculator of ``oracle.universal`` (model, modal, device), on ``threads`` torch threads."""
    problem = model_problem(uc.model, uc.modal)
    if problem:  # validated at load; here too for callers that build the section themselves
        raise ValueError(problem[1])
    import torch

    torch.set_num_threads(threads)
    # CHGNet turns its graph's volume tensor into a float inside every call; torch's warning about that
    # names the package's internals, not anything a user can act on
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar",
                            category=UserWarning)
    shipped = SHIPPED[uc.model]
    path = str(checkpoint_path(uc.model))
    # CHGNet prints "initialized with ... parameters" and "will run on cpu" whatever its verbose flag, once per
    # rank: kept off the campaign's terminal
    with contextlib.redirect_stdout(io.StringIO()):
        if shipped.package == "sevenn":
            from sevenn.calculator import SevenNetCalculator

            modal = uc.modal or (shipped.modals[0] if shipped.modals else None)
            return SevenNetCalculator(path, device=uc.device, modal=modal)
        from chgnet.model import CHGNet, CHGNetCalculator

        # CHGNet.load reads the same shipped file and also sets the version's output head (0.2.0 has a bias)
        model = CHGNet.load(model_name=uc.model.removeprefix("chgnet-"), use_device=uc.device, verbose=False)
        return CHGNetCalculator(model=model, use_device=uc.device)


# A, Gaussian sd of the displacements that start a relaxation of a built PBA cell (the properties' universal
# reference, oracle.pretrain.relax): a minimiser alone stays on the built cell's symmetric stationary point
# (CHGNet x = 2: 1.9 eV above the minimum the rattled start reaches)
RATTLE_A = 0.05

# ``relax``'s strain mask (Voigt xx yy zz yz xz xy) for each ``properties.interface.barostat``: the cell freedom
# of LAMMPS's box/relax of the same name, so that the model's relaxed cells are the MTP's counterparts
CELL_MASK = {"aniso": (1, 1, 1, 0, 0, 0), "tri": (1, 1, 1, 1, 1, 1)}


def relax(atoms, calc, *, fmax_eV_A: float, steps: int, mask=None, pressure_bar: float = 0.0,
          observer=None, interval: int = 1) -> tuple[bool, int]:
    """Relax the positions and cell of ``atoms`` in place with ``calc``: BFGS on a FrechetCellFilter until every
    generalised force (atoms and cell, eV/A) is below ``fmax_eV_A``, at most ``steps`` steps. ``mask``: the
    strain components that relax (Voigt xx yy zz yz xz xy; None: all six); ``pressure_bar``: the external
    pressure; ``observer()`` is called every ``interval`` steps (step 0 first), after the forces of the step
    are computed. Returns (converged, steps taken)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from ase.units import bar

    atoms.calc = calc
    opt = BFGS(FrechetCellFilter(atoms, mask=mask, scalar_pressure=pressure_bar * bar), logfile=None)
    if observer is not None:
        opt.attach(observer, interval=interval)
    return bool(opt.run(fmax=fmax_eV_A, steps=steps)), int(opt.nsteps)


def na_metal_eV_per_atom(calc, a_A: float = 4.23, fmax_eV_A: float = 1e-3) -> float:
    """Energy per atom (eV) of bcc Na relaxed with ``calc`` (cell and positions): Eq. 31's E_Na.

    The 2-atom cubic cell, lattice relaxed from ``a_A`` (experiment 4.23 A) by BFGS on a FrechetCellFilter
    until every generalised force is below ``fmax_eV_A``; bcc keeps the atoms on their sites by symmetry."""
    from ase.build import bulk

    atoms = bulk("Na", "bcc", a=a_A, cubic=True)
    relax(atoms, calc, fmax_eV_A=fmax_eV_A, steps=200)
    return float(atoms.get_potential_energy()) / len(atoms)
