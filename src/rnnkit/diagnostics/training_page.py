"""The self-contained HTML page of a training run's curves (``rnnkit plot``), beside the inspect page.

Bits per character of training (raw and its moving average) and validation, against the
characters seen, the seconds of training or the step (chosen in the page), the best validation
marked; the learning rate below; every validation sample, chosen by step. Drawn as SVG by a
short script from the data embedded in the page: it opens from disk, without a server.
"""

from __future__ import annotations

import html
import json
import math

import numpy as np


def _floats(values) -> list:
    """A JSON list of numbers, non-finite ones (a step without timing) as null."""
    if values is None:
        return None
    return [round(float(v), 6) if math.isfinite(v) else None for v in np.asarray(values, float)]


def page_data(curves) -> dict:
    best = int(np.argmin(curves.val_bpc)) if len(curves.val_bpc) else None
    return {
        "title": curves.title, "stepChars": curves.step_chars,
        "steps": [int(s) for s in curves.steps], "train": _floats(curves.train_bpc),
        "smooth": _floats(curves.smooth_bpc), "lr": _floats(curves.lr), "seconds": _floats(curves.seconds),
        "val": {"steps": [int(s) for s in curves.val_steps], "bpc": _floats(curves.val_bpc),
                "seconds": _floats(curves.val_seconds)},
        "best": best,
        "samples": [[int(step), text] for step, text in sorted(curves.samples.items())],
    }


def summary(curves) -> str:
    last = int(curves.steps[-1])
    text = f"{last:,} steps, {last * curves.step_chars:,} characters seen"
    if len(curves.val_bpc):
        best = int(np.argmin(curves.val_bpc))
        text += (f"; last validation {curves.val_bpc[-1]:.3f} bits/char (step {curves.val_steps[-1]}), "
                 f"best {curves.val_bpc[best]:.3f} (step {curves.val_steps[best]}): the weights in "
                 "best.safetensors")
    return text


def render(curves) -> str:
    return (_TEMPLATE.replace("__TITLE__", html.escape(curves.title))
            .replace("__SUMMARY__", html.escape(summary(curves)))
            .replace("__DATA__", json.dumps(page_data(curves)).replace("</", "<\\/")))


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
#controls { display: flex; gap: 1.5em; align-items: center; flex-wrap: wrap; margin: .8em 0; }
svg { border: 1px solid #ddd; background: #fff; display: block; margin-bottom: 1em; }
svg text { font-size: 11px; fill: #444; }
.train-raw { stroke: #1f77b4; stroke-opacity: .25; fill: none; }
.train-smooth { stroke: #1f77b4; stroke-width: 2; fill: none; }
.val { stroke: #ff7f0e; stroke-width: 2; fill: none; }
.val-dot { fill: #ff7f0e; } .best { fill: #d62728; }
.lr { stroke: #2ca02c; stroke-width: 2; fill: none; }
.grid { stroke: #eee; }
#readout { font-family: ui-monospace, monospace; font-size: 12px; color: #555; min-height: 1.4em; }
#sample { font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap;
          border: 1px solid #ccc; padding: .8em; max-height: 40vh; overflow: auto; }
.legend span { margin-right: 1.2em; } .swatch { display: inline-block; width: 1.5em; height: 3px; vertical-align: middle; }
</style></head>
<body>
<h1>__TITLE__</h1>
<p id="summary">__SUMMARY__</p>
<div id="controls">
  <label>Horizontal axis <select id="xaxis">
    <option value="chars">characters seen</option><option value="time">seconds of training</option>
    <option value="step">step</option></select></label>
  <label><input id="raw" type="checkbox" checked> every training step</label>
</div>
<div class="legend"><span><i class="swatch" style="background:#1f77b4"></i> training (moving average)</span>
<span><i class="swatch" style="background:#ff7f0e"></i> validation</span>
<span><i class="swatch" style="background:#d62728"></i> best validation: best.safetensors</span></div>
<svg id="loss" width="900" height="360" role="img" aria-label="bits per character"></svg>
<div id="readout"></div>
<svg id="rate" width="900" height="200" role="img" aria-label="learning rate"></svg>
<h2>Validation samples</h2>
<label>At step <select id="sample-step"></select></label>
<div id="sample"></div>
<script>
const DATA = __DATA__;
const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
const M = {left: 60, right: 15, top: 15, bottom: 40};
function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function ticks(lo, hi, n) {
  const span = hi - lo || 1, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}
function label(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toPrecision(3) + "M";
  if (a >= 1e3) return (v / 1e3).toPrecision(3) + "k";
  return a && a < 0.01 ? v.toExponential(1) : +v.toPrecision(3) + "";
}
function xs(kind, steps, seconds) {
  if (kind === "time") return seconds;
  if (kind === "step") return steps;
  return steps.map((s) => s * DATA.stepChars);
}
function chart(svg, series, xTitle, yTitle) {
  svg.replaceChildren();
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
  const points = series.flatMap((s) => s.x.map((x, i) => [x, s.y[i]])).filter(([x, y]) => x != null && y != null);
  if (!points.length) return null;
  const [x0, x1] = [Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...points.map((p) => p[1])), Math.max(...points.map((p) => p[1]))];
  if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y1))) {        // a flat line (a constant rate): give it room
    const pad = Math.abs(y0) * 0.1 || 1;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const sx = (x) => M.left + (x - x0) / ((x1 - x0) || 1) * (W - M.left - M.right);
  const sy = (y) => H - M.bottom - (y - y0) / ((y1 - y0) || 1) * (H - M.top - M.bottom);
  for (const t of ticks(y0, y1, 6)) {
    el("line", {x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t), class: "grid"}, svg);
    el("text", {x: M.left - 6, y: sy(t) + 4, "text-anchor": "end"}, svg).textContent = label(t);
  }
  for (const t of ticks(x0, x1, 8)) {
    el("text", {x: sx(t), y: H - M.bottom + 16, "text-anchor": "middle"}, svg).textContent = label(t);
  }
  el("text", {x: (W + M.left) / 2, y: H - 6, "text-anchor": "middle"}, svg).textContent = xTitle;
  el("text", {x: 14, y: H / 2, transform: `rotate(-90 14 ${H / 2})`, "text-anchor": "middle"}, svg).textContent = yTitle;
  for (const s of series) {
    const d = s.x.map((x, i) => [x, s.y[i]]).filter(([x, y]) => x != null && y != null)
      .map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    if (d) el("path", {d, class: s.cls, id: s.id}, svg);
    if (s.dots) s.x.forEach((x, i) => {
      if (x != null && s.y[i] != null) el("circle", {cx: sx(x), cy: sy(s.y[i]), r: i === DATA.best ? 6 : 3,
        class: i === DATA.best ? "best" : "val-dot"}, svg);
    });
  }
  return {sx, sy, x0, x1, W};
}
const X_TITLES = {chars: "characters seen", time: "seconds of training", step: "step"};
function draw() {
  const kind = $("xaxis").value;
  const tx = xs(kind, DATA.steps, DATA.seconds), vx = xs(kind, DATA.val.steps, DATA.val.seconds);
  const series = [{x: tx, y: DATA.smooth, cls: "train-smooth", id: "train-smooth"},
                  {x: vx, y: DATA.val.bpc, cls: "val", id: "val", dots: true}];
  if ($("raw").checked) series.unshift({x: tx, y: DATA.train, cls: "train-raw", id: "train-raw"});
  const scale = chart($("loss"), series, X_TITLES[kind], "bits per character");
  chart($("rate"), [{x: tx, y: DATA.lr, cls: "lr", id: "lr"}], X_TITLES[kind], "learning rate");
  $("loss").onmousemove = (ev) => {
    if (!scale) return;
    const box = $("loss").getBoundingClientRect();
    const x = scale.x0 + (ev.clientX - box.left - M.left) / (scale.W - M.left - M.right) * (scale.x1 - scale.x0);
    let k = 0;
    tx.forEach((v, i) => { if (v != null && Math.abs(v - x) < Math.abs((tx[k] ?? Infinity) - x)) k = i; });
    $("readout").textContent = `step ${DATA.steps[k]}: training ${DATA.train[k].toFixed(3)} bits/char ` +
      `(average ${DATA.smooth[k].toFixed(3)}), learning rate ${DATA.lr[k].toPrecision(3)}`;
  };
}
function showSample() {
  const found = DATA.samples.find(([step]) => String(step) === $("sample-step").value);
  $("sample").textContent = found ? found[1] : "no validation sample in this run (--sample-chars 0)";
}
if (!DATA.seconds) { $("xaxis").querySelector('option[value="time"]').disabled = true; }
for (const [step] of DATA.samples) $("sample-step").add(new Option(`step ${step}`, step));
if (DATA.samples.length) $("sample-step").value = DATA.samples[DATA.samples.length - 1][0];
$("xaxis").addEventListener("change", draw);
$("raw").addEventListener("change", draw);
$("sample-step").addEventListener("change", showSample);
draw();
showSample();
</script>
</body></html>
"""
