// Loads the pack's example workflows in a real ComfyUI frontend (Debian's chromium through
// playwright-core), in the classic canvas or in the Vue node renderer ("Nodes 2.0"): checks that no
// node is missing, that the Show-1 readout appears and follows a user's widget edit, converts each
// workflow with the frontend's own graphToPrompt and takes screenshots.
// usage: node check_workflows.mjs <server url> <output dir> <classic|vue> <workflow name>...
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [url, outDir, renderer, ...names] = process.argv.slice(2);
const vue = renderer === "vue";
mkdirSync(outDir, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(`${e}\n${e.stack ?? ""}`.slice(0, 600)));
await page.goto(url);
await page.waitForFunction(() => window.app?.graph && window.app.extensions?.length > 0, null, { timeout: 90000 });
await page.keyboard.press("Escape");  // the first-run template browser, if the settings did not skip it
await page.evaluate(async (on) => {
  await window.app.extensionManager?.setting?.set?.("Comfy.VueNodes.Enabled", on);
}, vue);
const result = {
  extensions: await page.evaluate(() => window.app.extensions.map((e) => e.name)),
  version: await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null),
  renderer, workflows: {}, consoleErrors,
};

const readouts = () => page.evaluate(() => {
  const out = {};
  for (const n of window.app.graph._nodes) if (n.show1Readout) out[`${n.id}:${n.type}`] = n.show1Readout.textContent;
  return out;
});
// the readout is asked of the pack after a short debounce: wait until it changes from `before`
async function readoutsAfter(before) {
  const deadline = Date.now() + 15000;
  let now = await readouts();
  while (Date.now() < deadline && (JSON.stringify(now) === JSON.stringify(before) ||
         Object.values(now).some((t) => t === "…"))) {
    await page.waitForTimeout(200);
    now = await readouts();
  }
  return now;
}
const warningShown = () => page.evaluate(() =>
  /missing node|nodes are missing/i.test([...document.querySelectorAll('.p-dialog, [role=dialog], [data-testid="error-overlay"]')]
    .map((d) => d.innerText).join("\n")));

for (const name of names) {
  const workflow = await (await page.request.get(`${url}/api/workflow_templates/ComfyUI-Show1/${name}.json`)).json();
  await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); }, workflow);
  await page.waitForTimeout(1000);
  const info = await page.evaluate(() => ({
    missing: window.app.graph._nodes.filter((n) => !window.LiteGraph.registered_node_types[n.type]).map((n) => n.type),
    nodeCount: window.app.graph._nodes.length,
    vueNodes: document.querySelectorAll("[data-node-id]").length,
    readoutsInNodes: [...document.querySelectorAll(".show1-readout")].filter((el) =>
      el.isConnected && el.getBoundingClientRect().width > 0).length,
  }));
  info.readouts = await readoutsAfter({});
  info.missingWarning = await warningShown();
  const api = await page.evaluate(async () => (await window.app.graphToPrompt()).output);
  writeFileSync(join(outDir, `${name}.api.json`), JSON.stringify(api, null, 1));
  // the whole graph in view, as the frontend's own "Fit view" (.) shows it
  await page.evaluate(async () => { try { await window.app.extensionManager?.command?.execute("Comfy.Canvas.FitView"); } catch { /* older frontends */ } });
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(outDir, `${name}.png`) });

  // a user's edit: in Vue, a click on the widget's increment button; on the canvas, the value and
  // the callback the canvas calls
  const target = await page.evaluate(() => {
    const nodes = window.app.graph._nodes;
    const node = nodes.find((n) => n.type === "Show1KeyframeSampler") ?? nodes.find((n) => n.type === "Show1PixelInterpolate");
    if (!node) return null;
    const widget = node.type === "Show1KeyframeSampler" ? "num_frames" : "width";
    return { id: String(node.id), type: node.type, widget, value: node.widgets.find((w) => w.name === widget).value };
  });
  if (target) {
    const before = await readouts();
    if (vue) {
      await page.click(`[data-node-id="${target.id}"] [data-widget-name="${target.widget}"] [data-testid="increment"]`);
    } else {
      await page.evaluate((t) => {
        const node = window.app.graph.getNodeById(t.id);
        const w = node.widgets.find((x) => x.name === t.widget);
        w.value = t.value + (t.widget === "width" ? 8 : 1);
        w.callback?.(w.value, window.app.canvas, node);
      }, target);
    }
    info.afterChange = { changed: `${target.type}.${target.widget}`, readouts: await readoutsAfter(before),
                         value: await page.evaluate((t) => window.app.graph.getNodeById(t.id).widgets
                           .find((x) => x.name === t.widget).value, target) };
  }
  // a setting the stage cannot take is flagged before queueing
  const interp = await page.evaluate(() => {
    const n = window.app.graph._nodes.find((x) => x.type === "Show1LatentInterpolator");
    return n ? String(n.id) : null;
  });
  if (interp) {
    const before = await readouts();
    await page.evaluate((id) => {
      const node = window.app.graph.getNodeById(id);
      const overlap = node.widgets.find((x) => x.name === "overlap");
      overlap.value = node.widgets.find((x) => x.name === "window").value;
      overlap.callback?.(overlap.value, window.app.canvas, node);
    }, interp);
    await readoutsAfter(before);
    info.flagged = await page.evaluate((id) => {
      const el = window.app.graph.getNodeById(id).show1Readout;
      return { text: el.textContent, warning: el.dataset.warning };
    }, interp);
  }
  result.workflows[name] = info;
}
// negative control: a workflow with an unknown node must raise the missing-nodes warning
const unknown = await (await page.request.get(`${url}/api/workflow_templates/ComfyUI-Show1/${names[0]}.json`)).json();
unknown.nodes[0].type = "Show1NodeThatDoesNotExist";
await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); }, unknown);
await page.waitForTimeout(2000);
result.controlMissingWarning = await warningShown();
await page.keyboard.press("Escape");
await page.waitForTimeout(500);
await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); },
  await (await page.request.get(`${url}/api/workflow_templates/ComfyUI-Show1/${names[0]}.json`)).json());
await readoutsAfter({});
await page.waitForTimeout(1000);
await page.screenshot({ path: join(outDir, "screenshot.png") });
await browser.close();
console.log(JSON.stringify(result));
