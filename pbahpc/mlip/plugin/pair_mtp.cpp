// pair_style mtp: see pair_mtp.h for the commands; the math is mlip.md §1.3.
//
// Per local atom i: f_mu(r_ij) and the unit vectors of its neighbours within max_dist, the basic moments
// M_b = sum_j f_mu(r_ij) x^a y^b z^c (each distinct x^a y^b z^c evaluated once per neighbour), the
// alpha_index_times program,
// E_i = species_coeffs[t_i] + sum_k moment_coeffs[k] M[mapping[k]]. Forces: dE_i/dM for every moment by
// running the program backwards, then the chain rule to each neighbour's displacement, applied to i and
// to j (ghosts included: newton on, LAMMPS reverse-communicates ghost forces).
//
// Energy reference and fix gcmc (mlip.md §4.3). With many-body styles fix gcmc evaluates a deletion trial by
// moving the atom into an exclusion group: it stays a local atom in list->inum, only with no neighbours and
// seen by nobody. Every basis function is a product of moments that are sums over neighbours, so with no
// neighbours all B_k are 0 and the atom keeps E = species_coeffs[t]: the "deleted" state is then
// species_coeffs[t] above the state without the atom, dE(delete) != -dE(insert), and detailed balance fails.
// `isolated zero` subtracts the isolated-atom energy E_iso(t) = species_coeffs[t] + sum_k xi_k B_k(empty) =
// species_coeffs[t] from every site: an excluded atom contributes exactly 0, insertion and deletion mirror
// each other, and fix gcmc's mu is the chemical potential relative to the isolated atom of the MTP. The
// shift is smooth (a constant per atom) and changes no force; the default keeps MLIP's absolute energies.
//
// Grades (mlip.md §1.7, neighbourhood mode, linear part only): the row of atom i is b_i = dE_i/d moment_coeffs
// = (B_1(i) .. B_m(i)), free here since the moments are evaluated anyway; with A the m x m active set of
// rows of atom i's species, gamma_i = max_j |(b_i A^-1)_j|. An atom with no neighbours has b = 0, gamma = 0.
#include "pair_mtp.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

using namespace LAMMPS_NS;
using namespace pbahpc;

namespace {

std::string trim(const std::string &s)
{
  const char *space = " \t\r\n";
  size_t a = s.find_first_not_of(space);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(space) - a + 1);
}

// The numbers of a "{...}" or "{{...}, ...}" value.
std::vector<double> numbers(const std::string &value)
{
  std::string cleaned = value;
  for (char &c : cleaned)
    if (c == '{' || c == '}' || c == ',') c = ' ';
  std::istringstream in(cleaned);
  std::vector<double> out;
  std::string word;
  while (in >> word) {
    char *end = nullptr;
    double v = std::strtod(word.c_str(), &end);
    if (*end != '\0') throw std::runtime_error("not a number: '" + word + "'");
    out.push_back(v);
  }
  return out;
}

std::vector<int> integers(const std::string &value)
{
  std::vector<int> out;
  for (double v : numbers(value)) {
    if (v != std::floor(v)) throw std::runtime_error("not an integer: " + std::to_string(v));
    out.push_back(static_cast<int>(v));
  }
  return out;
}

}  // namespace

MTPModel MTPModel::parse(const std::string &file_text)
{
  // MLIP-3 .almtp files carry a binary active set after "#MVS_v": not ours to read
  std::string text = file_text.substr(0, file_text.find("\n#MVS_v"));
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  if (trim(line) != "MTP") throw std::runtime_error("not an MTP file: the first line must be 'MTP'");
  std::map<std::string, std::string> values;
  std::vector<double> radial;
  while (std::getline(in, line)) {
    std::string s = trim(line);
    if (s.empty() || s == "radial_coeffs") continue;
    size_t eq = s.find('=');
    if (eq == std::string::npos) {
      if (s[0] == '{') {
        std::vector<double> row = numbers(s);
        radial.insert(radial.end(), row.begin(), row.end());
      } else if (s.find('-') == std::string::npos) {  // pair headers ("0-1") only announce rows
        throw std::runtime_error("cannot parse line '" + s + "'");
      }
      continue;
    }
    values[trim(s.substr(0, eq))] = trim(s.substr(eq + 1));
  }
  auto get = [&](const char *key) -> const std::string & {
    auto it = values.find(key);
    if (it == values.end()) throw std::runtime_error(std::string("missing key ") + key);
    return it->second;
  };
  auto integer = [&](const char *key) { return std::stoi(get(key)); };

  MTPModel m;
  if (get("radial_basis_type") != "RBChebyshev")
    throw std::runtime_error("radial_basis_type " + get("radial_basis_type") + " is not supported");
  m.species_count = integer("species_count");
  m.radial_basis_size = integer("radial_basis_size");
  m.radial_funcs_count = integer("radial_funcs_count");
  m.min_dist = std::stod(get("min_dist"));
  m.max_dist = std::stod(get("max_dist"));
  if (values.count("scaling")) m.scaling = std::stod(values["scaling"]);
  if (m.species_count < 1 || m.radial_basis_size < 2 || m.radial_funcs_count < 1 ||
      !(m.min_dist >= 0 && m.min_dist < m.max_dist))
    throw std::runtime_error("bad species_count, radial basis sizes or distances");
  m.moments_count = integer("alpha_moments_count");
  m.basic = integers(get("alpha_index_basic"));
  m.times = integers(get("alpha_index_times"));
  m.mapping = integers(get("alpha_moment_mapping"));
  if (m.basic.size() % 4 || m.times.size() % 4 ||
      static_cast<int>(m.basic.size() / 4) != integer("alpha_index_basic_count") ||
      static_cast<int>(m.times.size() / 4) != integer("alpha_index_times_count") ||
      static_cast<int>(m.mapping.size()) != integer("alpha_scalar_moments"))
    throw std::runtime_error("alpha_* counts do not match the index arrays");
  m.index();

  if (!values.count("species_coeffs") || !values.count("moment_coeffs") || radial.empty())
    throw std::runtime_error("the potential is not trained (no radial/species/moment coefficients)");
  m.radial_coeffs = radial;
  m.species_coeffs = numbers(values["species_coeffs"]);
  m.moment_coeffs = numbers(values["moment_coeffs"]);
  const size_t s = m.species_count;
  if (m.radial_coeffs.size() != s * s * m.radial_funcs_count * m.radial_basis_size)
    throw std::runtime_error("radial_coeffs has the wrong number of values");
  if (m.species_coeffs.size() != s || m.moment_coeffs.size() != m.mapping.size())
    throw std::runtime_error("species_coeffs or moment_coeffs has the wrong length");
  return m;
}

PairMTP::PairMTP(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairMTP::~PairMTP()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMTP::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
}

void PairMTP::settings(int narg, char **arg)
{
  species_names.clear();
  isolated_zero = false;
  active_set_file.clear();
  auto keyword = [](const std::string &w) { return w == "species" || w == "isolated" || w == "active_set"; };
  const char *usage = "Illegal pair_style mtp command: expected 'pair_style mtp [species E0 E1 ...] "
                      "[isolated species|zero|0] [active_set FILE]'";
  for (int iarg = 0; iarg < narg;) {
    const std::string word = arg[iarg++];
    if (word == "species") {
      while (iarg < narg && !keyword(arg[iarg])) species_names.emplace_back(arg[iarg++]);
      if (species_names.empty()) error->all(FLERR, usage);
    } else if (word == "isolated" && iarg < narg &&
               (std::strcmp(arg[iarg], "zero") == 0 || std::strcmp(arg[iarg], "0") == 0)) {
      isolated_zero = true;
      iarg++;
    } else if (word == "isolated" && iarg < narg && std::strcmp(arg[iarg], "species") == 0) {
      iarg++;
    } else if (word == "active_set" && iarg < narg) {
      active_set_file = arg[iarg++];
    } else {
      error->all(FLERR, usage);
    }
  }
}

// The pbahpc active-set text format (pbahpc/mlip/active_set.py): "pbahpc-active-set 1", "basis_size m",
// "species_count S", then per species s in order "species s", "rows" and m*m numbers (A, row-major),
// "inverse" and m*m numbers (A^-1, row-major). Only A^-1 is needed here.
/* ----------------------------------------------------------------------
   the whole file, read on rank 0 and broadcast: every rank parses the same bytes
------------------------------------------------------------------------- */

std::string PairMTP::read_everywhere(const std::string &path, const char *what)
{
  std::string text;
  long length = -1;
  if (comm->me == 0) {
    std::ifstream file(path, std::ios::binary);
    if (file) {
      std::ostringstream buffer;
      buffer << file.rdbuf();
      text = buffer.str();
      length = static_cast<long>(text.size());
    }
  }
  MPI_Bcast(&length, 1, MPI_LONG, 0, world);
  if (length < 0) error->all(FLERR, "Cannot open MTP {} file {}", what, path);
  text.resize(length);
  if (length) MPI_Bcast(&text[0], static_cast<int>(length), MPI_CHAR, 0, world);
  return text;
}

void PairMTP::read_active_set()
{
  active_inverse.clear();
  if (active_set_file.empty()) return;
  const std::string text = read_everywhere(active_set_file, "active set");
  std::istringstream in(text);
  const int m = static_cast<int>(model.mapping.size()), S = model.species_count;
  auto expect = [&](const std::string &word) {
    std::string got;
    if (!(in >> got) || got != word)
      error->all(FLERR, "MTP active set file {}: expected '{}', found '{}'", active_set_file, word, got);
  };
  auto integer = [&]() {
    long v = -1;
    if (!(in >> v)) error->all(FLERR, "MTP active set file {}: expected an integer", active_set_file);
    return v;
  };
  expect("pbahpc-active-set");
  if (integer() != 1) error->all(FLERR, "MTP active set file {}: unknown version", active_set_file);
  expect("basis_size");
  const long file_m = integer();
  expect("species_count");
  const long file_s = integer();
  if (file_m != m || file_s != S)
    error->all(FLERR, "MTP active set file {} is for {} basis functions and {} species, the potential has {} "
               "and {}", active_set_file, file_m, file_s, m, S);
  active_inverse.resize(static_cast<size_t>(S) * m * m);
  std::vector<double> skip(static_cast<size_t>(m) * m);
  for (int s = 0; s < S; s++) {
    expect("species");
    if (integer() != s) error->all(FLERR, "MTP active set file {}: species out of order", active_set_file);
    for (const char *block : {"rows", "inverse"}) {
      expect(block);
      double *out = block[0] == 'i' ? &active_inverse[static_cast<size_t>(s) * m * m] : skip.data();
      for (size_t k = 0; k < skip.size(); k++)
        if (!(in >> out[k])) error->all(FLERR, "MTP active set file {}: too few numbers", active_set_file);
    }
  }
  grade_row.resize(m);
}

void PairMTP::coeff(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR, "Illegal pair_coeff command: expected 'pair_coeff * * file.mtp' and {} type words",
               ntypes);
  if (std::strcmp(arg[0], "*") != 0 || std::strcmp(arg[1], "*") != 0)
    error->all(FLERR, "Pair style mtp takes 'pair_coeff * * ...' only");
  if (!allocated) allocate();

  // read on one rank, parse everywhere: identical models, and errors raised on all ranks together
  const std::string text = read_everywhere(arg[2], "potential");
  try {
    model = MTPModel::parse(text);
  } catch (std::exception &e) {
    error->all(FLERR, "MTP potential file {}: {}", arg[2], e.what());
  }
  if (!species_names.empty() && static_cast<int>(species_names.size()) != model.species_count)
    error->all(FLERR, "pair_style mtp species lists {} elements, {} has {} species", species_names.size(),
               arg[2], model.species_count);

  type_species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string word = arg[2 + t];
    if (word == "NULL") continue;
    for (size_t s = 0; s < species_names.size(); s++)
      if (species_names[s] == word) type_species[t] = static_cast<int>(s);
    if (type_species[t] < 0) {
      char *end = nullptr;
      long s = std::strtol(word.c_str(), &end, 10);
      if (*end != '\0' || word.empty() || s < 0 || s >= model.species_count)
        error->all(FLERR, "pair_coeff mtp: type {} is '{}': not in the pair_style species list and not a "
                   "species index 0..{}", t, word, model.species_count - 1);
      type_species[t] = static_cast<int>(s);
    }
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = 1; j <= ntypes; j++) setflag[i][j] = type_species[i] >= 0 && type_species[j] >= 0;

  read_active_set();
  work.moment.resize(model.moments_count);
  work.moment_grad.resize(model.moments_count);
}

void PairMTP::init_style()
{
  if (force->newton_pair == 0) error->all(FLERR, "Pair style mtp requires newton pair on");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairMTP::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return model.max_dist;
}

// Energy of a centre of species `si` whose `count` neighbours are in work.nb_r/nb_u/nb_species, and
// work.nb_grad = dE/d(r_j - r_i) per neighbour (mtp_kernels.h).
double PairMTP::site(int si, int count)
{
  const MTPModel &m = model;
  if (count == 0) return m.species_coeffs[si];  // no neighbours: every moment, hence every basis function, is 0
  work.N = count;
  site_forward(m, work, si);
  double energy = m.species_coeffs[si];
  for (size_t k = 0; k < m.mapping.size(); k++) energy += m.moment_coeffs[k] * work.moment[m.mapping[k]];
  std::fill(work.moment_grad.begin(), work.moment_grad.end(), 0.0);
  for (size_t k = 0; k < m.mapping.size(); k++) work.moment_grad[m.mapping[k]] += m.moment_coeffs[k];
  program_backward(m, work);
  site_gradient(m, work);
  return energy;
}

// gamma = max_j |(b A^-1)_j| for the moments site() left in `moment` (count > 0) or b = 0 (count == 0)
double PairMTP::site_grade(int si, int count)
{
  if (count == 0) return 0.0;
  const int m = static_cast<int>(model.mapping.size());
  const double *inverse = &active_inverse[static_cast<size_t>(si) * m * m];
  std::fill(grade_row.begin(), grade_row.end(), 0.0);
  for (int k = 0; k < m; k++) {
    const double b = work.moment[model.mapping[k]];
    const double *row = inverse + static_cast<size_t>(k) * m;
    for (int j = 0; j < m; j++) grade_row[j] += b * row[j];
  }
  double gamma = 0.0;
  for (double c : grade_row) gamma = std::max(gamma, std::fabs(c));
  return gamma;
}

void PairMTP::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  const bool grading = has_active_set();
  if (grading) {
    grade.assign(atom->nlocal, 0.0);
    grade_step = update->ntimestep;
  }
  double **x = atom->x, **f = atom->f;
  const int *type = atom->type;
  const int nlocal = atom->nlocal, newton_pair = force->newton_pair;
  const double cut2 = model.max_dist * model.max_dist;

  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const int si = type_species[type[i]];
    if (si < 0) continue;
    const int *jlist = list->firstneigh[i];
    const int jnum = list->numneigh[i];
    nb_j.resize(jnum);
    work.nb_species.resize(jnum);
    work.nb_r.resize(jnum);
    work.nb_u.resize(3 * jnum);
    int count = 0;
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const int sj = type_species[type[j]];
      if (sj < 0) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cut2) continue;
      const double r = std::sqrt(rsq);
      nb_j[count] = j;
      work.nb_species[count] = sj;
      work.nb_r[count] = r;
      work.nb_u[3 * count] = dx / r;
      work.nb_u[3 * count + 1] = dy / r;
      work.nb_u[3 * count + 2] = dz / r;
      count++;
    }
    const double energy = site(si, count) - (isolated_zero ? model.species_coeffs[si] : 0.0);
    if (grading) grade[i] = site_grade(si, count);
    if (eflag_global) eng_vdwl += energy;
    if (eflag_atom) eatom[i] += energy;
    for (int n = 0; n < count; n++) {
      const int j = nb_j[n];
      const double *grad = work.nb_grad.data();
      const double g[3] = {grad[count + n], grad[2 * count + n], grad[3 * count + n]};
      f[i][0] += g[0];
      f[i][1] += g[1];
      f[i][2] += g[2];
      f[j][0] -= g[0];
      f[j][1] -= g[1];
      f[j][2] -= g[2];
      // the pair (i, j) with force g on i: virial -(r_j - r_i) g, half to each atom per atom
      if (vflag_either) {
        const double r = work.nb_r[n], *u = &work.nb_u[3 * n];
        ev_tally_xyz(i, j, nlocal, newton_pair, 0.0, 0.0, g[0], g[1], g[2], -r * u[0], -r * u[1], -r * u[2]);
      }
    }
  }
  if (vflag_fdotr) virial_fdotr_compute();
}

ComputeMTPGrade::ComputeMTPGrade(LAMMPS *lmp, int narg, char **arg) : Compute(lmp, narg, arg)
{
  if (narg != 3) error->all(FLERR, "Illegal compute mtp/grade command: expected 'compute ID group mtp/grade'");
  peratom_flag = 1;
  size_peratom_cols = 0;
}

ComputeMTPGrade::~ComputeMTPGrade()
{
  memory->destroy(values);
}

void ComputeMTPGrade::init()
{
  pair = dynamic_cast<PairMTP *>(force->pair_match("mtp", 1));
  if (pair == nullptr) error->all(FLERR, "compute mtp/grade requires pair_style mtp");
  if (!pair->has_active_set()) error->all(FLERR, "compute mtp/grade requires pair_style mtp ... active_set FILE");
}

void ComputeMTPGrade::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  if (atom->nmax > nmax) {
    memory->destroy(values);
    nmax = atom->nmax;
    memory->create(values, nmax, "mtp/grade:values");
    vector_atom = values;
  }
  bigint step = -1;
  const std::vector<double> &grade = pair->grades(step);
  // the grades belong to the local atoms of the last pair evaluation; only at this timestep is that the
  // current atom order
  if (step != update->ntimestep || static_cast<int>(grade.size()) != atom->nlocal)
    error->all(FLERR, "compute mtp/grade: pair mtp has no grades for step {} (last evaluated at step {})",
               update->ntimestep, step);
  for (int i = 0; i < atom->nlocal; i++) values[i] = (atom->mask[i] & groupbit) ? grade[i] : 0.0;
}

double ComputeMTPGrade::memory_usage()
{
  return static_cast<double>(nmax) * sizeof(double);
}
