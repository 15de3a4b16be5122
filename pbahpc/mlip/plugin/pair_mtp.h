// pair_style mtp: Moment Tensor Potential (MLIP-2/3 `.mtp` files) as a LAMMPS pair style.
//
//   pair_style mtp [species E0 E1 ...] [isolated species|zero] [active_set FILE]
//   pair_coeff * * pot.mtp T1 T2 ... Tn
//   compute ID group mtp/grade          (per-atom extrapolation grade; needs active_set)
//
// `species` names the elements of the potential's species 0, 1, ... (the `.mtp` format has none).
// `isolated zero` measures energies from the isolated atoms: E_i - species_coeffs[t_i], so that an atom with
// no neighbours contributes exactly 0 (what fix gcmc's deletion trials need, see pair_mtp.cpp); the default
// `isolated species` is MLIP's absolute energy. `active_set FILE` loads a pbahpc active set (format in
// pbahpc/mlip/active_set.py) and makes every compute() also evaluate the per-atom MaxVol grades.
// The k-th word after the file is the element of LAMMPS type k: a name from the species list, a 0-based
// species index, or NULL for a type the potential does not handle (pair_style hybrid).
#ifndef PBAHPC_PAIR_MTP_H
#define PBAHPC_PAIR_MTP_H

#include "compute.h"
#include "pair.h"

#include <string>
#include <vector>

namespace pbahpc {

// The content of a trained `.mtp` file that the evaluation needs, flattened for the inner loops.
struct MTPModel {
  int species_count = 0, radial_basis_size = 0, radial_funcs_count = 0;
  double scaling = 1.0, min_dist = 0.0, max_dist = 0.0;
  int moments_count = 0;                 // alpha_moments_count
  std::vector<int> basic;                // alpha_index_basic, 4 per row: mu, a, b, c
  std::vector<int> times;                // alpha_index_times, 4 per row: i, j, mult, k
  std::vector<int> mapping;              // alpha_moment_mapping
  std::vector<double> radial_coeffs;     // [centre species][neighbour species][mu][beta]
  std::vector<double> species_coeffs;    // (species_count)
  std::vector<double> moment_coeffs;     // (alpha_scalar_moments)
  int max_degree = 0;                    // largest a + b + c of the basic moments
  // the distinct angular parts x^a y^b z^c of the basic moments (several mu share one), 3 per entry,
  // and which one each basic moment uses: the neighbour loops evaluate each once
  std::vector<int> monomials, basic_monomial;

  // Parse file text; throws std::runtime_error naming the problem.
  static MTPModel parse(const std::string &text);
};

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
  std::vector<double> moment, moment_grad;
  std::vector<int> nb_j, nb_species;         // per neighbour: atom index, species
  std::vector<double> nb_r, nb_inv_r, nb_u;  // distance, its inverse, unit vector (3 per neighbour)
  // neighbour-fastest: f_mu, df_mu/dr, powers of u, monomials of u, dE/d(r_j - r_i) (after a radial part)
  std::vector<double> nb_f, nb_df, nb_pow, nb_mono, nb_grad;
  std::vector<double> mono_grad, mono_dgrad;  // [q][n]: sums of dE/dM_b f_mu and dE/dM_b df_mu/dr
  std::vector<double> cheb, dcheb;

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
