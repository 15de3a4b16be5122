"""The paper-scale campaign (inputs/production-mnfepba.yaml) and its jobscript (jobscripts/production.sh):
the layout fits the jobscript's ranks, and the file carries the paper's settings."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT, env

from pbahpc.config import load

CAMPAIGN = ROOT / "inputs" / "production-mnfepba.yaml"
JOBSCRIPT = ROOT / "jobscripts" / "production.sh"

# The paper's values (/work/shared/seed/paper.txt), written out here rather than read back from the YAML.
# Sec. II.A: "a U value of 5.5 eV was applied for both Fe and Mn"
PAPER_U_EV = 5.5
# Sec. II.A: "A high plane-wave energy cutoff of 700 eV was employed"
PAPER_ENCUT_EV = 700.0
# Sec. II.A: "Mn ions initialized in a high-spin state and Fe ions in a low-spin state"
PAPER_MAGMOM_MN, PAPER_MAGMOM_FE = 5.0, 1.0
# Sec. II.C: "A level 12 MTP model was used"
PAPER_MTP_LEVEL = 12
# Sec. II.C: "If 2 < gamma < 10, the structure is flagged for subsequent DFT calculations; if gamma > 10 ...
# the GCMC-MD simulation is halted"; "At each time step, the MLIP computes ... gamma"
PAPER_GAMMA_SELECT, PAPER_GAMMA_STOP, PAPER_GAMMA_CHECK_STEPS = 2.0, 10.0, 1
# Sec. II.C: "structures with forces exceeding 150 eV/A or energies above 0 eV are discarded"
PAPER_MAX_FORCE_EV_A, PAPER_MAX_ENERGY_EV = 150.0, 0.0
# Sec. II.C: "a phase of 4,000 NPT time steps (with a timestep of 0.4 fs) is followed by 1,000 grand
# canonical exchange attempts and 500 MC moves"
PAPER_MD_STEPS, PAPER_MD_TIMESTEP_FS, PAPER_EXCHANGES, PAPER_TRANSLATIONS = 4000, 0.4, 1000, 500
# Sec. II.B: "16 different sodium concentrations (Na_xMn[Fe(CN)6], x = 0.125, 0.25, ..., 2)"
PAPER_PRETRAIN_X = tuple(0.125 * k for k in range(1, 17))
# Sec. II.B: "Each simulation consisted of 10,000 time steps with a timestep of 1 fs"
PAPER_AIMD_TIMESTEP_FS = 1.0
# Sec. II.B: "the temperature was ramped from 200 K to 400 K"
PAPER_AIMD_T_RANGE_K = (200.0, 400.0)
# Sec. III.B: "GCMC-MD at 300 K at chemical potential, mu = -5" (the one stated GCMC-MD point)
PAPER_DESODIATION_T_K, PAPER_DESODIATION_MU_EV = 300.0, -5.0


def jobscript_ranks() -> tuple[int, int]:
    """(nodes, tasks per node) of the pbahpc step as jobscripts/production.sh sizes it."""
    text = JOBSCRIPT.read_text()
    nodes = re.search(r"^NODES=(\d+)\s*$", text, re.M)
    tasks = re.search(r"^TASKS_PER_NODE=(\d+)\s*$", text, re.M)
    assert nodes and tasks, "production.sh must set NODES= and TASKS_PER_NODE="
    assert "PBAHPC_NODES=$NODES PBAHPC_NTASKS=$((NODES * TASKS_PER_NODE))" in text
    assert '--nodes=$((NODES + VASP_NODES)) --ntasks-per-node="$TASKS_PER_NODE"' in text
    assert "jobscripts/slurm.sh inputs/production-mnfepba.yaml" in text
    return int(nodes.group(1)), int(tasks.group(1))


def check(ranks: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pbahpc", "check", str(CAMPAIGN), "--ranks", str(ranks)],
                          capture_output=True, text=True, timeout=120, env=env(), cwd=ROOT)


@pytest.fixture(scope="module")
def cfg():
    return load(CAMPAIGN)


def test_layout_fits_the_jobscript(cfg):
    nodes, per_node = jobscript_ranks()
    total = nodes * per_node
    assert nodes > 1, "a production layout spans several nodes"
    out = check(total)
    assert out.returncode == 0, out.stderr
    assert f"rank layout for {total} ranks:" in out.stdout
    n_rep = len(cfg.replicas.temperatures_K) * len(cfg.replicas.mu_eV)
    assert n_rep > 1
    for i in range(n_rep):
        assert re.search(rf"^\s+replica-{i}\s+\d+ rank\(s\)", out.stdout, re.M), f"replica-{i} missing"
    assert not re.search(rf"^\s+replica-{n_rep}\s", out.stdout, re.M)
    for role in ("trainer", "oracle", "continuum"):
        assert re.search(rf"^\s+{role}\s+[1-9]\d* rank\(s\)", out.stdout, re.M), f"{role} has no ranks"
    assert "idle" not in out.stdout, "the jobscript allocates ranks the layout does not use"


def test_wrong_rank_count_fails_in_one_line():
    nodes, per_node = jobscript_ranks()
    out = check(nodes * per_node - 1)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "layout" in lines[0] and f"needs {nodes * per_node} ranks" in lines[0]


def test_dft_settings_are_the_papers(cfg):
    oc = cfg.oracle
    assert oc.engine == "teacher" and oc.calculator == "vasp"
    assert oc.vasp.command  # required with calculator vasp
    assert oc.vasp.encut_eV == PAPER_ENCUT_EV
    assert oc.vasp.U_Mn_eV == PAPER_U_EV and oc.vasp.U_Fe_eV == PAPER_U_EV
    assert (oc.vasp.magmom_Mn, oc.vasp.magmom_Fe) == (PAPER_MAGMOM_MN, PAPER_MAGMOM_FE)
    assert oc.max_force_eV_A == PAPER_MAX_FORCE_EV_A
    assert oc.max_energy_eV == PAPER_MAX_ENERGY_EV


def test_vasp_preset_is_pbesol_gamma_spin_polarised(cfg):
    # Sec. II.A: "PBEsol exchange-correlation functional", "a single Gamma-point is sufficient",
    # "Spin polarization was included" -- fixed in the preset, not in the YAML
    from pbahpc.oracle.calculators import vasp_settings

    s = vasp_settings(cfg.oracle.vasp)
    assert str(s.get("xc", s.get("gga", ""))).lower() in ("pbesol", "ps")
    assert s.get("ispin") == 2
    assert s.get("gamma") is True or tuple(s.get("kpts", (1, 1, 1))) == (1, 1, 1)
    assert s.get("encut") == PAPER_ENCUT_EV


def test_pretraining_is_the_papers(cfg):
    pt = cfg.oracle.pretrain
    assert len(pt.compositions_x) == 16
    assert pt.compositions_x == pytest.approx(PAPER_PRETRAIN_X)
    assert (min(pt.compositions_x), max(pt.compositions_x)) == (0.125, 2.0)
    assert pt.timestep_fs == PAPER_AIMD_TIMESTEP_FS
    assert PAPER_AIMD_T_RANGE_K[0] <= pt.temperature_K <= PAPER_AIMD_T_RANGE_K[1]
    for x in pt.compositions_x:  # generate_oracle_md needs a whole number of Na per cell
        n = x * 4 * pt.cells**3
        assert n == round(n), f"x = {x} is not a whole number of Na in {pt.cells}^3 cells"
    assert cfg.replicas.gcmc.sample_without_mtp is False  # the first MTP comes from pre-training (Fig. 1)


def test_active_learning_is_the_papers(cfg):
    assert cfg.trainer.engine == "mtp"
    assert cfg.trainer.level == PAPER_MTP_LEVEL
    assert set(cfg.trainer.species) == {"Na", "Mn", "Fe", "C", "N"}
    assert cfg.campaign.stop_when_converged is True  # "repeated until MaxVol selects no new configurations"
    rp = cfg.replicas
    assert rp.engine == "lammps-gcmc"
    assert len(rp.temperatures_K) > 1 and len(rp.mu_eV) > 1  # "different temperatures and chemical potentials"
    assert PAPER_DESODIATION_T_K in rp.temperatures_K and PAPER_DESODIATION_MU_EV in rp.mu_eV
    gc = rp.gcmc
    assert gc.structure == "pba" and gc.inserted == "Na" and gc.ensemble == "npt"
    assert gc.md_steps == PAPER_MD_STEPS
    assert gc.timestep_fs == PAPER_MD_TIMESTEP_FS
    assert (gc.exchanges, gc.translations) == (PAPER_EXCHANGES, PAPER_TRANSLATIONS)
    assert (gc.gamma_select, gc.gamma_stop, gc.gamma_check_steps) == (
        PAPER_GAMMA_SELECT, PAPER_GAMMA_STOP, PAPER_GAMMA_CHECK_STEPS)
    assert gc.full_energy is True  # many-body MTP
    assert cfg.continuum.engine == "p2d" and cfg.continuum.parameters.name == "p2d-mnfepba.yaml"


def test_every_value_is_sourced_or_marked():
    """Each key: value line of the YAML names the paper or says '# assumption' (or is structural)."""
    structural = {"engine", "structure", "inserted", "species", "name", "run_dir", "parameters", "potential",
                  "calculator", "full_energy", "directory", "command"}
    for n, line in enumerate(CAMPAIGN.read_text().splitlines(), 1):
        m = re.match(r"^\s*(\w+):\s*(\S.*)$", line)
        if not m or m.group(2).startswith("#") or m.group(1) in structural:
            continue
        # a value continues onto the next line (compositions_x) or is sourced in its own comment
        assert "paper" in line or "assumption" in line or m.group(2).rstrip().endswith(","), \
            f"line {n} has neither a paper source nor '# assumption': {line.strip()}"


def test_every_oracle_rank_has_a_free_node_for_its_vasp_step():
    """Each oracle rank runs one VASP step at a time on a node of its own (oracle.vasp.command -N 1),
    outside the pbahpc step: the jobscript must keep at least that many nodes free."""
    vasp_nodes = re.search(r"^VASP_NODES=(\d+)\s*$", JOBSCRIPT.read_text(), re.M)
    assert vasp_nodes, "production.sh must set VASP_NODES="
    cfg = load(CAMPAIGN)
    assert "-N 1" in cfg.oracle.vasp.command
    assert cfg.layout.oracle.ranks <= int(vasp_nodes.group(1))
