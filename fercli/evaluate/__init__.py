"""``fer eval``, ``fer visualize`` and ``fer audit`` (PyTorch): scoring models on a dataset, metrics, twins."""
