// Loads the pack's example workflows in a real ComfyUI frontend (Debian's chromium through
// playwright-core), checks that no node is missing, that the Show-1 readout appears and follows a
// widget change, converts each workflow with the frontend's own graphToPrompt and takes screenshots.
// usage: node check_workflows.mjs <server url> <output dir> <workflow name>...
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [url, outDir, ...names] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(`${e}\n${e.stack ?? ""}`.slice(0, 600)));
await page.goto(url);
await page.waitForFunction(() => window.app?.graph && window.app.extensions?.length > 0, null, { timeout: 60000 });
await page.keyboard.press("Escape");  // the first-run template browser, if the settings did not skip it
const extensions = await page.evaluate(() => window.app.extensions.map((e) => e.name));
const result = { extensions, workflows: {}, consoleErrors };

for (const name of names) {
  const workflow = await (await page.request.get(`${url}/api/workflow_templates/ComfyUI-Show1/${name}.json`)).json();
  await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); }, workflow);
  await page.waitForTimeout(1500);
  const info = await page.evaluate(() => {
    const nodes = window.app.graph._nodes;
    const missing = nodes.filter((n) => !window.LiteGraph.registered_node_types[n.type]).map((n) => n.type);
    const readouts = {};
    for (const n of nodes) if (n.show1Readout) readouts[`${n.id}:${n.type}`] = n.show1Readout.textContent;
    const dialogText = [...document.querySelectorAll(".p-dialog, [role=dialog]")].map((d) => d.innerText).join("\n");
    return { missing, readouts, dialogText, nodeCount: nodes.length };
  });
  info.missingDialog = /missing/i.test(info.dialogText);
  const api = await page.evaluate(async () => (await window.app.graphToPrompt()).output);
  writeFileSync(join(outDir, `${name}.api.json`), JSON.stringify(api, null, 1));
  await page.screenshot({ path: join(outDir, `${name}.png`) });
  // change a widget the way the UI does (value, then its callback) and read the readout again
  info.afterChange = await page.evaluate(() => {
    const nodes = window.app.graph._nodes;
    const pick = (type) => nodes.find((n) => n.type === type);
    const sampler = pick("Show1KeyframeSampler");
    const interp = pick("Show1LatentInterpolator") || pick("Show1PixelInterpolate");
    const target = sampler ? [sampler, "num_frames", 10] : interp ? [interp, "width", 72] : null;
    if (!target) return null;
    const [node, widgetName, value] = target;
    const w = node.widgets.find((x) => x.name === widgetName);
    w.value = value;
    w.callback?.(value, window.app.canvas, node);
    const readouts = {};
    for (const n of nodes) if (n.show1Readout) readouts[`${n.id}:${n.type}`] = n.show1Readout.textContent;
    return { changed: `${node.type}.${widgetName}=${value}`, readouts };
  });
  // a setting the stage cannot take is flagged before queueing
  info.flagged = await page.evaluate(() => {
    const node = window.app.graph._nodes.find((n) => n.type === "Show1LatentInterpolator");
    if (!node) return null;
    const window_ = node.widgets.find((x) => x.name === "window");
    const overlap = node.widgets.find((x) => x.name === "overlap");
    overlap.value = window_.value;
    overlap.callback?.(overlap.value, window.app.canvas, node);
    return { text: node.show1Readout.textContent, warning: node.show1Readout.dataset.warning };
  });
  result.workflows[name] = info;
}
// negative control: a workflow with an unknown node must raise the missing-nodes warning
const unknown = await (await page.request.get(`${url}/api/workflow_templates/ComfyUI-Show1/${names[0]}.json`)).json();
unknown.nodes[0].type = "Show1NodeThatDoesNotExist";
await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); }, unknown);
await page.waitForTimeout(1500);
result.controlMissingDialog = await page.evaluate(() =>
  /missing/i.test([...document.querySelectorAll(".p-dialog, [role=dialog]")].map((d) => d.innerText).join("\n")));
await page.keyboard.press("Escape");
await page.waitForTimeout(500);
await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); },
  await (await page.request.get(`${url}/api/workflow_templates/ComfyUI-Show1/${names[0]}.json`)).json());
await page.waitForTimeout(1500);
await page.screenshot({ path: join(outDir, "screenshot.png") });
await browser.close();
console.log(JSON.stringify(result));
