// The trainer's evaluator (pbahpc/mlip/evaluator.py): per configuration, on the site kernels pair_style mtp
// uses (mtp_kernels.h), with a C interface for ctypes.
//
// mtp_train_design: the linear design of E, forces and stress in the moment coefficients: basis values
// b_k = sum_i B_k(i), db_k/dR_i (forces are -theta . db/dR) and sum_n dB_k/dr_n (x) r_n (stress x volume,
// not yet symmetrised). Forward mode: dM/dr_n of the basic moments, then through the program for every
// moment (cheaper than one backward sweep per basis function once there are more than a few).
//
// mtp_train_radial: the derivative over the radial coefficients c of
//   Phi = a sum_i E_i + sum_i sum_n dE_i/dr_n . d_n,   d_n = D_j - D_i + G r_n,
// i.e. of a weighted energy plus the directional derivative of the energy along per-atom displacements D
// and a homogeneous strain G. With a, D and G the residuals of energy, forces and stress (times their
// weights) this is the loss gradient, without the n_radial x 3N Jacobian motep's train mode forms:
// forward mode along d through the moments (DM), then reverse mode through both the program and its
// tangent (the Hessian-vector product Dg of dE/dM), and per neighbour
//   dPhi/dc_beta = sum_b (a g_b + Dg_b) dM_b/dc_beta + g_b dDM_b/dc_beta.
#include "mtp_kernels.h"

#include <cmath>
#include <cstring>
#include <exception>

using namespace pbahpc;

namespace {

struct Evaluator {
  MTPModel model;
  SiteWork work;
  std::vector<int> nb_j;
  std::vector<double> nb_vec, g_bar, dm, dg, dmono, ud, amu, cmu;
  std::vector<double> jac;  // [moment][axis][n]: dM/dr_n

  // the neighbours of atom i within max_dist from motep's padded layout (js -1 / beyond the cutoff: none)
  void gather(int i, int maxnb, const int *js, const double *rs, const int *itypes)
  {
    work.nb_species.resize(maxnb);
    work.nb_r.resize(maxnb);
    work.nb_u.resize(3 * maxnb);
    nb_j.resize(maxnb);
    nb_vec.resize(3 * maxnb);
    int count = 0;
    for (int k = 0; k < maxnb; k++) {
      const int j = js[static_cast<size_t>(i) * maxnb + k];
      if (j < 0) continue;
      const double *r = &rs[(static_cast<size_t>(i) * maxnb + k) * 3];
      const double d = std::sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
      if (d >= model.max_dist) continue;
      nb_j[count] = j;
      work.nb_species[count] = itypes[j];
      work.nb_r[count] = d;
      for (int a = 0; a < 3; a++) {
        nb_vec[3 * count + a] = r[a];
        work.nb_u[3 * count + a] = r[a] / d;
      }
      count++;
    }
    work.N = count;
  }
};

}  // namespace

extern "C" {

// NULL on bad input, with the reason in err (errlen bytes).
void *mtp_train_new(int species, int radial_funcs, int radial_basis, double min_dist, double max_dist, double scaling,
                    int moments, int nbasic, const int *basic, int ntimes, const int *times, int nscalar,
                    const int *mapping, char *err, int errlen)
{
  auto *e = new Evaluator;
  MTPModel &m = e->model;
  m.species_count = species;
  m.radial_funcs_count = radial_funcs;
  m.radial_basis_size = radial_basis;
  m.min_dist = min_dist;
  m.max_dist = max_dist;
  m.scaling = scaling;
  m.moments_count = moments;
  m.basic.assign(basic, basic + 4 * nbasic);
  m.times.assign(times, times + 4 * ntimes);
  m.mapping.assign(mapping, mapping + nscalar);
  m.radial_coeffs.assign(static_cast<size_t>(species) * species * radial_funcs * radial_basis, 0.0);
  m.moment_coeffs.assign(nscalar, 0.0);
  m.species_coeffs.assign(species, 0.0);
  try {
    m.index();
  } catch (std::exception &x) {
    std::strncpy(err, x.what(), errlen - 1);
    err[errlen - 1] = '\0';
    delete e;
    return nullptr;
  }
  e->work.moment.resize(moments);
  e->work.moment_grad.resize(moments);
  return e;
}

void mtp_train_free(void *h) { delete static_cast<Evaluator *>(h); }

void mtp_train_set(void *h, const double *radial_coeffs, const double *moment_coeffs)
{
  MTPModel &m = static_cast<Evaluator *>(h)->model;
  std::copy(radial_coeffs, radial_coeffs + m.radial_coeffs.size(), m.radial_coeffs.begin());
  std::copy(moment_coeffs, moment_coeffs + m.moment_coeffs.size(), m.moment_coeffs.begin());
}

// values (nscalar), dbdr (nscalar x natoms x 3) and dbdeps (nscalar x 3 x 3), all zeroed here
void mtp_train_design(void *h, int natoms, int maxnb, const int *js, const double *rs, const int *itypes,
                      double *values, double *dbdr, double *dbdeps)
{
  auto *e = static_cast<Evaluator *>(h);
  const MTPModel &m = e->model;
  SiteWork &w = e->work;
  const int K = static_cast<int>(m.mapping.size());
  std::fill(values, values + K, 0.0);
  std::fill(dbdr, dbdr + static_cast<size_t>(K) * natoms * 3, 0.0);
  std::fill(dbdeps, dbdeps + 9 * K, 0.0);
  for (int i = 0; i < natoms; i++) {
    e->gather(i, maxnb, js, rs, itypes);
    const int N = w.N;
    if (N == 0) continue;  // every basis function is 0
    site_forward(m, w, itypes[i]);
    // basic moments: d[f(r) mono(u)]/dr_vec = u (f' mono - deg f mono / r) + f/r dmono/du
    const int nbasic = static_cast<int>(m.basic.size() / 4), ntimes = static_cast<int>(m.times.size() / 4);
    std::vector<double> &jac = e->jac;
    jac.assign(static_cast<size_t>(m.moments_count) * 3 * N, 0.0);
    for (int b = 0; b < nbasic; b++) {
      const int *ex = &m.basic[4 * b + 1], q = m.basic_monomial[b];
      const int degree = ex[0] + ex[1] + ex[2];
      const double *f = &w.nb_f[m.basic[4 * b] * N], *df = &w.nb_df[m.basic[4 * b] * N], *mono = &w.nb_mono[q * N];
      double *out = &jac[static_cast<size_t>(b) * 3 * N];
      for (int n = 0; n < N; n++) {
        const double radial = (df[n] - degree * f[n] / w.nb_r[n]) * mono[n];
        for (int axis = 0; axis < 3; axis++) out[axis * N + n] = radial * w.nb_u[3 * n + axis];
      }
      for (int axis = 0; axis < 3; axis++) {
        if (ex[axis] == 0) continue;
        int lower[3] = {ex[0], ex[1], ex[2]};
        lower[axis]--;
        const double *px = w.power(0, lower[0]), *py = w.power(1, lower[1]), *pz = w.power(2, lower[2]);
        for (int n = 0; n < N; n++) out[axis * N + n] += ex[axis] * f[n] / w.nb_r[n] * px[n] * py[n] * pz[n];
      }
    }
    for (int t = 0; t < ntimes; t++) {
      const int *x = &m.times[4 * t];
      const double a = x[2] * w.moment[x[1]], c = x[2] * w.moment[x[0]];
      const double *ji = &jac[static_cast<size_t>(x[0]) * 3 * N], *jj = &jac[static_cast<size_t>(x[1]) * 3 * N];
      double *jk = &jac[static_cast<size_t>(x[3]) * 3 * N];
      for (int n = 0; n < 3 * N; n++) jk[n] += a * ji[n] + c * jj[n];
    }
    for (int k = 0; k < K; k++) {
      values[k] += w.moment[m.mapping[k]];
      const double *g = &jac[static_cast<size_t>(m.mapping[k]) * 3 * N];
      double *row = dbdr + static_cast<size_t>(k) * natoms * 3, *eps = dbdeps + 9 * k;
      for (int n = 0; n < N; n++) {
        const int j = e->nb_j[n];
        for (int a = 0; a < 3; a++) {
          const double ga = g[a * N + n];
          row[3 * i + a] -= ga;
          row[3 * j + a] += ga;
          for (int b = 0; b < 3; b++) eps[3 * a + b] += ga * e->nb_vec[3 * n + b];
        }
      }
    }
  }
}

// grad (species^2 x radial_funcs x radial_basis) += dPhi/dc; displacements D (natoms x 3), strain G (3 x 3)
void mtp_train_radial(void *h, int natoms, int maxnb, const int *js, const double *rs, const int *itypes,
                      double a_energy, const double *D, const double *G, double *grad)
{
  auto *e = static_cast<Evaluator *>(h);
  const MTPModel &m = e->model;
  SiteWork &w = e->work;
  const int S = m.species_count, R = m.radial_funcs_count, B = m.radial_basis_size, M = m.moments_count;
  const int nbasic = static_cast<int>(m.basic.size() / 4), ntimes = static_cast<int>(m.times.size() / 4);
  const int Q = static_cast<int>(m.monomials.size() / 3);
  for (int i = 0; i < natoms; i++) {
    e->gather(i, maxnb, js, rs, itypes);
    const int N = w.N, si = itypes[i];
    if (N == 0) continue;
    site_forward(m, w, si, true);
    // g = dE/dM over all moments
    std::fill(w.moment_grad.begin(), w.moment_grad.end(), 0.0);
    for (size_t k = 0; k < m.mapping.size(); k++) w.moment_grad[m.mapping[k]] += m.moment_coeffs[k];
    program_backward(m, w);
    e->g_bar = w.moment_grad;
    // the direction per neighbour, u.d, and the tangent of each monomial: (d mono/du . d - deg mono u.d) / r
    e->ud.resize(N);
    std::vector<double> d(3 * N);
    for (int n = 0; n < N; n++) {
      const int j = e->nb_j[n];
      double s = 0.0;
      for (int a = 0; a < 3; a++) {
        double v = D[3 * j + a] - D[3 * i + a];
        for (int b = 0; b < 3; b++) v += G[3 * a + b] * e->nb_vec[3 * n + b];
        d[3 * n + a] = v;
        s += w.nb_u[3 * n + a] * v;
      }
      e->ud[n] = s;
    }
    e->dmono.assign(Q * N, 0.0);
    for (int q = 0; q < Q; q++) {
      const int *ex = &m.monomials[3 * q];
      const int degree = ex[0] + ex[1] + ex[2];
      double *t = &e->dmono[q * N];
      const double *mono = &w.nb_mono[q * N];
      for (int axis = 0; axis < 3; axis++) {
        if (ex[axis] == 0) continue;
        int lower[3] = {ex[0], ex[1], ex[2]};
        lower[axis]--;
        const double *px = w.power(0, lower[0]), *py = w.power(1, lower[1]), *pz = w.power(2, lower[2]);
        for (int n = 0; n < N; n++) t[n] += ex[axis] * px[n] * py[n] * pz[n] * d[3 * n + axis];
      }
      for (int n = 0; n < N; n++) t[n] = (t[n] - degree * mono[n] * e->ud[n]) / w.nb_r[n];
    }
    // tangent of the moments along d, forward through the program
    e->dm.assign(M, 0.0);
    for (int b = 0; b < nbasic; b++) {
      const int mu = m.basic[4 * b], q = m.basic_monomial[b];
      const double *f = &w.nb_f[mu * N], *df = &w.nb_df[mu * N], *mono = &w.nb_mono[q * N], *t = &e->dmono[q * N];
      double s = 0.0;
      for (int n = 0; n < N; n++) s += df[n] * e->ud[n] * mono[n] + f[n] * t[n];
      e->dm[b] = s;
    }
    for (int t = 0; t < ntimes; t++) {
      const int *x = &m.times[4 * t];
      e->dm[x[3]] += x[2] * (e->dm[x[0]] * w.moment[x[1]] + w.moment[x[0]] * e->dm[x[1]]);
    }
    // tangent of g, backwards (g_k is final when entry t is reached)
    e->dg.assign(M, 0.0);
    for (int t = ntimes - 1; t >= 0; t--) {
      const int *x = &m.times[4 * t];
      const double gk = x[2] * e->g_bar[x[3]], dgk = x[2] * e->dg[x[3]];
      e->dg[x[0]] += dgk * w.moment[x[1]] + gk * e->dm[x[1]];
      e->dg[x[1]] += dgk * w.moment[x[0]] + gk * e->dm[x[0]];
    }
    // per radial function and neighbour: coefficients of f (A) and of df/dr (C)
    e->amu.assign(R * N, 0.0);
    e->cmu.assign(R * N, 0.0);
    for (int b = 0; b < nbasic; b++) {
      const int mu = m.basic[4 * b], q = m.basic_monomial[b];
      const double p = a_energy * e->g_bar[b] + e->dg[b], g = e->g_bar[b];
      const double *mono = &w.nb_mono[q * N], *t = &e->dmono[q * N];
      double *A = &e->amu[mu * N], *C = &e->cmu[mu * N];
      for (int n = 0; n < N; n++) {
        A[n] += p * mono[n] + g * t[n];
        C[n] += g * mono[n] * e->ud[n];
      }
    }
    // f_mu = sum_beta c_beta T_beta w: df/dc_beta = T_beta w, d(df/dr)/dc_beta = T'_beta w + T_beta w'
    for (int n = 0; n < N; n++) {
      double *out = grad + (static_cast<size_t>(si) * S + w.nb_species[n]) * R * B;
      const double wt = w.nb_w[n], dwt = w.nb_dw[n];
      for (int mu = 0; mu < R; mu++) {
        const double A = e->amu[mu * N + n], C = e->cmu[mu * N + n];
        for (int beta = 0; beta < B; beta++) {
          const double T = w.nb_cheb[beta * N + n], dT = w.nb_dcheb[beta * N + n];
          out[mu * B + beta] += A * T * wt + C * (dT * wt + T * dwt);
        }
      }
    }
  }
}

}  // extern "C"
