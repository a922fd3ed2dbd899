/* rnnkit fused kernels: the generic math every cell's kernels use: activations, the vector-matrix
 * product of one row, the register-blocked matrix products (packed "panels") and a transpose.
 *
 * Included twice by rnnkit_kernels.c, once with real=float (SUF=f32) and
 * once with real=double (SUF=f64). No cell's math lives here: each cell has its own header
 * (cell_*.h, listed in cells.h), and the recurrence, layer and trainer code around them is generic.
 */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUF)

static inline real FN(sigm)(real x) { return (real)1 / ((real)1 + EXP(-x)); }

/* y[0:n] = act(x[0:n]); the switch stays outside the loops so each one vectorises */
static void FN(act_vec)(int kind, const real *restrict x, real *restrict y, int n) {
    switch (kind) {
    case ACT_TANH: for (int j = 0; j < n; ++j) y[j] = TANH(x[j]); break;
    case ACT_RELU: for (int j = 0; j < n; ++j) y[j] = x[j] > 0 ? x[j] : 0; break;
    case ACT_SIGMOID: for (int j = 0; j < n; ++j) y[j] = FN(sigm)(x[j]); break;
    default: for (int j = 0; j < n; ++j) y[j] = x[j];
    }
}

/* derivative of the activation, written in terms of its output y */
static inline real FN(dact)(int kind, real y) {
    switch (kind) {
    case ACT_TANH: return (real)1 - y * y;
    case ACT_RELU: return y > 0 ? (real)1 : (real)0;
    case ACT_SIGMOID: return y * ((real)1 - y);
    default: return (real)1;
    }
}

/* g[0:N] += v[0:K] @ M, M row-major (K,N): axpy form, vectorises over N without reassociation */
static void FN(vecmat_acc)(const real *restrict v, const real *restrict M, real *restrict g, int K, int N) {
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const real v0 = v[k], v1 = v[k + 1], v2 = v[k + 2], v3 = v[k + 3];
        const real *m0 = M + (size_t)k * N, *m1 = m0 + N, *m2 = m1 + N, *m3 = m2 + N;
        for (int j = 0; j < N; ++j) g[j] += (m0[j] * v0 + m1[j] * v1) + (m2[j] * v2 + m3[j] * v3);
    }
    for (; k < K; ++k) {
        const real vk = v[k];
        const real *m0 = M + (size_t)k * N;
        for (int j = 0; j < N; ++j) g[j] += m0[j] * vk;
    }
}

/* Matrix products for the per-step recurrence and the whole-layer kernels.
 *
 * The right-hand matrix is first packed into "panels": strips of JB columns (64 bytes: one
 * AVX-512 vector, two AVX2 vectors), each stored k-major and contiguous, zero-padded past N. A
 * register-blocked micro-kernel then keeps an RK_MR-row by RK_NP-panel block of C in vector
 * registers over the whole K loop: each step loads RK_NP panel rows, broadcasts RK_MR values of
 * A and issues RK_MR * RK_NP fused multiply-adds into independent accumulators (enough of them to
 * hide the FMA latency), so the product runs near the FMA rate instead of the load rate, without
 * the cache-set conflicts a column walk through a wide row-major matrix causes. The block shape
 * per instruction set is chosen in rnnkit_kernels.c. Packing costs K*N once per call. */
#define JB ((int)(64 / sizeof(real)))
#define VL ((int)(RK_VBYTES / sizeof(real)))  /* reals per vector */
#define NV (JB / VL)                          /* vectors per panel row */

typedef real FN(vec) __attribute__((vector_size(RK_VBYTES)));

/* unaligned vector load/store (memcpy: no aliasing or alignment assumptions; one instruction) */
static inline FN(vec) FN(vload)(const real *p) { FN(vec) v; memcpy(&v, p, sizeof v); return v; }
static inline void FN(vstore)(real *p, FN(vec) v) { memcpy(p, &v, sizeof v); }

RK_EXPORT int64_t FN(rk_panel_size)(int K, int N) {
    return (int64_t)((N + JB - 1) / JB) * K * JB;
}

/* P = panels of op(Bm) (K,N): op(Bm) = Bm for Bm (K,N), or Bm^T for Bm (N,K) when trans != 0 */
RK_EXPORT void FN(rk_pack_panels)(const real *Bm, int K, int N, int trans, real *P) {
    const int ns = (N + JB - 1) / JB;
    for (int s = 0; s < ns; ++s)
        for (int k = 0; k < K; ++k) {
            real *p = P + ((size_t)s * K + k) * JB;
            for (int q = 0; q < JB; ++q) {
                const int j = s * JB + q;
                p[q] = j >= N ? (real)0 : trans ? Bm[(size_t)j * K + k] : Bm[(size_t)k * N + j];
            }
        }
}

/* C[mr rows, np panels] += A[mr rows, K] @ P[np panels]; mr, np and ta are compile-time
 * constants after inlining, so acc lives in registers. Row r of A is A[r * lda + k], or with ta
 * (A given transposed, (K, lda)) A[k * lda + r]. nvalid: valid columns from the first panel on. */
static inline __attribute__((always_inline)) void FN(micro)(const int mr, const int np, const int ta,
                                                           const real *restrict A, size_t lda, int K,
                                                           const real *restrict P, real *restrict C,
                                                           int N, int nvalid) {
    FN(vec) acc[RK_MR_MAX][RK_NP][NV];
    const size_t ps = (size_t)K * JB;
    for (int r = 0; r < mr; ++r)
        for (int p = 0; p < np; ++p)
            for (int v = 0; v < NV; ++v) acc[r][p][v] = (FN(vec)){0};
    for (int k = 0; k < K; ++k) {
        FN(vec) w[RK_NP][NV];
        for (int p = 0; p < np; ++p)
            for (int v = 0; v < NV; ++v) w[p][v] = FN(vload)(P + p * ps + (size_t)k * JB + v * VL);
        for (int r = 0; r < mr; ++r) {
            const real a = ta ? A[(size_t)k * lda + r] : A[(size_t)r * lda + k];
            for (int p = 0; p < np; ++p)
                for (int v = 0; v < NV; ++v) acc[r][p][v] = VFMA(a, w[p][v], acc[r][p][v]);
        }
    }
    for (int r = 0; r < mr; ++r) {
        real *c = C + (size_t)r * N;
        for (int p = 0; p < np; ++p) {
            const int nv = nvalid - p * JB;
            if (nv >= JB) {
                for (int v = 0; v < NV; ++v)
                    FN(vstore)(c + p * JB + v * VL, FN(vload)(c + p * JB + v * VL) + acc[r][p][v]);
            } else {
                real t[JB];
                memcpy(t, acc[r][p], sizeof t);
                for (int q = 0; q < nv; ++q) c[p * JB + q] += t[q];
            }
        }
    }
}

/* one row of A (the streaming step, batch-1 layers): four chains over k hide the FMA latency;
 * a[k * inc] is the row's k-th value */
static inline __attribute__((always_inline)) void FN(micro1)(const real *restrict a, size_t inc, int K,
                                                            const real *restrict P, real *restrict c, int nvalid) {
    FN(vec) acc[4][NV];
    for (int u = 0; u < 4; ++u)
        for (int v = 0; v < NV; ++v) acc[u][v] = (FN(vec)){0};
    int k = 0;
    for (; k + 4 <= K; k += 4)
        for (int u = 0; u < 4; ++u)
            for (int v = 0; v < NV; ++v)
                acc[u][v] = VFMA(a[(k + u) * inc], FN(vload)(P + (size_t)(k + u) * JB + v * VL), acc[u][v]);
    for (; k < K; ++k)
        for (int v = 0; v < NV; ++v) acc[0][v] = VFMA(a[k * inc], FN(vload)(P + (size_t)k * JB + v * VL), acc[0][v]);
    real t[JB];
    for (int v = 0; v < NV; ++v) {
        const FN(vec) sum = (acc[0][v] + acc[1][v]) + (acc[2][v] + acc[3][v]);
        memcpy(t + v * VL, &sum, sizeof sum);
    }
    const int n = nvalid < JB ? nvalid : JB;
    for (int q = 0; q < n; ++q) c[q] += t[q];
}

/* the leftover rows (fewer than RK_MR) of one block of np panels */
static inline __attribute__((always_inline)) void FN(micro_rest)(int rest, int np, const int ta, const real *A,
                                                                size_t lda, int K, const real *P, real *C,
                                                                int N, int nvalid) {
    if (rest == 1) {
        for (int p = 0; p < np; ++p)
            FN(micro1)(A, ta ? lda : 1, K, P + (size_t)p * K * JB, C + p * JB, nvalid - p * JB);
        return;
    }
#define RK_REST(n) case n: { if (np == RK_NP) FN(micro)(n, RK_NP, ta, A, lda, K, P, C, N, nvalid); \
                             else FN(micro)(n, 1, ta, A, lda, K, P, C, N, nvalid); } break;
    switch (rest) {
    RK_REST(2) RK_REST(3) RK_REST(4) RK_REST(5) RK_REST(6) default: RK_REST(7)
    }
#undef RK_REST
}

/* C[M,N] += op(A) @ op(B), op(B) given as panels P; op(A) = A (M,K), or with ta A^T for A (K,M) */
static inline __attribute__((always_inline)) void FN(matmul_core)(const int ta, const real *restrict A,
                                                                 const real *restrict P, real *restrict C,
                                                                 int M, int K, int N) {
    const int ns = (N + JB - 1) / JB;
    const size_t ps = (size_t)K * JB, lda = ta ? (size_t)M : (size_t)K;
    for (int s = 0; s < ns; s += RK_NP) {
        const int np = ns - s < RK_NP ? ns - s : RK_NP, nvalid = N - s * JB;
        const real *Ps = P + s * ps;
        real *Cs = C + (size_t)s * JB;
        int m = 0;
        for (; m + RK_MR <= M; m += RK_MR) {
            const real *Am = ta ? A + m : A + (size_t)m * K;
            if (np == RK_NP) FN(micro)(RK_MR, RK_NP, ta, Am, lda, K, Ps, Cs + (size_t)m * N, N, nvalid);
            else FN(micro)(RK_MR, 1, ta, Am, lda, K, Ps, Cs + (size_t)m * N, N, nvalid);
        }
        if (m < M) FN(micro_rest)(M - m, np, ta, ta ? A + m : A + (size_t)m * K, lda, K, Ps, Cs + (size_t)m * N, N, nvalid);
    }
}

/* C[M,N] += A[M,K] @ op(B), op(B) given as panels P */
static void FN(matmul_panels)(const real *restrict A, const real *restrict P, real *restrict C, int M, int K, int N) {
    FN(matmul_core)(0, A, P, C, M, K, N);
}

/* C[M,N] += A^T @ op(B) for A (K,M) row-major: weight gradients without transposing A */
static void FN(matmul_panels_ta)(const real *restrict A, const real *restrict P, real *restrict C, int M, int K, int N) {
    FN(matmul_core)(1, A, P, C, M, K, N);
}

/* one-off C[M,N] += op(A) @ op(Bm), packing into scratch (rk_panel_size(K,N) reals); op(A) = A
 * (M,K), or A^T for A (K,M) when trans_a != 0 */
static void FN(matmul_acc)(const real *A, int trans_a, const real *Bm, int trans, real *C, int M, int K, int N,
                           real *scratch) {
    FN(rk_pack_panels)(Bm, K, N, trans, scratch);
    if (trans_a) FN(matmul_panels_ta)(A, scratch, C, M, K, N);
    else FN(matmul_panels)(A, scratch, C, M, K, N);
}

/* exported for the tests: C[M,N] += op(A) @ op(Bm) through the micro-kernel (scratch holds
 * rk_panel_size(K, N) reals) */
RK_EXPORT void FN(rk_matmul)(const real *A, int trans_a, const real *Bm, int trans_b, real *C, int M, int K, int N,
                             real *scratch) {
    FN(matmul_acc)(A, trans_a, Bm, trans_b, C, M, K, N, scratch);
}

static void FN(transpose)(const real *A, int R, int C, real *AT) {
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) AT[(size_t)c * R + r] = A[(size_t)r * C + c];
}


