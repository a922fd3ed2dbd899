"""Settings as frozen dataclasses: one object per concern, validated once, stored in every run.

The settings every job shares live here: ``ModelConfig`` says what network to build and
``TrainConfig`` how to fit. Each job's own settings (``DataConfig`` of forecasting, ...) are in its
``tasks/X/config.py``, built with the validators of :mod:`rnnkit.validators` (re-exported here,
their home was here) and the helpers at the end of this module. Each validates itself on
construction (a :class:`ConfigError` names the bad field and the allowed values) and round-trips
through ``to_dict``/``from_dict`` (JSON).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import ConfigError
from .nn.cells import cell_names, cell_spec, cell_specs
from .validators import check_choice, check_device_name, check_levels, check_positive, check_real, refuse_setting
from .validators import DEVICES_HELP, MAX_ENSEMBLE, check_ensemble, check_fraction  # noqa: F401 (re-exported)

__all__ = ["ModelConfig", "TrainConfig", "Serialisable", "check_choice", "check_positive", "check_real",
           "check_fraction", "check_ensemble", "check_levels", "refuse_setting", "refuse_forecasting_settings"]

#: the cells the command line offers: every cell registered in rnnkit.nn.cells (a cell registered
#: later, by user code, is accepted by ModelConfig, which asks the registry itself)
CELL_NAMES = cell_names()
OPTIMIZERS = ("adam", "sgd", "adagrad", "rmsprop")
SCHEDULES = ("none", "cosine", "step", "plateau")
#: deepest recurrent stack a config accepts: deeper stacks do not train, and building 10^6 layers
#: would take hours before any error could be raised
MAX_LAYERS = 1000
#: largest learning rate accepted: no optimiser rnnkit offers trains with steps this large, and
#: values near the float limit overflow the weights at the first step
MAX_LR = 10.0
#: largest clipping threshold: float32's largest value; a larger one cannot be represented in a
#: float32 model's gradients (it would silently become infinity, i.e. no clipping)
FLOAT32_MAX = 3.4028234663852886e38
#: seeds are stored and passed to torch's generators, which take integers in [0, 2^63 - 1] portably
MAX_SEED = 2**63 - 1
#: most quantile levels a forecaster's head may emit (percentiles 1-99 are 99)
MAX_QUANTILES = 99
#: the losses TrainConfig accepts: each job takes some of them (``refuse_unsupported``); "pinball"
#: is the quantile head's (ModelConfig.quantiles), recorded by forecasting, never asked for alone
LOSSES = ("mse", "mae", "ce", "pinball", "nll")

#: ModelConfig.distribution's choices (tasks/forecast/distribution.py), and the levels a distribution
#: head reports when no quantiles are given: the 95 % and 80 % intervals' ends and the median
DISTRIBUTIONS = ("none", "normal", "student_t", "negbin")
DISTRIBUTION_LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)
#: ModelConfig.samples: the Monte-Carlo paths a recursive distribution head draws per forecast, by
#: default and at most (each path is one more row through the network at every step)
DEFAULT_SAMPLES = 200
MAX_SAMPLES = 100_000


def _takes(cell: str, field: str) -> bool:
    """Whether the ``cell`` is built with the ModelConfig ``field`` (its CellSpec's ``config_kwargs``)."""
    return field in cell_spec(cell).config_kwargs


def _cells_taking(field: str) -> str:
    """``"elman and jordan"``: the registered cells built with the ModelConfig ``field``, for messages."""
    names = [s.name for s in cell_specs() if field in s.config_kwargs]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


class Serialisable:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ModelConfig(Serialisable):
    """The network: a recurrent stack and a linear head.

    ``strategy="direct"`` makes the head emit all ``horizon`` steps from the last output at once;
    ``"recursive"`` predicts one step ahead at every position and feeds predictions back as inputs
    to forecast further. ``init`` is ``"torch"`` (torch.nn's uniform) or ``"keras"`` (Glorot /
    orthogonal / forget bias 1). ``output_size`` and ``output_activation`` apply to Jordan cells,
    ``peephole`` to LSTMs (peephole connections; such layers run rnnkit's reference loop).
    """

    # metadata: the command line's option for the field (rnnkit.cli_parse.config_arg): "help", and
    # where they are not the field's own name, type or free text, "flag", "metavar", "choices"
    cell: str = field(default="lstm", metadata={"help": "recurrent cell", "choices": CELL_NAMES})
    hidden_size: int = field(default=32, metadata={"help": "hidden units per layer", "flag": "hidden",
                                                   "metavar": "N"})
    num_layers: int = field(default=1, metadata={"help": "stacked layers", "flag": "layers", "metavar": "N"})
    dropout: float = field(default=0.0, metadata={"help": "dropout between stacked layers"})
    bidirectional: bool = field(default=False, metadata={"help": "bidirectional encoder (direct strategy only)"})
    nonlinearity: str = "tanh"
    output_activation: str = "identity"
    init: str = field(default="torch", metadata={"help": "weight initialisation", "choices": ("torch", "keras")})
    strategy: str = field(default="direct", metadata={
        "help": "direct: emit all H steps at once; recursive: one step, fed back", "choices": ("direct", "recursive")})
    output_size: Optional[int] = None
    peephole: bool = field(default=False, metadata={
        "help": "LSTM with peephole connections (the gates see the cell state; slower: no fused kernels)"})
    quantiles: tuple[float, ...] = field(default=(), metadata={
        "help": "forecasting, direct strategy: emit these quantile levels (comma-separated, increasing, in (0, 1)), "
                "trained with the pinball loss; the point forecast is the 0.5 level, or the level nearest it; "
                "a panel (--id-col) trains one global head and decodes it per series",
        "metavar": "Q1,Q2,...", "off": "none, a point forecast"})
    distribution: str = field(default="none", metadata={
        "help": "forecasting: a distribution head trained by its negative log-likelihood, reported at the "
                "--quantiles levels (default 0.025,0.1,0.5,0.9,0.975); normal: a mean and a scale per step; "
                "student_t: and degrees of freedom (heavier tails); negbin: counts (whole numbers >= 0), a mean "
                "and a dispersion (Var = mu + alpha mu^2), the inputs over the window's mean count + 1, the "
                "levels exact counts; no --transform, --difference or --normalise window. Direct strategy: every "
                "step's levels at once; recursive: trained one step ahead, forecast by --samples sampled paths; "
                "panels (--id-col) too, one global head (negbin: the counts unscaled, each window scaled by the head)",
        "choices": DISTRIBUTIONS})
    samples: int = field(default=DEFAULT_SAMPLES, metadata={
        "help": "--strategy recursive with --distribution: Monte-Carlo paths drawn per forecast (each step sampled "
                "and fed back); the levels are the paths' empirical quantiles, the point forecast their median. "
                "Costs S times a recursive point forecast's generation", "metavar": "S"})

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, cell_names())
        check_choice("distribution", self.distribution, DISTRIBUTIONS)
        check_positive("samples", self.samples)
        if self.samples > MAX_SAMPLES:
            raise ConfigError(f"samples must be at most {MAX_SAMPLES} (each path is one more row through the network "
                              f"at every step); got {self.samples}")
        if self.samples != DEFAULT_SAMPLES and (self.distribution == "none" or self.strategy != "recursive"):
            raise ConfigError(f"samples={self.samples} sets the sampled paths of a recursive distribution head "
                              "(--strategy recursive --distribution normal|student_t|negbin); this model draws none (a "
                              "direct head's levels are in closed form): drop --samples")
        if self.distribution != "none":
            if not self.quantiles:  # the levels it reports (recorded in the run's config)
                object.__setattr__(self, "quantiles", DISTRIBUTION_LEVELS)
        self._check_quantiles()
        if self.peephole not in (True, False):
            raise ConfigError(f"peephole must be true or false; got {self.peephole!r}")
        if self.peephole and not _takes(self.cell, "peephole"):
            raise ConfigError(f"peephole connections belong to {_cells_taking('peephole')} cells; the {self.cell} "
                              "cell has none")
        check_positive("hidden_size", self.hidden_size)
        check_positive("num_layers", self.num_layers)
        if self.num_layers > MAX_LAYERS:
            raise ConfigError(f"num_layers must be at most {MAX_LAYERS} (deeper recurrent stacks do not train); "
                              f"got {self.num_layers}")
        check_real("dropout", self.dropout, 0.0, 1.0, hi_open=True, what="a fraction")
        if self.dropout and self.num_layers == 1:
            raise ConfigError(f"dropout ({self.dropout}) acts between stacked layers and a 1-layer network has "
                              "none; use num_layers >= 2 or dropout=0")
        check_choice("nonlinearity", self.nonlinearity, ("tanh", "relu"))
        if self.nonlinearity != "tanh" and not _takes(self.cell, "nonlinearity"):
            raise ConfigError(f"nonlinearity applies to {_cells_taking('nonlinearity')} cells; the {self.cell} "
                              "cell's gates have fixed activations: leave nonlinearity='tanh'")
        check_choice("output_activation", self.output_activation, ("identity", "tanh", "sigmoid", "relu"))
        if self.output_activation != "identity" and not _takes(self.cell, "output_activation"):
            raise ConfigError(f"output_activation applies to {_cells_taking('output_activation')} cells; the "
                              f"{self.cell} cell has no output layer of its own: leave output_activation='identity'")
        check_choice("init", self.init, ("torch", "keras"))
        check_choice("strategy", self.strategy, ("direct", "recursive"))
        if self.output_size is not None:
            check_positive("output_size", self.output_size)
            if not _takes(self.cell, "output_size"):
                raise ConfigError(f"output_size sets a {_cells_taking('output_size')} network's output (context) "
                                  f"width; the {self.cell} cell has none")
        if self.quantiles and self.strategy == "recursive" and self.distribution == "none":
            raise ConfigError("a quantile head is a direct model's (all steps' levels at once); a recursive model "
                              "would have to feed one level back as the value: use strategy='direct' (--strategy "
                              "direct), or --distribution normal (or student_t), whose recursive forecasts report "
                              "these levels from sampled paths")
        if self.bidirectional and self.strategy == "recursive":
            raise ConfigError("a bidirectional encoder reads the whole window and cannot run step by step; "
                              "use strategy='direct' or bidirectional=False")

    def _check_quantiles(self) -> None:
        q = self.quantiles
        if not isinstance(q, (tuple, list)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in q):
            raise ConfigError(f"quantiles must be a list of numbers (levels such as 0.1, 0.5, 0.9); got {q!r}")
        object.__setattr__(self, "quantiles", tuple(float(v) for v in q))
        if q:
            check_levels(self.quantiles, "quantiles")
        if len(q) > MAX_QUANTILES:
            raise ConfigError(f"quantiles lists {len(q)} levels; a head emits at most {MAX_QUANTILES}")

    def cell_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`rnnkit.nn.layers.Recurrent` beyond the common ones: the
        fields the cell's :class:`~rnnkit.nn.cells.CellSpec` names in ``config_kwargs``."""
        return {k: getattr(self, k) for k in cell_spec(self.cell).config_kwargs}


@dataclass(frozen=True)
class TrainConfig(Serialisable):
    """How to fit: optimiser, schedule, batching, early stopping, seeding.

    The budget: ``epochs`` passes over the training data, or, with ``steps``, that many optimiser
    steps (one per batch; stateful training: one per truncated-BPTT chunk), stopping mid-epoch
    when the budget runs out there, with ``epochs`` as a cap: training runs
    ``min(epochs, ceil(steps / steps per epoch))`` epochs, the last one possibly partial. The
    schedules are sized by the epochs that will run, and early stopping still counts epochs
    (``check_every``, ``patience``); the last epoch that runs is always checked.

    Early stopping: every ``check_every`` epochs the validation loss is compared with the best so
    far; an improvement must be a relative fall of more than ``min_delta`` (0.01 = 1 %). After
    ``patience`` checks without one, training stops. With ``restore_best`` and validation data the
    weights of the best validation check return at the end (also with ``patience=0``); without
    validation data training ends with the last epoch's weights.
    ``patience=0`` disables early stopping. The ReNom rule "stop when the loss has not fallen 1 %
    over the last 200 epochs" is ``check_every=200, patience=1, min_delta=0.01``.

    ``engine``: ``"auto"`` runs whole epochs in the fused native trainer where the model and task
    allow it and the model is small enough for it to be faster (see
    :func:`rnnkit.kernels.trainer.auto_limits`), and the generic torch loop otherwise;
    ``"fused"`` insists (an error says why it cannot); ``"torch"`` always uses the generic loop.
    The fused trainer declares the settings it honours, and the values of each, in
    :data:`rnnkit.kernels.trainer.HONOURED` (today every field here, with every optimizer and
    schedule); with a setting outside it ``"fused"`` refuses and ``"auto"`` runs the torch loop,
    the reason recorded in ``History.engine_reason``, never silently ignoring the setting.

    ``device``: where training runs (:mod:`rnnkit.training.devices`): ``None`` where the model is
    (the CPU for every rnnkit job), ``"cpu"``, ``"cuda"``/``"cuda:N"``, ``"mps"``, or ``"auto"`` (a
    CUDA GPU when present). The model and the tensors move once; the model comes back where it was.
    The fused trainer is CPU code, so on a GPU the torch loop runs (``engine="auto"`` says why).

    ``warmup``: in many-to-many training the first ``warmup`` steps of each window are left out
    of the loss. ``stateful``: windows are consecutive slices of long streams, the state is carried
    from batch to batch (detached every ``tbptt`` steps) and reset every epoch; no shuffling.

    ``loss``: ``None`` (the default) is the job's own loss: MSE for forecasting (the pinball loss
    for a quantile head, ``ModelConfig.quantiles``), cross-entropy for classification and character
    models; the job records the loss it used. A loss the job cannot train with (``"ce"`` for
    forecasting, ``"mse"``/``"mae"`` for the others, ``"pinball"`` without quantiles) is refused there, as
    is every other setting the job does not use (see each job's ``refuse_unsupported`` in ``tasks/X/config.py``).

    Ranges: ``lr`` in (0, 10], ``momentum`` in [0, 1) (SGD and RMSprop only), ``weight_decay``
    in [0, 1], ``min_delta`` in [0, 1), clipping thresholds in (0, 3.4e38] (float32's range), ``seed`` an
    integer in [0, 2^63 - 1]. NaN and infinities are refused everywhere.

    ``seed``: the same seed, data, versions and machine give the same history and weights, bit for
    bit (dropout masks included), at the same thread count (``torch.set_num_threads``). At another
    thread count the torch loop (``engine="torch"``, and every model with dropout) differs in the
    last bits, which training amplifies: torch's multithreaded kernels (products over a long inner
    dimension such as weight gradients summed over a batch, long sums, oneDNN's float32 LSTM)
    split their sums between threads. Dropout masks do not depend on it. The fused trainer runs on
    one thread and gives the same numbers at any thread count.
    """

    # metadata: the command line's option (see ModelConfig); "off": what a default of None means
    # the command line's one rule between options (cli_parse.config_values): --epochs given
    # without --steps turns a job's default step budget off
    epochs: int = field(default=100, metadata={"help": "maximum epochs (passed without --steps, it is the "
                                                       "budget and a default --steps is off)"})
    steps: Optional[int] = field(default=None, metadata={
        "help": "training budget in optimiser steps; epochs is then a cap", "off": "off"})
    batch_size: int = field(default=32, metadata={"help": "examples per batch"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate, at most 10"})
    optimizer: str = field(default="adam", metadata={"help": "optimiser", "choices": OPTIMIZERS})
    momentum: float = field(default=0.0, metadata={"help": "momentum for sgd/rmsprop, in [0, 1)"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay, in [0, 1]"})
    clip_norm: Optional[float] = field(default=None, metadata={"help": "clip the gradient norm to this value",
                                                               "off": "off"})
    clip_value: Optional[float] = field(default=None, metadata={"help": "clip each gradient to +-this value",
                                                                "off": "off"})
    schedule: str = field(default="none", metadata={"help": "learning-rate schedule", "choices": SCHEDULES})
    loss: Optional[str] = field(default=None, metadata={"help": "training loss", "choices": ("mse", "mae", "ce"),
                                                        "off": "the job's own"})
    patience: int = field(default=20, metadata={
        "help": "early stopping: checks without a better validation loss before stopping; 0 = never; the best "
                "weights are kept"})
    min_delta: float = field(default=0.0, metadata={
        "help": "relative fall that counts as improvement, 0.01 = 1%%"})  # %% for argparse's help formatting
    check_every: int = field(default=1, metadata={"help": "epochs between validation checks"})
    restore_best: bool = True
    shuffle: bool = True
    warmup: int = field(default=0, metadata={"help": "many-to-many or stateful: leading steps left out of the loss"})
    many_to_many: bool = field(default=False, metadata={
        "help": "recursive strategy: train on the next value at every step, not just the last"})
    stateful: bool = field(default=False, metadata={
        "help": "recursive strategy: carry the state across batches over --batch-size streams, no shuffle"})
    tbptt: int = field(default=0, metadata={"help": "stateful: truncated-BPTT length in steps; 0 = the whole stream"})
    seed: int = field(default=0, metadata={"help": "random seed", "metavar": "N"})
    engine: str = field(default="auto", metadata={
        "help": "auto: run whole epochs in rnnkit's native fused trainer where the model allows and is small "
                "enough for it to be faster, else the torch loop; fused: insist; torch: always the torch loop",
        "choices": ("auto", "fused", "torch")})
    device: Optional[str] = field(default=None, metadata={
        "help": "where training runs: auto (a CUDA GPU when present, else the CPU), cpu, cuda, cuda:N or mps; the "
                "torch loop runs on a GPU; the run is saved and forecasts on the CPU", "off": "cpu",
        "metavar": "DEVICE"})
    distributed: bool = field(default=False, metadata={
        "help": "data-parallel training over the processes torchrun starts (torchrun --nproc_per_node=N -m rnnkit "
                "fit ... --distributed): each rank takes its part of every batch of N x --batch-size, gradients "
                "and losses are summed over the ranks, only rank 0 writes the run; the torch loop runs"})

    def __post_init__(self) -> None:
        check_positive("epochs", self.epochs)
        if self.steps is not None and (not isinstance(self.steps, int) or isinstance(self.steps, bool)
                                       or self.steps < 1):
            raise ConfigError(f"steps must be an integer >= 1 (a budget in optimiser steps) or None (the budget "
                              f"is then epochs); got {self.steps!r}")
        check_positive("batch_size", self.batch_size)
        check_real("lr", self.lr, 0.0, MAX_LR, lo_open=True, what="a positive number")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("loss", self.loss, (None, *LOSSES))
        check_choice("engine", self.engine, ("auto", "fused", "torch"))
        check_device_name(self.device)
        check_positive("patience", self.patience, zero_ok=True)
        check_positive("check_every", self.check_every)
        check_positive("warmup", self.warmup, zero_ok=True)
        check_positive("tbptt", self.tbptt, zero_ok=True)
        for name in ("clip_norm", "clip_value"):
            v = getattr(self, name)
            if v is not None:
                check_real(name, v, 0.0, FLOAT32_MAX, lo_open=True, what="a positive number (when given)")
        check_real("min_delta", self.min_delta, 0.0, 1.0, hi_open=True, what="a relative fall")
        check_real("momentum", self.momentum, 0.0, 1.0, hi_open=True, what="a number")
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ConfigError(f"momentum applies to the sgd and rmsprop optimizers; {self.optimizer} has none "
                              "(adam's betas are fixed): use optimizer='sgd' or 'rmsprop', or momentum=0")
        check_real("weight_decay", self.weight_decay, 0.0, 1.0, what="a number")
        for name in ("restore_best", "shuffle", "many_to_many", "stateful", "distributed"):
            if getattr(self, name) not in (True, False):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2^63 - 1] ({MAX_SEED}); got {self.seed!r}")



# --- shared by the jobs' own configs (tasks/*/config.py) -----------------------------------------

UNKNOWN_POLICIES = ("error", "skip", "replace")


def refuse_forecasting_settings(job: str, model: ModelConfig, train: TrainConfig) -> None:
    """Refuse the forecasting-only settings (and a loss other than cross-entropy) for ``job``, one
    of the jobs that train with cross-entropy (classification, text)."""
    if train.loss not in (None, "ce"):
        refuse_setting(job, f"loss={train.loss!r}", "it trains with cross-entropy; leave loss unset (or 'ce')")
    if model.strategy != "direct":
        refuse_setting(job, f"strategy={model.strategy!r}", "strategy is a forecasting setting")
    if model.quantiles:
        refuse_setting(job, "quantiles", "a quantile head is a forecasting setting")
    if model.distribution != "none":
        refuse_setting(job, f"distribution={model.distribution!r}", "a distribution head is a forecasting setting")
    if train.distributed:
        refuse_setting(job, "distributed", "data-parallel training covers forecasting for now (its ensembles train "
                       "in threads); train without --distributed")
    if train.many_to_many or train.warmup:
        refuse_setting(job, "many_to_many/warmup", "they are forecasting settings")
