// The Bohai operations dashboard: plain JavaScript, no dependencies. It reads the ops API
// and redraws itself every `data-refresh-ms` milliseconds. The ops API needs a token with
// the `ops` scope: the page asks for it, keeps it in this tab's session storage and sends it
// as a bearer token; refused (401, 403), it forgets it and asks again.
"use strict";

const TOKEN_KEY = "bohai.ops.token";

class SignInNeeded extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function showSignIn(message) {
  document.getElementById("main").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("sign-in").hidden = false;
  const error = document.getElementById("sign-in-error");
  error.textContent = message || "";
  error.hidden = !message;
  document.body.dataset.signedIn = "false";
  document.getElementById("updated").textContent = "signed out";
  document.getElementById("token").focus();
}

function showMain() {
  document.getElementById("sign-in").hidden = true;
  document.getElementById("main").hidden = false;
  document.getElementById("sign-out").hidden = false;
  document.body.dataset.signedIn = "true";
}

const refreshMs = Number(document.body.dataset.refreshMs) || 10000;
const state = { refreshes: 0, registry: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function fmtTime(t) {
  if (!t) return "never";
  const d = new Date(t);
  return d.toLocaleString("sv-SE", { hour12: false });
}

function fmtNum(n, digits) {
  if (n == null) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits == null ? 0 : digits, minimumFractionDigits: digits == null ? 0 : digits });
}

async function getJson(path) {
  const headers = { accept: "application/json" };
  const t = token();
  if (t) headers.authorization = "Bearer " + t;
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401 || r.status === 403) {
    let why = path + " answered " + r.status;
    try {
      why = (await r.json()).message || why;
    } catch (_) {
      // not the JSON error body: keep the status
    }
    throw new SignInNeeded(why);
  }
  if (!r.ok) throw new Error(path + " answered " + r.status);
  return r.json();
}

function filters() {
  return {
    department: document.getElementById("filter-department").value,
    dataset: document.getElementById("filter-dataset").value,
  };
}

function query(extra) {
  const p = new URLSearchParams();
  const f = filters();
  if (f.department) p.set("department", f.department);
  if (f.dataset) p.set("dataset", f.dataset);
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
}

function fillSelect(select, values, wanted) {
  const current = wanted != null ? wanted : select.value;
  select.replaceChildren(el("option", { value: "" }, "all"));
  for (const v of values) select.append(el("option", { value: v }, v));
  if (values.includes(current)) select.value = current;
}

async function loadRegistry() {
  const datasets = await getJson("/api/v1/datasets");
  state.registry = datasets;
  const params = new URLSearchParams(location.search);
  const departments = [...new Set(datasets.map((d) => d.department))].sort();
  fillSelect(document.getElementById("filter-department"), departments, params.get("department") || "");
  fillSelect(document.getElementById("filter-dataset"), datasets.map((d) => d.id), params.get("dataset") || "");
}

function renderSummary(o) {
  document.getElementById("feed-count").textContent = o.feeds.length;
  const states = document.getElementById("feed-states");
  states.replaceChildren(...Object.entries(o.feed_states).map(([s, n]) =>
    el("span", { class: "badge " + s, "data-state": s, "data-count": n }, n + " " + s)));
  const rows = o.datasets.reduce((a, d) => a + d.rows, 0);
  document.getElementById("repo-rows").textContent = fmtNum(rows);
  const unreconciled = o.datasets.filter((d) => !d.reconciled).length;
  document.getElementById("repo-note").textContent = o.datasets.length + " datasets, " +
    (unreconciled ? unreconciled + " not reconciled yet" : "all reconciled");
  const lag = document.getElementById("sink-lag");
  if (o.sink_lag_error) {
    lag.textContent = "?";
    document.getElementById("sink-note").textContent = o.sink_lag_error;
  } else {
    lag.textContent = fmtNum(o.sink_lag.reduce((a, l) => a + l.lag_records, 0));
    const ages = o.sink_lag.filter((l) => l.lag_records > 0 && l.lag_seconds != null).map((l) => l.lag_seconds);
    document.getElementById("sink-note").textContent = o.sink_lag.length + " partitions" +
      (ages.length ? " · oldest unwritten " + fmtNum(Math.max(...ages), 0) + " s ago" : "");
  }
  const s = o.seals;
  document.getElementById("seal-coverage").textContent = fmtNum(s.coverage_percent, 1) + "%";
  document.getElementById("seal-bar").style.width = Math.min(100, s.coverage_percent) + "%";
  document.getElementById("seal-note").textContent = (s.valid + s.expiring) + " of " + s.departments_total +
    " departments (" + s.expiring + " expiring)";
  document.getElementById("licences-valid").textContent = fmtNum(o.licences.by_state.valid || 0);
  document.getElementById("licences-note").textContent = fmtNum(o.licences.events.issued || 0) + " issued, " +
    fmtNum(o.licences.events.revoked || 0) + " revoked";
}

function renderFeeds(feeds) {
  const order = { failing: 0, stale: 1, paused: 2, healthy: 3 };
  const sorted = [...feeds].sort((a, b) => order[a.state] - order[b.state] ||
    a.dataset.localeCompare(b.dataset) || a.source.localeCompare(b.source));
  document.querySelector("#feeds tbody").replaceChildren(...sorted.map((f) =>
    el("tr", { "data-dataset": f.dataset, "data-source": f.source, "data-state": f.state },
      el("td", {}, el("span", { class: "badge " + f.state }, f.state)),
      el("td", {}, f.dataset),
      el("td", {}, f.department),
      el("td", {}, f.source + (f.connector_state ? " (" + f.connector_state + ")" : "")),
      el("td", { class: "num", "data-field": "read" }, fmtNum(f.read_total)),
      el("td", { class: "num" }, fmtNum(f.rejected_total)),
      el("td", { class: "num" }, f.reject_ratio == null ? "–" : fmtNum(f.reject_ratio * 100, 1)),
      el("td", { class: "num" }, f.read_per_minute == null ? "–" : fmtNum(f.read_per_minute, 1)),
      el("td", {}, fmtTime(f.last_record_at)),
      el("td", { class: "why" }, f.reasons.join("; ")))));
  if (!feeds.length) {
    document.querySelector("#feeds tbody").append(el("tr", {}, el("td", { colSpan: 10, class: "muted" }, "no feeds yet")));
  }
}

// A line chart as SVG: x is time, y the value; axis labels at the ends.
function chart(figure, points, field, color) {
  const W = 560, H = 180, L = 48, R = 8, T = 10, B = 24;
  const plot = figure.querySelector(".plot");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const total = points.reduce((a, p) => a + (field === "read" ? p.read : p.rejected), 0);
  figure.dataset.points = points.length;
  figure.dataset.total = total;
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.append(e);
    return e;
  };
  add("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "frame" });
  if (points.length === 0) {
    add("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "no samples yet");
    plot.replaceChildren(svg);
    return;
  }
  const key = field === "read" ? "read_per_minute" : "rejected_per_minute";
  const t0 = new Date(points[0].at).getTime();
  const t1 = Math.max(new Date(points[points.length - 1].at).getTime(), t0 + 1000);
  const max = Math.max(1, ...points.map((p) => p[key]));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / max) * (H - T - B);
  const coords = points.map((p) => `${x(new Date(p.at).getTime()).toFixed(1)},${y(p[key]).toFixed(1)}`);
  if (coords.length === 1) coords.unshift(`${L},${y(points[0][key]).toFixed(1)}`);
  add("polygon", { points: `${coords[0].split(",")[0]},${H - B} ${coords.join(" ")} ${coords[coords.length - 1].split(",")[0]},${H - B}`, fill: color, "fill-opacity": "0.15", stroke: "none" });
  add("polyline", { points: coords.join(" "), fill: "none", stroke: color, "stroke-width": "2" });
  add("text", { x: L - 4, y: T + 10, "text-anchor": "end", class: "axis" }, fmtNum(max, max < 10 ? 1 : 0));
  add("text", { x: L - 4, y: H - B, "text-anchor": "end", class: "axis" }, "0");
  const hm = (t) => new Date(t).toLocaleTimeString("sv-SE", { hour12: false });
  add("text", { x: L, y: H - 6, class: "axis" }, hm(t0));
  add("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "axis" }, hm(t1));
  add("text", { x: W - R - 4, y: T + 14, "text-anchor": "end", class: "total" }, fmtNum(total) + " in the last hour");
  plot.replaceChildren(svg);
}

// The first reasons of a reject, and how many more there are (all of them in the tooltip).
function reasonList(reasons) {
  const shown = 2;
  const line = (x) => (x.pointer || "(record)") + " [" + (x.rule || "") + "] " + (x.message || "");
  const list = el("ul", { title: reasons.map(line).join("\n") }, ...reasons.slice(0, shown).map((x) =>
    el("li", {}, el("code", {}, x.pointer || "(record)"), " [" + (x.rule || "") + "] " + (x.message || ""))));
  if (reasons.length > shown) list.append(el("li", { class: "muted" }, "and " + (reasons.length - shown) + " more"));
  return list;
}

function renderDeadLetters(rows) {
  const body = document.querySelector("#dead-letters tbody");
  body.replaceChildren(...rows.map((r) =>
    el("tr", { "data-department": r.department, "data-dataset": r.dataset, "data-masking": r.masking },
      el("td", { class: "when" }, fmtTime(r.rejected_at).slice(5)),
      el("td", {}, r.department + " / " + r.dataset),
      el("td", {}, r.source),
      el("td", { class: "origin" }, r.origin),
      el("td", { class: "reasons" }, reasonList(r.reasons || [])),
      el("td", {}, el("code", { class: "payload" }, r.payload)))));
  if (!rows.length) body.append(el("tr", {}, el("td", { colSpan: 6, class: "muted" }, "no rejected records")));
}

function renderLicences(l) {
  document.querySelector("#licences tbody").replaceChildren(...Object.entries(l.by_state).map(([k, v]) =>
    el("tr", { "data-state": k }, el("td", {}, k), el("td", { class: "num" }, fmtNum(v)))));
  document.querySelector("#licence-events tbody").replaceChildren(...Object.entries(l.events).map(([k, v]) =>
    el("tr", { "data-event": k }, el("td", {}, k), el("td", { class: "num" }, fmtNum(v)))));
}

function renderSeals(s) {
  const held = s.departments.filter((d) => d.state !== "none");
  const rows = held.map((d) => el("tr", { "data-department": d.department, "data-state": d.state },
    el("td", {}, d.name_zh + " (" + d.department + ")"),
    el("td", {}, el("span", { class: "badge seal-" + d.state }, d.state)),
    el("td", {}, d.not_after ? fmtTime(d.not_after).slice(0, 10) : "–")));
  rows.push(el("tr", {}, el("td", { colSpan: 3, class: "muted" }, s.none + " departments without a seal")));
  document.querySelector("#seals tbody").replaceChildren(...rows);
}

function renderCluster(c) {
  const rows = c.instances.map((i) => el("tr", { "data-instance": i.id, "data-live": String(i.live) },
    el("td", {}, i.id),
    el("td", {}, el("span", { class: "badge " + (i.live ? "seal-valid" : "seal-revoked") }, i.live ? "live" : "gone")),
    el("td", {}, fmtTime(i.heartbeat_at)),
    el("td", { class: "num" }, fmtNum(i.sink_partitions)),
    el("td", {}, i.duties.length ? i.duties.join(", ") : "–")));
  const free = c.duties.filter((d) => !d.holder).map((d) => d.duty);
  if (free.length) rows.push(el("tr", { "data-free": "" }, el("td", { colSpan: 5, class: "error" }, "not held: " + free.join(", "))));
  document.querySelector("#instances tbody").replaceChildren(...rows);
}

async function refresh() {
  const updated = document.getElementById("updated");
  if (!token()) {
    if (document.getElementById("sign-in").hidden) showSignIn("");
    return;
  }
  try {
    if (!state.registry) await loadRegistry();
    const [overview, rates, dead] = await Promise.all([
      getJson("/api/v1/ops/overview"),
      getJson("/api/v1/ops/rates" + query({ limit: 60 })),
      getJson("/api/v1/ops/dead-letters" + query({ limit: 25 })),
    ]);
    renderSummary(overview);
    renderFeeds(overview.feeds);
    chart(document.getElementById("chart-read"), rates, "read", "#1f6feb");
    chart(document.getElementById("chart-rejected"), rates, "rejected", "#cf222e");
    renderDeadLetters(dead);
    renderLicences(overview.licences);
    renderSeals(overview.seals);
    renderCluster(overview.cluster);
    showMain();
    state.refreshes += 1;
    document.body.dataset.refreshes = state.refreshes;
    updated.className = "muted";
    updated.textContent = "updated " + fmtTime(overview.at) + " · refreshes every " + refreshMs / 1000 + " s";
  } catch (e) {
    if (e instanceof SignInNeeded) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(e.message);
      return;
    }
    updated.className = "error";
    updated.textContent = "cannot refresh: " + e.message;
  }
}

function onFilter() {
  const p = new URLSearchParams();
  const f = filters();
  if (f.department) p.set("department", f.department);
  if (f.dataset) p.set("dataset", f.dataset);
  history.replaceState(null, "", location.pathname + (p.toString() ? "?" + p : ""));
  refresh();
}

document.getElementById("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  const t = input.value.trim();
  input.value = "";
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  refresh();
});
document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn("");
});
document.getElementById("filter-department").addEventListener("change", onFilter);
document.getElementById("filter-dataset").addEventListener("change", onFilter);
refresh();
setInterval(refresh, refreshMs);
