"""The web page in a real browser: Debian's chromium, headless, driven by Playwright; its fake camera plays a
video of the example photo. Skipped, with the reason, where chromium or Playwright is missing (CI installs both)."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fercli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/v1/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"fer serve did not start: {proc.stderr.read().decode()[-500:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory) -> Path:
    """A motion-JPEG clip Chromium's fake camera plays in a loop: the example photo in a 640x480 frame."""
    frame = Image.new("RGB", (640, 480), (128, 128, 128))
    frame.paste(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((480, 480)), (80, 0))
    buffer = io.BytesIO()
    frame.save(buffer, "JPEG", quality=90)
    clip = tmp_path_factory.mktemp("camera") / "clip.mjpeg"
    clip.write_bytes(buffer.getvalue() * 20)
    return clip


@pytest.fixture
def page(camera_clip):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_clip}"])
        yield browser.new_page(viewport={"width": 1100, "height": 1000})
        browser.close()


def test_upload_the_example_photo_and_see_a_box_labelled_happy(server, page):
    page.goto(server)
    page.set_input_files("#files", str(EXAMPLES / "two_faces.jpg"))
    page.wait_for_selector(".result .face-label", timeout=20_000)
    labels = page.locator(".result .face-label").all_inner_texts()
    assert len(labels) == 2 and all(label.startswith(f"face {i}: happy") for i, label in enumerate(labels, start=1))
    assert page.locator(".result canvas").count() == 1 and page.locator(".bar").count() == 6


def test_an_upside_down_upload_is_labelled_as_if_upright(server, page, tmp_path):
    """A photo stored upside down without an EXIF tag: both faces boxed, and read as smiles, not as "sad"."""
    upside_down = tmp_path / "upside_down.jpg"
    Image.open(EXAMPLES / "two_faces.jpg").rotate(180).save(upside_down, quality=95)
    page.goto(server)
    page.set_input_files("#files", str(upside_down))
    page.wait_for_selector(".result .face-label", timeout=20_000)
    labels = page.locator(".result .face-label").all_inner_texts()
    assert len(labels) == 2 and all(": happy" in label for label in labels), labels
    assert "upside down" in page.inner_text(".result .turned")


def test_a_heic_upload_the_browser_cannot_show_still_lists_its_faces(server, page, tmp_path):
    """fer reads HEIC (with fercli[heic], which the dev install has); Chromium cannot draw it."""
    pillow_heif = pytest.importorskip("pillow_heif", reason='HEIC needs pillow-heif: pip install "fercli[heic]"')
    photo = tmp_path / "IMG_0003.HEIC"
    pillow_heif.from_pillow(Image.open(EXAMPLES / "two_faces.jpg").convert("RGB")).save(photo, quality=90)
    page.goto(server)
    page.set_input_files("#files", str(photo))
    page.wait_for_selector(".result .face-label", timeout=20_000)
    labels = page.locator(".result .face-label").all_inner_texts()
    assert len(labels) == 2 and all(": happy" in label for label in labels), labels
    assert page.locator(".result canvas").count() == 0  # Chromium has no HEIC decoder (HEVC patents)
    assert "cannot show this photo's format" in page.inner_text(".result .no-preview")


def test_a_corrupt_upload_shows_an_error_and_the_page_still_works(server, page, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((EXAMPLES / "astronaut.jpg").read_bytes()[:3000])
    page.goto(server)
    page.set_input_files("#files", str(broken))
    page.wait_for_selector(".result .error", timeout=20_000)
    assert "corrupt or truncated" in page.inner_text(".result .error")
    page.set_input_files("#files", str(EXAMPLES / "astronaut.jpg"))
    page.wait_for_selector(".result .face-label", timeout=20_000)
    assert "happy" in page.inner_text(".result .face-label")


def test_a_pasted_picture_is_read_like_a_dropped_one(server, page):
    """A screenshot pasted with Ctrl+V: the browser hands the page a file named image.png."""
    page.goto(server)
    data = list((EXAMPLES / "astronaut.jpg").read_bytes())
    page.evaluate("""(bytes) => {
        const clip = new DataTransfer();
        clip.items.add(new File([new Uint8Array(bytes)], "image.png", { type: "image/jpeg" }));
        document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: clip }));
    }""", data)
    page.wait_for_selector(".result .face-label", timeout=20_000)
    assert "happy" in page.inner_text(".result .face-label")
    assert page.inner_text(".result .name").startswith("pasted-") and page.locator(".result canvas").count() == 1


def test_a_group_photo_lists_its_small_faces_and_labels_fit_between_them(server, page, tmp_path):
    """Twelve small faces in a 12-megapixel photo: the server finds them (its closer look), the page lists them all,
    and on the 480-px preview, where they are a few pixels apart, each is marked by its number, not by labels that
    cover one another."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_faces import group_photo

    group_photo(tmp_path / "group.jpg", [50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 62])
    page.goto(server)
    page.set_input_files("#files", str(tmp_path / "group.jpg"))
    page.wait_for_selector(".result .face-label", timeout=30_000)
    labels = page.locator(".result .face-label").all_inner_texts()
    assert len(labels) >= 11 and all(": happy" in label for label in labels), labels
    fitted = page.evaluate("""() => {
        const ctx = document.createElement("canvas").getContext("2d");
        const row = (gap) => [0, 1, 2].map((k) => [10 + gap * k, 50, 8, 10]);
        return [labelFor(ctx, row(20), 0, "happy 92%", "1", 14), labelFor(ctx, row(80), 0, "happy 92%", "1", 14),
                labelFor(ctx, row(400), 0, "happy 92%", "1", 14)];
    }""")
    assert fitted[0]["text"] == "1"  # 20 px apart: the number only
    assert fitted[1]["text"] == "happy 92%" and 9 <= fitted[1]["size"] < 14  # 80 px: shrunk to fit
    assert fitted[2] == {"text": "happy 92%", "size": 14}  # room enough: as before


def test_a_photo_of_faces_too_small_to_read_says_they_are_there(server, page, tmp_path):
    """Faces of 30-36 px, under --min-face: the card says how many there are instead of "no face found"."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_faces import group_photo

    group_photo(tmp_path / "web.jpg", [30, 32, 34, 36], size=(1600, 1200))
    page.goto(server)
    page.set_input_files("#files", str(tmp_path / "web.jpg"))
    page.wait_for_selector(".result .face-label", timeout=20_000)
    assert page.locator(".result .face-label").all_inner_texts() == [
        "no face large enough to read, but 4 smaller (fer predict --min-face reads them)"]
    group_photo(tmp_path / "mixed.jpg", [30, 32, 34, 52, 56, 60], size=(1600, 1200))
    page.set_input_files("#files", str(tmp_path / "mixed.jpg"))
    page.wait_for_function("document.querySelectorAll('.result .face-label').length === 4", timeout=20_000)
    assert "and 3 smaller, too small to read" in page.inner_text(".result .turned")


def write_clip(path: Path, fourcc: str, frames: int = 30, fps: int = 10) -> Path:
    """The example photo in a 640x480 frame, ``frames`` frames at ``fps``."""
    import cv2

    frame = cv2.copyMakeBorder(cv2.resize(cv2.imread(str(EXAMPLES / "astronaut.jpg")), (480, 480)), 0, 0, 80, 80,
                               cv2.BORDER_CONSTANT, value=(128, 128, 128))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (640, 480))
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


def test_a_dropped_video_plays_with_labelled_boxes_timed_by_the_video(server, page, tmp_path):
    clip = write_clip(tmp_path / "clip.webm", "VP80")  # 3 s of VP8, which every Chromium plays
    page.goto(server)
    page.set_input_files("#files", str(clip))
    page.wait_for_function("document.getElementById('webcam-labels').textContent.includes('happy')", timeout=20_000)
    page.wait_for_function("document.getElementById('status').textContent.includes('frames analysed')", timeout=30_000)
    assert page.inner_text("#status").startswith("clip.webm: ") and page.locator(".result").count() == 0  # no photo card
    times = page.evaluate("live.rows.map((r) => r.t)")  # the video's own clock, not the wall's
    assert 3 <= len(times) <= 30 and times == sorted(set(times)) and 0 <= times[0] and times[-1] < 3.0, times  # a frame once
    assert page.evaluate("live.rows.every((r) => r.face_id === 1 && r.label === 'happy')")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "clip_timeline.csv"
    assert len(Path(download.value.path()).read_text().splitlines()) == len(times) + 1


def test_a_video_the_browser_cannot_play_says_so_and_the_page_goes_on(server, page, tmp_path):
    clip = write_clip(tmp_path / "old camera.avi", "MJPG", frames=5)  # AVI: Chromium plays no such container
    page.goto(server)
    page.set_input_files("#files", str(clip))
    page.wait_for_function("document.getElementById('status').textContent.includes('cannot play')", timeout=20_000)
    assert page.inner_text("#status") == ('old camera.avi: this browser cannot play this video\'s format; '
                                          'fer predict "old camera.avi" reads it')
    page.set_input_files("#files", str(EXAMPLES / "astronaut.jpg"))
    page.wait_for_selector(".result .face-label", timeout=20_000)
    assert "happy" in page.inner_text(".result .face-label")


def test_the_webcam_shows_a_labelled_box_within_seconds(server, page):
    sent = []
    page.on("request", lambda request: sent.append(request.url) if "/v1/predict" in request.url else None)
    page.goto(server)
    page.click("#start")
    page.wait_for_function("document.getElementById('webcam-labels').textContent.includes('happy')", timeout=20_000)
    assert page.inner_text("#webcam-labels").startswith("#1 happy")
    assert sent and all(url.endswith("/v1/predict?orient=false") for url in sent)  # frames are upright: no turned views
    page.wait_for_selector("#chart-1", timeout=10_000)
    with page.expect_download() as download:
        page.click("#download")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("time_s,face_id,x,y,w,h,label,angry") and len(lines) > 1
    if os.environ.get("FER_SCREENSHOT"):  # README's picture: FER_SCREENSHOT=docs/images/serve.png pytest tests/test_web.py
        page.set_input_files("#files", str(EXAMPLES / "two_faces.jpg"))
        page.wait_for_selector(".result .face-label", timeout=20_000)
        time.sleep(3)
        page.screenshot(path=os.environ["FER_SCREENSHOT"], full_page=True)


def test_the_webcam_waits_for_a_server_that_stopped_answering_and_goes_on_when_it_is_back(server, page):
    """A refused request is retried after a second, not at once in a loop that would spin the browser, and the status
    says what is wrong; once the server answers again, labels come back."""
    refused = []
    page.goto(server)
    page.route("**/v1/predict*", lambda route: (refused.append(time.monotonic()), route.abort("connectionrefused")))
    page.click("#start")
    page.wait_for_function("document.getElementById('status').textContent.includes('cannot reach fer serve')",
                           timeout=20_000)
    page.wait_for_timeout(2500)  # not time.sleep: Playwright answers the routed requests only while it waits
    assert 2 <= len(refused) <= 5  # about one a second (a loop without a pause: hundreds)
    assert "trying again in a second" in page.inner_text("#status")
    page.unroute("**/v1/predict*")
    page.wait_for_function("document.getElementById('webcam-labels').textContent.includes('happy')", timeout=20_000)


def test_the_live_views_face_ids_follow_the_video_rule_across_slow_answers(server, page):
    """The page's tracker, run in the browser: a face in place keeps its id though answers come 2 s apart (a slow
    server), and a face unseen for two answers and over a second gets a new one, as fer's video tracking does."""
    page.goto(server)
    ids = page.evaluate("""() => {
        const face = [{ box: [0, 0, 10, 10] }];
        return [[0, face], [2, face], [4, []], [6, face], [8, []], [10, []], [12, face]].map(([t, faces]) => assignIds(faces, t));
    }""")
    assert ids == [[1], [1], [], [1], [], [], [2]]


def test_the_webcam_on_a_plain_http_page_from_another_computer_says_how_to_get_the_camera(server, page):
    """Opened as http://<laptop>:8000 from a phone, a page gets no navigator.mediaDevices (cameras need a secure
    page); the status line says so and names the HTTPS options, instead of "Cannot read properties of undefined"."""
    page.add_init_script("Object.defineProperty(navigator, 'mediaDevices', { value: undefined })")
    page.goto(server)
    page.click("#start")
    page.wait_for_function("document.getElementById('status').textContent.includes('--certfile')", timeout=10_000)
    assert "only on secure (https) pages" in page.inner_text("#status")


def test_a_photo_named_in_another_script_is_sent_and_named(server, page, tmp_path):
    named = tmp_path / "写真 café.jpg"
    named.write_bytes((EXAMPLES / "astronaut.jpg").read_bytes())
    page.goto(server)
    page.set_input_files("#files", str(named))
    page.wait_for_selector(".result .face-label", timeout=20_000)
    assert page.locator(".result .face-label").first.inner_text().startswith("face 1: happy")
    assert "写真 café.jpg" in page.locator(".result").first.inner_text()


def test_the_api_page_loads_with_no_network(server, page):
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    page.goto(f"{server}/docs")
    assert "POST /v1/predict" in page.locator("main").inner_text()
