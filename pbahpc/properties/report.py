"""Analysis of the properties runs, the report beside the paper's numbers, and the continuum parameters.

x is Na per formula unit Na_x Mn[Fe(CN)6] (0..2); the free-energy code works in site fractions x/2.
A quantity whose runs are missing, or whose estimate is not meaningful (a D not resolved from zero,
no miscibility gap), is reported as such and the template's value stays in the P2D parameter file.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import write_tree
from ..config.universal import SHIPPED
from ..atomistic.structure import FORMULA_UNITS_PER_CELL, SITES_PER_CELL
from .diffusion import A2_PS_TO_M2_S

SITES_PER_FORMULA_UNIT = SITES_PER_CELL // FORMULA_UNITS_PER_CELL  # x_max = 2
REFERENCE = "reference/"  # names of the runs with the reference potential (properties.reference)
NA_METAL = "na_metal"  # the universal reference's bcc Na run (Eq. 31's E_Na with the same model)

# The paper's values (Secs. III.B-E, Figs. 6-8), printed beside ours.
PAPER = {
    "D_poor_300K_m2_s": "7.75e-14 (x = 0.195, extrapolated)",
    "D_rich_300K_m2_s": "3.99e-18 (x = 1.758, extrapolated)",
    "Ea_poor_eV": "~0.3 (x = 0.195)",
    "interface_energy_mJ_m2": "2.828 +- 1.71",
    "strain_energy_MJ_m3": "37.655 +- 0.0875",
    "binodals_300K_x": "0 and 1.95",
    "binodals_400K_x": "0.02 and 1.58",
    "mixing_max_300K_eV_fu": "0.06 at x = 0.7",
    "lattice_rich": "rhombohedral a = 9.564 A",
    "lattice_poor": "tetragonal a = b = 9.986, c = 9.983 A",
    "angles_rich": "82.6 82.6 82.6",
    "angles_poor": "90 90 90",
    "average_voltage_V": "3.34 V (exp. 3.44-3.53 V)",
    "volume_change_percent": "+12 % (exp. 13.9 %)",
}


def analyse_and_write(cfg, done: dict[str, dict[str, Any]], out_dir: Path, rng: np.random.Generator,
                      log: logging.Logger) -> tuple[Path | None, dict[str, str]]:
    """Everything from the finished runs; returns the P2D parameter file written, if any, and the
    ``headline`` of the numbers."""
    from .fidelity import as_numbers, compare, summary, table

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"pbahpc properties report: campaign '{cfg.campaign.name}'", ""]
    cell_T = None
    if cfg.properties.p2d_template is not None:
        from ..config.load import read_yaml

        cell_T = float(read_yaml(cfg.properties.p2d_template)["cell"]["temperature_K"])
    learned = {k: v for k, v in done.items() if not k.startswith(REFERENCE)}
    numbers, (fe, diff, gamma) = analyse(cfg, learned, out_dir, rng, lines, cell_T)
    path = _continuum(cfg, fe, diff, gamma, out_dir, lines)
    reference = {k[len(REFERENCE):]: v for k, v in done.items() if k.startswith(REFERENCE)}
    fidelity = None
    if reference:
        universal = cfg.oracle.calculator == "universal"
        model = cfg.oracle.universal.model
        lines += ["", "=" * 40 + (f" the relaxed cells with the oracle's {model} " if universal else
                                  " the same runs with the reference potential ") + "=" * 40, ""]
        na_eV = cfg.properties.na_reference_eV
        if NA_METAL in reference:
            na_eV = float(reference[NA_METAL]["eV_per_atom"])
            _row(lines, "E_Na (bcc Na relaxed with the model)", f"{na_eV:.6f} eV/atom" + (
                "" if cfg.properties.na_reference_eV is None else
                f" (the MTP's voltage uses properties.na_reference_eV {cfg.properties.na_reference_eV:.6f})"))
        numbers["reference"], _ = analyse(cfg, reference, out_dir, rng, lines, cell_T, tag="-reference",
                                          na_reference_eV=na_eV)
        rows = compare(numbers, numbers["reference"], cfg.properties.fidelity,
                       absent="not computed with this reference" if universal else "n/a")
        lines += [f"Fidelity: learned MTP vs {f'the universal potential {model}' if universal else 'its reference'}, "
                  "the same runs and analysis (properties.fidelity):", *table(rows), "",
                  f"Beside the paper (learned MTP | {model if universal else 'reference'} | paper):",
                  *(f"  {q:<36} {a:<24} {b:<24} {c}" for q, a, b, c in beside_paper(numbers, numbers["reference"])),
                  ""]
        if universal:
            lines += honest_limits(cfg, reference)
        numbers["fidelity"] = as_numbers(rows)
        fidelity = summary(rows)
    (out_dir / "report.txt").write_text("\n".join(lines) + "\n")
    write_tree(out_dir / "properties.h5", {"numbers": numbers,
                                           "runs": {k.replace("/", "|"): v for k, v in done.items()}},
               meta={"units": "eV, A, K, m^2/s, J/m^2; x per formula unit", "campaign": cfg.campaign.name})
    log.info("properties: report in %s", out_dir / "report.txt")
    return path, {**headline(numbers), **({"fidelity": fidelity} if fidelity else {})}


def analyse(cfg, done: dict[str, dict[str, Any]], out_dir: Path, rng: np.random.Generator, lines: list[str],
            cell_T: float | None, tag: str = "", na_reference_eV: float | None = None) -> tuple[dict[str, Any], tuple]:
    """The numbers of one potential's runs (report lines appended; plots named with ``tag``), and what the
    continuum takes from them: (free energy, D per x, interface energy). Eq. 31's E_Na (eV/atom):
    ``na_reference_eV``, by default ``properties.na_reference_eV``."""
    numbers: dict[str, Any] = {}
    with np.errstate(divide="ignore", invalid="ignore"):  # mu(x) = kT ln(x/(1-x)) + ... at the ends of plots
        fe = _free_energy(cfg, done, out_dir, rng, lines, numbers, tag)
    diff = _diffusion(done, lines, numbers, cell_T)
    refs = {float(v["x"]): v for k, v in done.items()
            if k.startswith("interface/reference/") and not str(v.get("failed", ""))}
    gamma = _interface(cfg, done, refs, lines, numbers)
    na = cfg.properties.na_reference_eV if na_reference_eV is None else na_reference_eV
    _voltage_structure(cfg, refs, lines, numbers, na)
    return numbers, (fe, diff, gamma)


def headline(numbers: dict[str, Any]) -> dict[str, str]:
    """The few numbers for the terminal: voltage, binodals per temperature, D per composition (as the
    continuum gets it: at the cell's temperature where extrapolated)."""
    out = {}
    if "average_voltage_V" in numbers:
        out["voltage"] = f"{numbers['average_voltage_V']:.3f} V"
    for key, fe in numbers.items():
        if isinstance(fe, dict) and "binodal_x" in fe:  # keyed T<T>K
            b = fe["binodal_x"]
            out[f"binodals at {key[1:-1]} K"] = "none" if np.isnan(b).any() else f"x = {b[0]:.3f}, {b[1]:.3f}"
    for x, D in numbers.get("diffusion_m2_s", {}).items():  # keyed x<x>
        out[f"D(x = {x[1:]})"] = f"{D:.3g} m^2/s"
    return out


def _row(lines: list[str], name: str, value: str, paper: str | None = None) -> None:
    lines.append(f"  {name:<34} {value:<34}" + (f" paper: {paper}" if paper else ""))


# ------------------------------------------------------------------------------------- free energy
def _free_energy(cfg, done, out_dir, rng, lines, numbers, tag):
    from .free_energy import analyse, bootstrap, plot_free_energy, windows_from_observables

    pc, gc = cfg.properties, cfg.replicas.gcmc
    method = pc.free_energy.method
    lines.append(f"Free energy (biased GCMC windows, {method}, excess-mu polynomial, common tangent):")
    first = None
    for name, run in sorted((k, v) for k, v in done.items() if k.startswith("free_energy/")):
        T = float(run["T_K"])
        if str(run.get("failed", "")):
            _row(lines, f"T = {T:g} K", f"not sampled: {run['failed']}")
            continue
        sites = int(run["sites"])
        windows = windows_from_observables(run, phi_eV=pc.free_energy.phi_eV, T_K=T, mu_bias_eV=pc.free_energy.mu_eV,
                                           pressure_bar=gc.pressure_bar,
                                           equilibration_fraction=pc.free_energy.equilibration_fraction)
        windows = [w.decorrelated() for w in windows]
        try:
            an = analyse(windows, sites, method=method, min_count=3)
            boot = bootstrap(windows, sites, rng, n_boot=50, method=method, reference=an, min_count=3)
        except (ValueError, np.linalg.LinAlgError) as exc:
            _row(lines, f"T = {T:g} K", f"not analysable ({exc})")
            continue
        key = f"T{T:g}K"
        x_fu = SITES_PER_FORMULA_UNIT  # site fraction -> x per formula unit
        bin_x = None if an.binodal is None else tuple(x_fu * b for b in an.binodal)
        spin_x = None if an.spinodal is None else tuple(x_fu * s for s in an.spinodal)
        sb, ss = boot.sigma_binodal * x_fu, boot.sigma_spinodal * x_fu
        numbers[key] = {"binodal_x": np.array(bin_x or (np.nan, np.nan)), "sigma_binodal_x": sb,
                        "spinodal_x": np.array(spin_x or (np.nan, np.nan)), "sigma_spinodal_x": ss,
                        "max_mixing_eV_fu": an.max_mixing_eV * x_fu,
                        "mu_x": an.x * x_fu, "mu_eV": an.mu_eV, "sigma_mu_eV": an.sigma_eV}
        paper = PAPER.get(f"binodals_{key.replace('T', '')}_x")
        _row(lines, f"binodals at {T:g} K (x)",
             "no miscibility gap" if bin_x is None else
             f"{bin_x[0]:.3f} +- {sb[0]:.3f}, {bin_x[1]:.3f} +- {sb[1]:.3f}", paper)
        _row(lines, f"spinodals at {T:g} K (x)", "none" if spin_x is None else
             f"{spin_x[0]:.3f} +- {ss[0]:.3f}, {spin_x[1]:.3f} +- {ss[1]:.3f}")
        _row(lines, f"max mixing energy at {T:g} K", f"{an.max_mixing_eV * x_fu:.4f} eV/f.u.",
             PAPER["mixing_max_300K_eV_fu"] if T == 300 else None)
        plot_free_energy(an, out_dir / f"free_energy{tag}-{T:g}K.png", boot=boot, x_scale=x_fu,
                         title=f"{cfg.campaign.name}: {T:g} K")
        first = first or (T, an)
    if not any(k.startswith("free_energy/") for k in done):
        _row(lines, "(no free-energy runs)", "")
    lines.append("")
    return first


# ------------------------------------------------------------------------------------- diffusion
def _diffusion(done, lines, numbers, cell_T: float | None):
    """D per x, extrapolated (Arrhenius) to the cell's temperature for the continuum, and to 300 K to compare."""
    from .diffusion import arrhenius

    lines.append("Na diffusion (NPT MD, MSD over all Na and time origins, automatic linear window):")
    runs = [v for k, v in sorted(done.items()) if k.startswith("diffusion/")]
    by_x: dict[float, list] = {}
    for r in runs:
        if str(r.get("failed", "")):
            _row(lines, f"D(x = {r['x']:g}, T = {r['T_K']:g} K)", f"failed: {r['failed']}")
            continue
        D, s = float(r["D_A2_ps"]) * A2_PS_TO_M2_S, float(r["sigma_A2_ps"]) * A2_PS_TO_M2_S
        resolved = bool(r["linear_ok"]) and D > 2 * s
        numbers.setdefault("diffusion_runs", {})[f"x{r['x']:g}_T{r['T_K']:g}K"] = np.array([D, s, resolved], float)
        _row(lines, f"D(x = {r['x']:g}, T = {r['T_K']:g} K)",
             f"{D:.3g} +- {s:.2g} m^2/s" + ("" if resolved else " (not resolved)"))
        if resolved:
            by_x.setdefault(float(r["x"]), []).append((float(r["T_K"]), D, s))
    per_x = {}
    for x, rows in sorted(by_x.items()):
        T, D, s = (np.array(c) for c in zip(*rows))
        if len(T) >= 2:
            fit = arrhenius(T, D, s)
            D300, s300, _ = fit.extrapolate(300.0)
            _row(lines, f"Ea(x = {x:g})", f"{fit.Ea_eV:.3f} +- {fit.sigma_Ea_eV:.3f} eV",
                 PAPER["Ea_poor_eV"] if x < 1 else None)
            _row(lines, f"D(x = {x:g}, 300 K) extrapolated", f"{D300:.3g} +- {s300:.2g} m^2/s",
                 PAPER["D_poor_300K_m2_s" if x < 1 else "D_rich_300K_m2_s"])
            numbers[f"arrhenius_x{x:g}"] = {"Ea_eV": fit.Ea_eV, "sigma_Ea_eV": fit.sigma_Ea_eV, "D0_m2_s": fit.D0,
                                           "D300_m2_s": D300, "sigma_D300_m2_s": s300}
            per_x[x] = float(fit.extrapolate(cell_T)[0]) if cell_T else float(D300)
            if cell_T:
                _row(lines, f"D(x = {x:g}, {cell_T:g} K) for the cell", f"{per_x[x]:.3g} m^2/s")
        else:
            per_x[x] = float(D[0])
    if not runs:
        _row(lines, "(no diffusion runs)", "")
    lines.append("")
    numbers["diffusion_m2_s"] = {f"x{x:g}": d for x, d in per_x.items()}
    return per_x


# ------------------------------------------------------------------------------------- interface
def _interface(cfg, done, refs, lines, numbers):
    from .interface import excess_energy, fit_interface

    it = cfg.properties.interface
    lines.append("Interface and strain energy (two-phase supercells, Eqs. 4-5):")
    for k, v in sorted(done.items()):
        if k.startswith("interface/") and str(v.get("failed", "")):
            _row(lines, k, f"failed: {v['failed']}")
    cells = sorted((v for k, v in done.items() if k.startswith("interface/n") and not str(v.get("failed", ""))),
                   key=lambda v: int(v["n"]))
    if len(cells) < 3 or len(refs) < 2:  # the fit's error estimate needs 3 cells
        _row(lines, "(fewer than 3 supercells or 2 reference cells)", "")
        lines.append("")
        return None
    e_hi = float(refs[it.x_high]["energy_eV"]) / float(refs[it.x_high]["cells"])
    e_lo = float(refs[it.x_low]["energy_eV"]) / float(refs[it.x_low]["cells"])
    n = np.array([float(c["cells"]) for c in cells])
    ex, cov = excess_energy(np.array([float(c["energy_eV"]) for c in cells]), n, e_hi, e_lo)
    fit = fit_interface(ex, np.array([float(c["area_A2"]) for c in cells]),
                        np.array([float(c["volume_A3"]) for c in cells]))
    g, sg = fit.gamma_J_per_m2 * 1e3, fit.sigma_gamma_J_per_m2 * 1e3
    e, se = fit.strain_J_per_m3 * 1e-6, fit.sigma_strain_J_per_m3 * 1e-6
    _row(lines, "interfacial energy", f"{g:.3g} +- {sg:.2g} mJ/m^2", PAPER["interface_energy_mJ_m2"])
    _row(lines, "strain energy density", f"{e:.3g} +- {se:.2g} MJ/m^3", PAPER["strain_energy_MJ_m3"])
    numbers["interface"] = {"n_cells": n, "excess_eV": ex, "gamma_mJ_m2": g, "sigma_gamma_mJ_m2": sg,
                            "strain_MJ_m3": e, "sigma_strain_MJ_m3": se}
    lines.append("")
    return g * 1e-3 if g > 2 * sg else None


# ------------------------------------------------------------------------------------- voltage, structure
def _voltage_structure(cfg, refs, lines, numbers, na_reference_eV: float | None):
    from ase import Atoms

    from .structure import classify_cell, lattice_parameters, mn_n_c_angles, na_coordination, rdf, volume_change_percent
    from .voltage import average_voltage

    it = cfg.properties.interface
    lines.append("Voltage (Eq. 31) and structure of the relaxed single-phase cells:")
    if len(refs) < 2:
        _row(lines, "(no reference cells)", "")
        lines.append("")
        return
    atoms = {x: Atoms(numbers=r["numbers"], positions=r["positions_A"], cell=r["cell_A"], pbc=True)
             for x, r in refs.items()}
    if na_reference_eV is not None:
        fu = FORMULA_UNITS_PER_CELL * float(refs[it.x_low]["cells"])
        V = average_voltage(float(refs[it.x_low]["energy_eV"]), it.x_low, float(refs[it.x_high]["energy_eV"]),
                            it.x_high, na_reference_eV, formula_units=fu)
        _row(lines, f"average voltage x = {it.x_low:g}..{it.x_high:g}", f"{V:.3f} V", PAPER["average_voltage_V"])
        numbers["average_voltage_V"] = V
    else:
        _row(lines, "average voltage", "properties.na_reference_eV not set")
    for x, a in sorted(atoms.items()):
        p = lattice_parameters(a)
        numbers[f"lattice_x{x:g}_A"] = np.array([p.a_A, p.b_A, p.c_A])
        numbers[f"angles_x{x:g}_deg"] = np.array([p.alpha_deg, p.beta_deg, p.gamma_deg])
        angles = mn_n_c_angles(a)
        _row(lines, f"lattice at x = {x:g}",
             f"{classify_cell(a)}: a b c = {p.a_A:.3f} {p.b_A:.3f} {p.c_A:.3f} A, "
             f"angles {p.alpha_deg:.1f} {p.beta_deg:.1f} {p.gamma_deg:.1f}",
             PAPER["lattice_rich" if x > 1 else "lattice_poor"])
        _row(lines, f"Mn-N-C angle at x = {x:g}", f"{np.mean(angles):.1f} +- {np.std(angles):.1f} deg")
        if "Na" in a.get_chemical_symbols():
            coordination = na_coordination(a)
            r, g = rdf(a, ("Na", "N"), r_max_A=5.0, bins=100)
            _row(lines, f"Na coordination at x = {x:g}", f"{np.mean(coordination):.2f} N within 3.5 A; Na-N RDF "
                                                          f"peak at {r[np.argmax(g)]:.2f} A")
            numbers[f"na_coordination_x{x:g}"] = coordination
    dv = volume_change_percent(atoms[it.x_high], atoms[it.x_low])
    _row(lines, f"volume change x = {it.x_high:g} -> {it.x_low:g}", f"{dv:+.2f} %", PAPER["volume_change_percent"])
    numbers["volume_change_percent"] = dv
    lines.append("")


def beside_paper(learned: dict[str, Any], reference: dict[str, Any]) -> list[list[str]]:
    """Rows [quantity, learned, reference, paper] of the single-phase and two-phase numbers (the text report's
    and the report page's), "n/a" where a side has no value."""
    def both(get) -> list[str]:
        out = []
        for nums in (learned, reference):
            try:
                out.append(get(nums))
            except (KeyError, TypeError, ValueError):
                out.append("n/a")
        return out

    def three(key: str):  # the three values of a lattice (A) or angle (deg) entry
        return lambda n: " ".join(f"{v:.3f}" if key.startswith("lattice") else f"{v:.1f}"
                                  for v in np.asarray(n[key], float))

    rows = [["average voltage x = 0..2 (V)", *both(lambda n: f"{float(n['average_voltage_V']):.3f}"),
             PAPER["average_voltage_V"]]]
    for x, side in (("0", "poor"), ("2", "rich")):
        rows.append([f"lattice a b c at x = {x} (A)", *both(three(f"lattice_x{x}_A")), PAPER[f"lattice_{side}"]])
        rows.append([f"angles at x = {x} (deg)", *both(three(f"angles_x{x}_deg")), PAPER[f"angles_{side}"]])
    rows.append(["volume change x = 2 -> 0 (%)", *both(lambda n: f"{float(n['volume_change_percent']):+.2f}"),
                 PAPER["volume_change_percent"]])
    rows.append(["Na-N coordination at x = 2", *both(lambda n: f"{np.mean(n['na_coordination_x2']):.2f}"), ""])
    for name, k, paper in (("interfacial energy (mJ/m^2)", "gamma_mJ_m2", "interface_energy_mJ_m2"),
                           ("strain energy density (MJ/m^3)", "strain_MJ_m3", "strain_energy_MJ_m3")):
        rows.append([name, *both(lambda n: f"{float(n['interface'][k]):.3g} +- "
                                           f"{float(n['interface'][f'sigma_{k}']):.2g}"), PAPER[paper]])
    keys = sorted({*learned, *reference})  # a quantity only one potential has still gets its row
    for key in (k for k in keys if k.startswith("arrhenius_x")):
        x = float(key[len("arrhenius_x"):])
        rows.append([f"Ea at x = {x:g} (eV)", *both(lambda n: f"{float(n[key]['Ea_eV']):.3f}"),
                     PAPER["Ea_poor_eV"] if x < 1 else ""])
        rows.append([f"D(300 K) at x = {x:g} (m^2/s)", *both(lambda n: f"{float(n[key]['D300_m2_s']):.3g}"),
                     PAPER["D_poor_300K_m2_s" if x < 1 else "D_rich_300K_m2_s"]])
    for key in (k for k in keys if k.startswith("T") and k.endswith("K")):
        T = key[1:-1]

        def binodal(n: dict) -> str:
            b = np.asarray(n[key]["binodal_x"], float)
            return "no gap" if np.isnan(b).any() else f"{b[0]:.3f}, {b[1]:.3f}"

        rows.append([f"binodals at {T} K (x)", *both(binodal), PAPER.get(f"binodals_{T}K_x", "")])
        rows.append([f"max mixing energy at {T} K (eV/f.u.)",
                     *both(lambda n: f"{float(n[key]['max_mixing_eV_fu']):.4f}"),
                     PAPER["mixing_max_300K_eV_fu"] if T == "300" else ""])
    return rows


def honest_limits(cfg, reference: dict[str, dict[str, Any]]) -> list[str]:
    """The report's paragraph on what a universal-potential reference's numbers are, and are not."""
    import textwrap

    model, modal = cfg.oracle.universal.model, cfg.oracle.universal.modal
    if model == "chgnet-r2scan" or modal == "R2SCAN":
        level = "trained on r2SCAN data (the Materials Project's): a meta-GGA, no +U"
    else:
        level = (f"trained on PBE/PBE+U data (MPtrj{', its PBE modal' if SHIPPED[model].modals else ''}); the "
                 "Materials Project puts U only on oxides and fluorides, so for this cyanide framework that is PBE "
                 "without +U")
    starts = [f"x = {float(r['x']):g}: {r['start']}, {'converged' if int(r['converged']) else 'NOT converged'} "
              f"after {int(r['steps'])} steps" for k, r in sorted(reference.items())
              if k.startswith("interface/reference/") and not str(r.get("failed", ""))]
    first = (f"Every number in the fidelity table, learned and reference, is at {model}'s level of theory, {level}. "
             "The paper's numbers are PBEsol+U (U = 5.5 eV on Mn and Fe): beside them for scale, not as the MTP's "
             "target. Each composition has several minima, and which one a relaxation reaches depends on its start. "
             "The MTP's cells relax from the end of their NPT MD; the model's start:")
    if cfg.properties.interface.barostat == "tri":
        freedom = ("Both relax positions and the whole cell, angles included (LAMMPS box/relax tri; all six "
                   "strains on the model's cell filter). ")
    else:
        freedom = ("Both relax a, b, c and positions only (LAMMPS box/relax aniso; the same mask on the model's cell "
                   "filter), so the angles stay 90 deg: the paper's rhombohedral x = 2 (82.6 deg) cannot form "
                   "(properties.interface.barostat: tri lets it). ")
    last = freedom + "D, free energies and the interface are not computed with the model (too costly in ASE)."
    wrap = lambda text: textwrap.wrap(text, 110, initial_indent="  ", subsequent_indent="  ")  # noqa: E731
    return ["Honest limits:", *wrap(first), *(f"    {s}" for s in starts), *wrap(last), ""]


# ------------------------------------------------------------------------------------- continuum
def _continuum(cfg, fe, diffusion, gamma_J_m2, out_dir, lines) -> Path | None:
    from .to_continuum import fill_template, write_parameters

    pc = cfg.properties
    lines.append("Continuum parameters:")
    if pc.p2d_template is None:
        _row(lines, "(properties.p2d_template not set)", "")
        return None
    mu_poly, sources = None, {"template": str(pc.p2d_template)}
    if fe is not None and pc.na_reference_eV is not None:
        T, an = fe
        x = np.linspace(0.05, 1.95, 96)
        mu_vs_na = an.fit.mu(x / SITES_PER_FORMULA_UNIT) - pc.na_reference_eV
        mu_poly = np.polynomial.polynomial.polyfit(x, mu_vs_na, 5).tolist()
        sources["mu_eV"] = f"free energy at {T:g} K minus properties.na_reference_eV, degree-5 fit in x"
    D = None
    if len(diffusion) >= 2:
        xs = sorted(diffusion)
        D = (diffusion[xs[0]], diffusion[xs[-1]])
        sources["diffusivity_m2_s"] = f"D at x = {xs[0]:g} (poor) and {xs[-1]:g} (rich)"
    if gamma_J_m2 is not None:
        sources["interface_energy_J_m2"] = "two-phase supercell fit (Eq. 5)"
    for key in ("mu_eV", "diffusivity_m2_s", "interface_energy_J_m2"):
        _row(lines, key, "measured" if key in sources else "template's (no meaningful measurement)")
    doc = fill_template(pc.p2d_template, mu_poly_eV=mu_poly, diffusivity_m2_s=D, interface_energy_J_m2=gamma_J_m2)
    try:
        path = write_parameters(doc, out_dir / "p2d-parameters.yaml", sources)
    except Exception as exc:  # noqa: BLE001 - the measured set may not make a valid cell: say why, keep the template
        _row(lines, "p2d-parameters.yaml", f"refused ({type(exc).__name__}: {exc}); the template is used")
        doc = fill_template(pc.p2d_template)
        path = write_parameters(doc, out_dir / "p2d-parameters.yaml", {"template": str(pc.p2d_template),
                                                                         "measured set refused": str(exc)})
    _row(lines, "written", str(path))
    return path
