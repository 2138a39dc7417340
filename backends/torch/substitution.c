/* The REN's three triangular substitutions as compiled loops over a batch of rows, for
 * r2dn.torch.native (which compiles this file with the system's C compiler and calls it through
 * ctypes). The maths is r2dn._spec.equilibrium's (docs/math/ren.md#equilibrium):
 *
 *   equilibrium   w = act(L w + b)           forward substitution, first neuron first
 *   lower_solve   y = s + J (L y)            forward substitution, linear
 *   upper_solve   z = c + L^T (J z)          back substitution, last neuron first
 *
 * L is strictly lower triangular, n x n inside a row-major array of leading dimension ld (its
 * diagonal and upper triangle are never read); the forward substitutions take its transpose
 * U = L^T instead (strictly upper, the same layout), which the caller builds once per rollout.
 * The batch arrays are row-major (batch, n); each row of the batch is independent. Each neuron,
 * once solved, adds a multiple of its row of U (forward) or of L (back substitution) to the
 * neurons still to solve (`feed`): contiguous loops the compiler vectorizes, where a dot product
 * per neuron would be a reduction it may not reorder. The two forward substitutions are one loop
 * (`forward`): y_i = act(s_i + J_i (U^T y)_i), with J = 1 for the equilibrium and the identity
 * for lower_solve. Outputs do not alias inputs.
 *
 * DEFINE_SUBSTITUTIONS writes the functions for one floating type (float: _f32, double: _f64).
 * Both take tanh in double (the float result is the double one rounded): glibc's tanhf took
 * 42 ns a call here against tanh's 24 ns, and the equilibrium calls it nv * batch times a step.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

enum { ACT_IDENTITY = 0, ACT_RELU = 1, ACT_TANH = 2, ACT_SIGMOID = 3 };

#define DEFINE_SUBSTITUTIONS(T, SUFFIX, EXP)                                                    \
    static inline T act_##SUFFIX(int act, T v)                                                  \
    {                                                                                           \
        switch (act) {                                                                          \
        case ACT_RELU: return v > 0 ? v : (T)0;                                                 \
        case ACT_TANH: return (T)tanh(v);                                                       \
        case ACT_SIGMOID: return (T)1 / ((T)1 + EXP(-v));                                       \
        default: return v;                                                                      \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    static inline void feed_##SUFFIX(T *out, const T *row, T a, int64_t from, int64_t to)       \
    {                                                                                           \
        _Pragma("omp simd")                                                                     \
        for (int64_t k = from; k < to; ++k) out[k] += a * row[k];                               \
    }                                                                                           \
                                                                                                \
    static void forward_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *U,              \
                                 const T *J, const T *s, T *y, int act)                         \
    {                                                                                           \
        for (int64_t r = 0; r < batch; ++r) {                                                   \
            const T *sr = s + r * n;                                                            \
            T *yr = y + r * n;                                                                  \
            for (int64_t i = 0; i < n; ++i) yr[i] = 0;                                          \
            for (int64_t i = 0; i < n; ++i) {                                                   \
                yr[i] = act_##SUFFIX(act, sr[i] + (J ? J[r * n + i] : (T)1) * yr[i]);           \
                feed_##SUFFIX(yr, U + i * ld, yr[i], i + 1, n);                                 \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    void r2dn_equilibrium_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *U,            \
                                   const T *b, T *w, int act)                                   \
    {                                                                                           \
        forward_##SUFFIX(batch, n, ld, U, NULL, b, w, act);                                     \
    }                                                                                           \
                                                                                                \
    void r2dn_lower_solve_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *U,            \
                                   const T *J, const T *s, T *y)                                \
    {                                                                                           \
        forward_##SUFFIX(batch, n, ld, U, J, s, y, ACT_IDENTITY);                               \
    }                                                                                           \
                                                                                                \
    void r2dn_upper_solve_##SUFFIX(int64_t batch, int64_t n, int64_t ld, const T *L,            \
                                   const T *J, const T *c, T *z)                                \
    {                                                                                           \
        for (int64_t r = 0; r < batch; ++r) {                                                   \
            const T *Jr = J + r * n;                                                            \
            T *zr = z + r * n;                                                                  \
            for (int64_t i = 0; i < n; ++i) zr[i] = c[r * n + i];                               \
            for (int64_t i = n - 1; i > 0; --i)                                                 \
                feed_##SUFFIX(zr, L + i * ld, Jr[i] * zr[i], 0, i);                             \
        }                                                                                       \
    }

DEFINE_SUBSTITUTIONS(float, f32, expf)
DEFINE_SUBSTITUTIONS(double, f64, exp)
