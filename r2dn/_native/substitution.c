/* The REN's three triangular substitutions as compiled loops over a batch of rows, built by
 * r2dn._native with the system's C compiler: r2dn.torch.native calls them through ctypes, and
 * r2dn.jax.native calls the equilibrium through its XLA FFI handler (xla_ffi.cc). The maths is
 * r2dn._spec.equilibrium's (docs/math/ren.md#equilibrium):
 *
 *   equilibrium   w = act(L w + b)           forward substitution, first neuron first
 *   lower_solve   y = s + J (L y)            forward substitution, linear
 *   upper_solve   z = c + L^T (J z)          back substitution, last neuron first
 *
 * and, at the end, the whole time loop of a REN (ren_rollout) and of an R2DN (r2dn_rollout), for
 * torch rollouts that nothing differentiates (r2dn._spec.simulate_loop):
 *
 *   v = C1 x + D12 u + bv,  w = phi(v),  y = C2 x + D21 w + D22 u + by,
 *   x+ = A x + B1 w + B2 u + bx
 *
 * with phi the equilibrium w = act(D11 w + v), or the R2DN's fused LBDN, whose products go to
 * the BLAS gemm the caller passes (torch's own).
 *
 * L is strictly lower triangular, n x n inside a row-major array of leading dimension ld (its
 * diagonal and upper triangle are never read); the forward substitutions take its transpose
 * U = L^T instead (strictly upper, the same layout), which the caller builds once per rollout.
 * Each row of the batch is independent. Outputs do not alias inputs. Every function returns 0,
 * or -1 when it could not allocate its accumulators (nothing written).
 *
 * The forward substitutions (`forward`: y_i = act(s_i + J_i (U^T y)_i), with J = 1 for the
 * equilibrium and the identity act for lower_solve) solve LANES = 32 batch rows together, in
 * neuron-major accumulators y[i * LANES + r] (n x LANES, allocated per call), so a neuron's
 * values for the 32 rows are contiguous vectors. Solving neuron i is one vectorized activation
 * over the lanes; each later neuron j then gains U_ij times that vector: independent
 * multiply-adds, where one row at a time waited on each neuron's activation in turn (a chain of
 * nv serial libm tanh calls per row: 0.73 ms a call at nv = 200, batch 64, float32, against
 * about 0.1 ms now; benchmarks/README.md). Inputs s, J and the output are row-major
 * (batch, n); a solved neuron's values are stored into the output as they come.
 *
 * upper_solve (reverse mode) works one row-major row at a time: each solved neuron adds a
 * multiple of its row of L to the neurons before it (`feed`), a contiguous loop.
 *
 * tanh is a branch-free function the compiler vectorizes (libm's is one call per value); the
 * sigmoid is libm's exp in double (a float result is the double one rounded). The file must be
 * compiled with -fno-trapping-math: without it GCC keeps the selects below as branches and
 * vectorizes nothing (no floating-point exception is ever trapped here).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

enum { ACT_IDENTITY = 0, ACT_RELU = 1, ACT_TANH = 2, ACT_SIGMOID = 3 };
enum { LANES = 32 };        /* batch rows solved together: two cache lines of float, four of double */
enum { GROUP = 4 };         /* neurons whose contributions a later neuron takes in one pass */

/* tanh(x), branch-free: t = e / (e + 2) with e = expm1(2|x|), the sign of x restored.
 * expm1(y) = 2^k (1 + p) - 1 = 2^k p + (2^k - 1), y = k ln2 + r with |r| <= ln2/2 (ln2 split in
 * two so that k ln2_hi is exact), p = expm1(r) by its Taylor series (to r^13 in double, r^7 in
 * float: remainders below 1e-17 and 2e-8 relative). 2^k is built in the exponent bits, k
 * rounded by adding 1.5 * 2^(mantissa bits). |x| is capped where tanh rounds to 1 (22 in double,
 * 10 in float); a NaN stays NaN. Against libm's double tanh over [-30, 30]: at most 2.4 ulp
 * in double, 2.2 ulp of float in float (tests/test_torch_native.py checks within 3). */
#define DEFINE_TANH(T, SUFFIX, U, FABS, COPYSIGN, CAP, MANTISSA, BIAS, LN2_HI, LN2_LO)          \
    static inline T tanh_##SUFFIX(T x)                                                          \
    {                                                                                           \
        const T shift = (T)1.5 * (T)((U)1 << MANTISSA), inv_ln2 = (T)1.4426950408889634;        \
        T a = FABS(x);                                                                          \
        a = a > (T)CAP ? (T)CAP : a;                                                            \
        const T y = a + a;                                                                      \
        T kd = y * inv_ln2 + shift;                                                             \
        const union { T f; U u; } kbits = { kd };                                               \
        kd -= shift;                                                                            \
        const T r = (y - kd * (T)LN2_HI) - kd * (T)LN2_LO;                                      \
        T p = (T)0;                                                                             \
        for (int m = sizeof(T) == 8 ? 13 : 7; m > 2; --m) p = (p + (T)inv_factorial[m]) * r;    \
        p = (p + (T)0.5) * r * r + r;                                                           \
        const union { U u; T f; } scale = { (kbits.u << MANTISSA) + ((U)BIAS << MANTISSA) };    \
        const T e = scale.f * p + (scale.f - (T)1);                                             \
        return COPYSIGN(e / (e + (T)2), x);                                                     \
    }

/* 1/m! for the Taylor series of expm1 */
static const double inv_factorial[14] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800};

DEFINE_TANH(double, f64, uint64_t, fabs, copysign, 22, 52, 1023, 0x1.62e42fee00000p-1,
            0x1.a39ef35793c76p-33)
DEFINE_TANH(float, f32, uint32_t, fabsf, copysignf, 10, 23, 127, 0x1.62e4p-1, 0x1.7f7d1cp-20)

/* the linear part of a recurrent model's step (r2dn._spec.rollout), rows of `nv` neurons */
#define DEFINE_LTI(T, SUFFIX)                                                                   \
    struct lti_##SUFFIX {                                                                       \
        int64_t nu, nx, nv, ny;                                                                 \
        const T *C1T, *D12T, *bv, *A, *B1, *B2, *bx, *C2, *D21, *D22, *by;                      \
    };                                                                                          \
    typedef void (*gemm_##SUFFIX)(const char *, const char *, const int64_t *, const int64_t *, \
                                  const int64_t *, const T *, const T *, const int64_t *,       \
                                  const T *, const int64_t *, const T *, T *, const int64_t *);
DEFINE_LTI(float, f32)
DEFINE_LTI(double, f64)

#define DEFINE_SUBSTITUTIONS(T, SUFFIX)                                                         \
    /* out[r] = act(v[r]) for the width lanes */                                                \
    static inline void activate_##SUFFIX(int act, int64_t width, const T *v, T *out)            \
    {                                                                                           \
        switch (act) {                                                                          \
        case ACT_RELU:                                                                          \
            _Pragma("omp simd") for (int64_t r = 0; r < width; ++r)                             \
                out[r] = v[r] > 0 ? v[r] : (T)0;                                                \
            break;                                                                              \
        case ACT_TANH:                                                                          \
            _Pragma("omp simd") for (int64_t r = 0; r < width; ++r)                             \
                out[r] = tanh_##SUFFIX(v[r]);                                                   \
            break;                                                                              \
        case ACT_SIGMOID:                                                                       \
            for (int64_t r = 0; r < width; ++r)                                                 \
                out[r] = (T)(1.0 / (1.0 + exp(-(double)v[r])));                                 \
            break;                                                                              \
        default:                                                                                \
            for (int64_t r = 0; r < width; ++r) out[r] = v[r];                                  \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    /* y_j += sum_q U[q, j] yk[q] (q < k, rows of U from the group's first neuron) for the     \
     * lanes, for every j from `from` on: one load and one store of y_j per k multiply-adds,     \
     * added in neuron order as one neuron at a time would */                                   \
    static inline __attribute__((always_inline)) void update_##SUFFIX(                          \
        int64_t width, int64_t k, int64_t n, int64_t ld, const T *U, T yk[][LANES], T *y,       \
        int64_t from)                                                                           \
    {                                                                                           \
        for (int64_t j = from; j < n; ++j) {                                                    \
            T *yj = y + j * LANES;                                                              \
            _Pragma("omp simd") for (int64_t r = 0; r < width; ++r) {                           \
                T acc = yj[r];                                                                  \
                for (int64_t q = 0; q < k; ++q) acc += U[q * ld + j] * yk[q][r];                \
                yj[r] = acc;                                                                    \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    /* the forward substitutions' neuron-major accumulators (n x LANES): a neuron's lanes are  \
     * one or two whole cache lines, so vector loads never straddle two */                     \
    static T *accumulators_##SUFFIX(int64_t n)                                                  \
    {                                                                                           \
        return aligned_alloc(64, (size_t)(n > 0 ? n : 1) * LANES * sizeof(T));                  \
    }                                                                                           \
                                                                                                \
    /* `width` (<= LANES) rows: s, J and out row-major from the block's first row; y the        \
     * neuron-major accumulators (n x LANES, y[i * LANES + r] for row r). The                   \
     * neurons go GROUP at a time: each is solved in turn (its group's later neurons fed as it  \
     * goes), then every later neuron takes the group's GROUP contributions in one pass (a load  \
     * and a store per GROUP multiply-adds), added in neuron order as one at a time would. */   \
    static inline __attribute__((always_inline)) void forward_block_##SUFFIX(                   \
        int64_t width, int64_t n, int64_t ld, const T *U, const T *J, const T *s, T *y,         \
        T *out, int act)                                                                        \
    {                                                                                           \
        for (int64_t i = 0; i < n; ++i)                                                         \
            for (int64_t r = 0; r < width; ++r) y[i * LANES + r] = 0;                           \
        for (int64_t i0 = 0; i0 < n; i0 += GROUP) {                                            \
            const int64_t k = n - i0 < GROUP ? n - i0 : GROUP;                                  \
            T yk[GROUP][LANES];                                                                 \
            for (int64_t q = 0; q < k; ++q) {                                                   \
                const int64_t i = i0 + q;                                                       \
                T v[LANES];                                                                     \
                for (int64_t r = 0; r < width; ++r)                                             \
                    v[r] = s[r * n + i] + (J ? J[r * n + i] : (T)1) * y[i * LANES + r];         \
                activate_##SUFFIX(act, width, v, yk[q]);                                        \
                for (int64_t r = 0; r < width; ++r) out[r * n + i] = yk[q][r];                  \
                for (int64_t j = i + 1; j < i0 + k; ++j)                                        \
                    for (int64_t r = 0; r < width; ++r)                                         \
                        y[j * LANES + r] += U[i * ld + j] * yk[q][r];                           \
            }                                                                                   \
            if (k == GROUP)                                                                     \
                update_##SUFFIX(width, GROUP, n, ld, U + i0 * ld, yk, y, i0 + k);               \
            else                                                                                \
                update_##SUFFIX(width, k, n, ld, U + i0 * ld, yk, y, i0 + k);                   \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    /* every row of the batch, LANES at a time, with the accumulators y (n x LANES) */          \
    static void forward_rows_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *U,         \
                                      const T *J, const T *s, T *out, int act, T *y)            \
    {                                                                                           \
        int64_t r0 = 0;                                                                         \
        for (; r0 + LANES <= batch; r0 += LANES)                                                \
            forward_block_##SUFFIX(LANES, n, ld, U, J ? J + r0 * n : NULL, s + r0 * n, y,       \
                                   out + r0 * n, act);                                          \
        if (r0 < batch)                                                                         \
            forward_block_##SUFFIX(batch - r0, n, ld, U, J ? J + r0 * n : NULL, s + r0 * n, y,  \
                                   out + r0 * n, act);                                          \
    }                                                                                           \
                                                                                                \
    /* 0, or -1 when the accumulators could not be allocated */                                \
    static int forward_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *U, const T *J,   \
                                const T *s, T *out, int act)                                    \
    {                                                                                           \
        T *y = accumulators_##SUFFIX(n);                                                        \
        if (!y) return -1;                                                                      \
        forward_rows_##SUFFIX(batch, n, ld, U, J, s, out, act, y);                              \
        free(y);                                                                                \
        return 0;                                                                               \
    }                                                                                           \
                                                                                                \
    int r2dn_equilibrium_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *U,             \
                                  const T *b, T *w, int act)                                    \
    {                                                                                           \
        return forward_##SUFFIX(batch, n, ld, U, NULL, b, w, act);                              \
    }                                                                                           \
                                                                                                \
    int r2dn_lower_solve_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *U,             \
                                  const T *J, const T *s, T *y)                                 \
    {                                                                                           \
        return forward_##SUFFIX(batch, n, ld, U, J, s, y, ACT_IDENTITY);                        \
    }                                                                                           \
                                                                                                \
    static inline void feed_##SUFFIX(T *out, const T *row, T a, int64_t to)                     \
    {                                                                                           \
        _Pragma("omp simd") for (int64_t k = 0; k < to; ++k) out[k] += a * row[k];              \
    }                                                                                           \
                                                                                                \
    int r2dn_upper_solve_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *L,             \
                                  const T *J, const T *c, T *z)                                 \
    {                                                                                           \
        for (int64_t r = 0; r < batch; ++r) {                                                   \
            const T *Jr = J + r * n;                                                            \
            T *zr = z + r * n;                                                                  \
            for (int64_t i = 0; i < n; ++i) zr[i] = c[r * n + i];                               \
            for (int64_t i = n - 1; i > 0; --i) feed_##SUFFIX(zr, L + i * ld, Jr[i] * zr[i], i); \
        }                                                                                       \
        return 0;                                                                               \
    }                                                                                           \
                                                                                                \
    /* exchange two work arrays (the state and the next one, a layer's input and output) */   \
    static inline void swap_##SUFFIX(T **a, T **b)                                              \
    {                                                                                           \
        T *t = *a;                                                                              \
        *a = *b;                                                                                \
        *b = t;                                                                                 \
    }                                                                                           \
                                                                                                \
    /* sum_k a[k] b[k]; the simd reduction lets the compiler split the sum between lanes */    \
    static inline T dot_##SUFFIX(const T *a, const T *b, int64_t n)                             \
    {                                                                                           \
        T acc = 0;                                                                              \
        _Pragma("omp simd reduction(+:acc)") for (int64_t k = 0; k < n; ++k) acc += a[k] * b[k]; \
        return acc;                                                                             \
    }                                                                                           \
                                                                                                \
    /* out[i] = c[i] + sum_k M[i, k] a[k] over the three (M, a) pairs, M row-major (m x n_k) */ \
    static inline void affine3_##SUFFIX(int64_t m, T *out, const T *c, const T *M1, const T *a1, \
                                        int64_t n1, const T *M2, const T *a2, int64_t n2,       \
                                        const T *M3, const T *a3, int64_t n3)                   \
    {                                                                                           \
        for (int64_t i = 0; i < m; ++i)                                                         \
            out[i] = ((dot_##SUFFIX(M1 + i * n1, a1, n1) + dot_##SUFFIX(M2 + i * n2, a2, n2))   \
                      + dot_##SUFFIX(M3 + i * n3, a3, n3)) + c[i];                              \
    }                                                                                           \
                                                                                                \
    /* v = C1 x + D12 u + bv for `batch` rows (the neurons' inputs as sums of rows) */          \
    static void lti_inputs_##SUFFIX(const struct lti_##SUFFIX *m, int64_t batch, const T *x,    \
                                    const T *u, T *v)                                           \
    {                                                                                           \
        for (int64_t r = 0; r < batch; ++r) {                                                   \
            T *vr = v + r * m->nv;                                                              \
            for (int64_t j = 0; j < m->nv; ++j) vr[j] = m->bv[j];                               \
            for (int64_t k = 0; k < m->nu; ++k)                                                 \
                feed_##SUFFIX(vr, m->D12T + k * m->nv, u[r * m->nu + k], m->nv);                \
            for (int64_t k = 0; k < m->nx; ++k)                                                 \
                feed_##SUFFIX(vr, m->C1T + k * m->nv, x[r * m->nx + k], m->nv);                 \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    /* y = C2 x + D21 w + D22 u + by and next = A x + B1 w + B2 u + bx for `batch` rows */     \
    static void lti_outputs_##SUFFIX(const struct lti_##SUFFIX *m, int64_t batch, const T *x,   \
                                     const T *w, const T *u, T *y, T *next)                     \
    {                                                                                           \
        const int64_t nu = m->nu, nx = m->nx, nv = m->nv, ny = m->ny;                           \
        for (int64_t r = 0; r < batch; ++r) {                                                   \
            const T *xr = x + r * nx, *wr = w + r * nv, *ur = u + r * nu;                       \
            affine3_##SUFFIX(ny, y + r * ny, m->by, m->C2, xr, nx, m->D21, wr, nv, m->D22, ur,  \
                             nu);                                                               \
            affine3_##SUFFIX(nx, next + r * nx, m->bx, m->A, xr, nx, m->B1, wr, nv, m->B2, ur,  \
                             nu);                                                               \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    /* the recurrent models' linear part from the caller's 11 arrays, in the order C1T, D12T,   \
     * bv, A, B1, B2, bx, C2, D21, D22, by */                                                   \
    static struct lti_##SUFFIX lti_##SUFFIX(int64_t nu, int64_t nx, int64_t nv, int64_t ny,     \
                                            const T *const *a)                                  \
    {                                                                                           \
        struct lti_##SUFFIX m = {nu, nx, nv, ny, a[0], a[1], a[2], a[3], a[4], a[5], a[6],      \
                                 a[7], a[8], a[9], a[10]};                                      \
        return m;                                                                               \
    }                                                                                           \
                                                                                                \
    /* A REN's `steps` steps for `batch` rows from x0 (batch, nx): us (T, stride, nu) and ys    \
     * (T, stride, ny) hold `stride` rows per step (the caller's whole batch; a thread takes    \
     * some of them), of which these are the first `batch`; xT (batch, nx) gets the last state. \
     * U = D11^T (nv, nv; strict upper triangle read); `lti` as lti_ reads it. 0, or -1 when    \
     * the work arrays could not be allocated (nothing written). */                             \
    int r2dn_ren_rollout_##SUFFIX(int64_t steps, int64_t batch, int64_t stride, int64_t nu,     \
                                  int64_t nx, int64_t nv, int64_t ny, const T *U,               \
                                  const T *const *lti, const T *x0, const T *us, T *ys, T *xT,  \
                                  int act)                                                      \
    {                                                                                           \
        const struct lti_##SUFFIX m = lti_##SUFFIX(nu, nx, nv, ny, lti);                        \
        T *y = accumulators_##SUFFIX(nv);                                                       \
        T *v = malloc((size_t)(batch * (2 * nv + 2 * nx) + 1) * sizeof(T));                     \
        if (!y || !v) {                                                                         \
            free(y);                                                                            \
            free(v);                                                                            \
            return -1;                                                                          \
        }                                                                                       \
        T *w = v + batch * nv, *x = w + batch * nv, *next = x + batch * nx;                     \
        for (int64_t k = 0; k < batch * nx; ++k) x[k] = x0[k];                                  \
        for (int64_t t = 0; t < steps; ++t) {                                                   \
            const T *u = us + t * stride * nu;                                                  \
            lti_inputs_##SUFFIX(&m, batch, x, u, v);                                            \
            forward_rows_##SUFFIX(batch, nv, nv, U, NULL, v, w, act, y);                        \
            lti_outputs_##SUFFIX(&m, batch, x, w, u, ys + t * stride * ny, next);               \
            swap_##SUFFIX(&x, &next);                                                           \
        }                                                                                       \
        for (int64_t k = 0; k < batch * nx; ++k) xT[k] = x[k];                                  \
        free(y);                                                                                \
        free(v);                                                                                \
        return 0;                                                                               \
    }                                                                                           \
                                                                                                \
    /* An R2DN's `steps` steps for all `batch` rows: w = phi(v), phi the fused LBDN of         \
     * `layers` hidden layers, h_k = act(h_{k-1} W_k^T + c_k) from h_0 = v, w = h W_out^T +     \
     * c_out. weights[k] (widths[k] x widths[k + 1], row-major: W_k^T) and biases[k] for        \
     * k = 0 .. layers, the last the output layer; widths[0] = widths[layers + 1] = nv. The     \
     * layers' products go to `gemm`, a BLAS ?gemm with 64-bit integers (Fortran interface),     \
     * which the caller takes from its framework's BLAS. 0, or -1 as above. */                  \
    int r2dn_r2dn_rollout_##SUFFIX(int64_t steps, int64_t batch, int64_t nu, int64_t nx,        \
                                   int64_t nv, int64_t ny, int64_t layers,                      \
                                   const int64_t *widths, const T *const *weights,              \
                                   const T *const *biases, const T *const *lti, const T *x0,    \
                                   const T *us, T *ys, T *xT, int act, gemm_##SUFFIX gemm)      \
    {                                                                                           \
        const struct lti_##SUFFIX m = lti_##SUFFIX(nu, nx, nv, ny, lti);                        \
        int64_t wide = nv;                                                                      \
        for (int64_t k = 0; k <= layers + 1; ++k) wide = widths[k] > wide ? widths[k] : wide;   \
        T *h = malloc((size_t)(batch * (2 * wide + 2 * nx) + 1) * sizeof(T));                   \
        if (!h) return -1;                                                                      \
        T *z = h + batch * wide, *x = z + batch * wide, *next = x + batch * nx;                 \
        const char no = 'N';                                                                    \
        const T one = 1;                                                                        \
        for (int64_t k = 0; k < batch * nx; ++k) x[k] = x0[k];                                  \
        for (int64_t t = 0; t < steps; ++t) {                                                   \
            const T *u = us + t * batch * nu;                                                   \
            lti_inputs_##SUFFIX(&m, batch, x, u, h);                                            \
            for (int64_t k = 0; k <= layers; ++k) {     /* z = h W_k^T + c_k: C' = A' B' + C'  \
                                                           in column-major terms */             \
                const int64_t in = widths[k], out = widths[k + 1], ld = in > 0 ? in : 1;        \
                for (int64_t r = 0; r < batch; ++r)                                             \
                    for (int64_t j = 0; j < out; ++j) z[r * out + j] = biases[k][j];            \
                if (batch > 0 && out > 0)                                                       \
                    gemm(&no, &no, &out, &batch, &in, &one, weights[k], &out, h, &ld, &one, z,  \
                         &out);                                                                 \
                if (k < layers)                                                                 \
                    for (int64_t r = 0; r < batch; ++r)                                         \
                        activate_##SUFFIX(act, out, z + r * out, z + r * out);                  \
                swap_##SUFFIX(&h, &z);                                                          \
            }                                                                                   \
            lti_outputs_##SUFFIX(&m, batch, x, h, u, ys + t * batch * ny, next);                \
            swap_##SUFFIX(&x, &next);                                                           \
        }                                                                                       \
        for (int64_t k = 0; k < batch * nx; ++k) xT[k] = x[k];                                  \
        free(h < z ? h : z);                                                                    \
        return 0;                                                                               \
    }

DEFINE_SUBSTITUTIONS(float, f32)
DEFINE_SUBSTITUTIONS(double, f64)
