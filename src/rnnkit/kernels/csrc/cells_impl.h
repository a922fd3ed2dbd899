/* rnnkit fused kernels: sequence forward and BPTT backward for the four cells.
 *
 * Included twice by rnnkit_kernels.c, once with real=float (SUF=f32) and once with real=double
 * (SUF=f64). The math is the math of src/rnnkit/cells.py, step for step; tests check every
 * kernel against that reference (outputs, states and all gradients, float64 and float32).
 *
 * Layout: time-major and row-major. T steps, B sequences, H hidden units, S state width
 * (H, or O for Jordan), G gate width (Elman H, Jordan H, LSTM 4H, GRU 3H).
 *   xg    (T,B,G)  input part of the gates, biases included (GRU: b_ih only; Jordan: b_h)
 *   whh   (G,S)    recurrent weights (Jordan: weight_yh)
 *   hs    (T+1,B,S) states, hs[0] = h0;  cs (T+1,B,H) LSTM cell states
 *   gates (T,B,G)  saved activations: LSTM i,f,g,o; GRU r,z,n
 *   aux   (T,B,H)  LSTM tanh(c); GRU W_hn h + b_hn; Jordan hidden h
 *   out   (T,B,S)  outputs, zero past each sequence's length
 * A step t >= lengths[b] leaves the state unchanged and emits zeros (lengths may be NULL).
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

/* One step of the GRU and LSTM point-wise math for one sequence (restrict: the buffers never
 * overlap, which lets the compiler vectorise the whole loop). */
static void FN(gru_point)(int H, const real *restrict x, const real *restrict hb, const real *restrict sp,
                          real *restrict g, real *restrict hn, real *restrict sn, real *restrict o) {
    for (int j = 0; j < H; ++j) {
        const real r = FN(sigm)(x[j] + hb[j]);
        const real z = FN(sigm)(x[H + j] + hb[H + j]);
        const real hnj = hb[2 * H + j];
        const real n = TANH(x[2 * H + j] + r * hnj);
        g[j] = r; g[H + j] = z; g[2 * H + j] = n;
        hn[j] = hnj;
        const real h = ((real)1 - z) * n + z * sp[j];
        sn[j] = h;
        o[j] = h;
    }
}

static void FN(lstm_point)(int H, real *restrict g, const real *restrict cp, real *restrict cn,
                           real *restrict tc, real *restrict sn, real *restrict o) {
    for (int j = 0; j < 2 * H; ++j) g[j] = FN(sigm)(g[j]);
    for (int j = 2 * H; j < 3 * H; ++j) g[j] = TANH(g[j]);
    for (int j = 3 * H; j < 4 * H; ++j) g[j] = FN(sigm)(g[j]);
    for (int j = 0; j < H; ++j) {
        const real c = g[H + j] * cp[j] + g[j] * g[2 * H + j];
        cn[j] = c;
        tc[j] = TANH(c);
        const real h = g[3 * H + j] * tc[j];
        sn[j] = h;
        o[j] = h;
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


/* Workspace (in reals) the forward needs for batch B: the recurrent weights packed into panels, then
 * Jordan's transposed output weights (H*S) or GRU's hidden gate products of one step (B*G). */
RK_EXPORT int64_t FN(rk_forward_work)(int cell, int B, int H, int S) {
    const int64_t G = gate_width(cell, H);
    return FN(rk_panel_size)(S, (int)G) + (cell == CELL_JORDAN ? (int64_t)H * S : cell == CELL_GRU ? B * G : 0);
}

/* Jordan-only arguments: why (O,H), by (O) may be NULL when bias=False. GRU: bhh (3H) may be NULL.
 * With pretransposed != 0, whh is already the panels of whh^T (rk_pack_panels(whh, S, G, 1)) and
 * why is why^T (H,O): the streaming step prepares them once. */
RK_EXPORT void FN(rk_forward)(int cell, int act, int out_act, int B, int T, int H, int S,
                              const real *xg, const real *whh, const real *bhh, const real *why,
                              const real *by, const int64_t *lengths, real *hs, real *cs,
                              real *gates, real *aux, real *out, real *work, int pretransposed) {
    FTZ_BEGIN
    const int G = gate_width(cell, H);
    const size_t npan = (size_t)FN(rk_panel_size)(S, G);
    real *hh = work + npan;                /* GRU: (B,G) = W_hh h + b_hh of one step */
    const real *WT = whh, *WyT = why;      /* panels of whh^T (S,G); Jordan: (H,O) = why^T */
    if (!pretransposed) {
        FN(rk_pack_panels)(whh, S, G, 1, work);
        WT = work;
        if (cell == CELL_JORDAN) {
            FN(transpose)(why, S, H, work + npan);
            WyT = work + npan;
        }
    }
    for (int t = 0; t < T; ++t) {
        /* the recurrent product of all B sequences at once: (B,S) @ (S,G) */
        const size_t t0 = (size_t)t * B;
        if (cell == CELL_GRU) {
            for (int b = 0; b < B; ++b)
                for (int j = 0; j < G; ++j) hh[(size_t)b * G + j] = bhh ? bhh[j] : 0;
            FN(matmul_panels)(hs + t0 * S, WT, hh, B, S, G);
        } else {
            memcpy(gates + t0 * G, xg + t0 * G, sizeof(real) * B * G);
            FN(matmul_panels)(hs + t0 * S, WT, gates + t0 * G, B, S, G);
        }
        for (int b = 0; b < B; ++b) {
            const size_t tb = t0 + b;
            const real *sp = hs + tb * S;                 /* previous state */
            real *sn = hs + (tb + B) * S;                 /* next state */
            real *o = out + tb * S;
            real *g = gates + tb * G;
            const int active = !lengths || t < lengths[b];
            if (!active) {
                memcpy(sn, sp, sizeof(real) * S);
                if (cell == CELL_LSTM) memcpy(cs + (tb + B) * H, cs + tb * H, sizeof(real) * H);
                memset(o, 0, sizeof(real) * S);
                memset(g, 0, sizeof(real) * G);
                memset(aux + tb * H, 0, sizeof(real) * H);
                continue;
            }
            if (cell == CELL_GRU) {
                FN(gru_point)(H, xg + tb * G, hh + (size_t)b * G, sp, g, aux + tb * H, sn, o);
            } else if (cell == CELL_ELMAN) {
                FN(act_vec)(act, g, sn, H);
                memcpy(o, sn, sizeof(real) * S);
            } else if (cell == CELL_JORDAN) {
                real *h = aux + tb * H;
                FN(act_vec)(act, g, h, H);
                for (int k = 0; k < S; ++k) o[k] = by ? by[k] : 0;
                FN(vecmat_acc)(h, WyT, o, H, S);
                FN(act_vec)(out_act, o, sn, S);
                memcpy(o, sn, sizeof(real) * S);
            } else { /* LSTM */
                FN(lstm_point)(H, g, cs + tb * H, cs + (tb + B) * H, aux + tb * H, sn, o);
            }
        }
    }
    FTZ_END
}


/* BPTT. dout (T,B,S) and dhn (B,S), dcn (B,H) may be NULL (zero). Writes:
 *   dgx (T,B,G): gradient w.r.t. xg (so dW_ih = dgx^T x, db_ih = sum dgx, dx = dgx W_ih)
 *   dgh (T,B,G): GRU only, gradient w.r.t. W_hh h + b_hh (dW_hh = dgh^T h_prev, db_hh = sum dgh);
 *                other cells: dW_hh = dgx^T s_prev (dgh may be NULL)
 *   dyp (T,B,O): Jordan only, gradient w.r.t. W_hy h + b_y (dW_hy = dyp^T h, db_y = sum dyp)
 *   dh0 (B,S), dc0 (B,H, LSTM): gradients w.r.t. the initial state. */
RK_EXPORT void FN(rk_backward)(int cell, int act, int out_act, int B, int T, int H, int S,
                               const real *whh, const real *why, const int64_t *lengths,
                               const real *hs, const real *cs, const real *gates, const real *aux,
                               const real *dout, const real *dhn, const real *dcn,
                               real *dgx, real *dgh, real *dyp, real *dh0, real *dc0, real *work) {
    FTZ_BEGIN
    const int G = gate_width(cell, H);
    real *dht = work;               /* (S) the state gradient of one sequence at one step */
    real *dhid = work + S;          /* (H) Jordan hidden grads */
    real *WP = dhid + H;            /* panels of whh (G,S) */
    FN(rk_pack_panels)(whh, G, S, 0, WP);
    real *dh = dh0, *dc = dc0;      /* running state grads live in the outputs */
    if (dhn) memcpy(dh, dhn, sizeof(real) * B * S); else memset(dh, 0, sizeof(real) * B * S);
    if (cell == CELL_LSTM) {
        if (dcn) memcpy(dc, dcn, sizeof(real) * B * H); else memset(dc, 0, sizeof(real) * B * H);
    }
    for (int t = T - 1; t >= 0; --t) {
        const size_t t0 = (size_t)t * B;
        for (int b = 0; b < B; ++b) {
            const size_t tb = t0 + b;
            real *dx = dgx + tb * G;
            real *dhb = dh + (size_t)b * S;
            const int active = !lengths || t < lengths[b];
            if (!active) {  /* the state passes through untouched; zero rows add nothing below */
                memset(dx, 0, sizeof(real) * G);
                if (dgh) memset(dgh + tb * G, 0, sizeof(real) * G);
                if (dyp) memset(dyp + tb * S, 0, sizeof(real) * S);
                continue;
            }
            const real *g = gates + tb * G;
            const real *sp = hs + tb * S, *sn = hs + (tb + B) * S;
            for (int k = 0; k < S; ++k) dht[k] = dhb[k] + (dout ? dout[tb * S + k] : 0);
            memset(dhb, 0, sizeof(real) * S);  /* refilled: direct part here, product below */
            if (cell == CELL_ELMAN) {
                for (int j = 0; j < H; ++j) dx[j] = dht[j] * FN(dact)(act, sn[j]);
            } else if (cell == CELL_JORDAN) {
                const real *h = aux + tb * H;
                real *dy = dyp + tb * S;
                for (int k = 0; k < S; ++k) dy[k] = dht[k] * FN(dact)(out_act, sn[k]);
                memset(dhid, 0, sizeof(real) * H);
                FN(vecmat_acc)(dy, why, dhid, S, H);
                for (int j = 0; j < H; ++j) dx[j] = dhid[j] * FN(dact)(act, h[j]);
            } else if (cell == CELL_LSTM) {
                const real *tc = aux + tb * H, *cp = cs + tb * H;
                real *dcb = dc + (size_t)b * H;
                for (int j = 0; j < H; ++j) {
                    const real i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
                    const real dcj = dcb[j] + dht[j] * o * ((real)1 - tc[j] * tc[j]);
                    dx[j] = dcj * gg * i * ((real)1 - i);
                    dx[H + j] = dcj * cp[j] * f * ((real)1 - f);
                    dx[2 * H + j] = dcj * i * ((real)1 - gg * gg);
                    dx[3 * H + j] = dht[j] * tc[j] * o * ((real)1 - o);
                    dcb[j] = dcj * f;
                }
            } else { /* GRU */
                const real *hn = aux + tb * H;
                real *dr = dgh + tb * G;
                for (int j = 0; j < H; ++j) {
                    const real r = g[j], z = g[H + j], n = g[2 * H + j];
                    const real dn = dht[j] * ((real)1 - z) * ((real)1 - n * n);
                    const real dzp = dht[j] * (sp[j] - n) * z * ((real)1 - z);
                    const real drp = dn * hn[j] * r * ((real)1 - r);
                    dx[j] = drp; dx[H + j] = dzp; dx[2 * H + j] = dn;
                    dr[j] = drp; dr[H + j] = dzp; dr[2 * H + j] = dn * r;
                    dhb[j] = dht[j] * z;
                }
            }
        }
        /* the recurrent product for all B sequences at once: dh += dR (B,G) @ W_hh (G,S) */
        FN(matmul_panels)((cell == CELL_GRU ? dgh : dgx) + t0 * G, WP, dh, B, G, S);
    }
    FTZ_END
}

RK_EXPORT int64_t FN(rk_backward_work)(int cell, int H, int S) {
    return (int64_t)S + H + FN(rk_panel_size)(gate_width(cell, H), S);
}

/* Scratch (in reals) rk_stream needs for batch B. */
RK_EXPORT int64_t FN(rk_stream_work)(int cell, int B, int H, int S) {
    const int64_t G = gate_width(cell, H);
    return 2 * B * G + 2 * (int64_t)B * S + 2 * (int64_t)B * H + B * (int64_t)H + FN(rk_forward_work)(cell, B, H, S);
}

/* One time step of an L-layer stack for streaming inference. Weights come prepared, six pointers
 * per layer in wptrs: panels of w_ih^T (in,G) and of w_hh^T (S,G) (rk_pack_panels with trans=1),
 * b_x (G: the bias folded into the input part, or NULL), b_h (GRU's b_hh or NULL), why^T (H,O:
 * Jordan), b_y (Jordan or NULL).
 * x (B,I); s_in/s_out (L,B,S); c_in/c_out (L,B,H) for LSTM. Layer l > 0 reads s_out[l-1]. */
RK_EXPORT void FN(rk_stream)(int L, int cell, int act, int out_act, int B, int I, int H, int S,
                             const int64_t *wptrs, const real *x, const real *s_in, const real *c_in,
                             real *s_out, real *c_out, real *scratch) {
    FTZ_BEGIN
    const int G = gate_width(cell, H);
    real *xg = scratch, *hs = xg + (size_t)B * G, *cs = hs + 2 * (size_t)B * S;
    real *gates = cs + 2 * (size_t)B * H, *aux = gates + (size_t)B * G, *work = aux + (size_t)B * H;
    for (int l = 0; l < L; ++l) {
        const real *const *w = (const real *const *)(wptrs + 6 * l);
        const int in = l == 0 ? I : S;
        const real *inp = l == 0 ? x : s_out + (size_t)(l - 1) * B * S;
        for (int b = 0; b < B; ++b) {
            real *g = xg + (size_t)b * G;
            if (w[2]) memcpy(g, w[2], sizeof(real) * G); else memset(g, 0, sizeof(real) * G);
        }
        FN(matmul_panels)(inp, w[0], xg, B, in, G);
        memcpy(hs, s_in + (size_t)l * B * S, sizeof(real) * B * S);
        if (cell == CELL_LSTM) memcpy(cs, c_in + (size_t)l * B * H, sizeof(real) * B * H);
        FN(rk_forward)(cell, act, out_act, B, 1, H, S, xg, w[1], w[3], w[4], w[5], NULL, hs,
                       cell == CELL_LSTM ? cs : NULL, gates, aux, s_out + (size_t)l * B * S, work, 1);
        if (cell == CELL_LSTM) memcpy(c_out + (size_t)l * B * H, cs + (size_t)B * H, sizeof(real) * B * H);
    }
    FTZ_END
}

/* rk_stream with its arguments packed in one int64 array (one cheap ctypes call per step):
 * L, cell, act, out_act, B, I, H, S, wptrs, x, s_in, c_in, s_out, c_out, scratch. */
RK_EXPORT void FN(rk_stream_packed)(const int64_t *a) {
    FN(rk_stream)((int)a[0], (int)a[1], (int)a[2], (int)a[3], (int)a[4], (int)a[5], (int)a[6], (int)a[7],
                  (const int64_t *)(intptr_t)a[8], (const real *)(intptr_t)a[9], (const real *)(intptr_t)a[10],
                  (const real *)(intptr_t)a[11], (real *)(intptr_t)a[12], (real *)(intptr_t)a[13],
                  (real *)(intptr_t)a[14]);
}
