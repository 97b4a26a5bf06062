"""``fer train`` (PyTorch): the loop, its builders, augmentation, distillation, weight averaging, calibration and
data-parallel training."""
