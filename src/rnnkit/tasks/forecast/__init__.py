"""Forecasting: a series in, a trained forecaster, forecasts, scores and a run directory out.

The same files in each job: config, data, model, workflow, metrics, run, cli."""
