"""The face pipeline users run (``fer predict``, ``fer serve``, ``FaceAnalyzer``): read a photo, video or stream,
find faces (YuNet), align and crop them, classify them through ``fercli.model.classifier``, draw and serve.
Nothing here imports PyTorch."""
