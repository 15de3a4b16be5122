// The MTP site kernels shared by pair_style mtp (pair_mtp.cpp) and the trainer's evaluator (mtp_train.cpp):
// one centre atom and its neighbours within max_dist, the math of mlip.md §1.3. No LAMMPS dependency.
//
// site_forward: radial functions f_mu(r) = sum_beta c_beta T_beta(s) scaling (max_dist - r)^2 and f'_mu,
// the powers of the unit-vector components, the distinct monomials x^a y^b z^c of the basic moments, the
// basic moments M_b = sum_j f_mu(r_j) x^a y^b z^c and the alpha_index_times program (all moments).
// program_backward: given dE/dM at any moments (moment_grad), runs the program backwards to the basic
// moments. site_gradient: the chain rule from dE/dM_b to dE/d(r_j - r_i) per neighbour (nb_grad).
// Per-neighbour quantities are stored neighbour-fastest ([mu][n], [q][n]) so that the loops over
// neighbours are contiguous and vectorise.
#ifndef PBAHPC_MTP_KERNELS_H
#define PBAHPC_MTP_KERNELS_H

#include <algorithm>
#include <stdexcept>
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
  // Check the index arrays and derive max_degree, monomials, basic_monomial; throws std::runtime_error.
  void index();
};

// Work space of one site, reused across sites. The caller fills nb_species, nb_r and nb_u (3 per neighbour).
struct SiteWork {
  std::vector<int> nb_species;
  std::vector<double> nb_r, nb_inv_r, nb_u;
  // f_mu, df_mu/dr, powers of u, monomials of u, dE/d(r_j - r_i) ([radial part, x, y, z][n])
  std::vector<double> nb_f, nb_df, nb_pow, nb_mono, nb_grad;
  std::vector<double> nb_cheb, nb_dcheb, nb_w, nb_dw;  // keep_radial: T_beta, dT_beta/dr ([beta][n]), w, dw/dr
  std::vector<double> mono_grad, mono_dgrad;  // [q][n]: sums of dE/dM_b f_mu and dE/dM_b df_mu/dr
  std::vector<double> cheb, dcheb, moment, moment_grad;
  int D = 0, N = 0;  // max_degree + 1, neighbours
  const double *power(int axis, int e) const { return &nb_pow[(axis * D + e) * N]; }
};

inline void MTPModel::index()
{
  const int nbasic = static_cast<int>(basic.size() / 4), ntimes = static_cast<int>(times.size() / 4);
  if (basic.size() % 4 || times.size() % 4 || moments_count < nbasic)
    throw std::runtime_error("alpha_* counts do not match the index arrays");
  max_degree = 0;
  monomials.clear();
  basic_monomial.clear();
  for (int b = 0; b < nbasic; b++) {
    const int *row = &basic[4 * b];
    if (row[0] < 0 || row[0] >= radial_funcs_count || row[1] < 0 || row[2] < 0 || row[3] < 0)
      throw std::runtime_error("alpha_index_basic row " + std::to_string(b) + " is invalid");
    max_degree = std::max(max_degree, row[1] + row[2] + row[3]);
    int q = 0;
    while (q < static_cast<int>(monomials.size()) / 3 && !std::equal(row + 1, row + 4, monomials.begin() + 3 * q))
      q++;
    if (3 * q == static_cast<int>(monomials.size())) monomials.insert(monomials.end(), row + 1, row + 4);
    basic_monomial.push_back(q);
  }
  // running the program backwards for forces needs every moment complete before it is read
  std::vector<char> written(moments_count, 0), read(moments_count, 0);
  for (int b = 0; b < nbasic; b++) written[b] = 1;
  for (int t = 0; t < ntimes; t++) {
    const int i = times[4 * t], j = times[4 * t + 1], k = times[4 * t + 3];
    if (i < 0 || j < 0 || k < nbasic || i >= moments_count || j >= moments_count || k >= moments_count ||
        !written[i] || !written[j] || read[k] || k == i || k == j)
      throw std::runtime_error("alpha_index_times entry " + std::to_string(t) + " is out of order or range");
    read[i] = read[j] = 1;
    written[k] = 1;
  }
  for (int k : mapping)
    if (k < 0 || k >= moments_count)
      throw std::runtime_error("alpha_moment_mapping refers to a moment that does not exist");
}

// Everything up to the moments of a centre of species si with w.N > 0 neighbours.
inline void site_forward(const MTPModel &m, SiteWork &w, int si, bool keep_radial = false)
{
  const int S = m.species_count, R = m.radial_funcs_count, B = m.radial_basis_size, N = w.N;
  const int D = w.D = m.max_degree + 1;
  const int nbasic = static_cast<int>(m.basic.size() / 4), ntimes = static_cast<int>(m.times.size() / 4);
  const int Q = static_cast<int>(m.monomials.size() / 3);
  w.nb_f.resize(R * N);
  w.nb_df.resize(R * N);
  w.nb_pow.resize(3 * D * N);
  w.nb_mono.resize(Q * N);
  w.cheb.resize(B);
  w.dcheb.resize(B);
  w.moment.resize(m.moments_count);
  if (keep_radial) {
    w.nb_cheb.resize(B * N);
    w.nb_dcheb.resize(B * N);
    w.nb_w.resize(N);
    w.nb_dw.resize(N);
  }
  double *cheb = w.cheb.data(), *dcheb = w.dcheb.data();

  // radial functions and powers of the unit-vector components ([axis][power][n])
  const double span = m.max_dist - m.min_dist, ds = 2.0 / span;
  for (int n = 0; n < N; n++) {
    const double r = w.nb_r[n], s = (2.0 * r - (m.min_dist + m.max_dist)) / span;
    cheb[0] = 1.0;
    dcheb[0] = 0.0;
    cheb[1] = s;
    dcheb[1] = 1.0;
    for (int b = 2; b < B; b++) {
      cheb[b] = 2.0 * s * cheb[b - 1] - cheb[b - 2];
      dcheb[b] = 2.0 * cheb[b - 1] + 2.0 * s * dcheb[b - 1] - dcheb[b - 2];
    }
    const double d = m.max_dist - r, wt = m.scaling * d * d, dwt = -2.0 * m.scaling * d;
    if (keep_radial) {
      for (int b = 0; b < B; b++) {
        w.nb_cheb[b * N + n] = cheb[b];
        w.nb_dcheb[b * N + n] = dcheb[b] * ds;
      }
      w.nb_w[n] = wt;
      w.nb_dw[n] = dwt;
    }
    const double *c = &m.radial_coeffs[(static_cast<size_t>(si) * S + w.nb_species[n]) * R * B];
    for (int mu = 0; mu < R; mu++, c += B) {
      double v = 0.0, dv = 0.0;
      for (int b = 0; b < B; b++) {
        v += c[b] * cheb[b];
        dv += c[b] * dcheb[b];
      }
      w.nb_f[mu * N + n] = v * wt;
      w.nb_df[mu * N + n] = dv * ds * wt + v * dwt;
    }
    for (int axis = 0; axis < 3; axis++) {
      double *p = &w.nb_pow[axis * D * N + n];
      p[0] = 1.0;
      for (int e = 1; e < D; e++) p[e * N] = p[(e - 1) * N] * w.nb_u[3 * n + axis];
    }
  }

  // basic moments, then the program
  for (int q = 0; q < Q; q++) {
    const int *e = &m.monomials[3 * q];
    const double *px = w.power(0, e[0]), *py = w.power(1, e[1]), *pz = w.power(2, e[2]);
    double *mono = &w.nb_mono[q * N];
    for (int n = 0; n < N; n++) mono[n] = px[n] * py[n] * pz[n];
  }
  std::fill(w.moment.begin(), w.moment.end(), 0.0);
  for (int b = 0; b < nbasic; b++) {
    const double *f = &w.nb_f[m.basic[4 * b] * N], *mono = &w.nb_mono[m.basic_monomial[b] * N];
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += f[n] * mono[n];
    w.moment[b] = sum;
  }
  for (int t = 0; t < ntimes; t++) {
    const int *e = &m.times[4 * t];
    w.moment[e[3]] += e[2] * w.moment[e[0]] * w.moment[e[1]];
  }
}

// moment_grad = dE/dM, given at any moments, backwards through the program: moment k is final before any
// entry reads it.
inline void program_backward(const MTPModel &m, SiteWork &w)
{
  for (int t = static_cast<int>(m.times.size() / 4) - 1; t >= 0; t--) {
    const int *e = &m.times[4 * t];
    const double g = e[2] * w.moment_grad[e[3]];
    w.moment_grad[e[0]] += g * w.moment[e[1]];
    w.moment_grad[e[1]] += g * w.moment[e[0]];
  }
}

// chain rule: d[f(r) u_x^a u_y^b u_z^c]/d(r_vec) = u (f' mono - f (a+b+c) mono / r) + f/r (a u_x^(a-1).., ..);
// first sum dE/dM_b f_mu and dE/dM_b f'_mu per monomial and neighbour. Fills nb_grad from moment_grad.
inline void site_gradient(const MTPModel &m, SiteWork &w)
{
  const int N = w.N, nbasic = static_cast<int>(m.basic.size() / 4), Q = static_cast<int>(m.monomials.size() / 3);
  w.mono_grad.assign(Q * N, 0.0);
  w.mono_dgrad.assign(Q * N, 0.0);
  for (int b = 0; b < nbasic; b++) {
    const double g = w.moment_grad[b];
    const double *f = &w.nb_f[m.basic[4 * b] * N], *df = &w.nb_df[m.basic[4 * b] * N];
    double *h = &w.mono_grad[m.basic_monomial[b] * N], *hd = &w.mono_dgrad[m.basic_monomial[b] * N];
    for (int n = 0; n < N; n++) {
      h[n] += g * f[n];
      hd[n] += g * df[n];
    }
  }
  w.nb_inv_r.resize(N);
  for (int n = 0; n < N; n++) w.nb_inv_r[n] = 1.0 / w.nb_r[n];
  w.nb_grad.assign(4 * N, 0.0);  // [radial part, x, y, z][n]
  double *radial = &w.nb_grad[0], *v[3] = {&w.nb_grad[N], &w.nb_grad[2 * N], &w.nb_grad[3 * N]};
  for (int q = 0; q < Q; q++) {
    const int *e = &m.monomials[3 * q];
    const double *h = &w.mono_grad[q * N], *hd = &w.mono_dgrad[q * N], *mono = &w.nb_mono[q * N];
    const int degree = e[0] + e[1] + e[2];
    for (int n = 0; n < N; n++) radial[n] += (hd[n] - degree * h[n] * w.nb_inv_r[n]) * mono[n];
    for (int axis = 0; axis < 3; axis++) {
      if (e[axis] == 0) continue;
      int lower[3] = {e[0], e[1], e[2]};
      lower[axis]--;
      const double *px = w.power(0, lower[0]), *py = w.power(1, lower[1]), *pz = w.power(2, lower[2]);
      double *out = v[axis];
      for (int n = 0; n < N; n++) out[n] += e[axis] * h[n] * px[n] * py[n] * pz[n];
    }
  }
  for (int axis = 0; axis < 3; axis++)
    for (int n = 0; n < N; n++) v[axis][n] = w.nb_u[3 * n + axis] * radial[n] + v[axis][n] * w.nb_inv_r[n];
}

}  // namespace pbahpc

#endif
