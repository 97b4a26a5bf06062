"""What fer draws on a photo stays legible: labels on a big group photo, bars under a small face."""

import numpy as np

from fercli.faces.draw import DARK, GREEN, draw_bars, draw_faces, draw_timeline, longest_seen
from fercli.faces.analyzer import Face

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


def test_labels_in_a_row_of_small_faces_do_not_cover_each_other():
    """A group photo's row of 60-px faces 100 px apart on a 4000-px photo: labels sized for the photo (about 300 px
    wide) covered three neighbours each; now each fits in the room before the next face, and the last keeps its size."""
    row = [Face((200 + 100 * k, 1000, 60, 70), label="happy", scores=dict(FACE.scores)) for k in range(8)]
    canvas = np.full((3000, 4000, 3), 128, np.uint8)
    draw_faces(canvas, row, 1.0, top_k=2)
    band = is_colour(canvas[800:990], GREEN).any(axis=0)  # the label band above the faces' boxes
    for k in range(7):  # each label's green box ends before the next face's box begins
        x = 200 + 100 * k
        gap = np.nonzero(~band[x : x + 100])[0]
        assert len(gap) > 0, k
    last = np.nonzero(band)[0].max()
    assert last - 900 > 150  # the last face has room: its label keeps the photo-sized font


def test_timeline_of_a_long_video_plots_the_faces_seen_longest():
    """Face 1 is a passer-by seen in two frames, face i > 1 in i + 1 frames: the panels are the 12 seen longest, in order
    of appearance, and the picture says that two were left out."""
    times = {1: [0.0, 0.1], **{i: [0.1 * k for k in range(i + 1)] for i in range(2, 15)}}
    assert longest_seen({i: len(t) for i, t in times.items()}, most=12) == list(range(3, 15))
    assert longest_seen({3: 1, 1: 1}, most=12) == [1, 3]
    probs = {i: np.full((len(t), 7), 1 / 7) for i, t in times.items()}
    picture = draw_timeline(times, probs, tuple("abcdefg"), "talk.mp4", duration_s=1.5)
    every = draw_timeline({i: times[i] for i in range(3, 15)}, probs, tuple("abcdefg"), "talk.mp4", duration_s=1.5)
    assert picture.shape[0] == every.shape[0] + 20  # the same 12 panels, and a line saying which they are
