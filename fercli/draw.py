"""Boxes, labels and probability bars drawn onto photos and video frames (OpenCV, BGR images, in place)."""

from __future__ import annotations

import numpy as np

from fercli.faces import Face

GREEN, WHITE, DARK = (0, 200, 0), (255, 255, 255), (40, 40, 40)


def draw_faces(canvas: np.ndarray, faces: list[Face], scale: float = 1.0, top_k: int = 1,
               names: list[str] | None = None) -> np.ndarray:
    """Draw each face's box (photo pixels x ``scale`` = canvas pixels), its label, and top-k bars when top_k > 1.

    ``names``: a prefix per face, e.g. "#2" for a tracked face_id.
    """
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(2, round(canvas.shape[1] / 400))
    for i, face in enumerate(faces):
        x, y, w, h = (int(round(v * scale)) for v in face.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), GREEN, thickness)
        prefix = f"{names[i]} " if names else ""
        text = f"{prefix}{face.label} {face.scores.get(face.label, 0):.0%}"
        font_scale = max(0.6, w / 150)
        (tw, th), _ = cv2.getTextSize(text, font, font_scale, thickness)
        top = max(y - th - 10, 0)
        cv2.rectangle(canvas, (x, top), (x + tw + 8, top + th + 10), GREEN, -1)
        cv2.putText(canvas, text, (x + 4, top + th + 4), font, font_scale, WHITE, thickness, cv2.LINE_AA)
        if top_k > 1:
            draw_bars(canvas, face, (x, y + h + 4), max(w, 120), top_k, font_scale * 0.6)
    return canvas


def draw_bars(canvas: np.ndarray, face: Face, origin: tuple[int, int], width: int, top_k: int, font_scale: float) -> None:
    """The face's top-k classes as horizontal bars under its box: name, bar, percentage."""
    import cv2

    ranked = sorted(face.scores.items(), key=lambda kv: -kv[1])[:top_k]
    (_, th), _ = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    row = th + 8
    x, y = origin
    height = canvas.shape[0]
    if y + row * len(ranked) > height:  # no room below the box: draw inside it, from its bottom up
        y = max(0, height - row * len(ranked) - 2)
    for k, (name, p) in enumerate(ranked):
        top = y + k * row
        cv2.rectangle(canvas, (x, top), (x + width, top + row - 2), DARK, -1)
        cv2.rectangle(canvas, (x, top), (x + int(width * p), top + row - 2), GREEN, -1)
        cv2.putText(canvas, f"{name} {p:.0%}", (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, WHITE, 1,
                    cv2.LINE_AA)
