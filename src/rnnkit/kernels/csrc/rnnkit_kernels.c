/* rnnkit native kernels, compiled on first use by rnnkit/kernels/_native.py and called through
 * ctypes. Plain C11, no dependencies, single-threaded (small recurrent models are latency-bound;
 * torch's threads would only spin). No -march=native: the build is portable to any CPU of the
 * architecture it was compiled on. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define RK_EXPORT __declspec(dllexport)
#else
#define RK_EXPORT __attribute__((visibility("default")))
#endif

/* Flush denormals to zero inside the kernels (float32 gradients drifting into denormals make
 * every operation ~100x slower), restoring the caller's mode on exit. x86-64 SSE only. */
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FTZ_BEGIN const unsigned int rk_csr_ = _mm_getcsr(); _mm_setcsr(rk_csr_ | 0x8040);
#define FTZ_END _mm_setcsr(rk_csr_);
#else
#define FTZ_BEGIN
#define FTZ_END
#endif

enum { ACT_TANH = 0, ACT_RELU = 1, ACT_SIGMOID = 2, ACT_IDENTITY = 3 };
enum { LOSS_MSE = 0, LOSS_MAE = 1, LOSS_CE = 2 };
enum { OPT_ADAM = 0, OPT_SGD = 1, OPT_ADAGRAD = 2, OPT_RMSPROP = 3 };
#define RK_MAX_LAYERS 16

/* mirrored by rnnkit/kernels/_native.py: TrainSpec */
typedef struct {
    int32_t cell, act, out_act, num_layers, input_size, hidden, state, head_out;
    int32_t head_mode, warmup, loss, T, optimizer, reserved;
    double lr, beta1, beta2, eps, weight_decay, momentum, alpha, clip_value, clip_norm;
} rk_train_spec;

RK_EXPORT int rk_abi_version(void) { return 4; }

/* exp without libm calls, so loops over gates vectorise: x = n ln2 + r, |r| <= ln2/2,
 * e^r by its Taylor polynomial (degree 12 for double, 7 for float: relative error below 2e-16
 * and 1e-7 over the whole range), 2^n through the exponent bits. Arguments are clamped to the
 * finite range, so exp never overflows to inf (sigmoid(-1000) is 0, not NaN). */
static inline double rk_exp(double x) {
    x = x < -708.0 ? -708.0 : (x > 708.0 ? 708.0 : x);
    const double shift = 6755399441055744.0;            /* 1.5 * 2^52: rounds to an integer */
    const double t = x * 1.4426950408889634 + shift;
    const double n = t - shift;
    const double r = (x - n * 0.6931471805598903) - n * 5.497923018708371e-14;
    double p = 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0; p = p * r + 1.0 / 3628800.0; p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0; p = p * r + 1.0 / 5040.0; p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0; p = p * r + 1.0 / 24.0; p = p * r + 1.0 / 6.0;
    p = p * r + 0.5; p = p * r + 1.0; p = p * r + 1.0;
    uint64_t bits;                                       /* unsigned: the shift drops t's high bits, */
    memcpy(&bits, &t, sizeof bits);                      /* which as a signed shift would be UB */
    bits = (bits + 1023u) << 52;                         /* low bits of t hold n */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float rk_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float shift = 12582912.0f;                     /* 1.5 * 2^23 */
    const float t = x * 1.44269504f + shift;
    const float n = t - shift;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f; p = p * r + 1.0f / 120.0f; p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f; p = p * r + 0.5f; p = p * r + 1.0f; p = p * r + 1.0f;
    uint32_t bits;                                       /* unsigned, as in rk_exp */
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* tanh(x) = 1 - 2 / (e^{2x} + 1): absolute error ~1 ulp of 1 (tolerances are absolute) */
static inline double rk_tanh(double x) { return 1.0 - 2.0 / (rk_exp(2.0 * x) + 1.0); }
static inline float rk_tanhf(float x) { return 1.0f - 2.0f / (rk_expf(2.0f * x) + 1.0f); }

/* exported for the accuracy tests of the kernels' exp/tanh over their whole input range */
RK_EXPORT void rk_exp_f64(const double *x, double *y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = rk_exp(x[i]); }
RK_EXPORT void rk_tanh_f64(const double *x, double *y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = rk_tanh(x[i]); }
RK_EXPORT void rk_exp_f32(const float *x, float *y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = rk_expf(x[i]); }
RK_EXPORT void rk_tanh_f32(const float *x, float *y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = rk_tanhf(x[i]); }

/* Vector width and register block of the matrix micro-kernel (math_impl.h), from the compile
 * flags _native.py chose for this CPU: AVX-512 (32 vector registers: 8 rows x 2 panels = 16
 * accumulators), AVX2+FMA (16 registers: 6 rows x 1 panel of two vectors = 12 accumulators), or
 * portable 16-byte vectors (the compiler's SSE/NEON). VFMA(a, w, c) = a * w + c for a scalar a
 * broadcast over the vectors w and c, one fused instruction where the CPU has one. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define RK_VBYTES 64
#define RK_MR 8
#define RK_NP 2
#define VFMA_F32(a, w, c) ((vec_f32)_mm512_fmadd_ps(_mm512_set1_ps(a), (__m512)(w), (__m512)(c)))
#define VFMA_F64(a, w, c) ((vec_f64)_mm512_fmadd_pd(_mm512_set1_pd(a), (__m512d)(w), (__m512d)(c)))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RK_VBYTES 32
#define RK_MR 6
#define RK_NP 1
#define VFMA_F32(a, w, c) ((vec_f32)_mm256_fmadd_ps(_mm256_set1_ps(a), (__m256)(w), (__m256)(c)))
#define VFMA_F64(a, w, c) ((vec_f64)_mm256_fmadd_pd(_mm256_set1_pd(a), (__m256d)(w), (__m256d)(c)))
#else
#define RK_VBYTES 16
#define RK_MR 3
#define RK_NP 1
#define VFMA_F32(a, w, c) ((c) + (a) * (w))
#define VFMA_F64(a, w, c) ((c) + (a) * (w))
#endif
#define RK_MR_MAX 8  /* the leftover-row kernels go up to 7 rows */

/* the vector width the kernels were compiled for, in bits (reported by python -m rnnkit.kernels) */
RK_EXPORT int rk_vector_bits(void) { return RK_VBYTES * 8; }

#define real float
#define SUF f32
#define VFMA VFMA_F32
#define EXP rk_expf
#define TANH rk_tanhf
#define SQRT sqrtf
#define LOG logf
#include "math_impl.h"      /* activations, matrix products: generic */
#include "cells.h"          /* the cells' table and each cell's step (cell_*.h) */
#include "recurrence_impl.h" /* a cell over a sequence, forward and BPTT; the streaming step */
#include "layer_impl.h"     /* a whole layer in one call */
#include "trainer_impl.h"   /* a whole training epoch in one call */
#undef real
#undef SUF
#undef VFMA
#undef EXP
#undef TANH
#undef SQRT
#undef LOG

#define real double
#define SUF f64
#define VFMA VFMA_F64
#define EXP rk_exp
#define TANH rk_tanh
#define SQRT sqrt
#define LOG log
#include "math_impl.h"      /* activations, matrix products: generic */
#include "cells.h"          /* the cells' table and each cell's step (cell_*.h) */
#include "recurrence_impl.h" /* a cell over a sequence, forward and BPTT; the streaming step */
#include "layer_impl.h"     /* a whole layer in one call */
#include "trainer_impl.h"   /* a whole training epoch in one call */
