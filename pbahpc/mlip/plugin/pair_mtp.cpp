// pair_style mtp: see pair_mtp.h for the commands; the math is mlip.md §1.3.
//
// Per local atom i: f_mu(r_ij) and the unit vectors of its neighbours within max_dist, the basic moments
// M_b = sum_j f_mu(r_ij) x^a y^b z^c (each distinct x^a y^b z^c evaluated once per neighbour), the
// alpha_index_times program,
// E_i = species_coeffs[t_i] + sum_k moment_coeffs[k] M[mapping[k]]. Forces: dE_i/dM for every moment by
// running the program backwards, then the chain rule to each neighbour's displacement, applied to i and
// to j (ghosts included: newton on, LAMMPS reverse-communicates ghost forces).
#include "pair_mtp.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"

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
  const int nbasic = static_cast<int>(m.basic.size() / 4), ntimes = static_cast<int>(m.times.size() / 4);
  if (m.basic.size() % 4 || m.times.size() % 4 || nbasic != integer("alpha_index_basic_count") ||
      ntimes != integer("alpha_index_times_count") ||
      static_cast<int>(m.mapping.size()) != integer("alpha_scalar_moments") || m.moments_count < nbasic)
    throw std::runtime_error("alpha_* counts do not match the index arrays");
  for (int b = 0; b < nbasic; b++) {
    const int *row = &m.basic[4 * b];
    if (row[0] < 0 || row[0] >= m.radial_funcs_count || row[1] < 0 || row[2] < 0 || row[3] < 0)
      throw std::runtime_error("alpha_index_basic row " + std::to_string(b) + " is invalid");
    m.max_degree = std::max(m.max_degree, row[1] + row[2] + row[3]);
    int q = 0;
    while (q < static_cast<int>(m.monomials.size()) / 3 &&
           !std::equal(row + 1, row + 4, m.monomials.begin() + 3 * q))
      q++;
    if (3 * q == static_cast<int>(m.monomials.size())) m.monomials.insert(m.monomials.end(), row + 1, row + 4);
    m.basic_monomial.push_back(q);
  }
  // running the program backwards for forces needs every moment complete before it is read
  std::vector<char> written(m.moments_count, 0), read(m.moments_count, 0);
  for (int b = 0; b < nbasic; b++) written[b] = 1;
  for (int t = 0; t < ntimes; t++) {
    const int i = m.times[4 * t], j = m.times[4 * t + 1], k = m.times[4 * t + 3];
    if (i < 0 || j < 0 || k < nbasic || i >= m.moments_count || j >= m.moments_count ||
        k >= m.moments_count || !written[i] || !written[j] || read[k] || k == i || k == j)
      throw std::runtime_error("alpha_index_times entry " + std::to_string(t) + " is out of order or range");
    read[i] = read[j] = 1;
    written[k] = 1;
  }
  for (int k : m.mapping)
    if (k < 0 || k >= m.moments_count)
      throw std::runtime_error("alpha_moment_mapping refers to a moment that does not exist");

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
  if (narg == 0) return;
  if (std::strcmp(arg[0], "species") != 0 || narg < 2)
    error->all(FLERR, "Illegal pair_style mtp command: expected 'pair_style mtp [species E0 E1 ...]'");
  species_names.assign(arg + 1, arg + narg);
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
  std::string text;
  long length = -1;
  if (comm->me == 0) {
    std::ifstream file(arg[2], std::ios::binary);
    if (file) {
      std::ostringstream buffer;
      buffer << file.rdbuf();
      text = buffer.str();
      length = static_cast<long>(text.size());
    }
  }
  MPI_Bcast(&length, 1, MPI_LONG, 0, world);
  if (length < 0) error->all(FLERR, "Cannot open MTP potential file {}", arg[2]);
  text.resize(length);
  MPI_Bcast(&text[0], static_cast<int>(length), MPI_CHAR, 0, world);
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

  const size_t moments = model.moments_count;
  moment.resize(moments);
  moment_grad.resize(moments);
  cheb.resize(model.radial_basis_size);
  dcheb.resize(model.radial_basis_size);
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

// Energy of a centre of species `si` whose `count` neighbours are in nb_r/nb_u/nb_species, and
// nb_grad = dE/d(r_j - r_i) per neighbour. Per-neighbour quantities are stored neighbour-fastest
// ([mu][n], [q][n]) so that the loops over neighbours are contiguous and vectorise.
double PairMTP::site(int si, int count)
{
  const MTPModel &m = model;
  if (count == 0) return m.species_coeffs[si];  // no neighbours: every moment, hence every basis function, is 0
  const int S = m.species_count, R = m.radial_funcs_count, B = m.radial_basis_size, D = m.max_degree + 1;
  const int nbasic = static_cast<int>(m.basic.size() / 4), ntimes = static_cast<int>(m.times.size() / 4);
  const int Q = static_cast<int>(m.monomials.size() / 3), N = count;
  nb_f.resize(R * N);
  nb_df.resize(R * N);
  nb_pow.resize(3 * D * N);
  nb_mono.resize(Q * N);

  // radial functions and powers of the unit-vector components ([axis][power][n])
  const double span = m.max_dist - m.min_dist, ds = 2.0 / span;
  for (int n = 0; n < N; n++) {
    const double r = nb_r[n], s = (2.0 * r - (m.min_dist + m.max_dist)) / span;
    cheb[0] = 1.0;
    dcheb[0] = 0.0;
    cheb[1] = s;
    dcheb[1] = 1.0;
    for (int b = 2; b < B; b++) {
      cheb[b] = 2.0 * s * cheb[b - 1] - cheb[b - 2];
      dcheb[b] = 2.0 * cheb[b - 1] + 2.0 * s * dcheb[b - 1] - dcheb[b - 2];
    }
    const double d = m.max_dist - r, w = m.scaling * d * d, dw = -2.0 * m.scaling * d;
    const double *c = &m.radial_coeffs[(static_cast<size_t>(si) * S + nb_species[n]) * R * B];
    for (int mu = 0; mu < R; mu++, c += B) {
      double v = 0.0, dv = 0.0;
      for (int b = 0; b < B; b++) {
        v += c[b] * cheb[b];
        dv += c[b] * dcheb[b];
      }
      nb_f[mu * N + n] = v * w;
      nb_df[mu * N + n] = dv * ds * w + v * dw;
    }
    for (int axis = 0; axis < 3; axis++) {
      double *p = &nb_pow[axis * D * N + n];
      p[0] = 1.0;
      for (int e = 1; e < D; e++) p[e * N] = p[(e - 1) * N] * nb_u[3 * n + axis];
    }
  }
  auto power = [&](int axis, int e) { return &nb_pow[(axis * D + e) * N]; };

  // basic moments, then the program
  for (int q = 0; q < Q; q++) {
    const int *e = &m.monomials[3 * q];
    const double *px = power(0, e[0]), *py = power(1, e[1]), *pz = power(2, e[2]);
    double *mono = &nb_mono[q * N];
    for (int n = 0; n < N; n++) mono[n] = px[n] * py[n] * pz[n];
  }
  std::fill(moment.begin(), moment.end(), 0.0);
  for (int b = 0; b < nbasic; b++) {
    const double *f = &nb_f[m.basic[4 * b] * N], *mono = &nb_mono[m.basic_monomial[b] * N];
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += f[n] * mono[n];
    moment[b] = sum;
  }
  for (int t = 0; t < ntimes; t++) {
    const int *e = &m.times[4 * t];
    moment[e[3]] += e[2] * moment[e[0]] * moment[e[1]];
  }
  double energy = m.species_coeffs[si];
  for (size_t k = 0; k < m.mapping.size(); k++) energy += m.moment_coeffs[k] * moment[m.mapping[k]];

  // dE/dM, backwards through the program: moment k is final before any entry reads it
  std::fill(moment_grad.begin(), moment_grad.end(), 0.0);
  for (size_t k = 0; k < m.mapping.size(); k++) moment_grad[m.mapping[k]] += m.moment_coeffs[k];
  for (int t = ntimes - 1; t >= 0; t--) {
    const int *e = &m.times[4 * t];
    const double g = e[2] * moment_grad[e[3]];
    moment_grad[e[0]] += g * moment[e[1]];
    moment_grad[e[1]] += g * moment[e[0]];
  }

  // chain rule: d[f(r) u_x^a u_y^b u_z^c]/d(r_vec) = u (f' mono - f (a+b+c) mono / r) + f/r (a u_x^(a-1).., ..);
  // first sum dE/dM_b f_mu and dE/dM_b f'_mu per monomial and neighbour
  mono_grad.assign(Q * N, 0.0);
  mono_dgrad.assign(Q * N, 0.0);
  for (int b = 0; b < nbasic; b++) {
    const double g = moment_grad[b];
    const double *f = &nb_f[m.basic[4 * b] * N], *df = &nb_df[m.basic[4 * b] * N];
    double *h = &mono_grad[m.basic_monomial[b] * N], *hd = &mono_dgrad[m.basic_monomial[b] * N];
    for (int n = 0; n < N; n++) {
      h[n] += g * f[n];
      hd[n] += g * df[n];
    }
  }
  nb_inv_r.resize(N);
  for (int n = 0; n < N; n++) nb_inv_r[n] = 1.0 / nb_r[n];
  nb_grad.assign(4 * N, 0.0);  // [radial part, x, y, z][n]
  double *radial = &nb_grad[0], *v[3] = {&nb_grad[N], &nb_grad[2 * N], &nb_grad[3 * N]};
  for (int q = 0; q < Q; q++) {
    const int *e = &m.monomials[3 * q];
    const double *h = &mono_grad[q * N], *hd = &mono_dgrad[q * N], *mono = &nb_mono[q * N];
    const int degree = e[0] + e[1] + e[2];
    for (int n = 0; n < N; n++) radial[n] += (hd[n] - degree * h[n] * nb_inv_r[n]) * mono[n];
    for (int axis = 0; axis < 3; axis++) {
      if (e[axis] == 0) continue;
      int lower[3] = {e[0], e[1], e[2]};
      lower[axis]--;
      const double *px = power(0, lower[0]), *py = power(1, lower[1]), *pz = power(2, lower[2]);
      double *out = v[axis];
      for (int n = 0; n < N; n++) out[n] += e[axis] * h[n] * px[n] * py[n] * pz[n];
    }
  }
  for (int axis = 0; axis < 3; axis++)
    for (int n = 0; n < N; n++) v[axis][n] = nb_u[3 * n + axis] * radial[n] + v[axis][n] * nb_inv_r[n];
  return energy;
}

void PairMTP::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
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
    nb_species.resize(jnum);
    nb_r.resize(jnum);
    nb_u.resize(3 * jnum);
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
      nb_species[count] = sj;
      nb_r[count] = r;
      nb_u[3 * count] = dx / r;
      nb_u[3 * count + 1] = dy / r;
      nb_u[3 * count + 2] = dz / r;
      count++;
    }
    const double energy = site(si, count);
    if (eflag_global) eng_vdwl += energy;
    if (eflag_atom) eatom[i] += energy;
    for (int n = 0; n < count; n++) {
      const int j = nb_j[n];
      const double g[3] = {nb_grad[count + n], nb_grad[2 * count + n], nb_grad[3 * count + n]};
      f[i][0] += g[0];
      f[i][1] += g[1];
      f[i][2] += g[2];
      f[j][0] -= g[0];
      f[j][1] -= g[1];
      f[j][2] -= g[2];
      // the pair (i, j) with force g on i: virial -(r_j - r_i) g, half to each atom per atom
      if (vflag_either) {
        const double r = nb_r[n];
        ev_tally_xyz(i, j, nlocal, newton_pair, 0.0, 0.0, g[0], g[1], g[2], -r * nb_u[3 * n],
                     -r * nb_u[3 * n + 1], -r * nb_u[3 * n + 2]);
      }
    }
  }
  if (vflag_fdotr) virial_fdotr_compute();
}
