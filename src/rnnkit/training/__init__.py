"""Training and its products: the loop (:mod:`~rnnkit.training.loop`), pre-flight checks, plots,
and the generic run directory (atomic writing, checked loading). Imports no job (:mod:`rnnkit.tasks`)."""
