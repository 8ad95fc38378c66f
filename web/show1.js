// Show-1 readout: frame count, duration and output size of the sampler and interpolation nodes,
// updated as widgets and links change, with a warning for settings the stage cannot take.
import { app } from "../../scripts/app.js";

const READOUT_NODES = new Set([
  "Show1KeyframeSampler",
  "Show1PixelInterpolate",
  "Show1PixelUpscale",
  "Show1LatentInterpolator",
]);

function widget(node, name) {
  return node?.widgets?.find((w) => w.name === name);
}

function value(node, name) {
  return widget(node, name)?.value;
}

function origin(node, slot) {
  const input = typeof slot === "number" ? node.inputs?.[slot] : node.inputs?.find((i) => i.name === slot);
  if (!input || input.link == null) return null;
  const link = node.graph?.links?.[input.link] ?? app.graph?.links?.[input.link];
  return link ? node.graph?.getNodeById(link.origin_id) ?? app.graph.getNodeById(link.origin_id) : null;
}

// How many frames an IMAGE/LATENT producer yields, when the graph tells; null if unknown.
function frameCount(node, depth = 0) {
  if (!node || depth > 20) return null;
  switch (node.comfyClass ?? node.type) {
    case "Show1KeyframeSampler":
      return value(node, "num_frames");
    case "Show1PixelInterpolate": {
      const k = frameCount(origin(node, "keyframes"), depth + 1);
      return k == null ? null : 4 * k - 3;
    }
    case "Show1LatentInterpolator": {
      const k = frameCount(origin(node, "keyframes"), depth + 1);
      return k == null ? null : (k - 1) * (value(node, "frames_between") + 1) + 1;
    }
    case "LoadImage":
      return 1;
    case "ImageBatch": {
      const a = frameCount(origin(node, "image1"), depth + 1);
      const b = frameCount(origin(node, "image2"), depth + 1);
      return a == null || b == null ? null : a + b;
    }
    case "EmptyLatentImage":
      return value(node, "batch_size");
  }
  // pass-through nodes (VAE decode/encode, samplers, upscalers): follow the first linked input
  for (let i = 0; i < (node.inputs?.length ?? 0); i++) {
    if (["IMAGE", "LATENT"].includes(node.inputs[i].type) && node.inputs[i].link != null) {
      return frameCount(origin(node, i), depth + 1);
    }
  }
  return null;
}

function frameSize(node, depth = 0) {
  if (!node || depth > 20) return null;
  const w = value(node, "width");
  const h = value(node, "height");
  if ((node.comfyClass ?? node.type) === "Show1PixelUpscale") {
    const inner = frameSize(origin(node, "frames"), depth + 1);
    const s = value(node, "scale");
    return inner ? [inner[0] * s, inner[1] * s] : null;
  }
  if (typeof w === "number" && typeof h === "number") return [w, h];
  const up = node.inputs?.find((i) => i.type === "IMAGE" && i.link != null);
  return up ? frameSize(origin(node, node.inputs.indexOf(up)), depth + 1) : null;
}

export function describe(node) {
  const type = node.comfyClass ?? node.type;
  const frames = frameCount(node);
  const size = frameSize(node);
  const fps = value(node, "fps");
  const warnings = [];
  const w = value(node, "width");
  const h = value(node, "height");
  if (typeof w === "number" && w % 8) warnings.push(`width ${w} is not a multiple of 8`);
  if (typeof h === "number" && h % 8) warnings.push(`height ${h} is not a multiple of 8`);
  if (type === "Show1LatentInterpolator" && value(node, "overlap") >= value(node, "window")) {
    warnings.push("overlap must be smaller than window");
  }
  if (type === "Show1PixelInterpolate" || type === "Show1LatentInterpolator") {
    const k = frameCount(origin(node, "keyframes"));
    if (k != null && k < 2) warnings.push(`needs at least 2 keyframes (got ${k})`);
  }
  if (size && (size[0] % 2 || size[1] % 2)) warnings.push("odd frame size: h264 (SaveVideo) needs even sizes");
  const parts = [
    frames == null ? (type === "Show1PixelInterpolate" ? "4K-3 frames" : "? frames") : `${frames} frames`,
  ];
  if (frames != null && typeof fps === "number" && fps > 0) parts.push(`${(frames / fps).toFixed(2)} s at ${fps} fps`);
  if (size) parts.push(`${size[0]}x${size[1]}`);
  return { text: parts.join(" · "), warnings };
}

function refresh(node) {
  const el = node.show1Readout;
  if (!el) return;
  const { text, warnings } = describe(node);
  el.textContent = warnings.length ? `${text}  ⚠ ${warnings.join("; ")}` : text;
  el.dataset.warning = warnings.length ? "true" : "false";
  el.style.color = warnings.length ? "#ff6b6b" : "#9ad1ff";
}

function refreshAll() {
  for (const node of app.graph?._nodes ?? []) {
    if (READOUT_NODES.has(node.comfyClass ?? node.type)) refresh(node);
  }
}

app.registerExtension({
  name: "show1.readout",
  async nodeCreated(node) {
    if (!READOUT_NODES.has(node.comfyClass ?? node.type)) return;
    const el = document.createElement("div");
    el.className = "show1-readout";
    el.style.cssText = "font: 12px monospace; padding: 2px 6px; white-space: normal;";
    node.show1Readout = el;
    const readout = node.addDOMWidget("show1_readout", "show1_readout", el, { serialize: false, hideOnZoom: false });
    readout.serialize = false;
    readout.computeSize = () => [0, 34];
    for (const w of node.widgets ?? []) {
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
      setTimeout(refreshAll, 0);
      return r;
    };
    setTimeout(() => refresh(node), 0);
  },
  async afterConfigureGraph() {
    setTimeout(refreshAll, 0);
  },
});
