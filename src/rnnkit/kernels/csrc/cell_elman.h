/* Elman cell (torch.nn.RNN): h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), phi = tanh or relu.
 * G = H, S = H; both biases join the input part. See src/rnnkit/nn/cells/elman.py. */

static inline void FN(elman_forward)(const FN(step_t) *s) {
    FN(act_vec)(s->act, s->g, s->sn, s->H);
    memcpy(s->o, s->sn, sizeof(real) * s->S);
}

static inline void FN(elman_backward)(const FN(grad_t) *d) {
    const int H = d->H;
    const real *dht = d->dh, *sn = d->sn;
    real *dx = d->dx;
    for (int j = 0; j < H; ++j) dx[j] = dht[j] * FN(dact)(d->act, sn[j]);
}
