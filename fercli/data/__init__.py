"""Datasets for training and evaluation (PyTorch): FER-2013 folders or csv, any class-folder dataset, FER+ votes."""
