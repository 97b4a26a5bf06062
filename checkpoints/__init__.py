"""Shipped trained models (see MODEL_CARD.md); installed as the fercli.checkpoints package."""
