// The console: routes (#/ and #/models/NAME), the API key form, and the scrape loop that feeds
// whichever page is open. Every POLL_MS it reads /console/api/models (states, policies, the
// served signatures) and /metrics (the counters the live figures are computed from).

import { Api } from "./api.js";
import { h } from "./dom.js";
import { LiveMetrics } from "./live.js";
import { ModelView } from "./model.js";
import { OverviewView } from "./overview.js";

const POLL_MS = 2000;

const api = new Api();
const live = new LiveMetrics();
const main = document.getElementById("main");
const status = document.getElementById("server-status");
const keyPanel = document.getElementById("key-panel");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");
const keyRemember = document.getElementById("key-remember");
const keyMessage = document.getElementById("key-message");
const keyButton = document.getElementById("key-button");
const keyForget = document.getElementById("key-forget");

let view = null;
let lastDoc = null;
let timer = null;

function route() {
  const match = /^#\/models\/([^/]+)$/.exec(location.hash);
  view = match
    ? new ModelView(main, api, decodeURIComponent(match[1]))
    : new OverviewView(main);
  document.title = match ? `${decodeURIComponent(match[1])} · Inductive console` : "Inductive console";
  if (lastDoc) view.update(lastDoc, live);
}

function showStatus(doc) {
  const server = doc.server;
  status.replaceChildren(
    h("span", { class: `server-state ${server.ready ? "up" : "down"}` },
      h("span", { "aria-hidden": "true" }, server.ready ? "●" : "○"), server.ready ? " ready" : " not ready"),
    ` · v${server.version}`);
}

function askForKey(message) {
  keyPanel.hidden = false;
  keyMessage.textContent = message;
  keyInput.focus();
}

async function tick() {
  clearTimeout(timer);
  timer = setTimeout(tick, POLL_MS);
  if (document.hidden) return;
  let doc;
  try {
    const [models, metrics] = await Promise.all([api.json("api/models"), api.text("../metrics")]);
    doc = models;
    live.add(metrics);
  } catch (error) {
    if (error.needsKey) {
      clearTimeout(timer); // nothing to poll for until a key is given
      const why = api.key ? `The server refused this key: ${error.message}` : `This server needs an API key: ${error.message}`;
      askForKey(why);
      main.replaceChildren(h("p", { class: "notice", role: "alert" }, why));
      status.replaceChildren("API key needed");
    } else {
      status.replaceChildren(h("span", { class: "server-state down" }, "○ unreachable"), `: ${error.message}`);
    }
    return;
  }
  lastDoc = doc;
  keyButton.hidden = !doc.server.api_keys;
  showStatus(doc);
  if (!view) route();
  else view.update(doc, live);
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  api.setKey(keyInput.value.trim(), keyRemember.checked);
  keyInput.value = "";
  keyPanel.hidden = true;
  view = null;
  tick();
});

keyButton.addEventListener("click", () => {
  keyRemember.checked = api.remembered;
  askForKey(api.key ? "A key is in use. Enter another to replace it." : "Enter the API key.");
});

keyForget.addEventListener("click", () => {
  api.setKey(null, false);
  keyPanel.hidden = true;
  tick();
});

document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", route);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) tick();
});

tick();
