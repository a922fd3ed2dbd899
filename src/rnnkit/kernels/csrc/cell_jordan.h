/* Jordan cell: h_t = phi(W_ih x_t + W_yh y_{t-1} + b_h), y_t = psi(W_hy h_t + b_y); the state is
 * y (S = O wide), G = H. Its whh is W_yh (H,O); aux keeps the hidden h_t. RK_OUTPUT_LAYER.
 * See src/rnnkit/nn/cells/jordan.py. */

static inline void FN(jordan_forward)(const FN(step_t) *s) {
    const int H = s->H, S = s->S;
    real *h = s->aux, *o = s->o;
    FN(act_vec)(s->act, s->g, h, H);
    for (int k = 0; k < S; ++k) o[k] = s->by ? s->by[k] : 0;
    FN(vecmat_acc)(h, s->wy, o, H, S);
    FN(act_vec)(s->out_act, o, s->sn, S);
    memcpy(o, s->sn, sizeof(real) * S);
}

static inline void FN(jordan_backward)(const FN(grad_t) *d) {
    const int H = d->H, S = d->S, act = d->act, out_act = d->out_act;
    const real *h = d->aux, *dht = d->dh, *sn = d->sn;
    real *dy = d->dy, *dhid = d->tmp, *dx = d->dx;
    for (int k = 0; k < S; ++k) dy[k] = dht[k] * FN(dact)(out_act, sn[k]);
    memset(dhid, 0, sizeof(real) * H);
    FN(vecmat_acc)(dy, d->wy, dhid, S, H);
    for (int j = 0; j < H; ++j) dx[j] = dhid[j] * FN(dact)(act, h[j]);
}
