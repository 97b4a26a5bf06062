"""Classifiers: one way to open a model file (``classifier.open_classifier``), whatever its format.

Torch-free (``fer predict`` loads these): ``classifier``, ``onnx_backend``, ``preprocess``, ``shipped``.
Need PyTorch: ``nets`` (the registry of architectures), ``checkpoint``, ``torch_backend``, ``device``, ``export``."""
