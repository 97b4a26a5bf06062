// fer's web page: photos, videos and the webcam through POST /v1/predict. Plain JS, no build step, no network beyond this server.
"use strict";

const COLOURS = ["#d62728", "#8c564b", "#2ca02c", "#ff7f0e", "#7f7f7f", "#1f77b4", "#e377c2", "#9467bd"];

async function predict(blob, name, query = "") {
  // Header values are Latin-1: a file named in another script travels percent-encoded (the server decodes it).
  const headers = { "x-filename": encodeURIComponent(name) };
  let response;
  try {
    response = await fetch(`/v1/predict${query}`, { method: "POST", body: blob, headers });
  } catch (err) {
    // fetch rejects only when no answer came: the request did not leave, or the server did not answer it.
    throw new Error(navigator.onLine === false ? "this browser is offline: the photo was not sent"
      : "cannot reach fer serve (is it still running?); the photo may not have been sent");
  }
  const body = await response.json().catch(() => ({ error: `server answered ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
  return body;
}

function ranked(scores) {
  return Object.entries(scores).sort((a, b) => b[1] - a[1]);
}

// What a face's label says and its font size in px: the full label, shrunk to the room before the next face on its
// right (a group photo's row of small faces); where even 9 px does not fit, its short name (its number in the list
// below the photo, or its track id).
function labelFor(ctx, boxes, i, text, short, size) {
  const [x, y, , h] = boxes[i];
  const room = Math.min(Infinity, ...boxes.filter(([bx, by, , bh]) => bx > x && by < y + h + size * 2 && y < by + bh + size * 2)
    .map(([bx]) => bx - x - 4));
  ctx.font = `${size}px system-ui, sans-serif`;
  const wide = ctx.measureText(text).width + 8;
  if (wide <= room) return { text, size };
  const fitted = Math.floor(size * (room - 8) / (wide - 8));
  return fitted >= 9 ? { text, size: fitted } : { text: short, size: Math.min(size, 12) };
}

function drawFaces(ctx, faces, scale, ids) {
  ctx.lineWidth = Math.max(2, ctx.canvas.width / 300);
  const boxes = faces.map((face) => face.box.map((v) => v * scale));
  faces.forEach((face, i) => {
    const [x, y, w, h] = boxes[i];
    const full = `${ids ? "#" + ids[i] + " " : ""}${face.label} ${Math.round(100 * face.scores[face.label])}%`;
    const short = ids ? `#${ids[i]}` : `${i + 1}`;
    const { text, size } = labelFor(ctx, boxes, i, full, short, Math.max(14, ctx.canvas.width / 40));
    ctx.font = `${size}px system-ui, sans-serif`;
    ctx.strokeStyle = "#0c0";
    ctx.strokeRect(x, y, w, h);
    const width = ctx.measureText(text).width + 8;
    const height = size + 6;
    ctx.fillStyle = "#0c0";
    ctx.fillRect(x, Math.max(0, y - height), width, height);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x + 4, Math.max(height - 6, y - 6));
  });
}

function faceDetails(face, index) {
  const div = document.createElement("div");
  div.className = "face";
  const label = document.createElement("div");
  label.className = "face-label";
  label.textContent = `face ${index + 1}: ${face.label} ${Math.round(100 * face.scores[face.label])}%`;
  div.appendChild(label);
  for (const [name, p] of ranked(face.scores).slice(0, 3)) {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.innerHTML = `<span></span><div></div><em></em>`;
    bar.querySelector("span").textContent = name;
    bar.querySelector("div").style.width = `${Math.round(200 * p)}px`;
    bar.querySelector("em").textContent = `${Math.round(100 * p)}%`;
    div.appendChild(bar);
  }
  return div;
}

async function showPhoto(file) {
  const card = document.createElement("div");
  card.className = "result";
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = file.name;
  card.appendChild(name);
  document.getElementById("photos").prepend(card);
  try {
    const record = await predict(file, file.name);
    // Upright: Chromium applies EXIF orientation, as fer does. A format fer reads and the browser does not (HEIC in
    // Chromium) still gets its faces listed, with a line instead of the picture.
    const bitmap = await createImageBitmap(file).catch(() => null);
    if (bitmap) {
      const canvas = document.createElement("canvas");
      canvas.width = Math.min(480, bitmap.width);
      canvas.height = Math.round(bitmap.height * canvas.width / bitmap.width);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      drawFaces(ctx, record.faces, canvas.width / record.size[0]);
      card.appendChild(canvas);
    } else {
      const note = document.createElement("div");
      note.className = "no-preview";
      note.textContent = `this browser cannot show this photo's format; fer read it (${record.size[0]}×${record.size[1]})`;
      card.appendChild(note);
    }
    if (record.status === "no_face") {
      const none = document.createElement("div");
      none.className = "face-label";
      const small = record.faces_under_min_face;  // faces found but too small to read (fer predict --min-face reads them)
      none.textContent = small ? `no face large enough to read, but ${small} smaller (fer predict --min-face reads them)`
                               : "no face found";
      card.appendChild(none);
    }
    if (record.status === "ok" && record.faces_under_min_face) {  // the faces of a group photo too small to read
      const more = document.createElement("div");
      more.className = "turned";
      more.textContent = `and ${record.faces_under_min_face} smaller, too small to read (fer predict --min-face reads them)`;
      card.appendChild(more);
    }
    if (record.turned) {  // a photo stored sideways or upside down: say how its faces were read
      const turned = document.createElement("div");
      turned.className = "turned";
      const how = { 90: "turned 90° counter-clockwise", 180: "upside down", 270: "turned 90° clockwise" }[record.turned];
      turned.textContent = `faces read with the photo ${how} (no orientation tag said so)`;
      card.appendChild(turned);
    }
    record.faces.forEach((face, i) => card.appendChild(faceDetails(face, i)));
  } catch (err) {
    const message = document.createElement("div");
    message.className = "error";
    message.textContent = err.message;
    card.appendChild(message);
  }
}

const VIDEO_NAME = /\.(mp4|m4v|mov|webm|mkv|ogv|avi|3gp|mts|m2ts|ts|flv|wmv|mpe?g)$/i;

// Photos get a card each; a video (the first one given) plays in the live view.
function openFiles(files) {
  const all = Array.from(files);
  const videos = all.filter((f) => f.type.startsWith("video/") || VIDEO_NAME.test(f.name));
  all.filter((f) => !videos.includes(f)).forEach(showPhoto);
  if (videos.length) playVideo(videos[0]);
}

function setUpPhotos() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  input.addEventListener("change", () => { openFiles(input.files); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    openFiles(e.dataTransfer.files);
  });
  // A screenshot or a photo copied from another program, pasted anywhere on the page (Ctrl+V / Cmd+V).
  document.addEventListener("paste", (e) => {
    const files = Array.from(e.clipboardData?.files || []);
    if (!files.length) return;
    e.preventDefault();
    openFiles(files.map((f, i) => (f.name && f.name !== "image.png" ? f : new File([f], pastedName(f, i), { type: f.type }))));
  });
}

// Browsers call every pasted picture "image.png": name it by the time it was pasted, so cards and errors tell them apart.
function pastedName(file, index) {
  const stamp = new Date().toTimeString().slice(0, 8).replaceAll(":", "");
  const suffix = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
  return `pasted-${stamp}${index ? "-" + (index + 1) : ""}.${suffix}`;
}

// ---------------------------------------------------------------- the live view: the webcam, or a video file playing

// name: "webcam" or the file's; a file's frames are timed by the video's own clock (currentTime), the webcam's by ours.
const live = { stream: null, url: null, name: "webcam", fromFile: false, running: false, start: 0, tracks: [], nextId: 1,
  analysed: 0, rows: [], classes: null, session: 0 };

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function iou(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter || 1);
}

// The same rule as fer's video tracking: a face continues the track it overlaps most (IoU >= 0.3); a track ends when
// unseen for a second and in the last analysed frame (a slow server's frames can be over a second apart).
function assignIds(faces, t) {
  live.analysed += 1;
  live.tracks = live.tracks.filter((tr) => t - tr.seen <= 1.0 || live.analysed - tr.frame <= 2);
  const ids = [];
  const used = new Set();
  for (const face of faces) {
    let best = null;
    let bestIou = 0.3;
    for (const tr of live.tracks) {
      const o = iou(face.box, tr.box);
      if (!used.has(tr.id) && o >= bestIou) { best = tr; bestIou = o; }
    }
    if (!best) { best = { id: live.nextId++, box: face.box, seen: t }; live.tracks.push(best); }
    best.box = face.box;
    best.seen = t;
    best.frame = live.analysed;
    used.add(best.id);
    ids.push(best.id);
  }
  return ids;
}

function drawCharts() {
  const charts = document.getElementById("charts");
  const byFace = new Map();
  for (const row of live.rows) {
    if (!byFace.has(row.face_id)) byFace.set(row.face_id, []);
    byFace.get(row.face_id).push(row);
  }
  for (const [id, rows] of byFace) {
    let canvas = document.getElementById(`chart-${id}`);
    if (!canvas) {
      canvas = document.createElement("canvas");
      canvas.id = `chart-${id}`;
      canvas.width = 460;
      canvas.height = 150;
      charts.appendChild(canvas);
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const end = rows[rows.length - 1].t;
    const span = 30;  // seconds shown
    const x = (t) => 40 + (canvas.width - 50) * (1 - (end - t) / span);
    const y = (p) => canvas.height - 20 - (canvas.height - 35) * p;
    ctx.fillStyle = "#222";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(`face #${id}, last ${span} s`, 40, 12);
    live.classes.forEach((name, k) => {
      ctx.strokeStyle = COLOURS[k % COLOURS.length];
      ctx.beginPath();
      rows.filter((r) => end - r.t <= span).forEach((r, i) => {
        (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(r.t), y(r.scores[name]));
      });
      ctx.stroke();
      ctx.fillStyle = COLOURS[k % COLOURS.length];
      ctx.fillText(name, 2, 24 + 16 * k);
    });
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The media time of the next frame the video shows; undefined if none comes within a quarter second (paused, ended).
function nextFrame(video) {
  return Promise.race([new Promise((r) => video.requestVideoFrameCallback((_now, frame) => r(frame.mediaTime))), sleep(250)]);
}

async function liveLoop() {
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const grab = document.createElement("canvas");
  let frames = 0;
  const session = live.session;  // a loop whose source was replaced while a frame was out ends at its next turn
  const current = () => live.running && live.session === session;
  while (current()) {
    if (live.fromFile && video.ended) { finishVideo(frames); break; }
    if (!video.videoWidth || video.paused) { await sleep(50); continue; }
    // A file's frame is taken when it is shown, each once, at its own time; the camera's, when the last answer is back.
    const t = live.fromFile ? await nextFrame(video) : (performance.now() - live.start) / 1000;
    if (t === undefined) continue;
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((r) => grab.toBlob(r, "image/jpeg", 0.85));
    let record;
    try {
      // Camera frames are upright: no search of turned views (?orient=false). The next frame goes when this answer is back.
      record = await predict(blob, "frame.jpg", "?orient=false");
    } catch (err) {
      // A stopped server refuses at once: without a pause this loop would spin, a request after another, until it is back.
      setStatus(`${err.message}; trying again in a second`);
      await sleep(1000);
      continue;
    }
    if (!current()) break;
    const ids = assignIds(record.faces, t);
    overlay.width = video.clientWidth;
    overlay.height = video.clientHeight;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    drawFaces(ctx, record.faces, overlay.width / record.size[0], ids);
    document.getElementById("webcam-labels").textContent =
      record.faces.map((f, i) => `#${ids[i]} ${f.label} ${Math.round(100 * f.scores[f.label])}%`).join("  ");
    record.faces.forEach((f, i) => live.rows.push({ t, face_id: ids[i], box: f.box, label: f.label, scores: f.scores }));
    if (!live.classes && record.faces.length) live.classes = Object.keys(record.faces[0].scores);
    if (live.classes) drawCharts();
    frames += 1;
    const elapsed = (performance.now() - live.start) / 1000;
    setStatus(`${live.fromFile ? live.name + ": " : ""}${(frames / elapsed).toFixed(1)} frames/s`);
  }
}

// Whatever played before (the webcam, another video) has stopped; its boxes, ids and charts go with it.
function beginLive(name, fromFile) {
  Object.assign(live, { name, fromFile, running: true, session: live.session + 1, start: performance.now(), tracks: [], nextId: 1, analysed: 0, rows: [] });
  document.getElementById("charts").replaceChildren();
  document.getElementById("webcam-labels").textContent = "";
  const overlay = document.getElementById("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  document.getElementById("start").disabled = !fromFile;
  document.getElementById("stop").disabled = false;
  document.getElementById("download").disabled = false;
  liveLoop();
}

function detachSource(video) {
  video.pause();
  video.srcObject = null;
  video.removeAttribute("src");
  if (live.url) { URL.revokeObjectURL(live.url); live.url = null; }
}

async function startWebcam() {
  if (!navigator.mediaDevices) {  // what a browser gives a plain-http page from another computer (a phone on the LAN)
    setStatus("the browser opens the camera only on secure (https) pages or on this computer's own (localhost); " +
      "start fer serve with --certfile and --keyfile (see fer serve --help) and open the page with https");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    setStatus(`no camera: ${err.message}`);
    return;
  }
  const video = document.getElementById("video");
  stopLive();
  detachSource(video);
  live.stream = stream;
  video.srcObject = stream;
  await video.play();
  beginLive("webcam", false);
}

async function playVideo(file) {
  const video = document.getElementById("video");
  stopLive();
  detachSource(video);
  live.url = URL.createObjectURL(file);
  video.src = live.url;
  try {
    await video.play();
  } catch (err) {  // a format this browser does not play (AVI, most MKV, HEVC in Chromium): fer itself reads more
    detachSource(video);
    setStatus(`${file.name}: this browser cannot play this video's format; fer predict "${file.name}" reads it`);
    return;
  }
  beginLive(file.name, true);
}

function finishVideo(frames) {
  live.running = false;
  document.getElementById("start").disabled = false;
  document.getElementById("stop").disabled = true;
  const seconds = document.getElementById("video").duration;
  setStatus(`${live.name}: ${frames} frames analysed over ${seconds.toFixed(1)} s; the timeline is ready to download`);
}

function stopLive() {
  live.running = false;
  if (live.stream) { live.stream.getTracks().forEach((track) => track.stop()); live.stream = null; }
  if (live.fromFile) document.getElementById("video").pause();
  document.getElementById("start").disabled = false;
  document.getElementById("stop").disabled = true;
}

function downloadCsv() {
  const classes = live.classes || [];
  const lines = [["time_s", "face_id", "x", "y", "w", "h", "label", ...classes].join(",")];
  for (const r of live.rows) {
    lines.push([r.t.toFixed(3), r.face_id, ...r.box, r.label, ...classes.map((c) => r.scores[c])].join(","));
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  link.download = `${live.name.replace(/\.[^.]*$/, "")}_timeline.csv`;
  link.click();
}

setUpPhotos();
document.getElementById("start").addEventListener("click", startWebcam);
document.getElementById("stop").addEventListener("click", stopLive);
document.getElementById("download").addEventListener("click", downloadCsv);
