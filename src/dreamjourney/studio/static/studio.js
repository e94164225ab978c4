// dreamjourney studio page: every control edits the server's settings (PUT /api/state); the
// server lays out the path, previews and runs with the CLI's code. No geometry happens here.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let state = null; // the server's last {version, settings, path}
let preview = null; // the last preview {dir, frames, holes, fps}
let currentRun = null; // name of the run shown
let playing = null;
let pushTimer = null;

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function say(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function guarded(action) {
  try {
    say("");
    return await action();
  } catch (err) {
    say(err.message);
    return null;
  }
}

// ------------------------------------------------------------------ settings <-> controls
function showState(next) {
  state = next;
  const s = state.settings;
  $("input").value = s.input || "";
  $("backends").value = s.backends;
  $("width").value = s.width ?? "";
  $("height").value = s.height ?? "";
  $("fov").value = s.fov ?? "";
  $("segments").value = s.segments;
  $("frames").value = s.frames;
  $("video_frames").value = s.video_frames;
  $("seed").value = s.seed;
  $("motion").checked = s.motion;
  $(`mode-${s.path.mode}`).checked = true;
  $("preset-box").hidden = s.path.mode !== "preset";
  $("keyframes-box").hidden = s.path.mode !== "keyframes";
  $("preset").value = s.path.preset;
  showOptions(s.path.preset, s.path.options);
  showKeyframes(s.path.keyframes);
  const p = state.path;
  // a video (anyview) has a preset target path and no journey settings
  const video = p.kind === "video";
  for (const el of document.querySelectorAll(".journey")) el.hidden = video;
  for (const el of document.querySelectorAll(".anyview")) el.hidden = !video;
  for (const id of ["mode-keyframes", "add-keyframe", "camera-file"]) $(id).disabled = video;
  const timeline = $("timeline");
  timeline.max = String(p.frames - 1);
  if (Number(timeline.value) > p.frames - 1) timeline.value = String(p.frames - 1);
  $("path-summary").textContent = p.error
    ? p.error
    : p.width
      ? `${p.frames} ${video ? "target " : ""}cameras at ${p.width}x${p.height}; path length ${p.length.toFixed(3)} ` +
        `world units (scene scale ${p.scene_scale.toFixed(3)}); world ${p.world_points} points`
      : `${p.frames} cameras; open a photo or a video to see the path`;
  showTimeline();
}

function readSettings() {
  const s = structuredClone(state.settings);
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  s.input = $("input").value || null;
  s.backends = $("backends").value;
  s.width = num("width");
  s.height = num("height");
  s.fov = num("fov");
  s.segments = num("segments");
  s.frames = num("frames");
  s.video_frames = num("video_frames");
  s.seed = num("seed");
  s.motion = $("motion").checked;
  s.path.mode = $("mode-keyframes").checked ? "keyframes" : "preset";
  if (s.path.preset !== $("preset").value) {
    s.path.preset = $("preset").value;
    s.path.options = {};
  } else {
    s.path.options = readOptions();
  }
  s.path.keyframes = readKeyframes();
  return s;
}

// Edits go to the server one after another; an answer is shown only if no later edit was
// made meanwhile (an older answer would put back values the user has just changed).
let edits = 0; // edits made
let answered = 0; // edits the server has answered
let sending = Promise.resolve();

function push(delay = 200) {
  clearTimeout(pushTimer);
  const mine = ++edits;
  pushTimer = setTimeout(() => {
    sending = sending.then(() => guarded(async () => {
      try {
        const next = await api("PUT", "/api/state", readSettings());
        if (mine === edits) showState(next);
        else state.version = next.version;
      } finally {
        answered = Math.max(answered, mine);
      }
    }));
  }, delay);
}

function showOptions(name, options) {
  const box = $("options");
  const defaults = info.trajectory_presets[name].defaults;
  $("preset-help").textContent = info.trajectory_presets[name].help;
  if (box.dataset.preset !== name) {
    box.dataset.preset = name;
    box.innerHTML = "";
    for (const [key, value] of Object.entries(defaults)) {
      const label = document.createElement("label");
      label.textContent = key + " ";
      const input = document.createElement("input");
      input.dataset.key = key;
      if (typeof value === "number") {
        const top = Math.max(Math.abs(value) * 4, 1);
        input.type = "range";
        input.min = String(key.endsWith("_deg") ? -360 : Number.isInteger(value) ? 1 : 0);
        input.max = String(key.endsWith("_deg") ? 360 : top);
        input.step = Number.isInteger(value) && !key.endsWith("_deg") ? "1" : "any";
      } else {
        input.type = "text";
        input.dataset.json = "1";
      }
      const shown = document.createElement("output");
      input.addEventListener("input", () => { shown.textContent = input.value; push(); });
      label.append(input, shown);
      box.append(label);
    }
  }
  for (const input of box.querySelectorAll("input")) {
    const key = input.dataset.key;
    const value = key in options ? options[key] : defaults[key];
    input.value = input.dataset.json ? JSON.stringify(value) : String(value);
    input.nextSibling.textContent = input.value;
  }
}

function readOptions() {
  const options = {};
  const defaults = info.trajectory_presets[$("preset").value].defaults;
  for (const input of $("options").querySelectorAll("input")) {
    const key = input.dataset.key;
    let value = input.value;
    if (input.dataset.json) {
      try { value = JSON.parse(value); } catch { /* the server names the bad option */ }
    } else {
      value = Number(value);
    }
    if (JSON.stringify(value) !== JSON.stringify(defaults[key])) options[key] = value;
  }
  return options;
}

const KEY_FIELDS = ["time", "position.0", "position.1", "position.2", "look_at.0", "look_at.1", "look_at.2", "fov"];

function showKeyframes(keys) {
  const body = $("keyframes").tBodies[0];
  const editing = body.contains(document.activeElement);
  if (editing && body.rows.length === keys.length) return; // do not fight the user's typing
  body.innerHTML = "";
  keys.forEach((key, i) => {
    const row = body.insertRow();
    row.dataset.index = String(i);
    for (const field of KEY_FIELDS) {
      const [name, axis] = field.split(".");
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.dataset.field = field;
      input.value = String(axis === undefined ? key[name] : key[name][Number(axis)]);
      // keyframe 0 is the photo's view: only its fov can change
      input.disabled = i === 0 && (name === "position" || name === "look_at");
      input.addEventListener("change", () => push(0));
      row.insertCell().append(input);
    }
    const remove = document.createElement("button");
    remove.textContent = "delete";
    remove.className = "delete-key";
    remove.disabled = i === 0;
    remove.addEventListener("click", () => { row.remove(); push(0); });
    row.insertCell().append(remove);
  });
}

function readKeyframes() {
  return [...$("keyframes").tBodies[0].rows].map((row) => {
    const key = { position: [0, 0, 0], look_at: [0, 0, 0] };
    for (const input of row.querySelectorAll("input")) {
      const [name, axis] = input.dataset.field.split(".");
      if (axis === undefined) key[name] = Number(input.value);
      else key[name][Number(axis)] = Number(input.value);
    }
    return key;
  });
}

// ------------------------------------------------------------------ timeline and preview
function showTimeline() {
  const frame = Number($("timeline").value);
  const fps = state.path.fps || state.settings.fps;
  $("timeline-label").textContent = `frame ${frame} of ${state.path.frames - 1}, ${(frame / fps).toFixed(2)} s`;
  if (preview && frame < preview.frames) {
    const name = String(frame).padStart(6, "0");
    $("preview-frame").src = `/files/${preview.dir}/frames/${name}.png`;
    $("preview-mask").src = `/files/${preview.dir}/masks/${name}.png`;
    $("hole-share").textContent = `frame ${frame}: holes ${(100 * preview.holes[frame]).toFixed(1)}%`;
    for (const bar of $("hole-bars").children) bar.classList.toggle("current", Number(bar.dataset.frame) === frame);
  }
}

function scrub() {
  showTimeline();
  guarded(() => api("POST", "/api/scrub", { frame: Number($("timeline").value) }));
}

function showPreview(result, autoplay = true) {
  preview = result;
  $("preview").hidden = false;
  const bars = $("hole-bars");
  bars.innerHTML = "";
  const top = Math.max(...result.holes, 1e-6);
  result.holes.forEach((share, i) => {
    const bar = document.createElement("div");
    bar.dataset.frame = String(i);
    bar.style.height = `${Math.max(2, (100 * share) / top)}%`;
    bar.title = `frame ${i}: ${(100 * share).toFixed(1)}% holes`;
    bar.addEventListener("click", () => { $("timeline").value = String(i); scrub(); });
    bars.append(bar);
  });
  const worst = Math.max(...result.holes);
  $("run-status").textContent = `preview: ${result.frames} frames, holes up to ${(100 * worst).toFixed(1)}% of a frame`;
  showTimeline();
  play(autoplay);
}

function play(start) {
  clearInterval(playing);
  playing = null;
  $("play").textContent = "play";
  if (!start || !preview) return;
  $("play").textContent = "pause";
  let frame = 0;
  playing = setInterval(() => {
    $("timeline").value = String(frame);
    showTimeline();
    frame += 1;
    if (frame >= preview.frames) play(false);
  }, 1000 / preview.fps);
}

// ------------------------------------------------------------------ runs
function showRun(run) {
  currentRun = run.name;
  const active = run.state === "running" || run.state === "starting";
  $("cancel-button").disabled = !active;
  $("run-button").textContent = run.state === "cancelled" || run.state === "stopped" ? "Resume" : "Run";
  const total = run.segments_total || 1;
  $("segments-bar").max = total;
  $("segments-bar").value = run.segments_done || 0;
  $("steps-bar").max = run.steps || 1;
  $("steps-bar").value = run.steps ? run.step : 0;
  const model = run.model ? `, ${run.model}${run.steps ? ` step ${run.step}/${run.steps}` : ""}` : "";
  const segment = active && run.segment !== undefined ? `, segment ${run.segment}` : "";
  $("run-status").textContent =
    `run ${run.name}: ${run.state}, ${run.segments_done || 0} of ${run.segments_total ?? "?"} segments done` +
    `${segment}${model}${run.message ? ` (${run.message})` : ""}`;
  $("run-status").dataset.state = run.state;
  $("run-log").textContent = (run.lines || []).join("\n");
  const results = run.results || {};
  $("results").hidden = !results["video.mp4"];
  if (results["video.mp4"]) {
    const video = `/files/${results["video.mp4"]}`;
    if (!$("result-video").src.endsWith(video)) $("result-video").src = video;
    $("download-video").href = `${video}?download=1`;
    // journey: contact sheet and path picture; anyview: input | output side by side
    for (const [id, name] of [["contact-sheet", "contact_sheet.png"], ["trajectory-plot", "trajectory.png"], ["side-video", "side_by_side.mp4"]]) {
      $(id).hidden = !results[name];
      if (results[name] && !$(id).src.endsWith(`/files/${results[name]}`)) $(id).src = `/files/${results[name]}`;
    }
    $("download-side").hidden = !results["side_by_side.mp4"];
    if (results["side_by_side.mp4"]) $("download-side").href = `/files/${results["side_by_side.mp4"]}?download=1`;
    setCameraLink();
  }
  if (active) setTimeout(() => refreshRun(run.name), 500);
}

function setCameraLink() {
  $("download-cameras").href = `/api/runs/${currentRun}/cameras?format=${$("camera-format").value}`;
}

async function refreshRun(name) {
  if (name !== currentRun) return;
  const run = await guarded(() => api("GET", `/api/runs/${name}`));
  if (run) showRun(run);
}

// ------------------------------------------------------------------ inputs
async function refreshFiles() {
  const files = await api("GET", "/api/files");
  for (const [id, kinds] of [["input", ["photo", "video"]], ["camera-file", ["cameras"]]]) {
    const select = $(id);
    const keep = select.value;
    select.length = 1;
    for (const f of files.filter((f) => kinds.includes(f.kind))) select.add(new Option(f.path, f.path));
    select.value = keep;
  }
}

async function openInput(path) {
  await refreshFiles();
  $("input").value = path;
  preview = null;
  $("preview").hidden = true;
  // in line with the edits on their way (an earlier edit answered later would close it again)
  clearTimeout(pushTimer); // a pending edit is read from the controls with this one
  const mine = ++edits;
  const answer = sending.then(() => api("PUT", "/api/state", readSettings()));
  sending = answer.catch(() => null).finally(() => { answered = Math.max(answered, mine); });
  const next = await answer;
  if (mine === edits) showState(next);
}

async function upload(file) {
  const response = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  if (data.kind === "photo" || data.kind === "video") await openInput(data.path);
  else if (data.kind === "cameras") {
    await refreshFiles();
    showState(await api("POST", "/api/camera-file", { path: data.path }));
  }
  say(`uploaded ${data.path}`, "info");
}

// ------------------------------------------------------------------ start
async function start() {
  info = await api("GET", "/api/info");
  $("workspace").textContent = `workspace: ${info.workspace}`;
  for (const name of info.backends) $("backends").add(new Option(name, name));
  for (const name of Object.keys(info.trajectory_presets)) $("preset").add(new Option(name, name));
  for (const name of info.formats) $("camera-format").add(new Option(name, name));
  $("camera-format").value = "nerfstudio";
  for (const kind of ["photo", "video"]) $(`example-${kind}`).hidden = !info.examples.includes(kind);
  if (info.viewer_port) $("viewer").src = `${location.protocol}//${location.hostname}:${info.viewer_port}/`;
  await refreshFiles();
  showState(await api("GET", "/api/state"));
  const last = await api("GET", "/api/preview");
  if (last.frames) showPreview(last, false);
  const runs = await api("GET", "/api/runs");
  if (runs.length) showRun(runs[0]); // a reload finds the latest run, still going or not

  for (const id of ["input", "backends", "width", "height", "fov", "segments", "frames", "video_frames", "seed", "motion", "preset", "mode-preset", "mode-keyframes"]) {
    $(id).addEventListener("change", () => push(0));
  }
  $("upload").addEventListener("change", () => guarded(() => upload($("upload").files[0])));
  for (const kind of ["photo", "video"]) {
    $(`example-${kind}`).addEventListener("click", () => guarded(async () => openInput((await api("POST", `/api/example?kind=${kind}`)).path)));
  }
  $("camera-file").addEventListener("change", () => guarded(async () => {
    if ($("camera-file").value) showState(await api("POST", "/api/camera-file", { path: $("camera-file").value }));
  }));
  $("add-keyframe").addEventListener("click", () => guarded(async () => showState(await api("POST", "/api/keyframes", { frame: Number($("timeline").value) }))));
  $("timeline").addEventListener("input", scrub);
  $("fly").addEventListener("click", () => guarded(async () => {
    const flight = await api("POST", "/api/fly");
    $("timeline-label").textContent = `flying the 3D view along ${flight.frames} cameras`;
  }));
  $("play").addEventListener("click", () => play(playing === null));
  $("preview-button").addEventListener("click", () => guarded(async () => {
    $("run-status").textContent = "rendering the preview...";
    showPreview(await api("POST", "/api/preview"));
  }));
  $("run-button").addEventListener("click", () => guarded(async () => showRun(await api("POST", "/api/run"))));
  $("cancel-button").addEventListener("click", () => guarded(async () => showRun(await api("POST", `/api/runs/${currentRun}/cancel`))));
  $("camera-format").addEventListener("change", setCameraLink);
  // a gizmo drag in the 3D view changes the settings on the server: follow it
  setInterval(async () => {
    const before = edits;
    const next = await api("GET", "/api/state").catch(() => null);
    const typing = document.activeElement && document.activeElement.tagName === "INPUT";
    const quiet = before === edits && answered === edits; // no edit of ours on its way
    // only a newer version: a poll answered after one of our edits carries the older settings
    if (next && state && next.version > state.version && !typing && quiet) showState(next);
  }, 1000);
  $("controls").inert = false; // inert until here: an edit made earlier would be lost
}

start().catch((err) => say(err.message));
