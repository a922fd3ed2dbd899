"""Checks made before any work starts, so a bad setting or data source fails in one clear line.

* :func:`refuse_unsupported`: each job (forecast, classify, text) refuses every setting it does
  not use, instead of ignoring or replacing it. A setting at its dataclass default counts as "not
  set" (``TrainConfig.loss=None`` is the job's own loss).
* :func:`check_training_memory`: a rough estimate of what training a model needs (parameters,
  gradients, optimiser state, saved activations), refused above the machine's physical memory:
  ``--hidden 1000000000`` should not reach the allocator.
* :func:`check_c_int`: every size handed to the native kernels must fit a C ``int``.
* :func:`read_data_file` / :func:`gunzip_limited`: data come only from regular files of a size
  that fits in memory (a FIFO, ``/dev/zero`` or a 1 TB file would hang or exhaust memory).

Only the standard library is imported here: the command line uses these before torch loads.
"""

from __future__ import annotations

import io
import os
import stat

from .config import ModelConfig, TextConfig, TrainConfig
from .errors import ConfigError, DataError

__all__ = ["refuse_unsupported", "check_training_memory", "training_bytes", "physical_memory",
           "check_c_int", "C_INT_MAX", "read_data_file", "gunzip_limited", "max_file_bytes"]

C_INT_MAX = 2**31 - 1
_GIB = 1 << 30


# --- settings a job does not use ------------------------------------------------------------------

def _refuse(job: str, what: str, why: str) -> None:
    raise ConfigError(f"{what} does not apply to {job}: {why}")


def refuse_unsupported(job: str, model: ModelConfig, train: TrainConfig, *, lookback: int | None = None,
                       text: TextConfig | None = None) -> None:
    """Raise :class:`ConfigError` for the first setting of ``model``/``train`` that ``job``
    (``"forecasting"``, ``"classification"`` or ``"text"``) would ignore or replace.

    ``lookback`` (forecasting) bounds the warm-up; ``text`` (character models) the TBPTT length.
    """
    d = TrainConfig()
    if job == "forecasting":
        if train.loss not in (None, "mse", "mae"):
            _refuse(job, f"loss={train.loss!r}", "forecasts are trained with loss 'mse' or 'mae'")
        if train.many_to_many and model.strategy != "recursive":
            _refuse(job, "many_to_many=True with strategy='direct'",
                    "a direct forecaster has one output per window; use strategy='recursive'")
        if train.tbptt and not train.stateful:
            _refuse(job, f"tbptt={train.tbptt} without stateful=True", "truncated BPTT splits the long streams "
                    "of stateful training; pass stateful=True or tbptt=0")
        if train.warmup:
            if not (train.many_to_many or train.stateful):
                _refuse(job, f"warmup={train.warmup}", "warm-up steps are left out of a loss over every step; "
                        "it needs many_to_many=True or stateful=True")
            limit, name = (train.tbptt, "tbptt") if train.stateful else (lookback, "lookback")
            if limit and train.warmup >= limit:
                raise ConfigError(f"warmup ({train.warmup}) must be below the {name} ({limit}): otherwise no step "
                                  "is left in the loss; lower the warm-up")
        return
    if job not in ("classification", "text"):
        raise ValueError(f"unknown job {job!r}")
    if train.loss not in (None, "ce"):
        _refuse(job, f"loss={train.loss!r}", "it trains with cross-entropy; leave loss unset (or 'ce')")
    if model.strategy != "direct":
        _refuse(job, f"strategy={model.strategy!r}", "strategy is a forecasting setting")
    if train.many_to_many or train.warmup:
        _refuse(job, "many_to_many/warmup", "they are forecasting settings")
    if job == "classification":
        if train.stateful or train.tbptt:
            _refuse(job, "stateful/tbptt", "every sequence is classified from a zero state; they are forecasting "
                    "and text settings")
        return
    seq_len = text.seq_len if text is not None else TextConfig().seq_len
    if train.epochs != d.epochs:
        _refuse(job, f"epochs={train.epochs}", "a character model's length is TextConfig.steps (--steps), "
                "rounded to whole passes over the text")
    if train.tbptt not in (0, seq_len):
        _refuse(job, f"tbptt={train.tbptt}", f"the truncated-BPTT length is TextConfig.seq_len ({seq_len})")


# --- memory ---------------------------------------------------------------------------------------

def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    try:
        n = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return n if n > 0 else None


_GATES = {"lstm": 4, "gru": 3, "elman": 1, "jordan": 1}


def _recurrent_params(model: ModelConfig, input_size: int) -> tuple[int, int]:
    """(parameters, output width) of the recurrent stack ``model`` describes on ``input_size`` inputs."""
    H, G = model.hidden_size, _GATES[model.cell] * model.hidden_size
    S = (model.output_size or H) if model.cell == "jordan" else H  # the recurrent state / output width
    D = 2 if model.bidirectional else 1
    total, width = 0, input_size
    for _ in range(model.num_layers):
        per = G * (width + S) + 2 * G + (S * H + S if model.cell == "jordan" else 0)
        if model.peephole:
            per += 3 * H
        total += D * per
        width = D * S
    return total, width


def training_bytes(model: ModelConfig, input_size: int, outputs: int, batch: int, steps: int,
                   embedding: tuple[int, int] | None = None, itemsize: int = 4) -> tuple[int, int]:
    """A rough ``(parameter bytes, activation bytes)`` of training this model: every parameter with
    its gradient, two optimiser moments and a copy of the best weights (x5), and per batch the
    saved gates and states of every step of every layer, forward and backward (x2).

    ``embedding`` is ``(vocab, width)`` of an input embedding; ``steps`` the sequence length.
    """
    vocab, dim = embedding or (0, 0)
    params, width = _recurrent_params(model, dim or input_size)
    params += width * outputs + outputs + vocab * dim
    H, G = model.hidden_size, _GATES[model.cell] * model.hidden_size
    per_step = (G + 3 * H) * model.num_layers * (2 if model.bidirectional else 1) + input_size + outputs
    return 5 * params * itemsize, 2 * batch * steps * per_step * itemsize


def _gib(n: float) -> str:
    return f"{n / _GIB:.3g} GiB"


def check_training_memory(model: ModelConfig, input_size: int, outputs: int, batch: int, steps: int,
                          embedding: tuple[int, int] | None = None, itemsize: int = 4,
                          batch_flag: str = "batch_size") -> None:
    """Refuse (:class:`ConfigError`) a model whose :func:`training_bytes` exceed physical memory,
    naming the settings that make it large and the estimate."""
    ram = physical_memory()
    if ram is None:
        return
    p, a = training_bytes(model, input_size, outputs, batch, steps, embedding, itemsize)
    if p + a <= ram:
        return
    sizes = f"hidden_size={model.hidden_size}, num_layers={model.num_layers}"
    if embedding and embedding[1]:
        sizes += f", embedding_dim={embedding[1]}"
    if p >= a:
        cause = f"its parameters alone need about {_gib(p)} ({sizes})"
        fix = "use a smaller hidden size, fewer layers" + (" or a narrower embedding" if embedding else "")
    else:
        cause = (f"a batch of {batch} sequences of {steps} steps needs about {_gib(a)} of activations "
                 f"({sizes}, {batch_flag}={batch})")
        fix = f"use a smaller model, a smaller {batch_flag} or shorter sequences"
    raise ConfigError(f"training this model needs about {_gib(p + a)}, more than this machine's "
                      f"{_gib(ram)} of memory: {cause}; {fix}")


def check_c_int(what: str, value: int) -> int:
    """``value`` if it fits the native kernels' C ``int``, else :class:`ConfigError` naming ``what``."""
    if not 0 <= int(value) <= C_INT_MAX:
        raise ConfigError(f"{what} ({value}) is outside what the native kernels take (0 to 2^31 - 1); "
                          "use smaller sizes or engine='torch'")
    return int(value)


# --- data files -----------------------------------------------------------------------------------

def max_file_bytes() -> int:
    """The largest data file rnnkit reads: a quarter of physical memory (parsing a table takes
    several times the file's size), or 4 GiB where the machine's memory is unknown."""
    ram = physical_memory()
    return ram // 4 if ram else 4 * _GIB


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "special file"


def read_data_file(path: str | os.PathLike, label: str | None = None) -> bytes:
    """The bytes of a data file, refusing (:class:`DataError`) anything but a regular file of at
    most :func:`max_file_bytes`; checked before reading, so a FIFO or ``/dev/zero`` never blocks
    or fills memory. Links are followed. ``OSError`` of a missing or unreadable file propagates
    (callers word those messages)."""
    label = label or str(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{label} is a {_kind(st.st_mode)}, not a regular file; rnnkit reads data only from "
                        "files: save the data to a file and pass its path")
    limit = max_file_bytes()
    if st.st_size > limit:
        raise DataError(f"{label} is {_gib(st.st_size)}, larger than the {_gib(limit)} rnnkit reads at once (a "
                        "quarter of this machine's memory: parsing takes several times the file's size); "
                        "use a sample or a shorter span of the data")
    with open(path, "rb") as f:
        raw = f.read(limit + 1)  # a file that grows while it is read still stops at the limit
    if len(raw) > limit:
        raise DataError(f"{label} grew past {_gib(limit)} while it was read; pass a file that is not being written")
    return raw


def gunzip_limited(raw: bytes, label: str) -> bytes:
    """``raw`` decompressed, refusing (:class:`DataError`) more than :func:`max_file_bytes` of output
    (a small compressed file can expand without bound). ``OSError``/``EOFError`` of a damaged
    file propagate."""
    import gzip
    limit = max_file_bytes()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        out = f.read(limit + 1)
    if len(out) > limit:
        raise DataError(f"{label} decompresses to more than {_gib(limit)}, larger than rnnkit reads at once (a "
                        "quarter of this machine's memory); use a sample of the data")
    return out
