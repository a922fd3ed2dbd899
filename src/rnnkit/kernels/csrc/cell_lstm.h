/* LSTM cell (torch.nn.LSTM, gates i, f, g, o): c_t = f c_{t-1} + i g, h_t = o tanh(c_t). G = 4H,
 * S = H; both biases join the input part; the gates keep their activations and aux keeps
 * tanh(c_t). RK_CELL_STATE. See src/rnnkit/nn/cells/lstm.py. */

/* restrict: the buffers never overlap, which lets the compiler vectorise the whole loop */
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

static inline void FN(lstm_forward)(const FN(step_t) *s) {
    FN(lstm_point)(s->H, s->g, s->cp, s->cn, s->aux, s->sn, s->o);
}

static inline void FN(lstm_backward)(const FN(grad_t) *d) {
    const int H = d->H;
    const real *g = d->g, *tc = d->aux, *cp = d->cp, *dht = d->dh;
    real *dx = d->dx, *dcb = d->dc;
    for (int j = 0; j < H; ++j) {
        const real i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
        const real dcj = dcb[j] + dht[j] * o * ((real)1 - tc[j] * tc[j]);
        dx[j] = dcj * gg * i * ((real)1 - i);
        dx[H + j] = dcj * cp[j] * f * ((real)1 - f);
        dx[2 * H + j] = dcj * i * ((real)1 - gg * gg);
        dx[3 * H + j] = dht[j] * tc[j] * o * ((real)1 - o);
        dcb[j] = dcj * f;
    }
}
