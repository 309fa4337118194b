// qamoe-web page: draws what the server pushes over the WebSocket. Untrusted text (transcripts, device names)
// is only ever set with textContent; the page's CSP (Trusted Types) makes any string -> HTML assignment throw.
"use strict";

const WINDOW_S = 60;        // the trace shows the last 60 s
const MAX_POINTS = 600;     // and keeps at most this many points
const MAX_LINES = 100;      // transcript lines kept
const V_MAX = 3;            // valence scale: -3..3
const COLORS = { negative: "#c62828", neutral: "#757575", positive: "#2e7d32" };
const MODALITIES = ["text", "audio", "vision"];

const view = { trace: [], band: 0.5, updates: 0, snapshots: 0, lastAt: null, frames: 0, frameToken: 0 };
const FRAME_OFF = "No frames (privacy default: no picture leaves the node). To see the camera, the node must " +
  "share it (qamoe-live --share-frames) and this page server must show it (qamoe-web --frames).";
const FRAME_WAIT = "Waiting for a frame: the node shares none unless it runs qamoe-live --share-frames.";
const $ = (id) => document.getElementById(id);

function fmt(x, digits) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "–";
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.dataset[k] = String(v);
  return node;
}

// ------------------------------------------------------------------------------------------- sentiment
function onSentiment(u, draw) {
  view.trace.push([u.t, u.valence, u.sd, u.polarity]);
  if (view.trace.length > MAX_POINTS) view.trace.splice(0, view.trace.length - MAX_POINTS);
  if (typeof u.band === "number") view.band = u.band;
  showNow(u);
  showBars(u.modalities || {});
  if (draw) drawTrace();
}

function showNow(u) {
  const now = $("valence-now"), pol = $("polarity-now");
  now.textContent = u.valence === null ? "–" : (u.valence > 0 ? "+" : "") + fmt(u.valence, 2);
  now.dataset.polarity = u.polarity || "";
  pol.dataset.polarity = u.polarity || "";
  pol.textContent = u.valid ? (u.polarity || "") : "invalid: " + (u.invalid_reason || "?");
  $("sd-now").textContent = u.sd === null ? "" : "± " + fmt(u.sd, 2) + " sd";
  $("source").textContent = u.source || "";
  $("backend").textContent = u.backend || "";
}

function showBars(modalities) {
  for (const name of MODALITIES) {
    const m = modalities[name] || { present: false, reliability: null };
    const bar = $("bar-" + name);
    const r = typeof m.reliability === "number" ? m.reliability : null;
    bar.dataset.present = String(m.present === true);
    bar.dataset.reliability = r === null ? "" : r.toFixed(4);
    bar.querySelector(".fill").style.width = (r === null ? 0 : Math.max(0, Math.min(1, r)) * 100) + "%";
    bar.querySelector(".value").textContent = m.present ? fmt(r, 2) : "absent";
  }
}

// ----------------------------------------------------------------------------------------------- trace
function drawTrace() {
  const canvas = $("trace");
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(100, canvas.clientWidth), h = Math.max(80, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 28, r: 8, t: 6, b: 18 };
  const pts = view.trace;
  const tEnd = pts.length ? pts[pts.length - 1][0] : 0;
  const x = (t) => pad.l + (w - pad.l - pad.r) * (1 - (tEnd - t) / WINDOW_S);
  const y = (v) => pad.t + (h - pad.t - pad.b) * (V_MAX - Math.max(-V_MAX, Math.min(V_MAX, v))) / (2 * V_MAX);
  drawAxes(ctx, w, h, pad, y);
  const shown = pts.filter((p) => tEnd - p[0] <= WINDOW_S);
  drawBand(ctx, shown, x, y);
  drawLine(ctx, shown, x, y);
  canvas.dataset.points = String(shown.filter((p) => p[1] !== null).length);
  const last = pts.length ? pts[pts.length - 1][1] : null;
  canvas.dataset.lastValence = last === null ? "" : last.toFixed(4);
}

function drawAxes(ctx, w, h, pad, y) {
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#777";
  ctx.lineWidth = 1;
  for (let v = -V_MAX; v <= V_MAX; v++) {
    ctx.strokeStyle = v === 0 ? "#bbb" : "#eee";
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(w - pad.r, y(v)); ctx.stroke();
    ctx.fillText((v > 0 ? "+" : "") + v, 4, y(v) + 3);
  }
  ctx.setLineDash([4, 4]);
  ctx.strokeStyle = "#9e9e9e";
  for (const v of [view.band, -view.band]) {
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(w - pad.r, y(v)); ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.fillText("-" + WINDOW_S + " s", pad.l, h - 4);
  ctx.fillText("now", w - pad.r - 20, h - 4);
}

function runs(points) {  // consecutive points with a valence and an sd: a gap where a window was invalid
  const out = [];
  let cur = [];
  for (const p of points) {
    if (p[1] === null) { if (cur.length) out.push(cur); cur = []; } else cur.push(p);
  }
  if (cur.length) out.push(cur);
  return out;
}

function drawBand(ctx, points, x, y) {
  ctx.fillStyle = "rgba(30, 136, 229, 0.18)";
  for (const run of runs(points)) {
    const withSd = run.filter((p) => p[2] !== null);
    if (withSd.length < 2) continue;
    ctx.beginPath();
    withSd.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(p[0]), y(p[1] + p[2])));
    for (let i = withSd.length - 1; i >= 0; i--) ctx.lineTo(x(withSd[i][0]), y(withSd[i][1] - withSd[i][2]));
    ctx.closePath();
    ctx.fill();
  }
}

function drawLine(ctx, points, x, y) {
  ctx.lineWidth = 2;
  for (const run of runs(points)) {
    for (let i = 0; i < run.length; i++) {
      const p = run[i], q = i ? run[i - 1] : p;
      ctx.strokeStyle = COLORS[p[3]] || "#000";
      ctx.fillStyle = ctx.strokeStyle;
      ctx.beginPath(); ctx.moveTo(x(q[0]), y(q[1])); ctx.lineTo(x(p[0]), y(p[1])); ctx.stroke();
      ctx.beginPath(); ctx.arc(x(p[0]), y(p[1]), 2, 0, 2 * Math.PI); ctx.fill();
    }
  }
}

// ------------------------------------------------------------------------------------------ transcript
function onTranscript(u) {
  if (!u.text) return;
  const list = $("transcript");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
  list.appendChild(el("li", u.text, { seq: u.seq === null ? "" : u.seq }));
  while (list.children.length > MAX_LINES) list.removeChild(list.firstChild);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// ---------------------------------------------------------------------------------------------- health
function onHealth(h) {
  const rows = (h.devices || []).map((d) => {
    const tr = el("tr", null, { role: d.role });
    tr.append(el("td", d.role), el("td", d.state, { state: d.state }), el("td", d.name), el("td", d.detail));
    return tr;
  });
  $("devices").tBodies[0].replaceChildren(...rows);
  const items = [
    ["uptime", fmt(h.uptime_s, 0) + " s"],
    ["real-time factor", fmt(h.rtf, 2)],
    ["ASR lag", fmt(h.asr_lag_s, 2) + " s"],
  ];
  for (const [k, v] of Object.entries(h.asr || {})) items.push([k, fmt(v, 2)]);
  const asrQueues = (h.queues || []).filter((q) => q.name.startsWith("asr"));
  const dropping = asrQueues.filter((q) => q.dropped > 0);
  for (const q of dropping) items.push(["ASR " + q.name, "dropped " + fmt(q.dropped, 0) + " (" + q.policy + ")"]);
  if (asrQueues.length && !dropping.length) items.push(["ASR queues", asrQueues.length + ", nothing dropped"]);
  for (const [k, v] of Object.entries(h.fps || {})) items.push(["fps " + k, fmt(v, 1)]);
  items.push(["messages dropped (node)", fmt(h.messages_dropped, 0)]);
  if (h.server) items.push(["viewers", fmt(h.server.viewers, 0)], ["updates dropped (slow viewers)", fmt(h.server.dropped, 0)]);
  $("health").replaceChildren(...items.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
}

// ---------------------------------------------------------------------------------------------- camera
// The JPEG is decoded from bytes (createImageBitmap on a Blob): no URL, no <img>, nothing for the CSP to allow.
function onFrame(f) {
  if (!f || typeof f.jpeg !== "string") return;
  const token = ++view.frameToken;
  let bytes;
  try {
    const bin = atob(f.jpeg);
    bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  } catch (e) { return; }
  createImageBitmap(new Blob([bytes], { type: "image/jpeg" })).then((bitmap) => {
    if (token === view.frameToken) drawFrame(bitmap, f);  // else a newer frame came while this one decoded
    bitmap.close();
  }).catch(() => {});
}

function drawFrame(bitmap, f) {
  const canvas = $("frame");
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const b = f.face;
  if (b) {
    const w = canvas.width, h = canvas.height;
    ctx.strokeStyle = "#00e676"; ctx.lineWidth = 2;
    ctx.strokeRect((b.cx - b.w / 2) * w, (b.cy - b.h / 2) * h, b.w * w, b.h * h);
  }
  canvas.hidden = false;
  view.frames += 1;
  canvas.dataset.frames = String(view.frames);
  canvas.dataset.seq = f.seq === null ? "" : String(f.seq);
  canvas.dataset.face = b ? [b.cx, b.cy, b.w, b.h].map((v) => v.toFixed(3)).join(",") : "";
  const hint = $("frame-hint");
  hint.dataset.mode = "live";
  hint.textContent = (b ? "face found (score " + fmt(b.score, 2) + ")" : "no face found") +
    (typeof f.sent === "number" ? "; sent " + new Date(f.sent * 1000).toLocaleTimeString() : "");
}

function showFrameMode(enabled) {
  const hint = $("frame-hint");
  if (!enabled) {
    $("frame").hidden = true;
    hint.dataset.mode = "off"; hint.textContent = FRAME_OFF;
  } else if (hint.dataset.mode !== "live") {
    hint.dataset.mode = "waiting"; hint.textContent = FRAME_WAIT;
  }
}

// ------------------------------------------------------------------------------------------- messages
function onSnapshot(s) {
  view.trace = [];
  $("transcript").replaceChildren();
  for (const p of s.trace || []) view.trace.push(p);
  if (s.sentiment) { showNow(s.sentiment); showBars(s.sentiment.modalities || {}); }
  for (const t of s.transcript || []) onTranscript(t);
  if (s.health) onHealth(Object.assign({}, s.health, { server: s.server }));
  showFrameMode(s.frames === true);
  if (s.frames === true && s.frame) onFrame(s.frame);
  view.snapshots += 1;
  drawTrace();
}

function onMessage(event) {
  let msg;
  try { msg = JSON.parse(event.data); } catch (e) { return; }
  if (msg.kind === "snapshot") onSnapshot(msg);
  else if (msg.kind === "sentiment") onSentiment(msg, true);
  else if (msg.kind === "transcript") onTranscript(msg);
  else if (msg.kind === "health") onHealth(msg);
  else if (msg.kind === "frame") onFrame(msg);
  else return;
  view.updates += 1;
  view.lastAt = new Date();
  const stats = $("stats");
  stats.dataset.updates = String(view.updates);
  stats.dataset.snapshots = String(view.snapshots);
  stats.textContent = view.updates + " updates, " + view.snapshots + " full states; last at " +
    view.lastAt.toLocaleTimeString();
}

// ----------------------------------------------------------------------------------------- connection
function connect(delayMs) {
  const token = new URLSearchParams(window.location.search).get("token") || "";
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(scheme + "//" + window.location.host + "/ws?token=" + encodeURIComponent(token));
  const conn = $("conn");
  ws.onopen = () => { conn.dataset.state = "open"; conn.textContent = "live"; delayMs = 500; };
  ws.onmessage = onMessage;
  ws.onclose = () => {
    conn.dataset.state = "closed";
    conn.textContent = "disconnected; retrying in " + Math.round(delayMs / 1000) + " s";
    setTimeout(() => connect(Math.min(10000, delayMs * 2)), delayMs);
  };
}

window.addEventListener("resize", drawTrace);
document.addEventListener("DOMContentLoaded", () => { drawTrace(); connect(500); });
