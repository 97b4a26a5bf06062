"""fer: facial expression recognition from the command line."""

__version__ = "0.1.0"
