"""recal: channel recalibration modules for CNNs, on PyTorch Lightning."""
