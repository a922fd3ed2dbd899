/* rnnkit fused kernels: one whole layer (one direction) in one call, forward and backward.
 *
 * Around the recurrence of recurrence_impl.h these add the input projection, the weight gradients and
 * the input gradient, so a small layer costs one native call each way instead of a dozen torch
 * operations. Inputs and outputs are batch-first like rnnkit's models: x (B,T,in), out (B,T,S),
 * dout (B,T,S), dx (B,T,in). Everything backward needs lives in one "saved" buffer:
 *   xg (T,B,G) | hs (T+1,B,S) | cs (T+1,B,H) | gates (T,B,G) | aux (T,B,H) | out_tm (T,B,S)
 * Weights: w_ih (G,in), whh (G,S); biases b_ih, b_hh (G) (RK_OUTPUT_LAYER, Jordan: b_h (H) and no
 * b_hh); the output layer why (S,H), by (S). Any bias may be NULL (bias=False).
 */

typedef struct {
    real *xg, *hs, *cs, *gates, *aux, *out;
} FN(saved_t);

static FN(saved_t) FN(saved_views)(real *sv, int cell, int B, int T, int H, int S) {
    const size_t G = gate_width(cell, H);
    FN(saved_t) v;
    v.xg = sv;
    v.hs = v.xg + (size_t)T * B * G;
    v.cs = v.hs + (size_t)(T + 1) * B * S;
    v.gates = v.cs + (size_t)(T + 1) * B * H;
    v.aux = v.gates + (size_t)T * B * G;
    v.out = v.aux + (size_t)T * B * H;
    return v;
}

RK_EXPORT int64_t FN(rk_layer_saved_size)(int cell, int B, int T, int H, int S) {
    const int64_t G = gate_width(cell, H);
    return 2 * (int64_t)T * B * G + 2 * (int64_t)(T + 1) * B * S + (int64_t)(T + 1) * B * H
           + (int64_t)T * B * H + (int64_t)T * B * S;
}

RK_EXPORT int64_t FN(rk_layer_work_size)(int cell, int B, int T, int in, int H, int S) {
    const int64_t G = gate_width(cell, H), TB = (int64_t)T * B;
    /* backward's panel scratch serves one product at a time: x or h_prev (TB rows), or w_ih (G rows) */
    const int64_t pan_t = FN(rk_panel_size)((int)TB, in > S ? in : S), pan_w = FN(rk_panel_size)((int)G, in);
    const int64_t fwd = FN(rk_panel_size)(in, (int)G) + TB * G + FN(rk_forward_work)(cell, B, H, S);
    /* dout_tm (TB,S) | dgx, dgh (TB,G) | dyp (TB,S) | rk_backward's work | dgx_bt (TB,G) | panels */
    const int64_t bwd = 2 * TB * S + 3 * TB * G + FN(rk_backward_work)(cell, H, S) + (pan_t > pan_w ? pan_t : pan_w);
    return fwd > bwd ? fwd : bwd;
}

/* Forward. s0 (B,S), c0 (B,H: RK_CELL_STATE) may be NULL (zeros). Writes sv, out (B,T,S), sn (B,S) and
 * cn (B,H: RK_CELL_STATE) = the state after each sequence's last step. */
RK_EXPORT void FN(rk_layer_forward)(int cell, int act, int out_act, int B, int T, int in, int H, int S,
                                    const real *x, const real *wih, const real *whh, const real *bih,
                                    const real *bhh, const real *why, const real *by,
                                    const int64_t *lengths, const real *s0, const real *c0, real *sv,
                                    real *out, real *sn, real *cn, real *work) {
    FTZ_BEGIN
    const int G = gate_width(cell, H);
    const int apart = cell_has(cell, RK_HIDDEN_APART), cstate = cell_has(cell, RK_CELL_STATE);
    FN(saved_t) v = FN(saved_views)(sv, cell, B, T, H, S);
    const size_t TB = (size_t)T * B;
    real *WP = work;                              /* panels of w_ih^T (in,G) */
    real *xg_bt = WP + FN(rk_panel_size)(in, G);  /* (B*T,G) input part, rows in x's (b,t) order */
    real *fwork = xg_bt + TB * G;
    FN(rk_pack_panels)(wih, in, G, 1, WP);
    const int fold = !apart;  /* both biases join the input part (an output layer has no b_hh) */
    for (size_t r = 0; r < TB; ++r)
        for (int j = 0; j < G; ++j) xg_bt[r * G + j] = (bih ? bih[j] : 0) + (fold && bhh ? bhh[j] : 0);
    FN(matmul_panels)(x, WP, xg_bt, (int)TB, in, G);   /* (B*T,in) @ (in,G) */
    for (int b = 0; b < B; ++b)                     /* (b,t) rows -> time-major (t,b) */
        for (int t = 0; t < T; ++t)
            memcpy(v.xg + ((size_t)t * B + b) * G, xg_bt + ((size_t)b * T + t) * G, sizeof(real) * G);
    if (s0) memcpy(v.hs, s0, sizeof(real) * B * S); else memset(v.hs, 0, sizeof(real) * B * S);
    if (cstate) {
        if (c0) memcpy(v.cs, c0, sizeof(real) * B * H); else memset(v.cs, 0, sizeof(real) * B * H);
    }
    FN(rk_forward)(cell, act, out_act, B, T, H, S, v.xg, whh, apart ? bhh : NULL, why, by,
                   lengths, v.hs, cstate ? v.cs : NULL, v.gates, v.aux, v.out, fwork, 0);
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < T; ++t)
            memcpy(out + ((size_t)b * T + t) * S, v.out + ((size_t)t * B + b) * S, sizeof(real) * S);
    /* inactive steps copy the state forward, so step T holds each sequence's final state */
    if (sn) memcpy(sn, v.hs + (size_t)T * B * S, sizeof(real) * B * S);
    if (cn && cstate) memcpy(cn, v.cs + (size_t)T * B * H, sizeof(real) * B * H);
    FTZ_END
}

/* Backward. dout (B,T,S), dsn (B,S), dcn (B,H) may be NULL (zero). Writes (overwrites) the
 * gradients of every weight that is non-NULL in the forward (gwih (G,in), gwhh (G,S), gbih, gbhh
 * (G; Jordan gbih = d b_h (H)), gwhy (S,H), gby (S)), ds0 (B,S), dc0 (B,H: RK_CELL_STATE), and dx (B,T,in)
 * when non-NULL. */
RK_EXPORT void FN(rk_layer_backward)(int cell, int act, int out_act, int B, int T, int in, int H, int S,
                                     const real *x, const real *wih, const real *whh, const real *why,
                                     const int64_t *lengths, const real *sv, const real *dout,
                                     const real *dsn, const real *dcn, real *gwih, real *gwhh,
                                     real *gbih, real *gbhh, real *gwhy, real *gby, real *ds0,
                                     real *dc0, real *dx, real *work) {
    FTZ_BEGIN
    const int G = gate_width(cell, H);
    const int apart = cell_has(cell, RK_HIDDEN_APART), cstate = cell_has(cell, RK_CELL_STATE);
    const int outlayer = cell_has(cell, RK_OUTPUT_LAYER);
    FN(saved_t) v = FN(saved_views)((real *)sv, cell, B, T, H, S);
    const size_t TB = (size_t)T * B;
    real *dout_tm = work, *dgx = dout_tm + TB * S, *dgh = dgx + TB * G, *dyp = dgh + TB * G;
    real *bwork = dyp + TB * S;
    if (dout)
        for (int t = 0; t < T; ++t)
            for (int b = 0; b < B; ++b)
                memcpy(dout_tm + ((size_t)t * B + b) * S, dout + ((size_t)b * T + t) * S, sizeof(real) * S);
    FN(rk_backward)(cell, act, out_act, B, T, H, S, whh, why, lengths, v.hs,
                    cstate ? v.cs : NULL, v.gates, v.aux, dout ? dout_tm : NULL, dsn,
                    cstate ? dcn : NULL, dgx, apart ? dgh : NULL,
                    outlayer ? dyp : NULL, ds0, cstate ? dc0 : NULL, bwork);
    const real *dgr = apart ? dgh : dgx;  /* grads of the hidden product, (T,B,G) */
    real *dgx_bt = bwork + FN(rk_backward_work)(cell, H, S);  /* (B*T,G): dgx in x's (b,t) order */
    real *pan = dgx_bt + TB * G;                   /* panel scratch for the one-off products */
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < T; ++t)
            memcpy(dgx_bt + ((size_t)b * T + t) * G, dgx + ((size_t)t * B + b) * G, sizeof(real) * G);
    memset(gwih, 0, sizeof(real) * (size_t)G * in);
    memset(gwhh, 0, sizeof(real) * (size_t)G * S);
    FN(matmul_acc)(dgx_bt, 1, x, 0, gwih, G, (int)TB, in, pan);  /* dW_ih = dgx^T x */
    FN(matmul_acc)(dgr, 1, v.hs, 0, gwhh, G, (int)TB, S, pan);   /* dW_hh = dgr^T h_prev (hs rows 0..T-1) */
    if (gbih || gbhh) {
        if (gbih) memset(gbih, 0, sizeof(real) * G);
        if (gbhh) memset(gbhh, 0, sizeof(real) * G);
        for (size_t r = 0; r < TB; ++r) {
            const real *a = dgx + r * G, *c = dgr + r * G;
            if (gbih) for (int j = 0; j < G; ++j) gbih[j] += a[j];
            if (gbhh) for (int j = 0; j < G; ++j) gbhh[j] += c[j];
        }
    }
    if (outlayer) {
        memset(gwhy, 0, sizeof(real) * (size_t)S * H);
        if (gby) memset(gby, 0, sizeof(real) * S);
        for (size_t r = 0; r < TB; ++r) {
            const real *dy = dyp + r * S, *h = v.aux + r * H;
            for (int o = 0; o < S; ++o) {
                real *gy = gwhy + (size_t)o * H;
                for (int j = 0; j < H; ++j) gy[j] += dy[o] * h[j];
                if (gby) gby[o] += dy[o];
            }
        }
    }
    if (dx) {                                            /* dx = dgx W_ih, rows (b,t) */
        memset(dx, 0, sizeof(real) * TB * in);
        FN(matmul_acc)(dgx_bt, 0, wih, 0, dx, (int)TB, G, in, pan);
    }
    FTZ_END
}
