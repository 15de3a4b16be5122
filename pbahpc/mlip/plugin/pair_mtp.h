// pair_style mtp: Moment Tensor Potential (MLIP-2/3 `.mtp` files) as a LAMMPS pair style.
//
//   pair_style mtp [species E0 E1 ...] [isolated species|zero|0] [active_set FILE]
//   pair_coeff * * pot.mtp T1 T2 ... Tn
//   compute ID group mtp/grade          (per-atom extrapolation grade; needs active_set)
//
// `species` names the elements of the potential's species 0, 1, ... (the `.mtp` format has none).
// `isolated zero` measures energies from the isolated atoms: E_i - species_coeffs[t_i], so that an atom with
// no neighbours contributes exactly 0 (what fix gcmc's deletion trials need, see pair_mtp.cpp); the default
// `isolated species` is MLIP's absolute energy. `isolated 0` is `isolated zero` under pair_style hybrid, which
// takes the word `zero` for the start of a pair_style zero. `active_set FILE` loads a pbahpc active set (format in
// pbahpc/mlip/active_set.py) and makes every compute() also evaluate the per-atom MaxVol grades.
// The k-th word after the file is the element of LAMMPS type k: a name from the species list, a 0-based
// species index, or NULL for a type the potential does not handle (pair_style hybrid).
#ifndef PBAHPC_PAIR_MTP_H
#define PBAHPC_PAIR_MTP_H

#include "compute.h"
#include "mtp_kernels.h"
#include "pair.h"

#include <string>
#include <vector>

namespace pbahpc {

class PairMTP : public LAMMPS_NS::Pair {
 public:
  PairMTP(LAMMPS_NS::LAMMPS *lmp);
  ~PairMTP() override;
  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;

  bool has_active_set() const { return !active_inverse.empty(); }
  // the grades of the local atoms (by local index) from the last compute(), at timestep `step`
  const std::vector<double> &grades(LAMMPS_NS::bigint &step) const
  {
    step = grade_step;
    return grade;
  }

 private:
  MTPModel model;
  std::vector<std::string> species_names;  // from pair_style ... species
  std::vector<int> type_species;           // per LAMMPS type (1-based): species index, -1 = not handled
  bool isolated_zero = false;              // pair_style ... isolated zero
  std::string active_set_file;
  // per species the m x m inverse of the active-set rows, [species][k][j], m = alpha_scalar_moments
  std::vector<double> active_inverse;
  std::vector<double> grade, grade_row;    // per local atom; work space c = b A^-1
  LAMMPS_NS::bigint grade_step = -1;

  // per-atom work space, reused across atoms
  SiteWork work;
  std::vector<int> nb_j;  // per neighbour: atom index

  void allocate();
  double site(int species, int count);
  void read_active_set();
  std::string read_everywhere(const std::string &path, const char *what);
  double site_grade(int species, int count);
};

// compute ID group mtp/grade: per-atom vector of the grades pair mtp computed at this timestep (0 outside
// the group and for atoms of types the pair does not handle).
class ComputeMTPGrade : public LAMMPS_NS::Compute {
 public:
  ComputeMTPGrade(LAMMPS_NS::LAMMPS *lmp, int narg, char **arg);
  ~ComputeMTPGrade() override;
  void init() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  PairMTP *pair = nullptr;
  int nmax = 0;
  double *values = nullptr;
};

}  // namespace pbahpc

#endif
