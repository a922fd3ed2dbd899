"""Deployment: a trained run written as an ONNX graph for onnxruntime (``rnnkit export``).

:mod:`.pipeline` and :mod:`.graphs` are a forecaster's forecast (pre- and post-processing mirrored
in torch around a traceable copy of the network, :mod:`.traceable`) and its streaming step as torch
modules; :mod:`.forecast_export`, :mod:`.classify_export` and :mod:`.text_export` build each kind of
run's graphs with their metadata and checks (:class:`~.parts.Parts`); :mod:`.onnx_file` traces them,
checks them with onnxruntime and writes the file; :mod:`.cli` is the command. Only the command line
module is imported with the package (it loads neither torch nor onnx).
"""
