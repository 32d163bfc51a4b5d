"""The page `dfer serve` shows at `/`: plain HTML and JavaScript, no build step, no external files.

It records 3 seconds from camera and microphone with MediaRecorder (WebM in Chromium and Firefox, MP4 in Safari) or
takes a picked file, POSTs it to `predict`, and draws one probability bar per class with the top emotion above them,
each named by the class's display name (the response's `labels`: "angry", not CREMA-D's "ANG").
The browser only grants the camera to secure pages: https, or http on localhost / 127.0.0.1.
Element ids are stable (tests and anyone scripting the page rely on them):
  #record, #file (buttons / input), #preview (video), #status, #error, #top1, #bars (one .bar per class, id
  `bar-<label>`, with data-label (the display name), data-class (the store's code) and data-prob), #timing;
  `body[data-state]` is idle, recording, uploading, done or error.
It is a Python string rather than a package data file so that it ships with the module whatever the packaging.
"""

RECORD_SECONDS = 3

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dfer: facial expression from a clip</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  .controls { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; margin: 1rem 0; }
  button { font-size: 1rem; padding: .5rem 1rem; cursor: pointer; }
  video { width: 100%; max-height: 22rem; background: #111; border-radius: 4px; }
  #status { min-height: 1.4em; color: #555; }
  #error { min-height: 1.4em; color: #b00020; }
  #top1 { font-size: 1.8rem; font-weight: 600; min-height: 2.2rem; }
  .bar { display: grid; grid-template-columns: 6rem 1fr 4rem; align-items: center; gap: .5rem; margin: .3rem 0; }
  .track { background: #eee; height: 1.1rem; border-radius: 3px; overflow: hidden; }
  .fill { background: #6b8fd6; height: 100%; width: 0; transition: width .3s; }
  .bar.top .fill { background: #2c5fd0; }
  .bar.top .label { font-weight: 600; }
  .value { text-align: right; font-variant-numeric: tabular-nums; }
  #timing { color: #777; font-size: .85rem; }
</style>
</head>
<body data-state="idle">
<h1>Which emotion does the face show?</h1>
<p>Record RECORD_SECONDS seconds from your camera and microphone, or pick a video file.
   The clip is sent to this server only, and deleted after the prediction.</p>
<div class="controls">
  <button id="record" type="button">Record RECORD_SECONDS s</button>
  <label>or pick a file: <input id="file" type="file" accept="video/*,.flv,.mkv"></label>
</div>
<video id="preview" muted playsinline></video>
<p id="status"></p>
<p id="error" role="alert"></p>
<div id="top1" aria-live="polite"></div>
<div id="bars"></div>
<p id="timing"></p>
<script>
"use strict";
const RECORD_MS = RECORD_SECONDS * 1000;
const $ = (id) => document.getElementById(id);
const state = (value, message) => { document.body.dataset.state = value; $("status").textContent = message || ""; };
const fail = (message) => { state("error"); $("error").textContent = message; $("record").disabled = false; };

function drawBars(labels, classes, probs) {
  const bars = $("bars");
  bars.replaceChildren();
  const best = probs.length ? probs.indexOf(Math.max(...probs)) : -1;
  labels.forEach((label, i) => {
    const p = probs[i] || 0;
    const row = document.createElement("div");
    row.className = "bar" + (i === best ? " top" : "");
    row.id = "bar-" + label;
    row.dataset.label = label;
    row.dataset.class = classes[i];
    row.dataset.prob = p.toFixed(4);
    row.innerHTML = '<span class="label"></span><div class="track"><div class="fill"></div></div>'
      + '<span class="value"></span>';
    row.querySelector(".label").textContent = label;
    row.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
    row.querySelector(".value").textContent = (100 * p).toFixed(0) + "%";
    bars.appendChild(row);
  });
}

async function upload(blob, name) {
  state("uploading", "Uploading and predicting...");
  $("error").textContent = "";
  $("top1").textContent = "";
  const form = new FormData();
  form.append("file", blob, name);
  let response, body;
  try {
    response = await fetch("predict", { method: "POST", body: form });
    body = await response.json().catch(() => ({}));
  } catch (error) {
    return fail("Upload failed: " + error);
  }
  if (!response.ok) {
    const fallback = response.status === 413 ? "the file is larger than this server accepts" : response.statusText;
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || fallback);
    return fail("Error " + response.status + ": " + detail);
  }
  drawBars(body.labels, body.classes, body.probs);
  const best = body.probs[body.labels.indexOf(body.top1)];
  $("top1").textContent = body.top1 + " (" + (100 * best).toFixed(0) + "%)";
  const faces = body.face_found_ratio === null ? "no video" : (100 * body.face_found_ratio).toFixed(0) + "% of frames";
  $("timing").textContent = "face found: " + faces + "; answered in " + body.timing.total.toFixed(2) + " s";
  $("record").disabled = false;
  state("done", "Done.");
}

function recorderType() {
  const types = ["video/webm;codecs=vp8,opus", "video/webm", "video/mp4"];
  return types.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || "";
}

async function record() {
  $("record").disabled = true;
  $("error").textContent = "";
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (error) {
    return fail("No camera/microphone: " + error.message);
  }
  const preview = $("preview");
  preview.srcObject = stream;
  preview.controls = false;
  preview.play().catch(() => {});
  const type = recorderType();
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const chunks = [];
  recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((track) => track.stop());
    const blob = new Blob(chunks, { type: recorder.mimeType || type || "video/webm" });
    preview.srcObject = null;
    preview.src = URL.createObjectURL(blob);
    preview.controls = true;
    upload(blob, blob.type.includes("mp4") ? "recording.mp4" : "recording.webm");
  };
  recorder.start(250);
  let left = RECORD_SECONDS;
  state("recording", "Recording... " + left);
  const tick = setInterval(() => { left -= 1; if (left > 0) $("status").textContent = "Recording... " + left; }, 1000);
  setTimeout(() => { clearInterval(tick); recorder.stop(); }, RECORD_MS);
}

$("record").addEventListener("click", record);
$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (!file) return;
  const preview = $("preview");
  preview.srcObject = null;
  preview.src = URL.createObjectURL(file);
  preview.controls = true;
  upload(file, file.name);
});
if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder)) {
  $("record").disabled = true;
  $("status").textContent =
    "Recording needs a secure page (https, or localhost) and MediaRecorder; pick a file instead.";
}
fetch("labels").then((r) => r.json()).then((body) => drawBars(body.labels, body.classes, [])).catch(() => {});
</script>
</body>
</html>
""".replace("RECORD_SECONDS", str(RECORD_SECONDS))
