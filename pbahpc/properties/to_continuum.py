"""Atomistic results -> the P2D cell's parameter file (paper Sec. II.G: mu(x) from G, M from D, k from gamma).

The cathode particle of a template parameter file (``inputs/p2d-*.yaml``) receives the measured
chemical potential mu(x) (eV per Na vs metallic Na, a polynomial in x), the per-phase diffusivities
(m^2/s; M(x) follows by Eq. 24 in the loader) and the interfacial energy (J/m^2; k by Eq. 26). If the
template inflates the interface energy (``physical_interface_energy_J_m2`` set), the measured value
replaces the physical one and the inflated one stays; otherwise the measured value is used with
``inflate_interface: true``, so that the loader raises it only as far as the radial mesh needs (with a
warning that names the factor). The file is validated by loading it before it is moved into place.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..config.load import read_yaml


def fill_template(template: Path, *, mu_poly_eV: list[float] | None = None,
                  diffusivity_m2_s: tuple[float, float] | None = None,
                  interface_energy_J_m2: float | None = None) -> dict[str, Any]:
    """The template's document with the measured quantities in its cathode particle (``None``: keep the
    template's). ``mu_poly_eV``: coefficients in powers of x (lowest first); ``diffusivity_m2_s``:
    (Na-poor phase, Na-rich phase)."""
    doc = read_yaml(Path(template))
    particle = doc["cathode"]["particle"]
    if particle.get("model") != "cahn-hilliard":
        raise ValueError(f"{template}: cathode.particle.model must be cahn-hilliard to take mu(x), D and gamma")
    if mu_poly_eV is not None:
        particle["mu_eV"] = {"polynomial": [float(c) for c in mu_poly_eV]}
    if diffusivity_m2_s is not None:
        particle.pop("mobility", None)
        particle["diffusivity_m2_s"] = {"poor": float(diffusivity_m2_s[0]), "rich": float(diffusivity_m2_s[1])}
    if interface_energy_J_m2 is not None:
        particle.pop("kappa_J_m5_mol2", None)
        if particle.get("physical_interface_energy_J_m2") is not None:
            particle["physical_interface_energy_J_m2"] = float(interface_energy_J_m2)
        else:
            particle["interface_energy_J_m2"] = float(interface_energy_J_m2)
            particle["inflate_interface"] = True
    return doc


def write_parameters(doc: dict[str, Any], path: Path, sources: dict[str, str]) -> Path:
    """Write ``doc`` as a P2D parameter file, validated first (``load_parameters`` raises on a bad one)."""
    import warnings

    from ..continuum.parameters import load_parameters

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {k}: {v}\n" for k, v in sources.items())
    tmp = path.with_suffix(".tmp.yaml")
    tmp.write_text("# written by pbahpc.properties.to_continuum from measured properties\n" + header
                   + yaml.safe_dump(doc, sort_keys=False))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an inflated interface is expected; it is reported by the engine
            load_parameters(tmp)
    except Exception:
        tmp.unlink()
        raise
    os.replace(tmp, path)
    return path
