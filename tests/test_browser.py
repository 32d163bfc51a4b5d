"""The recording page in headless Chromium: a fake camera and microphone play a sample clip, the page records 3 s
with MediaRecorder, uploads the WebM, and draws the bars, the attention strip and the three modality bar sets. Also
the file picker (a video, and a photo), the timeline chart of a long file, an audio-only run's answer stubbed, and the
API docs drawn from this server alone. Skips when Chromium, its driver or Selenium is absent (CI installs Debian's `chromium` and
`chromium-driver`)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dfer.media.decode import decode_clip
from dfer.predict.predictor import Predictor
from dfer.testing.sample import SAMPLE
from dfer.testing.synth import write_concatenation

CLIP = sorted((SAMPLE / "VideoFlash").glob("*.flv"))[3]  # HAP: a clear, frontal face
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                "(apt-get install chromium chromium-driver)")


def write_y4m(src: Path, dst: Path) -> Path:
    """Every frame of `src` as raw YUV 4:2:0 in a Y4M file, the format Chromium's fake camera plays (in a loop)."""
    with av.open(str(src)) as container, dst.open("wb") as out:
        stream = container.streams.video[0]
        rate = stream.average_rate
        width, height = stream.codec_context.width, stream.codec_context.height
        out.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n".encode())
        for frame in container.decode(stream):
            planes = frame.reformat(format="yuv420p").to_ndarray()  # (H * 3/2, W): Y, then U, then V
            out.write(b"FRAME\n" + np.ascontiguousarray(planes).tobytes())
    return dst


def write_wav(src: Path, dst: Path, rate: int = 48000) -> Path:
    """The clip's audio as 16-bit mono PCM WAV, the format Chromium's fake microphone plays."""
    wave = decode_clip(src, src, frames=1, sample_rate=rate).waveform  # (S,)
    sf.write(str(dst), wave, rate, subtype="PCM_16")
    return dst


@pytest.fixture(scope="module")
def server(sample_made, serve):
    """A small run of the sample, served (its own Predictor: `record` is wrapped)."""
    predictor = Predictor(sample_made[1])
    seen = []  # what the server predicted, to check what the browser sent (explained or not, it ends in record)
    record = predictor.record
    predictor.record = lambda encoded, probs: seen.append(record(encoded, probs)) or seen[-1]
    with serve(predictor) as url:
        yield url, predictor.labels, seen  # the bars are named by the words, not the codes


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    folder = tmp_path_factory.mktemp("browser")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1000,1600",  # tall enough for the screenshot to hold the strip and the modality bars
        f"--user-data-dir={folder / 'profile'}",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={write_y4m(CLIP, folder / 'camera.y4m')}",
        f"--use-file-for-fake-audio-capture={write_wav(CLIP, folder / 'microphone.wav')}",
    ]:
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager (which would download a driver) is never asked.
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for_result(driver, seconds: float = 40) -> str:
    deadline = time.monotonic() + seconds
    while (state := driver.find_element("tag name", "body").get_attribute("data-state")) not in ("done", "error"):
        assert time.monotonic() < deadline, f"page stuck in {state!r}: {driver.find_element('id', 'status').text}"
        time.sleep(0.2)
    return state


def bars(driver, where: str = "#bars") -> dict[str, float]:
    return {bar.get_attribute("data-label"): float(bar.get_attribute("data-prob"))
            for bar in driver.find_elements("css selector", f"{where} .bar")}


def test_record_upload_and_show_bars(server, browser, tmp_path):
    from selenium.webdriver.support.wait import WebDriverWait

    url, labels, seen = server
    assert labels[0] == "angry"  # CREMA-D's ANG
    browser.get(url)
    # empty bars drawn from /labels before any prediction (fetched after the page loads: wait, don't race it)
    WebDriverWait(browser, 10).until(lambda driver: list(bars(driver)) == labels)
    before = len(seen)
    browser.find_element("id", "record").click()
    assert wait_for_result(browser) == "done", browser.find_element("id", "error").text
    probs = bars(browser)
    assert list(probs) == labels and abs(sum(probs.values()) - 1) < 0.01
    top1 = browser.find_element("id", "top1").text
    assert top1.split()[0] == max(probs, key=probs.get)
    assert browser.find_element("css selector", "#bars .bar.top").get_attribute("data-label") == top1.split()[0]
    assert "face found" in browser.find_element("id", "timing").text
    recorded = seen[before]  # MediaRecorder's WebM, with the fake camera's face and the fake microphone's voice
    # (the whole file's record; a recording longer than one window is then predicted window by window)
    assert recorded["path"].endswith(".webm") and recorded["has_audio"] and recorded["face_found_ratio"] > 0.5

    # the explanation: one painted heatmap per step, and the AV, audio-only and video-only bars, in words
    assert browser.find_element("id", "explain").is_displayed()
    heatmaps = browser.find_elements("css selector", "#strip canvas.heat")
    assert len(heatmaps) == 4 and all(heatmap.is_displayed() for heatmap in heatmaps)  # sample_run: 4 frames
    painted = "return arguments[0].getContext('2d').getImageData(0, 0, arguments[0].width, arguments[0].height)" \
              ".data.filter((value, i) => i % 4 === 3 && value > 0).length"  # opaque pixels
    assert all(browser.execute_script(painted, heatmap) == int(heatmap.get_attribute("width")) ** 2
               for heatmap in heatmaps)
    WebDriverWait(browser, 10).until(lambda driver: driver.execute_script(  # the crops under them, decoded
        "return [...document.querySelectorAll('#strip img.face')].filter((img) => img.naturalWidth > 0).length") == 4)
    answers = {key: bars(browser, f"#mod-{key}") for key in ("av", "audio", "video")}
    for answer in answers.values():
        assert list(answer) == labels and abs(sum(answer.values()) - 1) < 0.01
    assert answers["av"] == pytest.approx(probs, abs=1e-4)  # av is the prediction itself
    assert answers["audio"] != answers["video"]
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 20_000


def test_pick_a_file(server, browser):
    url, labels, seen = server
    browser.get(url)
    browser.find_element("id", "file").send_keys(str(CLIP))
    assert wait_for_result(browser) == "done", browser.find_element("id", "error").text
    assert list(bars(browser)) == labels and browser.find_element("id", "top1").text


def test_a_long_file_shows_its_timeline(server, browser, tmp_path):
    """Three sample clips in a row (~7 s): the server's timeline drawn as one line per class, a point per window."""
    url, labels, seen = server
    long = tmp_path / "long.mp4"
    write_concatenation(long, sorted((SAMPLE / "VideoFlash").glob("*.flv"))[:3])
    browser.get(url)
    before = len(seen)
    browser.find_element("id", "file").send_keys(str(long))
    assert wait_for_result(browser, 120) == "done", browser.find_element("id", "error").text
    windows = len(seen) - before - 1  # every window's record after the whole file's
    assert windows > 3 and browser.find_element("id", "timeline").is_displayed()
    lines = browser.find_elements("css selector", "#timeline polyline.line")
    assert [line.get_attribute("data-label") for line in lines] == labels
    assert all(len(line.get_attribute("points").split()) == windows + 2 for line in lines)  # + start and end
    extent = "const box = arguments[0].getBBox(); return [box.width, box.height];"  # what the line covers, drawn
    assert all(browser.execute_script(extent, line)[0] > 500 for line in lines)  # start to end of the 600-wide chart
    assert any(browser.execute_script(extent, line)[1] > 0 for line in lines)  # and it moves over time
    assert not browser.find_element("id", "timeline-notes").text
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element("id", "timeline"))
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 20_000


def test_stubbed_audio_only_answer_with_a_timeline(server, browser, tmp_path):
    """What the real run cannot show, from a stubbed answer: an audio-only run's explanation (no attention, no `av` or
    `video`), and a timeline whose windows each favour another class, with a note."""
    url, labels, _ = server
    browser.get(url)
    uniform = {label: 1 / len(labels) for label in labels}
    windows = [{"start": 2.0 * i, "end": 2.0 * i + 3, "top": labels[i],  # each window a different class
                "probs": {label: (3 if j == i else 1) / (len(labels) + 2) for j, label in enumerate(labels)}}
               for i in range(3)]
    explain = {"av": None, "audio": uniform, "video": None, "available": ["audio"], "present": {"audio": True},
               "notes": ["an audio-only run"], "steps": [], "attention": None, "faces": None}
    answer = {"labels": labels, "classes": labels, "probs": list(uniform.values()), "top1": labels[0],
              "face_found_ratio": None, "timing": {"total": 0.1}, "explain": explain, "timeline": windows,
              "timeline_notes": ["a note"]}
    browser.execute_script("const answer = arguments[0];"
                           "window.fetch = async () => new Response(JSON.stringify(answer));", answer)
    assert not browser.find_element("id", "timeline").is_displayed()
    browser.find_element("id", "file").send_keys(str(CLIP))
    assert wait_for_result(browser) == "done", browser.find_element("id", "error").text

    assert not browser.find_elements("css selector", "#strip canvas") and browser.find_element("id", "strip").text
    available = {key: browser.find_element("id", f"mod-{key}").get_attribute("data-available")
                 for key in ("av", "audio", "video")}
    assert available == {"av": "false", "audio": "true", "video": "false"}
    assert list(bars(browser, "#mod-audio")) == labels and not bars(browser, "#mod-av")
    assert browser.find_element("id", "notes").text == "an audio-only run"

    assert browser.find_element("id", "timeline").is_displayed()
    lines = browser.find_elements("css selector", "#timeline polyline.line")
    assert [line.get_attribute("data-label") for line in lines] == labels
    assert all(len(line.get_attribute("points").split()) == len(windows) + 2 for line in lines)  # + start and end
    assert browser.find_element("css selector", "#timeline .legend").text.split() == [
        word for label in labels for word in ("\u25a0", label)]
    assert browser.find_element("id", "timeline-notes").text == "a note"
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_api_docs_render_from_this_server_alone(server, browser):
    """Swagger UI draws the API's operations, and every resource the page fetched came from this server."""
    from selenium.webdriver.support.wait import WebDriverWait

    url, _, _ = server
    browser.get(url + "docs")
    WebDriverWait(browser, 20).until(lambda driver: driver.find_elements("css selector", ".opblock-summary-path"))
    paths = {element.text for element in browser.find_elements("css selector", ".opblock-summary-path")}
    assert {"/predict", "/health", "/labels"} <= paths, paths
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map((entry) => entry.name)")
    assert fetched and all(name.startswith(url) for name in fetched), fetched


def test_the_fused_pair_shows_each_member_beside_the_fused_bars(fused_server, browser, tmp_path):
    browser.get(fused_server)
    browser.find_element("id", "file").send_keys(str(CLIP))
    assert wait_for_result(browser, 90) == "done", browser.find_element("id", "error").text
    fused = bars(browser)
    assert "calm" in fused and "surprised" in fused and abs(sum(fused.values()) - 1) < 0.01  # voice's and face's words
    assert browser.find_element("id", "members").is_displayed()
    members = browser.find_elements("css selector", "#member-list .member")
    assert [member.get_attribute("data-run") for member in members] == ["voice", "face"]
    voice, face = (bars(browser, f"#member-{i}") for i in range(2))
    assert "calm" in voice and "calm" not in face and abs(sum(face.values()) - 1) < 0.01
    assert not browser.find_element("id", "explain").is_displayed()  # an explanation is of one run
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 20_000


def test_a_photo_is_shown_and_answered_by_the_face(fused_server, browser, tmp_path):
    """A picked photo shows in #photo, not the video preview; the fused pair answers it with the voice abstaining."""
    photo = tmp_path / "smile.jpg"
    Image.fromarray(decode_clip(CLIP, None, frames=12).frames[9]).save(photo)  # 1.5 s into the clip: a broad smile
    browser.get(fused_server)
    browser.find_element("id", "file").send_keys(str(photo))
    assert wait_for_result(browser, 90) == "done", browser.find_element("id", "error").text
    assert browser.find_element("id", "photo").is_displayed() and not browser.find_element("id", "preview").is_displayed()
    assert browser.find_element("id", "top1").text.lower().startswith("happy")
    assert "abstained" in browser.find_element("id", "member-0").text
