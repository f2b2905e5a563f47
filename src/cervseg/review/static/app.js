// cervseg review page: plain JavaScript, no build step, no external resources.
// Slices arrive as raw little-endian int16 HU and are windowed here, so window/level drags
// cost no request; contours arrive as polygons in pixel coordinates. Neighbouring slices are
// prefetched so that a key press usually draws from memory.
"use strict";

const GRADES = ["Acceptable", "Minor revision", "Major revision", "Not acceptable"];
const PRESETS = { soft: [400, 40], bone: [1500, 300] };  // [width, level] HU
const PREFETCH = 3;  // slices fetched ahead in each direction of travel
const token = new URLSearchParams(location.search).get("token");

const state = {
  reviewer: "", cases: [], caseId: null, meta: null, order: [], pos: 0,
  width: 400, level: 40, zoom: 1, panX: 0, panY: 0, showReference: false,
  grades: {}, comments: {}, activeStructure: 0, shownAt: 0, pendingKeyAt: null,
  cache: new Map(),  // "case/z" -> Promise<{hu: Int16Array, contours}>
};
window.cervsegTimings = [];  // key press -> slice drawn, ms (read by benchmarks/review_speed.py)

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const plane = document.createElement("canvas");
const planeCtx = plane.getContext("2d");

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({}, options, { headers: headers((options || {}).headers) }));
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(response.status + ": " + detail);
  }
  return response;
}

function status(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

// --- patients ---------------------------------------------------------------------------
async function loadCases() {
  state.cases = await (await api("/api/cases?reviewer=" + encodeURIComponent(state.reviewer))).json();
  const list = $("case-list");
  list.innerHTML = "";
  for (const c of state.cases) {
    const li = document.createElement("li");
    li.dataset.caseId = c.id;
    li.className = c.id === state.caseId ? "active" : "";
    const pct = c.gradeable ? Math.round(100 * c.graded / c.gradeable) : 0;
    li.innerHTML = `<span class="name"></span> <span class="progress">${c.graded}/${c.gradeable}</span>` +
      `<div class="bar"><span style="width:${pct}%"></span></div>`;
    li.querySelector(".name").textContent = c.id;
    li.addEventListener("click", () => openCase(c.id));
    list.appendChild(li);
  }
}

async function openCase(caseId) {
  status("loading patient…");
  state.caseId = caseId;
  state.cache.clear();
  state.meta = await (await api("/api/cases/" + encodeURIComponent(caseId))).json();
  const saved = await (await api(`/api/cases/${encodeURIComponent(caseId)}/grades?reviewer=` +
    encodeURIComponent(state.reviewer))).json();
  state.grades = saved.grades;
  state.comments = saved.comments;
  plane.width = state.meta.cols;
  plane.height = state.meta.rows;
  $("order").disabled = !state.meta.has_qa;
  $("show-reference").disabled = !state.meta.has_reference;
  setOrder($("order").value, true);
  resetView();
  await loadCases();
  status("");
}

function setOrder(kind, keepSlice) {
  const m = state.meta;
  const current = state.order.length ? state.order[state.pos] : null;
  if (kind === "worst" && m.has_qa) {
    state.order = m.worst_first.slice();
  } else {
    state.order = Array.from({ length: m.n_slices }, (_, i) => i);
  }
  let pos = keepSlice && current !== null ? state.order.indexOf(current) : -1;
  if (pos < 0) pos = kind === "worst" ? 0 : Math.max(0, state.order.indexOf(m.contour_slices[0] ?? 0));
  state.pos = pos;
  showSlice();
}

// --- slices -----------------------------------------------------------------------------
function fetchSlice(z) {
  const key = state.caseId + "/" + z;
  if (!state.cache.has(key)) {
    const base = `/api/cases/${encodeURIComponent(state.caseId)}/slices/${z}`;
    const promise = Promise.all([
      api(base + "/image").then((r) => r.arrayBuffer()).then((b) => new Int16Array(b)),
      api(base + "/contours").then((r) => r.json()),
    ]).then(([hu, contours]) => ({ hu, contours }));
    promise.catch(() => state.cache.delete(key));
    state.cache.set(key, promise);
    if (state.cache.size > 60) state.cache.delete(state.cache.keys().next().value);
  }
  return state.cache.get(key);
}

function currentSlice() { return state.order[state.pos]; }

async function showSlice() {
  const z = currentSlice();
  if (z === undefined) return;
  const data = await fetchSlice(z);
  if (z !== currentSlice()) return;  // the reviewer moved on while this loaded
  state.slice = { z, ...data };
  state.activeStructure = firstUngraded();
  state.shownAt = performance.now();
  render();
  renderPanel();
  for (let d = 1; d <= PREFETCH; d++) {
    for (const p of [state.pos + d, state.pos - d]) {
      if (p >= 0 && p < state.order.length) fetchSlice(state.order[p]);
    }
  }
}

function structuresOnSlice() {
  if (!state.slice) return [];
  const names = Object.keys(state.slice.contours.auto);
  const order = state.meta.structures.map((s) => s.name);
  return names.sort((a, b) => order.indexOf(a) - order.indexOf(b));
}

function firstUngraded() {
  const graded = state.grades[String(currentSlice())] || {};
  const i = structuresOnSlice().findIndex((n) => !(n in graded));
  return i < 0 ? 0 : i;
}

function colourOf(name) {
  const s = state.meta.structures.find((x) => x.name === name);
  return s ? `rgb(${s.colour.join(",")})` : "#fff";
}

function render() {
  const s = state.slice;
  if (!s) return;
  const lo = state.level - state.width / 2;
  const scale = 255 / Math.max(1, state.width);
  const img = planeCtx.createImageData(plane.width, plane.height);
  const px = img.data;
  const hu = s.hu;
  for (let i = 0, j = 0; i < hu.length; i++, j += 4) {
    let v = (hu[i] - lo) * scale;
    v = v < 0 ? 0 : v > 255 ? 255 : v;
    px[j] = px[j + 1] = px[j + 2] = v;
    px[j + 3] = 255;
  }
  planeCtx.putImageData(img, 0, 0);
  const fit = Math.min(canvas.width / plane.width, canvas.height / plane.height);
  const k = fit * state.zoom;
  const ox = (canvas.width - plane.width * k) / 2 + state.panX;
  const oy = (canvas.height - plane.height * k) / 2 + state.panY;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = state.zoom < 2;
  ctx.setTransform(k, 0, 0, k, ox, oy);
  ctx.drawImage(plane, 0, 0);
  ctx.lineWidth = 1.6 / k;
  const active = structuresOnSlice()[state.activeStructure];
  if (state.showReference) drawContours(s.contours.reference, true, active);
  drawContours(s.contours.auto, false, active);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  $("wl").textContent = `W ${Math.round(state.width)} / L ${Math.round(state.level)}`;
  const z = s.z;
  const n = structuresOnSlice().length;
  const graded = Object.keys(state.grades[String(z)] || {}).length;
  $("slice-info").textContent = `slice ${z + 1} of ${state.meta.n_slices} (z = ${state.meta.slice_z_mm[z]} mm)` +
    ` · ${graded}/${n} structures graded · ${state.pos + 1}/${state.order.length} in this order`;
  document.body.dataset.renderedSlice = String(z);
  if (state.pendingKeyAt !== null) {
    window.cervsegTimings.push(performance.now() - state.pendingKeyAt);
    state.pendingKeyAt = null;
  }
}

function drawContours(byName, dashed, active) {
  ctx.setLineDash(dashed ? [4 / state.zoom, 3 / state.zoom] : []);
  for (const [name, polygons] of Object.entries(byName)) {
    ctx.strokeStyle = colourOf(name);
    ctx.globalAlpha = dashed ? 0.8 : 1;
    ctx.lineWidth = (name === active && !dashed ? 2.6 : 1.6) / (ctx.getTransform().a || 1);
    ctx.beginPath();
    for (const xy of polygons) {
      ctx.moveTo(xy[0], xy[1]);
      for (let i = 2; i < xy.length; i += 2) ctx.lineTo(xy[i], xy[i + 1]);
      ctx.closePath();
    }
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.setLineDash([]);
}

// --- grading ----------------------------------------------------------------------------
function renderPanel() {
  const body = $("structures").querySelector("tbody");
  body.innerHTML = "";
  const z = String(currentSlice());
  const graded = state.grades[z] || {};
  const qa = (state.slice && state.slice.contours.qa) || {};
  structuresOnSlice().forEach((name, i) => {
    const tr = document.createElement("tr");
    tr.dataset.structure = name;
    tr.className = i === state.activeStructure ? "active" : "";
    const label = document.createElement("td");
    label.innerHTML = `<span class="swatch" style="background:${colourOf(name)}"></span><span class="sname"></span>`;
    label.querySelector(".sname").textContent = name;
    if (name in qa) {
      const q = document.createElement("div");
      q.className = "qa" + (qa[name] >= 0.5 ? " high" : "");
      q.textContent = "QA " + qa[name].toFixed(2);
      label.appendChild(q);
    }
    label.addEventListener("click", () => { state.activeStructure = i; renderPanel(); render(); });
    tr.appendChild(label);
    GRADES.forEach((g, k) => {
      const td = document.createElement("td");
      const b = document.createElement("button");
      b.className = `grade g${k + 1}` + (graded[name] === k + 1 ? " selected" : "");
      b.dataset.grade = String(k + 1);
      b.title = `${g} (key ${k + 1})`;
      b.textContent = `${k + 1} ${g}`;
      b.addEventListener("click", () => { state.activeStructure = i; grade(k + 1); });
      td.appendChild(b);
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
  $("comment").value = state.comments[z] || "";
}

async function grade(value) {
  const names = structuresOnSlice();
  const name = names[state.activeStructure];
  if (!name) return;
  const z = currentSlice();
  const payload = {
    case_id: state.caseId, slice_index: z, structure: name, reviewer: state.reviewer, grade: value,
    seconds_on_slice: (performance.now() - state.shownAt) / 1000,
  };
  try {
    await api("/api/grades", { method: "POST", body: JSON.stringify(payload),
      headers: { "Content-Type": "application/json" } });
  } catch (e) {
    status("grade NOT saved: " + e.message, true);
    return;
  }
  (state.grades[String(z)] = state.grades[String(z)] || {})[name] = value;
  status(`saved: ${name} slice ${z + 1} = ${GRADES[value - 1]}`);
  const next = names.findIndex((n, i) => i > state.activeStructure && !(n in state.grades[String(z)]));
  if (next >= 0) state.activeStructure = next;
  renderPanel();
  render();
  const c = state.cases.find((x) => x.id === state.caseId);
  if (c) loadCases();
}

async function saveComment() {
  if (!state.slice) return;
  const z = String(currentSlice());
  const text = $("comment").value;
  if ((state.comments[z] || "") === text) return;
  try {
    await api("/api/comments", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ case_id: state.caseId, slice_index: Number(z), reviewer: state.reviewer, text }) });
    state.comments[z] = text;
    status("comment saved");
  } catch (e) {
    status("comment NOT saved: " + e.message, true);
  }
}

// --- navigation and view ----------------------------------------------------------------
function step(delta) {
  const pos = Math.min(state.order.length - 1, Math.max(0, state.pos + delta));
  if (pos === state.pos) return;
  state.pos = pos;
  showSlice();
}

function resetView() { state.zoom = 1; state.panX = 0; state.panY = 0; }

function setZoom(factor) {
  state.zoom = Math.min(16, Math.max(0.5, state.zoom * factor));
  render();
}

document.addEventListener("keydown", (e) => {
  const typing = e.target.tagName === "TEXTAREA" || (e.target.tagName === "INPUT" && e.target.type !== "checkbox");
  if (!state.meta || typing) return;
  if (e.key === "ArrowDown" || e.key === "ArrowRight" || e.key === "PageDown") {
    state.pendingKeyAt = performance.now(); step(1); e.preventDefault();
  } else if (e.key === "ArrowUp" || e.key === "ArrowLeft" || e.key === "PageUp") {
    state.pendingKeyAt = performance.now(); step(-1); e.preventDefault();
  } else if (["1", "2", "3", "4"].includes(e.key)) {
    grade(Number(e.key)); e.preventDefault();
  } else if (e.key === "Tab") {
    const n = structuresOnSlice().length;
    if (n) state.activeStructure = (state.activeStructure + (e.shiftKey ? n - 1 : 1)) % n;
    renderPanel(); render(); e.preventDefault();
  } else if (e.key === "+" || e.key === "=") {
    setZoom(1.25);
  } else if (e.key === "-") {
    setZoom(0.8);
  } else if (e.key === "0") {
    resetView(); render();
  }
});

canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  if (e.ctrlKey) setZoom(e.deltaY < 0 ? 1.15 : 0.87);
  else step(e.deltaY > 0 ? 1 : -1);
}, { passive: false });

let drag = null;
canvas.addEventListener("mousedown", (e) => {
  drag = { x: e.clientX, y: e.clientY, width: state.width, level: state.level,
    panX: state.panX, panY: state.panY, pan: e.shiftKey };
});
window.addEventListener("mouseup", () => { drag = null; });
window.addEventListener("mousemove", (e) => {
  if (!drag) return;
  const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  if (drag.pan) { state.panX = drag.panX + dx; state.panY = drag.panY + dy; }
  else { state.width = Math.max(1, drag.width + 4 * dx); state.level = drag.level - 2 * dy; }
  render();
});

function preset(name) { [state.width, state.level] = PRESETS[name]; render(); }
$("preset-soft").addEventListener("click", () => preset("soft"));
$("preset-bone").addEventListener("click", () => preset("bone"));
$("zoom-in").addEventListener("click", () => setZoom(1.25));
$("zoom-out").addEventListener("click", () => setZoom(0.8));
$("zoom-reset").addEventListener("click", () => { resetView(); render(); });
$("show-reference").addEventListener("change", (e) => { state.showReference = e.target.checked; render(); canvas.focus(); });
// worst-first starts at the worst slice; back to slice order keeps the slice in view
$("order").addEventListener("change", (e) => { setOrder(e.target.value, e.target.value !== "worst"); canvas.focus(); });
$("comment").addEventListener("blur", saveComment);

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("reviewer-input").value.trim();
  if (!name) return;
  state.reviewer = name;
  sessionStorage.setItem("cervseg-reviewer", name);
  $("reviewer-label").textContent = "Reviewer: " + name;
  $("login").classList.add("hidden");
  try {
    await loadCases();
    if (state.cases.length) await openCase(state.cases[0].id);
    else status("no reviewable cases under the review root", true);
  } catch (err) {
    status(err.message, true);
  }
  canvas.focus();
});

const remembered = sessionStorage.getItem("cervseg-reviewer");
if (remembered) $("reviewer-input").value = remembered;
