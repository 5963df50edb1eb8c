// lowcarb's live dashboard: polls dashboard/api/state and draws every task.
// Text always goes in through textContent; only the server's own SVG figures are
// inserted as markup. The token stays in this tab's sessionStorage.
"use strict";

const TOKEN_KEY = "lowcarb.dashboard.token";
const poller = { etag: null, timer: null, every: 2000, waitingForToken: false };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The formats of the HTML report (lowcarb/report/_account.py and _render.py).
function sig(value) {
  return Number(value).toPrecision(3);
}
function num3(value) {
  const number = Number(value);
  if (Math.abs(number) >= 1000 || Number.isInteger(number)) {
    return Math.round(number).toLocaleString("en-US");
  }
  return sig(number);
}
const fmt = {
  mass(g) {
    if (g === null || g === undefined) return "n/a";
    const size = Math.abs(Number(sig(g))); // 999.7 g prints as 1.00 kg
    if (size >= 1e6) return `${sig(g / 1e6)} t`;
    if (size >= 1e3) return `${sig(g / 1e3)} kg`;
    return `${sig(g)} g`;
  },
  kwh(value) {
    return value === null || value === undefined ? "n/a" : `${num3(value)} kWh`;
  },
  pct(share) {
    return share === null || share === undefined ? "n/a" : `${(share * 100).toFixed(1)} %`;
  },
  saving(share) {
    if (share === null || share === undefined) return "n/a";
    return `${Math.abs(share * 100).toFixed(1)} % ${share >= 0 ? "less" : "more"}`;
  },
  round0(value) {
    return value === null || value === undefined ? "n/a" : Number(value).toFixed(0);
  },
  when(iso) {
    if (!iso) return "n/a";
    return iso.slice(0, 16).replace("T", " ") + " UTC";
  },
};

function num(key, value, text) {
  return el("span", { "data-key": key, "data-value": value === null ? "" : value }, text);
}

function card(label, valueNode, note, tone) {
  return el("div", { class: "card" },
    el("div", { class: "label" }, label),
    el("div", { class: tone ? `value ${tone}` : "value" }, valueNode),
    note ? el("div", { class: "note" }, note) : null);
}

function figure(svg, caption) {
  const holder = el("figure", {});
  const box = el("div", {});
  box.innerHTML = svg; // drawn by lowcarb's server (matplotlib, text escaped)
  holder.append(box, el("figcaption", {}, caption));
  return holder;
}

function decisionView(task) {
  const d = task.decision;
  const last = task.run.rounds_planned && d && d.round >= task.run.rounds_planned;
  if (!d) return el("p", { class: "small" }, "No decision recorded for the last round.");
  const signal = d.signal;
  const what = [signal.provider, [signal.kind, signal.basis].filter(Boolean).join(" ")]
    .filter(Boolean).join(" · ");
  const blocks = el("div", { class: "decision" },
    el("div", {},
      el("h3", {}, `Round ${d.round} · ${d.completed ? "completed" : "training now"}`),
      el("ul", { class: "chips", "data-key": "decision.selected" },
        d.selected.map((c) => el("li", { title: `${Math.round(c.intensity)} gCO2eq/kWh` }, `${c.id} · ${c.zone}`))),
      el("p", { class: "small" }, `Decided ${fmt.when(d.decided_at)}: ${d.reason}`)),
    el("div", {},
      el("h3", {}, "Signal"),
      el("p", {}, what || "not recorded", signal.synthetic ? " · synthetic data" : ""),
      signal.fallback
        ? el("p", { class: "warn", "data-key": "decision.fallback" }, `Fallback: ${signal.fallback}`)
        : el("p", { class: "small" }, "No fallback: the primary provider answered for every zone.")));
  const rows = d.deferred.map((c) => el("tr", {},
    el("td", {}, c.id), el("td", {}, c.zone),
    el("td", { class: "num" }, fmt.round0(c.intensity)),
    el("td", { "data-key": `next_turn.${c.id}` },
      c.next_turn ? fmt.when(c.next_turn)
        : last ? "no rounds left" : c.available ? "beyond the plan's horizon" : "unavailable now")));
  const more = d.deferred_count - d.deferred.length;
  const waiting = el("details", { open: d.deferred_count <= 12 },
    el("summary", {}, `Waiting: ${d.deferred_count} clients, with their next planned turn`),
    el("div", { class: "scroll" }, el("table", { class: "deferred" },
      el("tr", {}, el("th", {}, "client"), el("th", {}, "zone"),
        el("th", { class: "num" }, "g/kWh now"), el("th", {}, "next planned turn")),
      rows)),
    more > 0 ? el("p", { class: "small" }, `and ${more} more`) : null);
  return el("div", {}, blocks, d.deferred_count ? waiting : null);
}

function taskView(task) {
  const section = el("section", { class: "task", "data-task": task.task },
    el("h2", {}, task.task));
  if (task.error) {
    section.append(el("div", { class: "message", role: "alert" }, task.error));
    return section;
  }
  if (task.pause) {
    section.append(el("div", { class: "message" },
      `Waiting until ${fmt.when(task.pause.wait_until)}: ${task.pause.reason}`));
  }
  if (task.empty) {
    section.append(el("p", { class: "message" },
      "No rounds recorded yet: the account appears when the first round is decided."));
    return section;
  }
  const run = task.run;
  const a = task.account;
  const p = a.participation;
  const planned = run.rounds_planned ? ` of ${run.rounds_planned}` : "";
  section.append(
    el("p", { class: "meta" },
      `round ${run.rounds}${planned} · policy ${run.policy} · ${run.clients} clients in ${run.zones} zones · from ${task.origin}`),
    el("div", { class: "cards" },
      card("Emissions so far", num("account.emissions_g", a.emissions_g, fmt.mass(a.emissions_g)), "CO2eq"),
      card("Random selection", num("account.random_g", a.random_g, fmt.mass(a.random_g)), "expected, same slots"),
      card("Against random", num("account.saving_share", a.saving_share, fmt.saving(a.saving_share)),
        `${fmt.mass(Math.abs(a.saving_g || 0))} ${(a.saving_g || 0) >= 0 ? "saved" : "more"}`,
        (a.saving_share || 0) >= 0 ? "good" : "bad"),
      card("Energy", num("account.energy_kwh", a.energy_kwh, fmt.kwh(a.energy_kwh)),
        `${fmt.round0(a.intensity_g_per_kwh)} gCO2eq/kWh`),
      card("Fairness (Jain)", num("account.participation.jain", p.jain, Number(p.jain).toFixed(3)),
        `${p.never} never selected`),
      card("Forecast", num("account.expected_g", a.expected_g, fmt.mass(a.expected_g)),
        `actual known for ${fmt.pct(a.actual_share)}`)),
    decisionView(task));
  const f = task.figures;
  if (f.missing) {
    section.append(el("p", { class: "message" }, `No figures: ${f.missing}`));
  } else {
    section.append(
      figure(f.zones, "Each zone's intensity as decided (lines) against the actual value where a client trained (circles); dots: clients selected."),
      figure(f.cumulative, "Cumulative emissions of the selected clients against random selection."),
      figure(f.participation, "Clients by rounds taken; the dotted line is the fair share."));
  }
  return section;
}

function render(data) {
  document.getElementById("source").textContent = `Reading ${data.source}`;
  const problem = document.getElementById("problem");
  problem.hidden = !data.error;
  problem.textContent = data.error || "";
  const tasks = document.getElementById("tasks");
  const views = data.tasks.map(taskView);
  if (!views.length && !data.error) {
    views.push(el("p", { class: "message" }, "No tasks yet: they appear here when their first round is decided."));
  }
  if (data.more_tasks.length) {
    views.push(el("p", { class: "small" }, `${data.more_tasks.length} more tasks: ${data.more_tasks.join(", ")}`));
  }
  tasks.replaceChildren(...views);
  document.body.dataset.generatedAt = data.generated_at;
  poller.every = data.poll_ms || poller.every;
}

function setStatus(kind, text) {
  const status = document.getElementById("status");
  status.className = `status ${kind}`;
  document.getElementById("status-text").textContent = text;
}

function askForToken(message) {
  poller.waitingForToken = true;
  document.getElementById("auth").hidden = false;
  document.getElementById("auth-text").textContent = message;
  setStatus("down", "token needed");
}

function schedule() {
  clearTimeout(poller.timer);
  if (!poller.waitingForToken) poller.timer = setTimeout(poll, poller.every);
}

async function poll() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (poller.etag) headers["If-None-Match"] = poller.etag;
  try {
    const response = await fetch("dashboard/api/state", { headers, cache: "no-store" });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(token ? "That token was refused; try again." : "This server requires its bearer token.");
      return;
    }
    if (response.status !== 304) {
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      const data = await response.json();
      poller.etag = response.headers.get("ETag");
      render(data);
    }
    setStatus("live", `live · checked ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setStatus("down", `reconnecting (${error.message})`);
  }
  schedule();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    document.getElementById("auth").hidden = true;
    poller.waitingForToken = false;
    poller.etag = null;
    poll();
  });
  poll();
});
