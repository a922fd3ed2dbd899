/* rnnkit fused trainer: a whole epoch of training steps (forward, loss, BPTT, clipping and the
 * optimiser update) in one native call, on one flat parameter buffer.
 *
 * Supported model: num_layers unidirectional layers of one cell (biases on), then a linear head
 * on the last step's output (head_mode 0) or on every step from `warmup` on (head_mode 1).
 * Losses: mean squared error, mean absolute error, cross-entropy (head_mode 0, optional class
 * weights). Optimisers: torch's Adam, SGD (momentum), Adagrad, RMSprop formulas exactly.
 *
 * Flat parameter order (= the model's parameters() order), per layer l with input width in_l:
 *   most cells (Elman, LSTM, GRU): W_ih (G,in_l), W_hh (G,S), b_ih (G), b_hh (G)
 *   RK_OUTPUT_LAYER (Jordan):     W_ih (H,in_l), W_yh (H,O), b_h (H), W_hy (O,H), b_y (O)
 * then the head: W (P,S), b (P).
 */

static int64_t FN(layer_size)(const rk_train_spec *sp, int l) {
    const int H = sp->hidden, S = sp->state, G = gate_width(sp->cell, H);
    const int in = l == 0 ? sp->input_size : S;
    /* W_ih, W_hh, b_ih, then b_hh, or an output layer's W_hy and b_y */
    const int64_t rest = cell_has(sp->cell, RK_OUTPUT_LAYER) ? (int64_t)S * H + S : G;
    return (int64_t)G * in + (int64_t)G * S + G + rest;
}

RK_EXPORT int64_t FN(rk_num_params)(const rk_train_spec *sp) {
    int64_t n = 0;
    for (int l = 0; l < sp->num_layers; ++l) n += FN(layer_size)(sp, l);
    return n + (int64_t)sp->head_out * sp->state + sp->head_out;
}

/* gradient step on the flat buffer, torch's formulas (torch.optim, single-tensor path) */
static void FN(optimizer_step)(const rk_train_spec *sp, real *p, real *g, real *s1, real *s2,
                               int64_t n, int64_t step, double lr) {
    const real wd = (real)sp->weight_decay;
    if (sp->optimizer == OPT_ADAM) {
        const double bc1 = 1.0 - pow(sp->beta1, (double)step), bc2 = 1.0 - pow(sp->beta2, (double)step);
        const real step_size = (real)(lr / bc1), bc2_sqrt = (real)sqrt(bc2);
        const real b1 = (real)(1.0 - sp->beta1), b2 = (real)sp->beta2, ob2 = (real)(1.0 - sp->beta2);
        const real eps = (real)sp->eps;
        for (int64_t i = 0; i < n; ++i) {
            const real gi = wd != 0 ? g[i] + wd * p[i] : g[i];
            s1[i] += b1 * (gi - s1[i]);                /* exp_avg.lerp_(grad, 1 - beta1) */
            s2[i] = s2[i] * b2 + ob2 * gi * gi;        /* exp_avg_sq.mul_(beta2).addcmul_(...) */
            const real denom = SQRT(s2[i]) / bc2_sqrt + eps;
            p[i] -= step_size * (s1[i] / denom);
        }
    } else if (sp->optimizer == OPT_SGD) {
        const real mom = (real)sp->momentum, lr_ = (real)lr;
        for (int64_t i = 0; i < n; ++i) {
            real gi = wd != 0 ? g[i] + wd * p[i] : g[i];
            if (mom != 0) {
                s1[i] = step == 1 ? gi : s1[i] * mom + gi;
                gi = s1[i];
            }
            p[i] -= lr_ * gi;
        }
    } else if (sp->optimizer == OPT_ADAGRAD) {
        const real lr_ = (real)lr, eps = (real)1e-10;
        for (int64_t i = 0; i < n; ++i) {
            const real gi = wd != 0 ? g[i] + wd * p[i] : g[i];
            s1[i] += gi * gi;
            p[i] -= lr_ * (gi / (SQRT(s1[i]) + eps));
        }
    } else { /* RMSprop, alpha 0.99, eps 1e-8, not centred */
        const real alpha = (real)sp->alpha, oa = (real)(1.0 - sp->alpha), eps = (real)sp->eps;
        const real mom = (real)sp->momentum, lr_ = (real)lr;
        for (int64_t i = 0; i < n; ++i) {
            const real gi = wd != 0 ? g[i] + wd * p[i] : g[i];
            s1[i] = s1[i] * alpha + oa * gi * gi;
            const real avg = SQRT(s1[i]) + eps;
            if (mom != 0) {
                s2[i] = s2[i] * mom + gi / avg;
                p[i] -= lr_ * s2[i];
            } else {
                p[i] -= lr_ * (gi / avg);
            }
        }
    }
}

static void FN(clip)(const rk_train_spec *sp, real *g, int64_t n) {
    if (sp->clip_value > 0) {
        const real c = (real)sp->clip_value;
        for (int64_t i = 0; i < n; ++i) g[i] = g[i] > c ? c : (g[i] < -c ? -c : g[i]);
    }
    if (sp->clip_norm > 0) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += (double)g[i] * g[i];
        const real norm = (real)sqrt(ss);
        real coef = (real)sp->clip_norm / (norm + (real)1e-6);
        if (coef < 1) for (int64_t i = 0; i < n; ++i) g[i] *= coef;
    }
}

/* loss of one batch and its gradient dz w.r.t. the head outputs z (R rows of P) */
static double FN(loss_grad)(const rk_train_spec *sp, const real *z, const real *y, real *dz,
                            int R, int P, const real *class_w) {
    double loss = 0;
    if (sp->loss == LOSS_CE) {
        double wsum = 0;
        for (int r = 0; r < R; ++r) wsum += class_w ? class_w[(int)y[r]] : 1.0;
        for (int r = 0; r < R; ++r) {
            const real *zr = z + (size_t)r * P;
            real *d = dz + (size_t)r * P;
            real m = zr[0];
            for (int k = 1; k < P; ++k) m = zr[k] > m ? zr[k] : m;
            real se = 0;
            for (int k = 0; k < P; ++k) { d[k] = EXP(zr[k] - m); se += d[k]; }
            const int c = (int)y[r];
            const real w = class_w ? class_w[c] : (real)1;
            loss += (double)w * (-(double)(zr[c] - m - LOG(se)));
            for (int k = 0; k < P; ++k) d[k] = w * (d[k] / se - (k == c)) / (real)wsum;
        }
        return loss / wsum;
    }
    const int64_t cnt = (int64_t)R * P;
    for (int64_t i = 0; i < cnt; ++i) {
        const real diff = z[i] - y[i];
        if (sp->loss == LOSS_MSE) {
            loss += (double)diff * diff;
            dz[i] = (real)2 * diff / (real)cnt;
        } else {
            loss += fabs((double)diff);
            dz[i] = (real)(diff > 0 ? 1 : diff < 0 ? -1 : 0) / (real)cnt;
        }
    }
    return loss / (double)cnt;
}

/* pointers to one layer's weights (or gradients) inside a flat buffer laid out as above */
typedef struct {
    real *wih, *whh, *bih, *bhh, *why, *by;
} FN(layer_ptrs);

static FN(layer_ptrs) FN(layer_at)(const rk_train_spec *sp, real *base, int l) {
    const int H = sp->hidden, S = sp->state, G = gate_width(sp->cell, H);
    const int in = l == 0 ? sp->input_size : S;
    real *p = base;
    for (int m = 0; m < l; ++m) p += FN(layer_size)(sp, m);
    FN(layer_ptrs) w;
    w.wih = p;
    w.whh = p + (size_t)G * in;
    w.bih = w.whh + (size_t)G * S;
    if (cell_has(sp->cell, RK_OUTPUT_LAYER)) {
        w.bhh = NULL;
        w.why = w.bih + G;
        w.by = w.why + (size_t)S * H;
    } else {
        w.bhh = w.bih + G;
        w.why = w.by = NULL;
    }
    return w;
}

/* One epoch over the samples order[0:n] in batches (train != 0: update; 0: loss only).
 * X (N,T,I) batch-first; Y: per sample P values (head_mode 0; CE: the class index) or (T,P)
 * values (head_mode 1). lens (N), may be NULL: each sample's length (head_mode 0 only): steps
 * past it are padding, never read, and the head reads the output at step length - 1.
 * state, may be NULL (stateful truncated BPTT, one batch per call, n == batch): per layer the
 * initial state (L,B,S), then for RK_CELL_STATE cells the cell states (L,B,H); overwritten with the final ones.
 * Returns the mean loss weighted by batch size; NaN stops early. */
RK_EXPORT double FN(rk_train_epoch)(const rk_train_spec *sp, real *params, real *grads, real *s1,
                                    real *s2, int64_t *step, const real *X, const real *Y,
                                    const int64_t *order, int64_t n, int batch, int train,
                                    const real *class_w, const int64_t *lens, real *state) {
    FTZ_BEGIN
    const int L = sp->num_layers, T = sp->T, I = sp->input_size, H = sp->hidden, S = sp->state;
    const int P = sp->head_out, cell = sp->cell;
    const int W0 = sp->head_mode == 1 ? sp->warmup : T - 1, TR = T - W0;  /* head steps */
    const int64_t np = FN(rk_num_params)(sp);
    const int ysz = sp->head_mode == 1 ? T * P : (sp->loss == LOSS_CE ? 1 : P);
    const int B = batch;
    if (L > RK_MAX_LAYERS || (state && n != batch)) { FTZ_END return NAN; }
    /* one allocation: per layer the saved buffer, the output (B,T,S) and its gradient */
    const int maxin = I > S ? I : S;
    const size_t saved = (size_t)FN(rk_layer_saved_size)(cell, B, T, H, S);
    const size_t total = (size_t)L * (saved + 2 * (size_t)T * B * S) + (size_t)T * B * I
                         + (size_t)FN(rk_layer_work_size)(cell, B, T, maxin, H, S)
                         + 3 * (size_t)TR * B * P + (size_t)B * (S + H) + (size_t)S * P + 64;
    real *mem = (real *)calloc(total, sizeof(real));
    int64_t *lb = lens ? (int64_t *)calloc((size_t)B, sizeof(int64_t)) : NULL;  /* the batch's lengths */
    if (!mem || (lens && !lb)) { free(mem); free(lb); FTZ_END return NAN; }
    real *sv[RK_MAX_LAYERS], *out[RK_MAX_LAYERS], *dout[RK_MAX_LAYERS];
    real *q = mem;
    for (int l = 0; l < L; ++l) {
        sv[l] = q; q += saved;
        out[l] = q; q += (size_t)T * B * S;
        dout[l] = q; q += (size_t)T * B * S;
    }
    real *xb = q; q += (size_t)T * B * I;                 /* the batch, (B,T,I) */
    real *z = q; q += (size_t)TR * B * P;
    real *dz = q; q += (size_t)TR * B * P;
    real *yb = q; q += (size_t)TR * B * P;
    real *ds0 = q; q += (size_t)B * S;
    real *dc0 = q; q += (size_t)B * H;
    real *hwork = q; q += (size_t)S * P;
    real *work = q;
    double total_loss = 0;
    for (int64_t start = 0; start < n; start += B) {
        const int nb = (int)(n - start < B ? n - start : B);
        for (int b = 0; b < nb; ++b) {
            memcpy(xb + (size_t)b * T * I, X + (size_t)order[start + b] * T * I, sizeof(real) * T * I);
            if (lb) lb[b] = lens[order[start + b]];
        }
        /* forward through the layers */
        for (int l = 0; l < L; ++l) {
            FN(layer_ptrs) w = FN(layer_at)(sp, params, l);
            /* stateful: the layer reads its initial state before it writes the final one, in place */
            real *st = state ? state + (size_t)l * B * S : NULL;
            real *ct = state && cell_has(cell, RK_CELL_STATE) ? state + (size_t)L * B * S + (size_t)l * B * H : NULL;
            FN(rk_layer_forward)(cell, sp->act, sp->out_act, nb, T, l == 0 ? I : S, H, S, l == 0 ? xb : out[l - 1],
                                 w.wih, w.whh, w.bih, w.bhh, w.why, w.by, lb, st, ct, sv[l], out[l],
                                 st, ct, work);
        }
        /* head and loss; head rows are (t, b) for t >= W0 */
        const real *wh = params + (np - (int64_t)P * S - P), *bh = wh + (size_t)P * S;
        const real *top = out[L - 1];
        FN(transpose)(wh, P, S, hwork);                   /* (S,P) */
        for (int t = W0; t < T; ++t)
            for (int b = 0; b < nb; ++b) {
                const size_t r = (size_t)(t - W0) * nb + b;
                real *zr = z + r * P;
                const int tr = lb ? (int)lb[b] - 1 : t;  /* head_mode 0 with lengths: the last valid step */
                for (int p = 0; p < P; ++p) zr[p] = bh[p];
                FN(vecmat_acc)(top + ((size_t)b * T + tr) * S, hwork, zr, S, P);
                const real *ys = Y + (size_t)order[start + b] * ysz;
                if (sp->head_mode == 1) memcpy(yb + r * P, ys + (size_t)t * P, sizeof(real) * P);
                else if (sp->loss == LOSS_CE) yb[r] = ys[0];
                else memcpy(yb + r * P, ys, sizeof(real) * P);
            }
        const double loss = FN(loss_grad)(sp, z, yb, dz, TR * nb, P, class_w);
        total_loss += loss * nb;
        if (!isfinite(loss)) { total_loss = NAN; break; }
        if (!train) continue;
        /* backward: head */
        real *gwh = grads + (np - (int64_t)P * S - P), *gbh = gwh + (size_t)P * S;
        memset(gwh, 0, sizeof(real) * ((size_t)P * S + P));
        memset(dout[L - 1], 0, sizeof(real) * (size_t)T * nb * S);
        for (int t = W0; t < T; ++t)
            for (int b = 0; b < nb; ++b) {
                const real *d = dz + ((size_t)(t - W0) * nb + b) * P;
                const int tr = lb ? (int)lb[b] - 1 : t;
                const real *h = top + ((size_t)b * T + tr) * S;
                for (int p = 0; p < P; ++p) {
                    gbh[p] += d[p];
                    real *gw = gwh + (size_t)p * S;
                    for (int s2i = 0; s2i < S; ++s2i) gw[s2i] += d[p] * h[s2i];
                }
                FN(vecmat_acc)(d, wh, dout[L - 1] + ((size_t)b * T + tr) * S, P, S);
            }
        /* backward: layers, top to bottom; each writes the gradient of its input into the layer below */
        for (int l = L - 1; l >= 0; --l) {
            FN(layer_ptrs) w = FN(layer_at)(sp, params, l), g = FN(layer_at)(sp, grads, l);
            FN(rk_layer_backward)(cell, sp->act, sp->out_act, nb, T, l == 0 ? I : S, H, S,
                                  l == 0 ? xb : out[l - 1], w.wih, w.whh, w.why, lb, sv[l], dout[l], NULL,
                                  NULL, g.wih, g.whh, g.bih, g.bhh, g.why, g.by, ds0, dc0,
                                  l > 0 ? dout[l - 1] : NULL, work);
        }
        FN(clip)(sp, grads, np);
        *step += 1;
        FN(optimizer_step)(sp, params, grads, s1, s2, np, *step, sp->lr);
    }
    free(mem);
    free(lb);
    FTZ_END
    return total_loss / (double)n;
}
