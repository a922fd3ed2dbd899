"""Sequence classification: labelled sequences (series or strings) in, a trained classifier out.

The same files in each job: config, data, model, workflow, metrics, run, cli."""
