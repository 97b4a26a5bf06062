"""Boxes, labels and probability bars drawn onto photos and video frames (OpenCV, BGR images, in place)."""

from __future__ import annotations

import numpy as np

from fercli.faces.analyzer import Face

GREEN, WHITE, DARK = (0, 200, 0), (255, 255, 255), (40, 40, 40)


def draw_faces(canvas: np.ndarray, faces: list[Face], scale: float = 1.0, top_k: int = 1,
               names: list[str] | None = None) -> np.ndarray:
    """Draw each face's box (photo pixels x ``scale`` = canvas pixels), its label, and top-k bars when top_k > 1.

    ``names``: a prefix per face, e.g. "#2" for a tracked face_id.
    """
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    boxes = [tuple(int(round(v * scale)) for v in face.box) for face in faces]
    for i, face in enumerate(faces):
        x, y, w, h = boxes[i]
        # Lines grow with the photo (a big photo is looked at shrunk) but stay thin around a small face.
        cv2.rectangle(canvas, (x, y), (x + w, y + h), GREEN, max(2, min(round(canvas.shape[1] / 400), w // 15)))
        prefix = f"{names[i]} " if names else ""
        text = f"{prefix}{face.label} {face.scores.get(face.label, 0):.0%}"
        # Text as big as the face, or as a shrunk view of the photo needs; its stroke follows its size (a stroke
        # set by the photo's width made the small faces' labels of a big group photo unreadable blobs). In a row
        # of faces it shrinks to the room before the next face, so that neighbours' labels do not cover each other.
        font_scale = max(0.6, w / 150, canvas.shape[1] / 2000)
        room = room_to_the_right(boxes, i, reach=int(60 * font_scale))
        (tw, th), _ = cv2.getTextSize(text, font, font_scale, max(1, round(font_scale * 2.5)))
        if tw + 14 > room:  # the label's box is the text + 8 px; 6 more keep neighbours apart
            font_scale = max(MIN_FONT, font_scale * (room - 14) / tw)
        stroke = max(1, round(font_scale * 2.5))
        (tw, th), _ = cv2.getTextSize(text, font, font_scale, stroke)
        top = max(y - th - 10, 0)
        cv2.rectangle(canvas, (x, top), (x + tw + 8, top + th + 10), GREEN, -1)
        cv2.putText(canvas, text, (x + 4, top + th + 4), font, font_scale, WHITE, stroke, cv2.LINE_AA)
        if top_k > 1:
            draw_bars(canvas, face, (x, y + h + 4), min(max(w, 120), max(w, room - 4)), top_k, font_scale * 0.6)
    return canvas


MIN_FONT = 0.4  # OpenCV's Hershey font is still legible here


def room_to_the_right(boxes: list[tuple[int, ...]], i: int, reach: int) -> float:
    """Pixels from box i's left edge to the next box on its right whose label or bars could meet its own (their
    boxes, widened by ``reach`` above and below for labels and bars, overlap in height); inf if none."""
    x, y, _w, h = boxes[i]
    lefts = [bx for bx, by, _bw, bh in boxes if bx > x and by - reach < y + h + reach and y - reach < by + bh + reach]
    return min(lefts, default=float("inf")) - x


def draw_bars(canvas: np.ndarray, face: Face, origin: tuple[int, int], width: int, top_k: int, font_scale: float) -> None:
    """The face's top-k classes as horizontal bars under its box: name, bar, percentage."""
    import cv2

    ranked = sorted(face.scores.items(), key=lambda kv: -kv[1])[:top_k]
    (_, th), _ = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    widest = max(cv2.getTextSize(f"{name} {p:.0%}", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] for name, p in ranked)
    width = max(width, widest + 6)  # the text stays on the bar's dark ground, not on the photo
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


# tab10's first colours (BGR), so the timeline's classes look like the matplotlib figures'.
PALETTE = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
           (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23))


def draw_timeline(times: dict[int, list[float]], probs: dict[int, np.ndarray], classes: tuple[str, ...], title: str,
                  duration_s: float, width: int = 1200) -> np.ndarray:
    """One panel per tracked face (the 12 seen longest, in order of appearance; the csv has them all): each class's
    probability over the video's time, 0-1 on the y axis, seconds on the x axis, a legend at the bottom. Drawn with
    OpenCV so that the base install (photos, videos, the server) needs no matplotlib."""
    import cv2

    font, panel_h, left, right, top, bottom = cv2.FONT_HERSHEY_SIMPLEX, 170, 90, 30, 50, 80
    faces = longest_seen({face_id: len(seen) for face_id, seen in times.items()}, most=12)
    top += 20 if len(faces) < len(times) else 0  # room for the line that says so
    canvas = np.full((top + panel_h * len(faces) + bottom, width, 3), 255, np.uint8)
    cv2.putText(canvas, title, (left, 32), font, 0.7, DARK, 1, cv2.LINE_AA)
    if len(faces) < len(times):
        cv2.putText(canvas, f"the {len(faces)} of {len(times)} faces seen longest (timeline.csv has them all)",
                    (left, 56), font, 0.5, DARK, 1, cv2.LINE_AA)
    span = max(duration_s, 1e-3)
    plot_w = width - left - right
    step = nice_step(span)
    for row, face_id in enumerate(faces):
        y0, y1 = top + row * panel_h + 16, top + (row + 1) * panel_h - 12
        for p in (0.0, 0.5, 1.0):  # grid and y labels
            y = int(y1 - p * (y1 - y0))
            cv2.line(canvas, (left, y), (left + plot_w, y), (225, 225, 225), 1)
            cv2.putText(canvas, f"{p:.1f}", (left - 40, y + 5), font, 0.45, DARK, 1, cv2.LINE_AA)
        cv2.putText(canvas, f"face {face_id}", (left + 6, y0 + 18), font, 0.5, DARK, 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (left, y0), (left + plot_w, y1), DARK, 1)
        xs = left + np.asarray(times[face_id]) / span * plot_w
        for k in range(len(classes)):
            ys = y1 - probs[face_id][:, k] * (y1 - y0)
            points = np.stack([xs, ys], 1).round().astype(np.int32)
            if len(points) == 1:
                cv2.circle(canvas, tuple(int(v) for v in points[0]), 3, PALETTE[k % 10], -1, cv2.LINE_AA)
            cv2.polylines(canvas, [points], False, PALETTE[k % 10], 2, cv2.LINE_AA)
    axis_y = top + panel_h * len(faces)
    for t in np.arange(0, span + 1e-9, step):  # x ticks in seconds
        x = int(left + t / span * plot_w)
        cv2.putText(canvas, f"{t:g}", (x - 8, axis_y + 12), font, 0.45, DARK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "time (s)", (left + plot_w // 2 - 30, axis_y + 34), font, 0.5, DARK, 1, cv2.LINE_AA)
    x = left
    for k, name in enumerate(classes):  # legend
        cv2.line(canvas, (x, axis_y + 60), (x + 24, axis_y + 60), PALETTE[k % 10], 3)
        cv2.putText(canvas, name, (x + 30, axis_y + 65), font, 0.5, DARK, 1, cv2.LINE_AA)
        x += 40 + cv2.getTextSize(name, font, 0.5, 1)[0][0]
    return canvas


def longest_seen(frames_seen: dict[int, int], most: int) -> list[int]:
    """The ``most`` faces seen in the most analysed frames, in order of appearance (face ids count up). In a long video,
    tracks break (a face turned away for over a second comes back with a new face_id) and passers-by come and go: the
    first ids are not the people the video is about."""
    return sorted(sorted(frames_seen, key=lambda face_id: -frames_seen[face_id])[:most])


def nice_step(span: float) -> float:
    """A round tick spacing (1, 2 or 5 x 10^k) that gives 4-10 ticks over ``span``."""
    exponent = 10 ** np.floor(np.log10(span / 5))
    return float(min((m * exponent for m in (1, 2, 5, 10)), key=lambda s: abs(span / s - 6)))
