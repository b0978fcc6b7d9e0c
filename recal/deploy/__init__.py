"""Deploying a trained classification network: which checkpoints qualify, and ONNX export.

:mod:`recal.deploy.classifier` rebuilds a checkpoint's classification network (and refuses
other tasks in one line); :mod:`recal.deploy.onnx` writes it as ONNX and checks the file in
onnxruntime. The command over both is ``python -m recal.export``.
"""

from recal.deploy.classifier import classification_network, load_classifier
from recal.deploy.onnx import export_onnx

__all__ = ["classification_network", "export_onnx", "load_classifier"]
