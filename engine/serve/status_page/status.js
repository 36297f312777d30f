// callboard status page: follows /status/events and draws each snapshot.
// The events are read with fetch rather than EventSource because EventSource cannot send
// an Authorization header, and a router with caller keys asks one of the status routes.
// Every figure goes in through textContent: an upstream's error text is never markup.
"use strict";

const KEY = "callboard-admin-key";
const RETRY_MS = 2000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function cell(row, text, cls) {
  const td = el("td", text, cls);
  row.appendChild(td);
  return td;
}

function list(items) {
  const ul = el("ul");
  for (const item of items) ul.appendChild(el("li", item));
  return ul;
}

function ms(value) {
  return value === null || value === undefined ? "-" : `${Math.round(value)} ms`;
}

function amount(value) {
  if (value === null || value === undefined) return "-";
  if (!Number.isFinite(value)) return "unlimited";
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

function limitLines(limits) {
  const lines = [];
  for (const unit of limits) {
    for (const c of unit.configured) {
      lines.push(`${c.name}: ${amount(c.remaining)} of ${amount(c.limit)} ${unit.unit} left`);
    }
    if (unit.reported) {
      const r = unit.reported;
      const of = r.limit === null ? "" : ` of ${amount(r.limit)}`;
      lines.push(`reported: ${amount(r.remaining)}${of} ${unit.unit} left, resets in ${r.reset_in_s} s`);
    }
    const until = unit.binding_until_s === null ? "" : ` for ${unit.binding_until_s} s`;
    lines.push(`${unit.unit}: ${unit.binding} limit binds${until}`);
  }
  return lines.length ? lines : ["none configured"];
}

function drawAccounts(providers) {
  const body = document.querySelector("#accounts tbody");
  const rows = [];
  for (const p of providers) {
    const row = el("tr");
    row.dataset.account = p.name;
    const name = cell(row, p.name);
    name.appendChild(el("div", p.model, "quiet"));
    const state = cell(row, p.state, `state state-${p.state}`);
    if (p.reasons.length) state.appendChild(list(p.reasons));
    const breaker = cell(row, p.breaker.replace("_", "-"), `breaker breaker-${p.breaker}`);
    if (p.breaker_open_for_s !== null) {
      breaker.appendChild(el("div", `for ${p.breaker_open_for_s.toFixed(1)} s more`, "quiet"));
    }
    cell(row, `${Math.round(p.health_score * 100)}%`, "num health");
    cell(row, `${ms(p.latency_ms.p50)} / ${ms(p.latency_ms.p95)}`, "num");
    cell(row, `${p.in_flight} / ${p.queued}`, "num");
    cell(row, null, "limits").appendChild(list(limitLines(p.limits)));
    const errors = p.recent_errors.map((e) => `${e.code}, ${e.ago_s.toFixed(1)} s ago`);
    cell(row, errors.length ? null : "none", "errors").appendChild(list(errors));
    rows.push(row);
  }
  body.replaceChildren(...rows);
}

function drawLine(line) {
  const failed = Object.values(line.failed).reduce((a, b) => a + b, 0);
  const counts = [
    ["waiting", line.queued], ["in flight", line.in_flight], ["received", line.received],
    ["answered", line.answered], ["failed", failed], ["cancelled", line.cancelled],
  ];
  const items = counts.map(([name, value]) => {
    const item = el("div");
    item.append(el("dt", name), el("dd", value));
    item.dataset.count = name;
    return item;
  });
  document.getElementById("line").replaceChildren(...items);
}

function drawCallers(callers) {
  const none = callers === null;
  document.getElementById("callers").hidden = none;
  document.getElementById("no-callers").hidden = !none;
  if (none) return;
  const rows = callers.map((c) => {
    const row = el("tr");
    row.dataset.caller = c.id;
    cell(row, c.revoked ? `${c.id} (revoked)` : c.id);
    cell(row, c.admitted, "num");
    cell(row, c.over_budget, "num");
    const used = c.budget.map((b) => `${b.name}: ${amount(b.used)} of ${amount(b.limit)} ${b.unit}`);
    cell(row, used.length ? null : "no budget").appendChild(list(used));
    return row;
  });
  document.querySelector("#callers tbody").replaceChildren(...rows);
}

function draw(snapshot) {
  const badge = document.getElementById("fleet");
  const status = snapshot.draining ? "draining" : snapshot.status;
  badge.textContent = status;
  badge.dataset.status = snapshot.status;
  const at = new Date(snapshot.at * 1000).toLocaleTimeString();
  document.getElementById("updated").textContent = `figures of ${at}; shared state: ${snapshot.store.store}, ${snapshot.store.status}`;
  drawLine(snapshot.line);
  drawAccounts(snapshot.providers);
  drawCallers(snapshot.callers);
  document.getElementById("figures").hidden = false;
}

function askForKey(why) {
  const form = document.getElementById("key-form");
  document.getElementById("key-why").textContent = why;
  form.hidden = false;
  document.getElementById("figures").hidden = true;
}

function disconnected(why) {
  const badge = document.getElementById("fleet");
  badge.textContent = "disconnected";
  badge.dataset.status = "disconnected";
  document.getElementById("updated").textContent = `${why}; trying again`;
}

// Server-sent events are blocks separated by a blank line; the router sends each
// snapshot as one "data:" line of JSON, so a block's data lines are its JSON.
function* blocks(buffer) {
  let end;
  while ((end = buffer.text.indexOf("\n\n")) >= 0) {
    const block = buffer.text.slice(0, end);
    buffer.text = buffer.text.slice(end + 2);
    const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
    if (data.length) yield data.join("\n");
  }
}

async function follow() {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch("/status/events", { headers, cache: "no-store" });
  } catch (error) {
    disconnected("the router cannot be reached");
    return true;
  }
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    sessionStorage.removeItem(KEY);
    askForKey(body.error ? body.error.message : `refused (${response.status})`);
    return false;
  }
  if (!response.ok) {
    disconnected(`the router answered ${response.status}`);
    return true;
  }
  document.getElementById("key-form").hidden = true;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const buffer = { text: "" };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer.text += value;
      for (const data of blocks(buffer)) draw(JSON.parse(data));
    }
  } catch (error) {
    // The connection dropped mid-stream (a restart, a network change): follow again.
  }
  disconnected("the stream ended");
  return true;
}

async function run() {
  while (await follow()) {
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

document.getElementById("key-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("key").value);
  document.getElementById("key-form").hidden = true;
  run();
});

run();
