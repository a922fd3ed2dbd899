/* GRU cell (torch.nn.GRU, gates r, z, n): n = tanh(x_n + r (W_hn h + b_hn)),
 * h_t = (1 - z) n + z h_{t-1}. G = 3H, S = H. The reset gate multiplies the recurrent part after
 * its bias, so that part stays apart (RK_HIDDEN_APART); the gates keep r, z, n and aux keeps
 * W_hn h + b_hn. See src/rnnkit/nn/cells/gru.py. */

/* restrict: the buffers never overlap, which lets the compiler vectorise the whole loop */
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

static inline void FN(gru_forward)(const FN(step_t) *s) {
    FN(gru_point)(s->H, s->xg, s->hh, s->sp, s->g, s->aux, s->sn, s->o);
}

static inline void FN(gru_backward)(const FN(grad_t) *d) {
    const int H = d->H;
    const real *g = d->g, *hn = d->aux, *sp = d->sp, *dht = d->dh;
    real *dx = d->dx, *dr = d->dgh, *dhb = d->dsp;
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
