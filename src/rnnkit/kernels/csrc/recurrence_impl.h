/* rnnkit fused kernels: a cell's recurrence over a whole sequence, forward and BPTT backward, and
 * the streaming step. Generic: each time step calls the cell's own step (cells.h dispatches on the
 * cell's code), and what differs between cells here is read from its traits.
 *
 * Included twice by rnnkit_kernels.c, with real=float and real=double.
 * The math is the math of src/rnnkit/nn/cells, step for step; tests check every kernel against
 * that reference (outputs, states and all gradients, float64 and float32).
 *
 * Layout: time-major and row-major. T steps, B sequences, H hidden units, S state width
 * (H, or O for Jordan), G gate width (blocks * H: Elman H, Jordan H, LSTM 4H, GRU 3H).
 *   xg    (T,B,G)  input part of the gates, biases included (RK_HIDDEN_APART: b_ih only; Jordan: b_h)
 *   whh   (G,S)    recurrent weights (Jordan: weight_yh)
 *   hs    (T+1,B,S) states, hs[0] = h0;  cs (T+1,B,H) cell states (RK_CELL_STATE)
 *   gates (T,B,G)  saved activations: LSTM i,f,g,o; GRU r,z,n
 *   aux   (T,B,H)  the cell's per-step value: LSTM tanh(c); GRU W_hn h + b_hn; Jordan hidden h
 *   out   (T,B,S)  outputs, zero past each sequence's length
 * A step t >= lengths[b] leaves the state unchanged and emits zeros (lengths may be NULL).
 */

#define RK_FORWARD_CASE(code, name, blocks, traits) case code: FN(name##_forward)(&st); break;
#define RK_BACKWARD_CASE(code, name, blocks, traits) case code: FN(name##_backward)(&gr); break;

/* Workspace (in reals) the forward needs for batch B: the recurrent weights packed into panels, then
 * an output layer's transposed weights (H*S) and a kept-apart recurrent part of one step (B*G). */
RK_EXPORT int64_t FN(rk_forward_work)(int cell, int B, int H, int S) {
    const int64_t G = gate_width(cell, H);
    return FN(rk_panel_size)(S, (int)G) + (cell_has(cell, RK_OUTPUT_LAYER) ? (int64_t)H * S : 0)
           + (cell_has(cell, RK_HIDDEN_APART) ? B * G : 0);
}

/* Output-layer arguments (RK_OUTPUT_LAYER): why (O,H), by (O) may be NULL when bias=False.
 * bhh (G) is read only by RK_HIDDEN_APART cells (the others have it folded into xg) and may be NULL.
 * With pretransposed != 0, whh is already the panels of whh^T (rk_pack_panels(whh, S, G, 1)) and
 * why is why^T (H,O): the streaming step prepares them once. */
RK_EXPORT void FN(rk_forward)(int cell, int act, int out_act, int B, int T, int H, int S,
                              const real *xg, const real *whh, const real *bhh, const real *why,
                              const real *by, const int64_t *lengths, real *hs, real *cs,
                              real *gates, real *aux, real *out, real *work, int pretransposed) {
    FTZ_BEGIN
    const int G = gate_width(cell, H);
    const int apart = cell_has(cell, RK_HIDDEN_APART), cstate = cell_has(cell, RK_CELL_STATE);
    const int outlayer = cell_has(cell, RK_OUTPUT_LAYER);
    const size_t npan = (size_t)FN(rk_panel_size)(S, G);
    real *hh = work + npan + (outlayer ? (size_t)H * S : 0);  /* apart: (B,G) = W_hh s + b_hh of one step */
    const real *WT = whh, *WyT = why;      /* panels of whh^T (S,G); output layer: (H,O) = why^T */
    if (!pretransposed) {
        FN(rk_pack_panels)(whh, S, G, 1, work);
        WT = work;
        if (outlayer) {
            FN(transpose)(why, S, H, work + npan);
            WyT = work + npan;
        }
    }
    FN(step_t) st = {0};
    st.H = H; st.S = S; st.act = act; st.out_act = out_act; st.wy = WyT; st.by = by;
    for (int t = 0; t < T; ++t) {
        /* the recurrent product of all B sequences at once: (B,S) @ (S,G) */
        const size_t t0 = (size_t)t * B;
        if (apart) {
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
                if (cstate) memcpy(cs + (tb + B) * H, cs + tb * H, sizeof(real) * H);
                memset(o, 0, sizeof(real) * S);
                memset(g, 0, sizeof(real) * G);
                memset(aux + tb * H, 0, sizeof(real) * H);
                continue;
            }
            st.g = g; st.sp = sp; st.sn = sn; st.o = o; st.aux = aux + tb * H;
            if (apart) { st.xg = xg + tb * G; st.hh = hh + (size_t)b * G; }
            if (cstate) { st.cp = cs + tb * H; st.cn = cs + (tb + B) * H; }
            switch (cell) { RK_CELLS(RK_FORWARD_CASE) default: break; }
        }
    }
    FTZ_END
}


/* BPTT. dout (T,B,S) and dhn (B,S), dcn (B,H) may be NULL (zero). Writes:
 *   dgx (T,B,G): gradient w.r.t. xg (so dW_ih = dgx^T x, db_ih = sum dgx, dx = dgx W_ih)
 *   dgh (T,B,G): RK_HIDDEN_APART only, gradient w.r.t. W_hh h + b_hh (dW_hh = dgh^T h_prev,
 *                db_hh = sum dgh); other cells: dW_hh = dgx^T s_prev (dgh may be NULL)
 *   dyp (T,B,O): RK_OUTPUT_LAYER only, gradient w.r.t. W_hy h + b_y (dW_hy = dyp^T h, db_y = sum dyp)
 *   dh0 (B,S), dc0 (B,H, RK_CELL_STATE): gradients w.r.t. the initial state. */
RK_EXPORT void FN(rk_backward)(int cell, int act, int out_act, int B, int T, int H, int S,
                               const real *whh, const real *why, const int64_t *lengths,
                               const real *hs, const real *cs, const real *gates, const real *aux,
                               const real *dout, const real *dhn, const real *dcn,
                               real *dgx, real *dgh, real *dyp, real *dh0, real *dc0, real *work) {
    FTZ_BEGIN
    const int G = gate_width(cell, H);
    const int apart = cell_has(cell, RK_HIDDEN_APART), cstate = cell_has(cell, RK_CELL_STATE);
    const int outlayer = cell_has(cell, RK_OUTPUT_LAYER);
    real *dht = work;               /* (S) the state gradient of one sequence at one step */
    real *dhid = work + S;          /* (H) the cell's scratch (Jordan: hidden grads) */
    real *WP = dhid + H;            /* panels of whh (G,S) */
    FN(rk_pack_panels)(whh, G, S, 0, WP);
    real *dh = dh0, *dc = dc0;      /* running state grads live in the outputs */
    if (dhn) memcpy(dh, dhn, sizeof(real) * B * S); else memset(dh, 0, sizeof(real) * B * S);
    if (cstate) {
        if (dcn) memcpy(dc, dcn, sizeof(real) * B * H); else memset(dc, 0, sizeof(real) * B * H);
    }
    FN(grad_t) gr = {0};
    gr.H = H; gr.S = S; gr.act = act; gr.out_act = out_act; gr.wy = why; gr.dh = dht; gr.tmp = dhid;
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
            for (int k = 0; k < S; ++k) dht[k] = dhb[k] + (dout ? dout[tb * S + k] : 0);
            memset(dhb, 0, sizeof(real) * S);  /* refilled: direct part here, product below */
            gr.g = gates + tb * G; gr.aux = aux + tb * H; gr.sp = hs + tb * S; gr.sn = hs + (tb + B) * S;
            gr.dx = dx; gr.dsp = dhb;
            if (apart) gr.dgh = dgh + tb * G;
            if (outlayer) gr.dy = dyp + tb * S;
            if (cstate) { gr.cp = cs + tb * H; gr.dc = dc + (size_t)b * H; }
            switch (cell) { RK_CELLS(RK_BACKWARD_CASE) default: break; }
        }
        /* the recurrent product for all B sequences at once: dh += dR (B,G) @ W_hh (G,S) */
        FN(matmul_panels)((apart ? dgh : dgx) + t0 * G, WP, dh, B, G, S);
    }
    FTZ_END
}

#undef RK_FORWARD_CASE
#undef RK_BACKWARD_CASE

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
 * b_x (G: the bias folded into the input part, or NULL), b_h (an RK_HIDDEN_APART cell's b_hh or
 * NULL), why^T (H,O: RK_OUTPUT_LAYER), b_y (RK_OUTPUT_LAYER or NULL).
 * x (B,I); s_in/s_out (L,B,S); c_in/c_out (L,B,H) for RK_CELL_STATE. Layer l > 0 reads s_out[l-1]. */
RK_EXPORT void FN(rk_stream)(int L, int cell, int act, int out_act, int B, int I, int H, int S,
                             const int64_t *wptrs, const real *x, const real *s_in, const real *c_in,
                             real *s_out, real *c_out, real *scratch) {
    FTZ_BEGIN
    const int G = gate_width(cell, H), cstate = cell_has(cell, RK_CELL_STATE);
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
        if (cstate) memcpy(cs, c_in + (size_t)l * B * H, sizeof(real) * B * H);
        FN(rk_forward)(cell, act, out_act, B, 1, H, S, xg, w[1], w[3], w[4], w[5], NULL, hs,
                       cstate ? cs : NULL, gates, aux, s_out + (size_t)l * B * S, work, 1);
        if (cstate) memcpy(c_out + (size_t)l * B * H, cs + (size_t)B * H, sizeof(real) * B * H);
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
