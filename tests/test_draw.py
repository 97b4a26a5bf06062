"""What fer draws on a photo stays legible: labels on a big group photo, bars under a small face."""

import numpy as np

from fercli.draw import DARK, GREEN, draw_bars, draw_faces
from fercli.faces import Face

FACE = Face((1200, 700, 60, 70), label="happy", scores={"happy": 0.88, "neutral": 0.03, "sad": 0.02, "angry": 0.01})


def is_colour(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return (image == np.array(colour)).all(axis=2)


def test_a_small_face_on_a_big_photo_gets_a_readable_label():
    """The label's stroke once followed the photo's width: on a 2400-px group photo a 60-px face's label was a
    white blob (53% of its green box white). Strokes now follow the text's size."""
    canvas = np.full((1600, 2400, 3), 128, np.uint8)
    draw_faces(canvas, [FACE], 1.0, top_k=1)
    ys, xs = np.nonzero(is_colour(canvas[:700], GREEN))  # the label's green box, above the face
    label = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    white = (label >= 200).all(axis=2).mean()
    assert 0.1 < white < 0.45, white


def test_bar_text_stays_on_its_bar():
    canvas = np.full((300, 600, 3), 128, np.uint8)
    draw_bars(canvas, FACE, (100, 50), 40, 3, 1.0)  # a bar narrower than its text asks for
    bars = is_colour(canvas, DARK) | is_colour(canvas, GREEN)
    rows = np.nonzero(bars.any(axis=1))[0]
    right_end = np.nonzero(bars.any(axis=0))[0].max()
    written = (canvas[rows.min() : rows.max() + 1] != 128).any(axis=2)
    assert written[:, right_end + 1 :].sum() == 0  # nothing drawn right of the bars: the text fits on them
    assert right_end - 100 > 40  # widened to hold "happy 88%"
