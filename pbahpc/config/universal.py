"""The universal potentials ``oracle.calculator: universal`` can use: those whose weights ship in their wheel.

A model is usable offline (CI, compute nodes without internet) only if its checkpoint is a file inside the
installed package; names that the packages would download (sevenn's ``7net-omat``, ``7net-mf-ompa``,
``7net-omni``; mattersim, MACE, ...) are refused at validation. Checked with ``importlib.util.find_spec``
and a file test, so validating a configuration imports neither torch nor the package.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

EXTRA = "pip install 'pbahpc[universal]' (or tools/setup.sh --universal)"


@dataclass(frozen=True)
class ShippedModel:
    package: str  # the PyPI/import name: sevenn or chgnet
    checkpoint: str  # path inside the installed package
    modals: tuple[str, ...] = ()  # fidelities of a multi-fidelity model; the first is the default


SHIPPED: dict[str, ShippedModel] = {
    "7net-0": ShippedModel("sevenn", "pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth"),
    "7net-0_22may2024": ShippedModel("sevenn",
                                     "pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth"),
    "7net-mf-0": ShippedModel("sevenn", "pretrained_potentials/SevenNet_MF_0/checkpoint_sevennet_mf_0.pth",
                              ("PBE", "R2SCAN")),
    "7net-l3i5": ShippedModel("sevenn", "pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth"),
    "chgnet-0.3.0": ShippedModel("chgnet", "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar"),
    "chgnet-0.2.0": ShippedModel("chgnet", "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar"),
    "chgnet-r2scan": ShippedModel("chgnet",
                                  "pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar"),
}


def checkpoint_path(model: str) -> Path | None:
    """The shipped checkpoint file of ``model`` in the installed package, or None (package or file absent)."""
    spec = importlib.util.find_spec(SHIPPED[model].package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SHIPPED[model].checkpoint
    return path if path.is_file() else None


def model_problem(model: str, modal: str | None) -> tuple[str, str] | None:
    """None if ``model`` (and ``modal``) can be loaded offline here; else ("model" or "modal", problem)."""
    if model not in SHIPPED:
        return "model", f"{model!r} has no weights in its wheel (it would be downloaded); shipped: {', '.join(SHIPPED)}"
    m = SHIPPED[model]
    if importlib.util.find_spec(m.package) is None:
        return "model", f"{model!r} needs the package {m.package!r}, not installed: {EXTRA}"
    if checkpoint_path(model) is None:
        return "model", f"{m.package} is installed but has no {m.checkpoint}: reinstall with {EXTRA}"
    if modal is not None and modal not in m.modals:
        allowed = ", ".join(m.modals) if m.modals else "none (not a multi-fidelity model)"
        return "modal", f"{model!r} has no modal {modal!r}; allowed: {allowed}"
    return None
