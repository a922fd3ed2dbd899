/* rnnkit fused trainer: a whole epoch of training steps (forward, loss, BPTT, clipping and the
 * optimiser update) in one native call, on one flat parameter buffer.
 *
 * Supported model: num_layers unidirectional layers of one cell (biases on), then a linear head
 * on the last step's output (head_mode 0) or on every step from `warmup` on (head_mode 1).
 * Losses: mean squared error, mean absolute error, cross-entropy (head_mode 0, optional class
 * weights). Optimisers: torch's Adam, SGD (momentum), Adagrad, RMSprop formulas exactly.
 *
 * Flat parameter order (= the model's parameters() order), per layer l with input width in_l:
 *   Elman/LSTM/GRU: W_ih (G,in_l), W_hh (G,S), b_ih (G), b_hh (G)
 *   Jordan:         W_ih (H,in_l), W_yh (H,O), b_h (H), W_hy (O,H), b_y (O)
 * then the head: W (P,S), b (P).
 */

static int64_t FN(layer_size)(const rk_train_spec *sp, int l) {
    const int H = sp->hidden, S = sp->state, G = gate_width(sp->cell, H);
    const int in = l == 0 ? sp->input_size : S;
    if (sp->cell == CELL_JORDAN) return (int64_t)H * in + (int64_t)H * S + H + (int64_t)S * H + S;
    return (int64_t)G * in + (int64_t)G * S + 2 * G;
}

RK_EXPORT int64_t FN(rk_num_params)(const rk_train_spec *sp) {
    int64_t n = 0;
    for (int l = 0; l < sp->num_layers; ++l) n += FN(layer_size)(sp, l);
    return n + (int64_t)sp->head_out * sp->state + sp->head_out;
}

typedef struct {
    real *xin, *xg, *hs, *cs, *gates, *aux, *out, *dgx, *dgh, *dyp, *dout;
} FN(layer_buf);

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

/* One epoch over the samples order[0:n] in batches (train != 0: update; 0: loss only).
 * X (N,T,I) batch-first; Y: per sample P values (head_mode 0; CE: the class index) or (T,P)
 * values (head_mode 1). Returns the mean loss weighted by batch size; NaN stops early. */
RK_EXPORT double FN(rk_train_epoch)(const rk_train_spec *sp, real *params, real *grads, real *s1,
                                    real *s2, int64_t *step, const real *X, const real *Y,
                                    const int64_t *order, int64_t n, int batch, int train,
                                    const real *class_w) {
    FTZ_BEGIN
    const int L = sp->num_layers, T = sp->T, I = sp->input_size, H = sp->hidden, S = sp->state;
    const int G = gate_width(sp->cell, H), P = sp->head_out, cell = sp->cell;
    const int W0 = sp->head_mode == 1 ? sp->warmup : T - 1, TR = T - W0;  /* head steps */
    const int64_t np = FN(rk_num_params)(sp);
    const int ysz = sp->head_mode == 1 ? T * P : (sp->loss == LOSS_CE ? 1 : P);
    const int B = batch;
    /* one allocation for everything */
    const int64_t fw = FN(rk_forward_work)(cell, H, S), bw = FN(rk_backward_work)(cell, H, S);
    const int maxin = I > S ? I : S;
    const size_t per_layer = (size_t)T * B * maxin + 5 * (size_t)T * B * G + 3 * (size_t)(T + 1) * B * S
                             + 3 * (size_t)(T + 1) * B * H + (size_t)T * B * S * 2;
    const size_t total = per_layer * L + (size_t)TR * B * P * 3 + (size_t)B * (S + H) + fw + bw
                         + (size_t)G * maxin + (size_t)S * P + 64;
    real *mem = (real *)calloc(total, sizeof(real));
    if (!mem) { FTZ_END return NAN; }
    FN(layer_buf) lb[RK_MAX_LAYERS];
    real *q = mem;
#define TAKE(ptr, count) do { ptr = q; q += (count); } while (0)
    for (int l = 0; l < L; ++l) {
        const int in = l == 0 ? I : S;
        TAKE(lb[l].xin, (size_t)T * B * in);
        TAKE(lb[l].xg, (size_t)T * B * G);
        TAKE(lb[l].hs, (size_t)(T + 1) * B * S);
        TAKE(lb[l].cs, (size_t)(T + 1) * B * H);
        TAKE(lb[l].gates, (size_t)T * B * G);
        TAKE(lb[l].aux, (size_t)T * B * H);
        TAKE(lb[l].out, (size_t)T * B * S);
        TAKE(lb[l].dgx, (size_t)T * B * G);
        TAKE(lb[l].dgh, (size_t)T * B * G);
        TAKE(lb[l].dyp, (size_t)T * B * S);
        TAKE(lb[l].dout, (size_t)T * B * S);
    }
    real *z, *dz, *yb, *dh0, *dc0, *fwork, *bwork, *WT, *hwork;
    TAKE(z, (size_t)TR * B * P); TAKE(dz, (size_t)TR * B * P); TAKE(yb, (size_t)TR * B * P);
    TAKE(dh0, (size_t)B * S); TAKE(dc0, (size_t)B * H);
    TAKE(fwork, fw); TAKE(bwork, bw); TAKE(WT, (size_t)G * maxin); TAKE(hwork, (size_t)S * P);
#undef TAKE
    double total_loss = 0;
    for (int64_t start = 0; start < n; start += B) {
        const int nb = (int)(n - start < B ? n - start : B);
        /* gather the batch, time-major */
        for (int b = 0; b < nb; ++b) {
            const real *xs = X + (size_t)order[start + b] * T * I;
            for (int t = 0; t < T; ++t) memcpy(lb[0].xin + ((size_t)t * nb + b) * I, xs + (size_t)t * I, sizeof(real) * I);
        }
        /* forward through the layers */
        const real *pl = params;
        for (int l = 0; l < L; ++l) {
            FN(layer_buf) *k = &lb[l];
            const int in = l == 0 ? I : S;
            const real *wih = pl, *whh = pl + (size_t)G * in, *bih = whh + (size_t)G * S, *bhh = bih + G;
            const real *why = NULL, *by = NULL;
            if (cell == CELL_JORDAN) { why = bih + H; by = why + (size_t)S * H; bhh = NULL; }
            if (l > 0) memcpy(k->xin, lb[l - 1].out, sizeof(real) * (size_t)T * nb * in);
            FN(transpose)(wih, G, in, WT);                /* (in,G) */
            for (int r = 0; r < T * nb; ++r) {
                real *g = k->xg + (size_t)r * G;
                for (int j = 0; j < G; ++j) g[j] = bih[j] + ((cell == CELL_ELMAN || cell == CELL_LSTM) ? bhh[j] : 0);
                FN(vecmat_acc)(k->xin + (size_t)r * in, WT, g, in, G);
            }
            memset(k->hs, 0, sizeof(real) * (size_t)nb * S);
            memset(k->cs, 0, sizeof(real) * (size_t)nb * H);
            FN(rk_forward)(cell, sp->act, sp->out_act, nb, T, H, S, k->xg, whh,
                           cell == CELL_GRU ? bhh : NULL, why, by, NULL, k->hs, k->cs, k->gates,
                           k->aux, k->out, fwork, 0);
            pl += FN(layer_size)(sp, l);
        }
        /* head and loss */
        const real *wh = pl, *bh = pl + (size_t)P * S;
        const real *top = lb[L - 1].out;
        FN(transpose)(wh, P, S, hwork);                   /* (S,P) */
        for (int t = W0; t < T; ++t)
            for (int b = 0; b < nb; ++b) {
                const size_t r = (size_t)(t - W0) * nb + b;
                real *zr = z + r * P;
                for (int p = 0; p < P; ++p) zr[p] = bh[p];
                FN(vecmat_acc)(top + ((size_t)t * nb + b) * S, hwork, zr, S, P);
                const real *ys = Y + (size_t)order[start + b] * ysz;
                if (sp->head_mode == 1) memcpy(yb + r * P, ys + (size_t)t * P, sizeof(real) * P);
                else if (sp->loss == LOSS_CE) yb[r] = ys[0];
                else memcpy(yb + r * P, ys, sizeof(real) * P);
            }
        /* rows are time-major (t, b); the loss is a mean, so the order does not matter */
        const double loss = FN(loss_grad)(sp, z, yb, dz, TR * nb, P, class_w);
        total_loss += loss * nb;
        if (!isfinite(loss)) { total_loss = NAN; break; }
        if (!train) continue;
        /* backward: head */
        memset(grads, 0, sizeof(real) * np);
        real *gwh = grads + (pl - params), *gbh = gwh + (size_t)P * S;
        FN(layer_buf) *kt = &lb[L - 1];
        memset(kt->dout, 0, sizeof(real) * (size_t)T * nb * S);
        for (int t = W0; t < T; ++t)
            for (int b = 0; b < nb; ++b) {
                const size_t r = (size_t)(t - W0) * nb + b;
                const real *d = dz + r * P;
                const real *h = top + ((size_t)t * nb + b) * S;
                for (int p = 0; p < P; ++p) {
                    gbh[p] += d[p];
                    real *gw = gwh + (size_t)p * S;
                    for (int s = 0; s < S; ++s) gw[s] += d[p] * h[s];
                }
                FN(vecmat_acc)(d, wh, kt->dout + ((size_t)t * nb + b) * S, P, S);
            }
        /* backward: layers, top to bottom */
        for (int l = L - 1; l >= 0; --l) {
            FN(layer_buf) *k = &lb[l];
            const int in = l == 0 ? I : S;
            int64_t off = 0;
            for (int m = 0; m < l; ++m) off += FN(layer_size)(sp, m);
            const real *wih = params + off, *whh = wih + (size_t)G * in;
            real *gih = grads + off, *ghh = gih + (size_t)G * in, *gbi = ghh + (size_t)G * S, *gbh2 = gbi + G;
            const real *why = NULL;
            real *ghy = NULL, *gby = NULL;
            if (cell == CELL_JORDAN) { why = wih + (size_t)G * in + (size_t)G * S + H; ghy = gbi + H; gby = ghy + (size_t)S * H; }
            FN(rk_backward)(cell, sp->act, sp->out_act, nb, T, H, S, whh, why, NULL, k->hs, k->cs,
                            k->gates, k->aux, k->dout, NULL, NULL, k->dgx,
                            cell == CELL_GRU ? k->dgh : NULL, cell == CELL_JORDAN ? k->dyp : NULL,
                            dh0, dc0, bwork);
            const real *dgr = cell == CELL_GRU ? k->dgh : k->dgx;   /* grads of the hidden product */
            for (int r = 0; r < T * nb; ++r) {
                const real *dx = k->dgx + (size_t)r * G, *dr = dgr + (size_t)r * G;
                const real *x = k->xin + (size_t)r * in, *sprev = k->hs + (size_t)r * S;
                for (int j = 0; j < G; ++j) {
                    real *gi = gih + (size_t)j * in, *gh = ghh + (size_t)j * S;
                    const real a = dx[j], c = dr[j];
                    for (int i = 0; i < in; ++i) gi[i] += a * x[i];
                    for (int s = 0; s < S; ++s) gh[s] += c * sprev[s];
                    gbi[j] += a;
                    if (cell != CELL_JORDAN) gbh2[j] += c;
                }
                if (cell == CELL_JORDAN) {
                    const real *dy = k->dyp + (size_t)r * S, *h = k->aux + (size_t)r * H;
                    for (int o = 0; o < S; ++o) {
                        real *gy = ghy + (size_t)o * H;
                        for (int j = 0; j < H; ++j) gy[j] += dy[o] * h[j];
                        gby[o] += dy[o];
                    }
                }
            }
            if (l > 0) {
                real *dprev = lb[l - 1].dout;
                memset(dprev, 0, sizeof(real) * (size_t)T * nb * S);
                for (int r = 0; r < T * nb; ++r)
                    FN(vecmat_acc)(k->dgx + (size_t)r * G, wih, dprev + (size_t)r * S, G, in);
            }
        }
        FN(clip)(sp, grads, np);
        *step += 1;
        FN(optimizer_step)(sp, params, grads, s1, s2, np, *step, sp->lr);
    }
    free(mem);
    FTZ_END
    return total_loss / (double)n;
}
