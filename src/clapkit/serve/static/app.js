// clapkit sound search: plain JavaScript, no build step. Talks to the JSON API under /api.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { query: "", k: 20 };

function formatTime(seconds) {
  if (seconds == null || !isFinite(seconds)) return "?";
  const total = Math.round(seconds * 10) / 10;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = Math.floor(total % 60);
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

function formatDuration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "duration unknown";
  return seconds < 60 ? `${seconds.toFixed(1)} s` : formatTime(seconds);
}

function formatBytes(bytes) {
  return bytes >= 1048576 ? `${Math.round(bytes / 1048576)} MB` : `${Math.round(bytes / 1024)} KB`;
}

async function api(url, options = {}) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    let detail = body && body.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ");
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function renderTags(list, tags) {
  list.replaceChildren(...tags.map((tag) => {
    const li = document.createElement("li");
    li.textContent = `${tag.label} ${(tag.probability * 100).toFixed(tag.probability < 0.1 ? 1 : 0)}%`;
    return li;
  }));
  list.hidden = false;
}

function renderResults(data, description) {
  const list = $("#results");
  const template = $("#result-template");
  const scores = data.results.map((r) => r.score);
  const high = Math.max(...scores), low = Math.min(...scores, 0);
  list.replaceChildren(...data.results.map((result) => {
    const node = template.content.firstElementChild.cloneNode(true);
    node.dataset.id = result.id;
    $(".rank", node).textContent = `${result.rank}.`;
    $(".name", node).textContent = result.name;
    $(".score-value", node).textContent = result.score.toFixed(3);
    // the bar compares the results of this list: the best fills it, the bottom of the range (or 0) empties it
    const share = high > low ? (result.score - low) / (high - low) : 1;
    $(".score-bar span", node).style.width = `${Math.max(4, share * 100).toFixed(1)}%`;
    $(".path", node).textContent = result.path;
    $(".duration", node).textContent = formatDuration(result.duration_seconds);
    if (result.caption) {  // written by a captioning model at index time (clapkit index build --captions)
      const caption = $(".caption", node);
      caption.textContent = result.caption.trim();
      caption.hidden = false;
    }
    const audio = $("audio", node);
    audio.src = result.audio_url;
    audio.setAttribute("aria-label", `Play ${result.name}`);
    const more = $(".more", node);
    more.setAttribute("aria-label", `More sounds like ${result.name}`);
    more.addEventListener("click", () => moreLike(result));
    const tags = $(".item-tags", node);
    tags.setAttribute("aria-label", `Tags of ${result.name}`);
    tags.addEventListener("click", () => itemTags(result, node));
    const where = $(".where", node);
    if (result.long && state.query) {
      where.hidden = false;
      where.textContent = `Where does “${state.query}” match?`;
      where.addEventListener("click", () => showTimeline(result, node, state.query));
    }
    return node;
  }));
  const count = data.results.length;
  setStatus(count ? `${count} result${count === 1 ? "" : "s"} ${description} (${data.kind} search).` : `No results ${description}.`);
}

async function search(query) {
  state.query = query;
  setStatus(`Searching for “${query}”…`);
  $("#tags-section").hidden = true;
  const url = new URL(location.href);
  url.searchParams.set("q", query);
  history.replaceState(null, "", url);
  try {
    const data = await api(`/api/search?q=${encodeURIComponent(query)}&k=${state.k}`);
    renderResults(data, `for “${query}”`);
  } catch (error) {
    setStatus(`Search failed: ${error.message}`, true);
  }
}

async function moreLike(result) {
  setStatus(`Finding sounds like ${result.name}…`);
  try {
    const data = await api(`/api/items/${result.id}/similar?k=${state.k}`);
    renderResults(data, `like ${result.name}`);
    $("#tags-section").hidden = true;
    $("#results-heading").focus();
  } catch (error) {
    setStatus(`“More like this” failed: ${error.message}`, true);
  }
}

async function itemTags(result, node) {
  const list = $(".item-tag-list", node);
  list.setAttribute("aria-label", `Tags of ${result.name}`);
  try {
    const data = await api(`/api/items/${result.id}/tags?k=5`);
    renderTags(list, data.tags);
    setStatus(`Tags of ${result.name}: ${data.tags.map((t) => t.label).join(", ")}.`);
  } catch (error) {
    setStatus(`Tagging failed: ${error.message}`, true);
  }
}

async function showTimeline(result, node, query) {
  const box = $(".timeline", node);
  const caption = $(".timeline-caption", node);
  box.hidden = false;
  caption.textContent = `Listening through ${result.name} for “${query}”…`;
  try {
    const data = await api(`/api/items/${result.id}/timeline?q=${encodeURIComponent(query)}`);
    drawTimeline(data, result, node);
  } catch (error) {
    caption.textContent = `Timeline failed: ${error.message}`;
  }
}

function drawTimeline(data, result, node) {
  const windows = data.windows;
  const duration = data.duration_seconds || (windows.length ? windows[windows.length - 1].end : 1);
  const scores = windows.map((w) => w.score);
  const low = Math.min(...scores), high = Math.max(...scores);
  const spread = high - low || 1;
  const points = windows.map((w) => {
    const x = (((w.start + w.end) / 2) / duration) * 1000;
    const y = 56 - ((w.score - low) / spread) * 52;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  $(".curve polyline", node).setAttribute("points", points.join(" "));
  const audio = $("audio", node);
  const button = (span, className, label) => {
    const element = document.createElement("button");
    element.type = "button";
    element.className = className;
    element.dataset.start = span.start;
    element.style.left = `${(span.start / duration) * 100}%`;
    element.style.width = `${Math.max(0.8, ((span.end - span.start) / duration) * 100)}%`;
    element.setAttribute("aria-label", label);
    element.title = label;
    element.addEventListener("click", () => {
      audio.currentTime = span.start;
      audio.play().catch(() => {});
    });
    return element;
  };
  const when = (span) => `${formatTime(span.start)} to ${formatTime(span.end)} (score ${span.score.toFixed(3)})`;
  const buttons = data.ranges.map((range) => button(range, "range", `Play ${when(range)}`));
  if (data.best) buttons.unshift(button(data.best, "range best", `Play the best match, ${when(data.best)}`));
  $(".ranges", node).replaceChildren(...buttons);
  $(".axis-end", node).textContent = formatTime(duration);
  const spans = data.ranges.map((r) => `${formatTime(r.start)}–${formatTime(r.end)}`);
  const caption = $(".timeline-caption", node);
  const best = data.best ? `best match ${formatTime(data.best.start)}–${formatTime(data.best.end)}` : "no windows";
  caption.textContent = spans.length
    ? `“${data.query}” stands out at ${spans.join(", ")}; ${best} (${windows.length} windows).`
    : `“${data.query}” in ${result.name}: ${best}; nothing stands out from the rest (${windows.length} windows).`;
  setStatus(caption.textContent);
}

async function upload(file) {
  setStatus(`Uploading ${file.name} and finding similar sounds…`);
  const form = () => { const f = new FormData(); f.append("file", file); return f; };
  try {
    const [similar, tags] = await Promise.all([
      api(`/api/similar?k=${state.k}`, { method: "POST", body: form() }),
      api(`/api/tags?k=8`, { method: "POST", body: form() }),
    ]);
    state.query = "";
    renderResults(similar, `like your clip ${file.name}`);
    $("#tags-heading").textContent = `Tags of ${file.name}`;
    renderTags($("#tags"), tags.tags);
    $("#tags-section").hidden = false;
  } catch (error) {
    setStatus(`Upload failed: ${error.message}`, true);
  }
}

async function init() {
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("#q").value.trim();
    if (query) search(query);
  });
  $("#upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("#clip").files[0];
    if (file) upload(file);
  });
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (event.key === "/" && !typing) { event.preventDefault(); $("#q").focus(); }
  });
  try {
    const health = await api("/api/health");
    const kind = health.kind === "exact" ? "exact search" : "approximate search (IVF)";
    $("#library").textContent = `${health.items.toLocaleString()} sounds · model ${health.model.name} · ${kind}`;
    $("#limits").textContent = `up to ${formatBytes(health.limits.max_upload_bytes)} and ${health.limits.max_clip_seconds} s`;
    state.k = Math.min(state.k, health.limits.max_k);
  } catch (error) {
    $("#library").textContent = `The service does not answer: ${error.message}`;
  }
  const initial = new URL(location.href).searchParams.get("q");
  if (initial) { $("#q").value = initial; search(initial); }
}

init();
