"""fer: facial expression recognition from the command line, and from Python:

    from fercli import FaceAnalyzer
    FaceAnalyzer().predict("photo.jpg")  # {"path", "status", "size", "turned", "faces": [{"box", "label", "scores", ...}]}
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use, so ``import fercli`` (and ``fer --help``) stay instant.
    if name == "FaceAnalyzer":
        from fercli.faces.analyzer import FaceAnalyzer

        return FaceAnalyzer
    raise AttributeError(f"module 'fercli' has no attribute {name!r}")


__all__ = ["FaceAnalyzer", "__version__"]
