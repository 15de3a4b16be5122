"""The trainer's native evaluator (``plugin/mtp_train.cpp`` on pair_style mtp's site kernels): per configuration,
the linear design of energy, forces and stress in the moment coefficients, and the derivative over the radial
coefficients of a weighted energy plus a directional derivative of the energy (the loss gradient when the
weights are the residuals), see the C++ source. Neighbours come in motep's padded layout (``js`` -1 where an
atom has fewer, ``rs`` the vectors r_j - r_i in A). Built on first use (cached, ``plugin.build_evaluator``;
tools/setup.sh builds it)."""
from __future__ import annotations

import ctypes

import numpy as np

_LIB = None
_DOUBLES = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
_INTS = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")


def _library():
    global _LIB
    if _LIB is None:
        from .plugin import build_evaluator

        lib = ctypes.CDLL(str(build_evaluator()))
        c_int, c_double, c_void = ctypes.c_int, ctypes.c_double, ctypes.c_void_p
        lib.mtp_train_new.restype = c_void
        lib.mtp_train_new.argtypes = [c_int, c_int, c_int, c_double, c_double, c_double, c_int, c_int, _INTS, c_int,
                                      _INTS, c_int, _INTS, ctypes.c_char_p, c_int]
        lib.mtp_train_free.argtypes = [c_void]
        lib.mtp_train_set.argtypes = [c_void, _DOUBLES, _DOUBLES]
        lib.mtp_train_design.argtypes = [c_void, c_int, c_int, _INTS, _DOUBLES, _INTS, _DOUBLES, _DOUBLES, _DOUBLES]
        lib.mtp_train_radial.argtypes = [c_void, c_int, c_int, _INTS, _DOUBLES, _INTS, c_double, _DOUBLES, _DOUBLES,
                                         _DOUBLES]
        _LIB = lib
    return _LIB


def _ints(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


class Evaluator:
    """One MTP's evaluator; ``data``: motep's MTPData (its index arrays, radial basis and coefficients)."""

    def __init__(self, data):
        self._lib = _library()
        self.data = data
        self.asm = int(data.alpha_scalar_moments)
        self.radial_size = int(np.size(data.radial_coeffs))
        err = ctypes.create_string_buffer(256)
        basic, times = _ints(data.alpha_index_basic).ravel(), _ints(data.alpha_index_times).ravel()
        self._handle = self._lib.mtp_train_new(
            int(data.species_count), int(data.radial_funcs_count), int(data.radial_basis.size),
            float(data.radial_basis.min), float(data.radial_basis.max), float(data.scaling),
            int(data.alpha_moments_count), len(basic) // 4, basic, len(times) // 4, times, self.asm,
            _ints(data.alpha_moment_mapping), err, len(err))
        if not self._handle:
            raise ValueError(f"MTP index arrays: {err.value.decode()}")
        self.update()

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.mtp_train_free(self._handle)

    def update(self) -> None:
        """Take the current radial and moment coefficients of ``data``."""
        self._lib.mtp_train_set(self._handle, np.ascontiguousarray(self.data.radial_coeffs, dtype=float).ravel(),
                                np.ascontiguousarray(self.data.moment_coeffs, dtype=float))

    def design(self, js: np.ndarray, rs: np.ndarray, itypes: np.ndarray):
        """(basis values (asm), their derivatives by the atom positions (asm, atoms, 3) in 1/A, and
        sum_n dB/dr_n (x) r_n (asm, 3, 3), the strain derivative (unsymmetrised, not divided by the volume))."""
        natoms, maxnb = js.shape
        values, dbdr, dbdeps = np.empty(self.asm), np.empty((self.asm, natoms, 3)), np.empty((self.asm, 3, 3))
        self._lib.mtp_train_design(self._handle, natoms, maxnb, js, rs, itypes, values, dbdr, dbdeps)
        return values, dbdr, dbdeps

    def radial(self, js: np.ndarray, rs: np.ndarray, itypes: np.ndarray, energy_weight: float,
               displacements: np.ndarray, strain: np.ndarray) -> np.ndarray:
        """d/dc of energy_weight E + sum_i dE/dR_i . D_i + sum_ab dE/dstrain_ab G_ab (c the radial coefficients,
        flat; D = ``displacements`` (atoms, 3), G = ``strain`` (3, 3)), i.e. dE/dc, the forces' and the
        stress's radial derivatives contracted with D and G."""
        natoms, maxnb = js.shape
        grad = np.zeros(self.radial_size)
        self._lib.mtp_train_radial(self._handle, natoms, maxnb, js, rs, itypes, float(energy_weight),
                                   np.ascontiguousarray(displacements, dtype=float),
                                   np.ascontiguousarray(strain, dtype=float), grad)
        return grad
