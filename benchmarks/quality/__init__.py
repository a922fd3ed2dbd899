"""`make quality`: rnnkit's accuracy against classical forecasting and classification methods (issue 15).

run.py is the command line; sources.py the data, classical.py and rnnkit_calls.py the contenders,
scores.py the measures, report.py QUALITY.md and the plot. See benchmarks/README.md.
"""
