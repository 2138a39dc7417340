// The REN equilibrium's C loop (substitution.c) as an XLA FFI handler, so that a JAX rollout on
// the CPU solves each step's equilibrium in one custom call instead of a lax.scan over blocks of
// neurons (r2dn.jax.native registers it and calls it with jax.ffi.ffi_call).
//
// Arguments: U (..., n, n), the transpose of the strictly lower triangular D11, and b (..., batch,
// n); result w (..., batch, n) with w = act(D11 w + b) row by row; attribute `activation`, the
// loop's activation code. Leading dimensions (the primitive's jax.vmap rule stacks ensembles) are
// the same on U and b and are solved one after the other.
#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

extern "C" {
int r2dn_equilibrium_f32(int64_t batch, int64_t n, int64_t ld, const float *U, const float *b,
                         float *w, int act);
int r2dn_equilibrium_f64(int64_t batch, int64_t n, int64_t ld, const double *U, const double *b,
                         double *w, int act);
}

namespace {

template <typename T>
using Loop = int (*)(int64_t, int64_t, int64_t, const T *, const T *, T *, int);

template <ffi::DataType D, typename T, Loop<T> loop>
ffi::Error Equilibrium(ffi::Buffer<D> U, ffi::Buffer<D> b, ffi::ResultBuffer<D> w,
                       int32_t activation) {
    auto ud = U.dimensions(), bd = b.dimensions();
    if (ud.size() < 2 || bd.size() != ud.size() || ud[ud.size() - 1] != ud[ud.size() - 2]
        || bd[bd.size() - 1] != ud[ud.size() - 1])
        return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                          "r2dn_equilibrium: expected U (..., n, n) and b (..., batch, n)");
    const int64_t n = ud[ud.size() - 1], batch = bd[bd.size() - 2];
    int64_t stacks = 1;
    for (size_t i = 0; i + 2 < bd.size(); ++i) {
        if (bd[i] != ud[i])
            return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                              "r2dn_equilibrium: U and b have different leading dimensions");
        stacks *= bd[i];
    }
    const T *u = U.typed_data(), *v = b.typed_data();
    T *out = w->typed_data();
    for (int64_t k = 0; k < stacks; ++k)
        if (loop(batch, n, n, u + k * n * n, v + k * batch * n, out + k * batch * n, activation))
            return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                              "r2dn_equilibrium: could not allocate the loop's accumulators");
    return ffi::Error::Success();
}

}  // namespace

#define R2DN_BIND(D)                                                                           \
    ffi::Ffi::Bind().Arg<ffi::Buffer<D>>().Arg<ffi::Buffer<D>>().Ret<ffi::Buffer<D>>()          \
        .Attr<int32_t>("activation")

XLA_FFI_DEFINE_HANDLER_SYMBOL(r2dn_xla_equilibrium_f32,
                              (Equilibrium<ffi::F32, float, r2dn_equilibrium_f32>),
                              R2DN_BIND(ffi::F32));
XLA_FFI_DEFINE_HANDLER_SYMBOL(r2dn_xla_equilibrium_f64,
                              (Equilibrium<ffi::F64, double, r2dn_equilibrium_f64>),
                              R2DN_BIND(ffi::F64));
