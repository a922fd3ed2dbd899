"""Quantile and distribution heads on a panel: one global head, decoded per series.

``--quantiles L1,L2,...`` (:mod:`.quantiles`) and ``--distribution NAME`` (:mod:`.distribution`)
work for a global model exactly as for one series; nothing in them is specific to panels:

* **Training**: the one head is trained on the pooled windows of every series with the head's own
  loss (the mean pinball loss over the levels, or the distribution's negative log-likelihood), in
  the network's units, where every window is level- and scale-free (per-window normalisation on a
  per-series scaler); it starts, is gated against the naive forecast and falls back exactly as one
  series' does (:func:`~.fitting.train_members`).
* **Decoding, per series**: the network's levels ``(S, H, C, Q)`` go back level by level through
  each window's normalisation (a positive scale) and then through that series' scaler (a positive
  scale, :func:`unscale`), both increasing maps, so levels that are in order in the network's units
  (by construction: softplus increments, or ``mu + sigma z_q`` with ``sigma > 0``) never cross in the
  data's. The point forecast (``<target>``) is the centre level, the 0.5 one where it is asked for.
* **Output**: forecast.csv gains ``<target>_q<level>`` per target and level on every series' rows
  (:func:`~.quantiles.level_columns`, the single-series names); ``evaluate``/``backtest`` add the
  level scores of :mod:`.panel_scores`.

A negative-binomial head (``--distribution negbin``) decodes nothing: its counts are not scaled (every
series' scaler keeps offset 0 and scale 1 on the targets, :func:`~.negbin.unscaled_targets`) and its
windows are not normalised, so its levels are the whole counts the head computes.

A recursive distribution head forecasts from sampled paths (:mod:`.paths`), as for one series: every
series and origin goes through the model in one call, whose generator is seeded with the member's
training seed, so a run and its reloaded directory forecast the same numbers.

Not combined: ``--intervals`` (split-conformal intervals around a point forecast) with a head of
levels, refused as for one series (:func:`check_panel_heads`).
"""

from __future__ import annotations

import numpy as np

from ...config import ModelConfig
from ...data.scaler import Scaler
from ...errors import ConfigError
from .config import SearchConfig
from .quantiles import quantile_horizon_message

__all__ = ["check_panel_heads", "check_level_horizon", "unscale"]


def check_panel_heads(model_config: ModelConfig, search: SearchConfig) -> None:
    """Refuse what one series refuses: conformal ``--intervals`` around a head of levels (the
    negative-binomial head's own refusals are :func:`~.negbin.count_settings`', in
    :func:`~.panel.prepare_panel`)."""
    if search.intervals and model_config.quantiles:
        what = "--quantiles" if model_config.distribution == "none" else f"--distribution {model_config.distribution}"
        raise ConfigError(f"--intervals and {what} are two kinds of interval: the conformal intervals wrap a point "
                          "forecast, the head learns its own; pass one of them")


def check_level_horizon(model_config: ModelConfig, trained: int, horizon: int) -> None:
    """A direct head of levels forecasts its trained horizon at most (one level fed back as the value
    would make the later quantiles meaningless); ConfigError past it."""
    if model_config.quantiles and model_config.strategy != "recursive" and horizon > trained:
        raise ConfigError(quantile_horizon_message(trained, horizon))


def unscale(scaler: Scaler, out: np.ndarray, n_targets: int) -> np.ndarray:
    """One series' forecasts ``(H, C)``, or levels ``(H, C, Q)``, from its scaled units to the data's,
    level by level (the scaler works on the last axis, the targets')."""
    columns = list(range(n_targets))
    if out.ndim == 2:
        return scaler.inverse_transform(out, columns=columns)
    return np.moveaxis(scaler.inverse_transform(np.moveaxis(out, 2, 1), columns=columns), 1, 2)  # via (H, Q, C)
