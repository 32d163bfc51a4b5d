"""The page `dfer serve` shows at `/`: plain HTML and JavaScript, no build step, no external files.

It records 3 seconds from camera and microphone with MediaRecorder (WebM in Chromium and Firefox, MP4 in Safari) or
takes a picked file (a video, or a photo), POSTs it to `predict?explain=true`, and draws one probability bar per class
with the top emotion above them, each named by the class's display name (the response's `labels`: "angry", not
CREMA-D's "ANG"). From the answer's `explain` (`dfer.predict.explain`) it draws the ROI attention of every step as a
strip of small heatmaps (canvas, one cell per patch, over the step's face crop when the answer has `faces`) and the
three modality bar sets (audio + video, audio only, video only; "not available" where the run has no such input). A
file longer than one window of the run gets a `timeline` in its answer (the windows `dfer predict --timeline` writes
to its .jsonl: `{start, end, top, top_prob, face_found_ratio, has_audio, probs: {label: p}}`), drawn as a line chart of
every class over time; the answer's `timeline_notes` (e.g. why a very long file has none) are shown below it.
The browser only grants the camera to secure pages: https, or http on localhost / 127.0.0.1.
Element ids are stable (tests and anyone scripting the page rely on them):
  #record, #file (buttons / input), #preview (video), #photo (img, shown instead of #preview for a picked photo),
  #status, #error, #top1, #bars (one .bar per class, id `bar-<label>`, with data-label (the display name), data-class
  (the store's code) and data-prob), #timing;
  #explain (hidden until an answer has `explain`): #strip (one canvas.heat per step, data-step, data-time, over an
  img.face when there are crops), #mod-av, #mod-audio, #mod-video (each data-available, and its .bar rows as in
  #bars, ids `bar-<key>-<label>`), #notes; #timeline (hidden without a `timeline`: an svg with one polyline.line per
  class, data-label), then #timeline-notes;
  #members (hidden unless the answer is fused from several runs): #member-list, one div.member per run (id
  `member-<i>`, data-run) with its .bar rows (ids `bar-m<i>-<label>`) or "(abstained: why)" in its title;
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
  video, #photo { width: 100%; max-height: 22rem; background: #111; border-radius: 4px; object-fit: contain; }
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
  h2 { font-size: 1.1rem; margin-top: 1.5rem; }
  h3 { font-size: .95rem; margin: .5rem 0; }
  .hint, #notes { color: #555; font-size: .85rem; }
  #strip { display: flex; flex-wrap: wrap; gap: .4rem; }
  #strip figure { margin: 0; text-align: center; font-size: .75rem; color: #555; }
  #strip .crop { position: relative; width: 6rem; height: 6rem; }
  #strip .crop > * { position: absolute; inset: 0; width: 100%; height: 100%; }
  #strip canvas { image-rendering: pixelated; }
  #strip .face + canvas { opacity: .55; }
  #modalities { display: grid; grid-template-columns: repeat(auto-fit, minmax(13rem, 1fr)); gap: 1rem; }
  #modalities .bar { grid-template-columns: 4.5rem 1fr 2.5rem; font-size: .85rem; }
  #member-list { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: 1rem; }
  #member-list .bar { grid-template-columns: 4.5rem 1fr 2.5rem; font-size: .85rem; }
  .na { color: #777; font-size: .85rem; }
  #timeline svg { width: 100%; height: auto; font-size: 10px; }
  .legend { display: flex; flex-wrap: wrap; gap: .3rem 1rem; font-size: .85rem; }
</style>
</head>
<body data-state="idle">
<h1>Which emotion does the face show?</h1>
<p>Record RECORD_SECONDS seconds from your camera and microphone, or pick a video file or a photo.
   The clip or photo is sent to this server only, and deleted after the prediction.</p>
<div class="controls">
  <button id="record" type="button">Record RECORD_SECONDS s</button>
  <label>or pick a file: <input id="file" type="file"
    accept="video/*,audio/*,image/jpeg,image/png,image/webp,image/bmp,.flv,.mkv,.opus"></label>
</div>
<video id="preview" muted playsinline></video>
<img id="photo" alt="the photo sent" hidden>
<p id="status"></p>
<p id="error" role="alert"></p>
<div id="top1" aria-live="polite"></div>
<div id="bars"></div>
<section id="members" hidden>
  <h2>Each model</h2>
  <div id="member-list"></div>
</section>
<p id="timing"></p>
<section id="explain" hidden>
  <h2>Where the model looked</h2>
  <p class="hint">The attention of the face reader over the face crop's patches, one square per sampled frame
     (brighter: read more; all squares share one scale). Hover a square for what hiding that moment does.</p>
  <div id="strip"></div>
  <h2>What each stream says</h2>
  <div id="modalities">
    <div id="mod-av"><h3>audio + video</h3><div class="bars"></div></div>
    <div id="mod-audio"><h3>audio only</h3><div class="bars"></div></div>
    <div id="mod-video"><h3>video only</h3><div class="bars"></div></div>
  </div>
  <ul id="notes"></ul>
</section>
<section id="timeline" hidden>
  <h2>Over time</h2>
  <svg viewBox="0 0 600 180" role="img" aria-label="probability of each emotion over time"></svg>
  <div class="legend"></div>
</section>
<p id="timeline-notes" class="hint"></p>
<script>
"use strict";
const RECORD_MS = RECORD_SECONDS * 1000;
const $ = (id) => document.getElementById(id);
// One session id per page load (randomUUID needs a secure context: plain http to another host has none)
const SESSION = crypto.randomUUID ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2);
const state = (value, message) => { document.body.dataset.state = value; $("status").textContent = message || ""; };
const fail = (message) => { state("error"); $("error").textContent = message; $("record").disabled = false; };

function drawBars(bars, prefix, labels, classes, probs) {
  bars.replaceChildren();
  const best = probs.length ? probs.indexOf(Math.max(...probs)) : -1;
  labels.forEach((label, i) => {
    const p = probs[i] || 0;
    const row = document.createElement("div");
    row.className = "bar" + (i === best ? " top" : "");
    row.id = prefix + label;
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

// Inferno-like ramp (black, red, yellow) for a value in [0, 1], as the explanation PNG colours its heat.
const HEAT = [[0, 0, 4], [187, 55, 84], [252, 255, 164]];
// A fused answer's runs beside the fused bars: each member's own bars, or why it abstained.
function drawMembers(members) {
  $("members").hidden = !members.length;
  $("member-list").replaceChildren(...members.map((member, i) => {
    const box = document.createElement("div");
    box.className = "member";
    box.id = "member-" + i;
    box.dataset.run = member.run;
    const title = document.createElement("h3");
    title.textContent = member.run + (member.abstained ? " (abstained: " + member.abstained + ")" : "");
    const bars = document.createElement("div");
    bars.className = "bars";
    box.append(title, bars);
    if (!member.abstained) drawBars(bars, "bar-m" + i + "-", member.labels, member.labels, member.probs);
    return box;
  }));
}

function heat(v) {
  const x = Math.min(Math.max(v, 0), 1) * (HEAT.length - 1), i = Math.min(Math.floor(x), HEAT.length - 2), f = x - i;
  return "rgb(" + HEAT[i].map((c, k) => Math.round(c + f * (HEAT[i + 1][k] - c))).join(",") + ")";
}

function drawStrip(attention, faces, steps, top1) {
  const strip = $("strip");
  strip.replaceChildren();
  if (!attention) {
    strip.innerHTML = '<p class="na">This run reads no video: there is no face attention to show.</p>';
    return;
  }
  const g = attention.grid, peak = Math.max(...attention.frames.flat(2)) || 1;
  attention.frames.forEach((frame, t) => {  // frame: (g, g), sums to 1
    const step = steps[t], figure = document.createElement("figure"), crop = document.createElement("div");
    const canvas = document.createElement("canvas");
    canvas.className = "heat";
    canvas.width = canvas.height = g;  // one pixel per patch, scaled up by CSS without smoothing
    canvas.dataset.step = t;
    canvas.dataset.time = step.time;
    const context = canvas.getContext("2d");
    frame.forEach((row, y) => row.forEach((value, x) => {
      context.fillStyle = heat(value / peak);
      context.fillRect(x, y, 1, 1);
    }));
    const change = -100 * step.top1_drop;  // percentage points p(top1) gains when this step is hidden
    figure.title = "hiding this moment: p(" + top1 + ") " + (change >= 0 ? "+" : "") + change.toFixed(1)
      + " points; the prediction moves " + (100 * step.shift).toFixed(1) + "%";
    crop.className = "crop";
    if (faces) {
      const face = document.createElement("img");
      face.className = "face";
      face.alt = "face crop at " + step.time.toFixed(2) + " s";
      face.src = faces[t];
      crop.appendChild(face);
    }
    crop.appendChild(canvas);
    const caption = document.createElement("figcaption");
    caption.textContent = step.time.toFixed(2) + " s" + (step.video === false ? " (no face)" : "");
    figure.append(crop, caption);
    strip.appendChild(figure);
  });
}

function drawExplain(explain, labels, classes, top1) {
  drawStrip(explain.attention, explain.faces, explain.steps, top1);
  for (const key of ["av", "audio", "video"]) {
    const box = $("mod-" + key), bars = box.querySelector(".bars"), probs = explain[key];
    box.dataset.available = probs !== null;
    if (probs === null) {
      bars.innerHTML = '<p class="na">not available for this run</p>';
    } else {
      drawBars(bars, "bar-" + key + "-", labels, classes, labels.map((label) => probs[label]));
    }
  }
  $("notes").replaceChildren(...explain.notes.map((note) => {
    const item = document.createElement("li");
    item.textContent = note;
    return item;
  }));
  $("explain").hidden = false;
}

// Every class's probability over the windows of a long clip, windows [{start, end, probs, top}] (they may overlap):
// one point per window at its centre, the lines held flat out to the first window's start and the last one's end.
function drawTimeline(windows, labels) {
  const W = 600, H = 180, left = 30, bottom = 20, top = 8;
  const t0 = windows[0].start, t1 = windows[windows.length - 1].end, span = (t1 - t0) || 1;
  const x = (t) => (left + (W - left - 4) * (t - t0) / span).toFixed(1);
  const y = (p) => (top + (H - top - bottom) * (1 - p)).toFixed(1);
  const colour = (i) => "hsl(" + Math.round(360 * i / labels.length) + ",65%,45%)";
  const svg = $("timeline").querySelector("svg"), ns = "http://www.w3.org/2000/svg";
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
    if (text !== undefined) node.textContent = text;
    return svg.appendChild(node);
  };
  svg.replaceChildren();
  add("line", { x1: left, y1: y(0), x2: W - 4, y2: y(0), stroke: "#999" });
  [0, 1].forEach((p) => add("text", { x: left - 4, y: y(p), "text-anchor": "end", "dominant-baseline": "middle" }, p));
  [[t0, "start"], [t1, "end"]].forEach(([t, anchor]) =>
    add("text", { x: x(t), y: H - 6, "text-anchor": anchor }, t.toFixed(1) + " s"));
  labels.forEach((label, i) => {
    const at = (w, t) => x(t) + "," + y(w.probs[label] || 0);
    const last = windows[windows.length - 1];
    const points = [at(windows[0], t0), ...windows.map((w) => at(w, (w.start + w.end) / 2)), at(last, t1)];
    const line = add("polyline", { points: points.join(" "), fill: "none", stroke: colour(i), "stroke-width": 2 });
    line.classList.add("line");
    line.dataset.label = label;
  });
  const legend = $("timeline").querySelector(".legend");
  legend.replaceChildren(...labels.map((label, i) => {
    const item = document.createElement("span");
    item.style.color = colour(i);
    item.textContent = "\u25A0 " + label;
    return item;
  }));
  $("timeline").hidden = false;
}

async function upload(blob, name) {
  state("uploading", "Uploading and predicting... (a long file is also read window by window: that takes longer)");
  $("error").textContent = "";
  $("top1").textContent = "";
  $("timeline-notes").textContent = "";
  $("explain").hidden = $("timeline").hidden = $("members").hidden = true;
  const form = new FormData();
  form.append("file", blob, name);
  form.append("session", SESSION);  // this page's recordings are one person's: the server adapts to them
  let response, body;
  try {
    response = await fetch("predict?explain=true", { method: "POST", body: form });
    body = await response.json().catch(() => ({}));
  } catch (error) {
    return fail("Upload failed: " + error);
  }
  if (!response.ok) {
    const fallback = response.status === 413 ? "the file is larger than this server accepts" : response.statusText;
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || fallback);
    return fail("Error " + response.status + ": " + detail);
  }
  drawBars($("bars"), "bar-", body.labels, body.classes, body.probs);
  drawMembers(body.members || []);
  if (body.explain) drawExplain(body.explain, body.labels, body.classes, body.top1);
  if (Array.isArray(body.timeline) && body.timeline.length) drawTimeline(body.timeline, body.labels);
  $("timeline-notes").textContent = (body.timeline_notes || []).join(" ");
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

function showPhoto(url) {  // a photo shows in #photo, in place of the video preview (null: back to the video)
  $("photo").hidden = url === null;
  $("preview").hidden = url !== null;
  if (url !== null) $("photo").src = url;
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
  showPhoto(null);
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
  if (file.type.startsWith("image/")) {
    preview.removeAttribute("src");
    showPhoto(URL.createObjectURL(file));
  } else {
    showPhoto(null);
    preview.src = URL.createObjectURL(file);
    preview.controls = true;
  }
  upload(file, file.name);
});
if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder)) {
  $("record").disabled = true;
  $("status").textContent =
    "Recording needs a secure page (https, or localhost) and MediaRecorder; pick a file instead.";
}
fetch("labels").then((r) => r.json())
  .then((body) => drawBars($("bars"), "bar-", body.labels, body.classes, [])).catch(() => {});
</script>
</body>
</html>
""".replace("RECORD_SECONDS", str(RECORD_SECONDS))
