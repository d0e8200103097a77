// octobandit dashboard: plain JavaScript over the public /v1 API, charts drawn in SVG.
// No external resources (the Content-Security-Policy allows this service only).
"use strict";

const KEY_NAME = "octobandit.apiKey";
const REFRESH_MS = 5000;
const COLORS = ["#1f5fa8", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
const SVG_NS = "http://www.w3.org/2000/svg";
const BASE = new URL("..", window.location.href); // the service's root (the page is at /ui/)

const state = {
  auto: true,
  timer: null,
  busy: false,
  rewards: null, // {id, after, total, points: [[ms, cumulative]]}: the event log, read incrementally
};

// -- small DOM helpers ------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
}

const fmt = {
  int: (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US")),
  num: (v, digits = 4) =>
    v === null || v === undefined || !isFinite(v) ? "–" : String(Number(Number(v).toPrecision(digits))),
  pct: (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"),
  time: (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC",
  clock: (ms) => new Date(ms).toISOString().slice(11, 19),
};

function say(text) {
  document.getElementById("status-message").textContent = text;
}

function fail(text) {
  const box = document.getElementById("error-message");
  box.textContent = text;
  box.hidden = !text;
}

// -- the API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_NAME);
  if (key) headers.Authorization = "Bearer " + key;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path.replace(/^\//, ""), BASE), init);
  } catch (err) {
    throw new ApiError(0, "network", "the service does not answer (" + err.message + ")");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const detail = (data && data.error) || {};
    throw new ApiError(response.status, detail.code || "error", detail.message || response.statusText);
  }
  return data;
}

function explain(err) {
  if (!(err instanceof ApiError)) return "Unexpected error: " + err;
  if (err.status === 401)
    return "401: this service needs an API key. Enter one in the API key field above (" + err.message + ").";
  if (err.status === 403)
    return "403: your API key may not do this (changing experiments needs a key with the admin scope): " + err.message;
  if (err.status === 0) return "No answer: " + err.message;
  return err.status + " " + err.code + ": " + err.message;
}

const enc = encodeURIComponent;

// -- routing and refresh ----------------------------------------------------------------

function route() {
  const match = /^#\/experiments\/([^/]+)$/.exec(window.location.hash);
  return match ? { view: "experiment", id: decodeURIComponent(match[1]) } : { view: "list" };
}

async function refresh(moveFocus) {
  if (state.busy) {
    state.again = true; // once the refresh in flight ends (an action's change must show)
    return;
  }
  state.busy = true;
  state.again = false;
  const where = route();
  const focused = document.activeElement && document.activeElement.id;
  try {
    const view = where.view === "experiment" ? await experimentView(where.id) : await listView();
    const host = document.getElementById("view");
    // the data tables the reader opened stay open across refreshes
    const open = new Set([...host.querySelectorAll("details[open]")].map((d) => d.id));
    view.querySelectorAll("details").forEach((d) => {
      if (!moveFocus && open.has(d.id)) d.open = true;
    });
    host.replaceChildren(view);
    host.dataset.renders = String(Number(host.dataset.renders || 0) + 1);
    fail("");
    document.getElementById("updated").textContent = "updated " + fmt.clock(Date.now()) + " UTC";
    if (moveFocus) {
      const heading = host.querySelector("h2");
      if (heading) heading.focus();
    } else if (focused) {
      const again = document.getElementById(focused);
      if (again) again.focus();
    }
  } catch (err) {
    fail(explain(err));
  } finally {
    state.busy = false;
  }
  if (state.again) await refresh(false);
}

function schedule() {
  clearInterval(state.timer);
  state.timer = state.auto ? setInterval(() => refresh(false), REFRESH_MS) : null;
  const toggle = document.getElementById("refresh-toggle");
  toggle.setAttribute("aria-pressed", String(state.auto)); // a toggle: its name stays the same
}

// -- the experiments list ---------------------------------------------------------------

async function listView() {
  const { experiments } = await api("GET", "/v1/experiments");
  const stats = await Promise.all(
    experiments.map((e) => api("GET", "/v1/experiments/" + enc(e.id) + "/stats").catch(() => null))
  );
  const heading = el("h2", { tabindex: "-1" }, "Experiments");
  if (experiments.length === 0)
    return el("section", { "aria-labelledby": "list-title" }, setId(heading, "list-title"),
      el("p", {}, "No experiments yet. Create one with POST /v1/experiments (see the API docs)."));
  const rows = experiments.map((e, i) => {
    const s = stats[i];
    const live = e.arms.filter((a) => !a.deleted);
    return el("tr", {},
      el("th", { scope: "row" }, el("a", { href: "#/experiments/" + enc(e.id), id: "open-" + e.id }, e.id)),
      el("td", {}, e.name),
      el("td", {}, el("span", { class: "badge " + e.status }, e.status)),
      el("td", {}, e.policy.type),
      el("td", { class: "num" }, live.filter((a) => a.enabled).length + " / " + live.length),
      el("td", { class: "num", "data-field": "decisions" }, s ? fmt.int(s.total_decisions) : "–"),
      el("td", { class: "num" }, s ? fmt.num(s.total_reward, 6) : "–"),
      el("td", {}, fmt.time(Date.parse(e.updated_at))));
  });
  return el("section", { "aria-labelledby": "list-title" }, setId(heading, "list-title"),
    el("table", { id: "experiments" },
      el("caption", {}, experiments.length + " experiment(s); traffic is the number of decisions"),
      el("thead", {}, el("tr", {}, ["Experiment", "Name", "Status", "Policy", "Enabled arms",
        "Decisions", "Total reward", "Last change"].map((t, i) =>
        el("th", { scope: "col", class: i >= 4 && i <= 6 ? "num" : null }, t)))),
      el("tbody", {}, rows)));
}

function setId(node, id) {
  node.id = id;
  return node;
}

// -- one experiment ---------------------------------------------------------------------

async function experimentView(id) {
  const path = "/v1/experiments/" + enc(id);
  const [exp, stats, conclusion, history] = await Promise.all([
    api("GET", path), api("GET", path + "/stats"), api("GET", path + "/conclusion"),
    api("GET", path + "/history?limit=1000"),
  ]);
  const rewards = await rewardLog(id);
  const arms = exp.arms.filter((a) => !a.deleted).map((a) => a.id);
  const color = Object.fromEntries(exp.arms.map((a, i) => [a.id, i % COLORS.length]));
  const now = Date.now();

  const heading = el("h2", { id: "exp-title", tabindex: "-1" }, exp.name,
    exp.name !== exp.id ? el("span", { class: "muted" }, " (" + exp.id + ")") : null);
  const gain = stats.reward_gain_vs_equal_split;
  const summary = el("div", { class: "summary" },
    el("div", {}, "Status ", el("span", { class: "badge " + exp.status, id: "exp-status" }, exp.status)),
    el("div", {}, "Policy ", el("strong", {}, exp.policy.type)),
    el("div", {}, "Rewards ", el("strong", {}, exp.reward.type)),
    el("div", {}, "Decisions ", el("strong", { id: "total-decisions" }, fmt.int(stats.total_decisions))),
    el("div", {}, "Total reward ", el("strong", { id: "total-reward" }, fmt.num(stats.total_reward, 6))),
    el("div", {}, "Gain over an equal split ", el("strong", { id: "gain" }, gainText(gain))));

  return el("div", {},
    el("p", {}, el("a", { href: "#/", id: "back" }, "← All experiments")),
    el("section", { "aria-labelledby": "exp-title" }, heading, summary,
      controls(exp),
      el("div", { class: "grid" },
        allocationCard(history, stats, arms, color, now),
        intervalsCard(conclusion, exp, color),
        probBestCard(history, conclusion, arms, color, now),
        conclusionCard(exp, conclusion),
        rewardCard(rewards, stats, now),
        armsCard(exp, stats, conclusion, color))));
}

function gainText(gain) {
  if (!gain || gain.estimate === null) return "not estimable";
  const ci = gain.ci95 ? " (95% CI " + fmt.num(gain.ci95[0], 3) + " to " + fmt.num(gain.ci95[1], 3) + ")" : "";
  return fmt.num(gain.estimate, 4) + ci;
}

function controls(exp) {
  const path = "/v1/experiments/" + enc(exp.id);
  const auto = Boolean(exp.stopping && exp.stopping.auto_conclude);
  const running = exp.status === "running";
  const pause = el("button", { type: "button", id: "pause-toggle", class: "primary",
    onclick: () => act(path, { status: running ? "paused" : "running" },
      (running ? "Paused " : "Resumed ") + exp.id) },
  running ? "Pause experiment" : exp.status === "paused" ? "Resume experiment" : "Reopen (running)");
  const conclude = exp.status === "concluded" ? null : el("button", {
    type: "button", id: "conclude-toggle", "aria-describedby": "conclude-help",
    onclick: () => act(path, { status: "concluded" },
      "Concluded " + exp.id + ": the leader (largest P(best)) is recorded as the winner"),
  }, "Conclude now");
  return el("section", { "aria-labelledby": "controls-title", class: "controls" },
    el("h3", { id: "controls-title" }, "Controls"), pause, conclude,
    el("span", { id: "conclude-help", class: "muted" },
      exp.status === "concluded" ? "Reopening clears the recorded conclusion."
        : "Concluding now records the current leader as the winner, whether or not the stopping rule is met"
          + (auto ? " (auto-conclusion is also on)." : ".")),
    el("span", { class: "muted" }, "Changes need an admin key when the service runs with --auth."));
}

async function act(path, body, done) {
  try {
    await api("PATCH", path, body);
    say(done);
    fail("");
  } catch (err) {
    fail(explain(err));
    return;
  }
  await refresh(false);
}

function conclusionCard(exp, c) {
  const recorded = exp.conclusion;
  return el("section", { class: "card", "aria-labelledby": "conclusion-title", id: "conclusion" },
    el("h3", { id: "conclusion-title" }, "Conclusion"),
    recorded ? el("p", {}, el("strong", {}, "Concluded: " + recorded.winner + " wins"),
      " (" + fmt.time(Date.parse(recorded.at)) + ")") : null,
    el("p", {}, el("strong", {}, c.met ? "Stopping rule met" : "Stopping rule not met"),
      c.leader ? " · leader " + c.leader : "", c.winner ? " · winner " + c.winner : ""),
    el("p", { class: "reason", id: "conclusion-reason" }, (recorded && recorded.reason) || c.reason),
    c.rule ? el("p", { class: "muted" }, "Rule: P(best) ≥ " + c.rule.prob_best + ", expected loss ≤ " +
      c.rule.max_expected_loss + (c.rule.relative_loss ? " × the best mean" : "") + ", ≥ " +
      c.rule.min_rewards_per_arm + " rewards per arm") : null);
}

function armsCard(exp, stats, c, color) {
  const post = Object.fromEntries(c.arms.map((a) => [a.arm_id, a]));
  const path = "/v1/experiments/" + enc(exp.id) + "/arms/";
  const rows = stats.arms.filter((a) => !a.deleted).map((a) => {
    const p = post[a.arm_id] || {};
    return el("tr", { "data-arm": a.arm_id },
      el("th", { scope: "row" }, swatch(color[a.arm_id]), a.arm_id),
      el("td", {}, el("span", { class: "badge " + (a.enabled ? "running" : "disabled"), id: "arm-state-" + a.arm_id },
        a.enabled ? "enabled" : "disabled")),
      el("td", { class: "num", "data-field": "decisions" }, fmt.int(a.decisions)),
      el("td", { class: "num" }, fmt.int(a.rewards)),
      el("td", { class: "num" }, fmt.num(a.mean_reward)),
      el("td", { class: "num" }, fmt.pct(p.prob_best)),
      el("td", { class: "num" }, fmt.num(p.expected_loss, 3)),
      el("td", {}, el("button", { type: "button", id: "arm-toggle-" + a.arm_id,
        "aria-label": (a.enabled ? "Disable arm " : "Enable arm ") + a.arm_id,
        class: a.enabled ? "danger" : null,
        onclick: () => act(path + enc(a.arm_id), { enabled: !a.enabled },
          (a.enabled ? "Disabled arm " : "Enabled arm ") + a.arm_id) },
      a.enabled ? "Disable" : "Enable")));
  });
  return el("section", { class: "card wide", "aria-labelledby": "arms-title" },
    el("h3", { id: "arms-title" }, "Arms"),
    el("div", { class: "scroll" }, el("table", { id: "arms" },
      el("thead", {}, el("tr", {}, ["Arm", "State", "Decisions", "Rewards", "Mean reward",
        "P(best)", "Expected loss", "Action"].map((t, i) =>
        el("th", { scope: "col", class: i >= 2 && i <= 6 ? "num" : null }, t)))),
      el("tbody", {}, rows))),
    el("p", { class: "muted" }, "Rewards: observed outcomes; mean reward: their average. " +
      "P(best) and expected loss come from the posterior (GET …/conclusion)."));
}

function swatch(index) {
  return el("span", { class: "swatch c" + index, "aria-hidden": "true" });
}

function legend(arms, color) {
  return el("ul", { class: "legend", "aria-hidden": "true" },
    arms.map((a) => el("li", {}, swatch(color[a]), a)));
}

// -- the charts' data -------------------------------------------------------------------

/** Snapshot times (ms) plus "now", and per arm a series aligned with them. */
function timeline(history, arms, field, current, now) {
  const times = history.at.map((t) => Date.parse(t));
  const series = {};
  for (const a of arms) {
    const s = history.arms[a];
    series[a] = times.map((_, i) => (s ? s[field][i] : null));
    series[a].push(current[a] === undefined ? null : current[a]);
  }
  times.push(Math.max(now, times.length ? times[times.length - 1] : now));
  return { times, series };
}

/** Share of each arm among the decisions made between consecutive points. */
function allocation(history, stats, arms, now) {
  const current = Object.fromEntries(stats.arms.map((a) => [a.arm_id, a.decisions]));
  const { times, series } = timeline(history, arms, "decisions", current, now);
  const out = { times: [], shares: Object.fromEntries(arms.map((a) => [a, []])), counts: [] };
  for (let i = 1; i < times.length; i++) {
    const delta = {};
    let total = 0;
    for (const a of arms) {
      const before = series[a][i - 1] || 0;
      const after = series[a][i] || 0;
      delta[a] = after >= before ? after - before : after; // a reset starts from 0
      total += delta[a];
    }
    if (total === 0) continue;
    out.times.push(times[i]);
    out.counts.push(delta);
    for (const a of arms) out.shares[a].push(delta[a] / total);
  }
  return out;
}

const PAGES_PER_REFRESH = 5; // 50,000 events at most per refresh: a long log fills in over refreshes
const MAX_POINTS = 4000; // kept points of the curve (every other one dropped beyond; the total is exact)

/** The cumulative reward over time from the event log (rewards and defaults, since the last
 * reset), read incrementally with its cursor: each refresh fetches only the new events. */
async function rewardLog(id) {
  if (!state.rewards || state.rewards.id !== id)
    state.rewards = { id, after: 0, total: 0, read: 0, points: [], complete: true };
  const log = state.rewards;
  const path = "/v1/experiments/" + enc(id) + "/events?kind=reward&kind=default&kind=reset&limit=10000&after=";
  for (let page = 0; page < PAGES_PER_REFRESH; page++) {
    const answer = await api("GET", path + log.after);
    for (const e of answer.events) {
      if (e.kind === "reset") {
        log.total = 0;
        log.points = [];
      } else {
        log.total += (e.reward || 0) * (e.count === null || e.count === undefined ? 1 : e.count);
        log.points.push([e.ts * 1000, log.total]);
        if (log.points.length > MAX_POINTS) log.points = log.points.filter((_, i) => i % 2 === 1);
      }
      log.read += 1;
      log.after = e.seq;
    }
    log.complete = answer.next === null;
    if (answer.next === null) break;
    log.after = answer.next;
  }
  return log;
}

// -- the charts -------------------------------------------------------------------------

const H = 220, PAD = { l: 56, r: 14, t: 10, b: 34 };
let W = 480; // the wide cumulative reward chart is drawn twice as wide

function frame(titleId, title, desc, yTicks, yLabel, x0, x1) {
  const chart = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img",
    "aria-labelledby": titleId + "-t " + titleId + "-d", focusable: "false" },
  svg("title", { id: titleId + "-t" }, title), svg("desc", { id: titleId + "-d" }, desc));
  for (const [v, y] of yTicks) {
    chart.append(svg("line", { class: "grid-line", x1: PAD.l, x2: W - PAD.r, y1: y, y2: y }),
      svg("text", { x: PAD.l - 5, y: y + 5, "text-anchor": "end" }, v));
  }
  chart.append(svg("line", { class: "axis", x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b }),
    svg("line", { class: "axis", x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b }),
    svg("text", { x: 14, y: (H - PAD.b + PAD.t) / 2, transform: "rotate(-90 14 " + (H - PAD.b + PAD.t) / 2 + ")",
      "text-anchor": "middle" }, yLabel));
  if (x0 !== undefined) {
    chart.append(svg("text", { x: PAD.l, y: H - 8, "text-anchor": "start" }, fmt.clock(x0)),
      svg("text", { x: W - PAD.r, y: H - 8, "text-anchor": "end" }, fmt.clock(x1)),
      svg("text", { x: (W + PAD.l) / 2, y: H - 8, "text-anchor": "middle" }, "time (UTC)"));
  }
  return chart;
}

function scaleX(t0, t1) {
  const span = t1 > t0 ? t1 - t0 : 1;
  return (t) => PAD.l + ((t - t0) / span) * (W - PAD.l - PAD.r);
}

function scaleY(lo, hi) {
  const span = hi > lo ? hi - lo : 1;
  return (v) => H - PAD.b - ((v - lo) / span) * (H - PAD.t - PAD.b);
}

function ticks(lo, hi, y, n, digits) {
  const out = [];
  for (let i = 0; i <= n; i++) {
    const v = lo + ((hi - lo) * i) / n;
    out.push([digits === "pct" ? Math.round(v * 100) + "%" : fmt.num(v, digits), y(v)]);
  }
  return out;
}

function table(id, caption, head, rows) {
  return el("details", { id: id + "-details" }, el("summary", { id: id + "-summary" }, "Data table: " + caption),
    el("div", { class: "scroll" }, el("table", { id: id + "-table" }, el("caption", {}, caption),
      el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v, i) => i ? el("td", { class: "num" }, v)
        : el("th", { scope: "row" }, v))))))));
}

function card(id, title, note, chart, alt, wide) {
  return el("section", { class: "card" + (wide ? " span2" : ""), "aria-labelledby": id + "-title", id },
    el("h3", { id: id + "-title" }, title), el("figure", {}, chart), note, alt);
}

function tooFew(what) {
  return el("p", { class: "muted" }, what);
}

function allocationCard(history, stats, arms, color, now) {
  const data = allocation(history, stats, arms, now);
  const title = "Allocation over time";
  const note = el("p", { class: "muted" }, "Share of each arm among the decisions made between two " +
    "posterior snapshots (GET …/history, every " + (history.snapshot_interval || "?") + " s), the last " +
    "point up to now (GET …/stats).");
  if (data.times.length === 0) return card("allocation", title, note, tooFew("No decisions yet."), null);
  const times = data.times.length === 1 ? [data.times[0] - 1000, data.times[0]] : data.times;
  const pick = (a) => (data.times.length === 1 ? [data.shares[a][0], data.shares[a][0]] : data.shares[a]);
  const x = scaleX(times[0], times[times.length - 1]);
  const y = scaleY(0, 1);
  const chart = frame("allocation-chart", title, "Stacked area chart: the share of decisions of each arm " +
    "(" + arms.join(", ") + ") per snapshot interval; the data table below gives the numbers.",
  ticks(0, 1, y, 4, "pct"), "share of decisions", times[0], times[times.length - 1]);
  let below = times.map(() => 0);
  arms.forEach((a) => {
    const share = pick(a);
    const above = below.map((b, i) => b + (share[i] || 0));
    const top = times.map((t, i) => x(t).toFixed(1) + "," + y(above[i]).toFixed(1));
    const bottom = times.map((t, i) => x(t).toFixed(1) + "," + y(below[i]).toFixed(1)).reverse();
    chart.append(svg("polygon", { points: top.concat(bottom).join(" "), fill: COLORS[color[a]],
      "fill-opacity": "0.85", stroke: "#fff", "stroke-width": "0.5" }));
    below = above;
  });
  const rows = data.times.map((t, i) => [fmt.time(t), ...arms.map((a) =>
    fmt.pct(data.shares[a][i]) + " (" + fmt.int(data.counts[i][a]) + ")")]);
  const alt = table("allocation", "share (and number) of decisions per interval, by arm",
    ["interval ending", ...arms], rows);
  return card("allocation", title, el("div", {}, legend(arms, color), note), chart, alt);
}

function intervalsCard(c, exp, color) {
  const arms = c.arms.filter((a) => a.ci95 && a.mean !== null);
  const title = "Posterior 95% credible intervals";
  const note = el("p", { class: "muted" }, "Posterior of each arm's mean reward (" +
    (exp.reward.type === "binary" ? "Beta" : "Normal-Inverse-Gamma, Student-t marginal") +
    "): the dot is the posterior mean, the bar the equal-tailed 95% interval (GET …/conclusion).");
  if (arms.length === 0) return card("intervals", title, note, tooFew("No posterior yet."), null);
  let lo = Math.min(...arms.map((a) => a.ci95[0]));
  let hi = Math.max(...arms.map((a) => a.ci95[1]));
  const margin = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 0.1;
  lo -= margin;
  hi += margin;
  if (exp.reward.type === "binary") {
    lo = Math.max(0, lo);
    hi = Math.min(1, hi);
  }
  const rowH = (H - PAD.t - PAD.b) / arms.length;
  const chart = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img",
    "aria-labelledby": "intervals-chart-t intervals-chart-d", focusable: "false" },
  svg("title", { id: "intervals-chart-t" }, title),
  svg("desc", { id: "intervals-chart-d" }, "Interval chart, one row per arm; the data table below gives the numbers."));
  const left = 110;
  const x = (v) => left + ((v - lo) / (hi - lo)) * (W - left - PAD.r);
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    chart.append(svg("line", { class: "grid-line", x1: x(v), x2: x(v), y1: PAD.t, y2: H - PAD.b }),
      svg("text", { x: x(v), y: H - PAD.b + 16, "text-anchor": i === 4 ? "end" : i === 0 ? "start" : "middle" },
        fmt.num(v, 2)));
  }
  chart.append(svg("text", { x: (W + left) / 2, y: H - 2, "text-anchor": "middle" }, "mean reward"));
  arms.forEach((a, i) => {
    const cy = PAD.t + rowH * (i + 0.5);
    const fill = COLORS[color[a.arm_id]];
    chart.append(svg("text", { x: left - 6, y: cy + 4, "text-anchor": "end" }, a.arm_id),
      svg("line", { x1: x(a.ci95[0]), x2: x(a.ci95[1]), y1: cy, y2: cy, stroke: fill, "stroke-width": 6,
        "stroke-opacity": a.enabled ? 1 : 0.4 }),
      svg("circle", { cx: x(a.mean), cy, r: 6, fill: "#fff", stroke: fill, "stroke-width": 3 }));
  });
  const rows = arms.map((a) => [a.arm_id, fmt.num(a.mean), fmt.num(a.ci95[0]), fmt.num(a.ci95[1]),
    fmt.pct(a.prob_best), fmt.num(a.expected_loss, 3)]);
  const alt = table("intervals", "posterior mean, 95% interval, P(best) and expected loss by arm",
    ["arm", "mean", "95% low", "95% high", "P(best)", "expected loss"], rows);
  return card("intervals", title, note, chart, alt);
}

function lineChart(id, title, desc, times, series, arms, color, lo, hi, yDigits, yLabel) {
  const x = scaleX(times[0], times[times.length - 1]);
  const y = scaleY(lo, hi);
  const chart = frame(id, title, desc, ticks(lo, hi, y, 4, yDigits), yLabel, times[0], times[times.length - 1]);
  for (const a of arms) {
    const pts = [];
    series[a].forEach((v, i) => {
      if (v !== null && v !== undefined) pts.push(x(times[i]).toFixed(1) + "," + y(v).toFixed(1));
    });
    if (pts.length === 1) pts.push(pts[0]);
    chart.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[color[a]], "stroke-width": 2.5 }));
  }
  return chart;
}

function probBestCard(history, c, arms, color, now) {
  const current = Object.fromEntries(c.arms.map((a) => [a.arm_id, a.prob_best]));
  const { times, series } = timeline(history, arms, "prob_best", current, now);
  const title = "P(best) over time";
  const note = el("p", { class: "muted" }, "Posterior probability that each arm has the highest mean " +
    "reward, at each snapshot (GET …/history) and now (GET …/conclusion).");
  const chart = lineChart("probbest-chart", title, "Line chart of P(best) per arm (" + arms.join(", ") +
    ") over time; the data table below gives the numbers.", times, series, arms, color, 0, 1, "pct", "P(best)");
  const rows = times.map((t, i) => [fmt.time(t), ...arms.map((a) => fmt.pct(series[a][i]))]);
  const alt = table("probbest", "P(best) by arm at each snapshot (last row: now)", ["time", ...arms], rows);
  return card("probbest", title, el("div", {}, legend(arms, color), note), chart, alt);
}

function rewardCard(log, stats, now) {
  const title = "Cumulative reward";
  const gain = stats.reward_gain_vs_equal_split;
  const gainNote = el("p", {}, el("strong", {}, "Gain over an equal split: "), gainText(gain),
    gain && gain.method ? " — estimated by " + (gain.method === "ips" ? "inverse propensity weighting" : gain.method) +
      " over " + fmt.int(gain.decisions_covered) + " rewarded decisions" : "",
    gain && gain.note ? " (" + gain.note + ")" : "",
    el("span", { class: "muted" }, " (GET …/stats: reward_gain_vs_equal_split; what the adaptive allocation " +
      "earned beyond serving every enabled arm equally often)"));
  const note = el("p", { class: "muted" }, "Sum of the rewards counted (rewards and window defaults) " +
    "over time, from the event log (GET …/events), since the last reset" +
    (log.complete ? "" : "; still reading the log (" + fmt.int(log.read) + " events so far)") + ". Total now (GET …/stats): " + fmt.num(stats.total_reward, 6) + ".");
  if (log.points.length === 0) return card("reward", title, el("div", {}, gainNote, note), tooFew("No rewards yet."), null, true);
  const pts = thin(log.points, 400);
  const times = pts.map((p) => p[0]);
  times.push(Math.max(now, times[times.length - 1]));
  const values = pts.map((p) => p[1]);
  values.push(log.total);
  const lo = Math.min(0, ...values);
  const hi = Math.max(...values) || 1;
  W = 980;
  const chart = lineChart("reward-chart", title, "Line chart of the cumulative reward over time; the data " +
    "table below gives the numbers.", times, { total: values }, ["total"], { total: 0 }, lo, hi, 3, "reward");
  W = 480;
  const every = Math.max(1, Math.ceil(pts.length / 20));
  const rows = [];
  times.forEach((t, i) => {
    if (i % every === 0 || i === times.length - 1) rows.push([fmt.time(t), fmt.num(values[i], 6)]);
  });
  const alt = table("reward", "cumulative reward over time (up to 21 rows)", ["time", "cumulative reward"], rows);
  return card("reward", title, el("div", {}, gainNote, note), chart, alt, true);
}

/** At most ``n`` points of a long series (evenly spaced, the last kept). */
function thin(points, n) {
  if (points.length <= n) return points;
  const step = points.length / n;
  const out = [];
  for (let i = 0; i < n; i++) out.push(points[Math.floor(i * step)]);
  out.push(points[points.length - 1]);
  return out;
}

// -- start ------------------------------------------------------------------------------

function showKey() {
  const has = Boolean(sessionStorage.getItem(KEY_NAME));
  document.getElementById("key-state").textContent = has ? "key set (this tab only)" : "no key";
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("api-key");
    if (input.value.trim()) sessionStorage.setItem(KEY_NAME, input.value.trim());
    input.value = "";
    showKey();
    say("API key saved for this tab (sessionStorage); it is sent as Authorization: Bearer.");
    refresh(false);
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_NAME);
    showKey();
    say("API key forgotten.");
    refresh(false);
  });
  document.getElementById("refresh-toggle").addEventListener("click", () => {
    state.auto = !state.auto;
    schedule();
    say("Auto-refresh " + (state.auto ? "on (every " + REFRESH_MS / 1000 + " s)" : "off"));
  });
  document.getElementById("refresh-now").addEventListener("click", () => refresh(false));
  window.addEventListener("hashchange", () => refresh(true));
  showKey();
  schedule();
  refresh(false);
});
