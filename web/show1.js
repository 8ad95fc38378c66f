// Show-1 readout: the frame count, duration and output size of the Show-1 nodes, and the settings
// ComfyUI would refuse, shown under each node as the graph is edited. The pack computes them (POST
// /show1/readout, with the graph as app.graphToPrompt() gives it) with the same declarations and
// checks its nodes run, and says which nodes have a readout (GET /show1/readout_nodes), so this file
// holds no formula, no limit and no node list of its own. Public frontend API only:
// app.registerExtension, DOM widgets, app.graphToPrompt, api.fetchApi; works in the classic canvas
// and in the Vue node renderer ("Nodes 2.0").
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

let withReadout = new Set();
const DEBOUNCE_MS = 150;

let timer = null;
let running = null;

async function loadReadoutNodes() {
  try {
    const response = await api.fetchApi("/show1/readout_nodes");
    if (response.ok) withReadout = new Set(await response.json());
  } catch (e) {
    console.warn("Show-1 readout:", e);
  }
}

function readoutNodes() {
  return (app.graph?._nodes ?? []).filter((n) => n.show1Readout);
}

function show(node, readout) {
  const el = node.show1Readout;
  if (!el || !readout) return;
  const warnings = readout.warnings ?? [];
  el.textContent = warnings.length ? `${readout.text}  ⚠ ${warnings.join("; ")}` : readout.text;
  el.dataset.warning = warnings.length ? "true" : "false";
  el.title = warnings.join("\n");
  el.style.color = warnings.length ? "#ff6b6b" : "#9ad1ff";
}

async function refreshNow() {
  const nodes = readoutNodes();
  if (!nodes.length) return;
  const { output } = await app.graphToPrompt();
  const response = await api.fetchApi("/show1/readout", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: output }),
  });
  if (!response.ok) return;
  const readouts = await response.json();
  for (const node of nodes) show(node, readouts[String(node.id)]);
}

// Coalesces bursts of edits into one request; a refresh asked for while one runs runs after it.
function refreshAll() {
  clearTimeout(timer);
  timer = setTimeout(() => {
    running = (running ?? Promise.resolve())
      .then(refreshNow)
      .catch((e) => console.warn("Show-1 readout:", e))
      .finally(() => { running = null; });
  }, DEBOUNCE_MS);
}

app.registerExtension({
  name: "show1.readout",
  async init() {
    await loadReadoutNodes();
  },
  async nodeCreated(node) {
    if (!withReadout.has(node.comfyClass ?? node.type)) return;
    const el = document.createElement("div");
    el.className = "show1-readout";
    el.style.cssText = "font: 12px monospace; padding: 2px 6px; white-space: normal;";
    el.textContent = "…";
    node.show1Readout = el;
    const readout = node.addDOMWidget("show1_readout", "show1_readout", el, { serialize: false, hideOnZoom: false });
    readout.serialize = false;
    readout.computeSize = () => [0, 34];
    for (const w of node.widgets ?? []) {
      if (w === readout) continue;
      const callback = w.callback;
      w.callback = function () {
        const r = callback?.apply(this, arguments);
        refreshAll();
        return r;
      };
    }
    const onConnectionsChange = node.onConnectionsChange;
    node.onConnectionsChange = function () {
      const r = onConnectionsChange?.apply(this, arguments);
      refreshAll();
      return r;
    };
    refreshAll();
  },
  async afterConfigureGraph() {
    refreshAll();
  },
});
