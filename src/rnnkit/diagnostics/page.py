"""The self-contained HTML page of ``rnnkit inspect``: text shaded by one unit's value.

Values are stored in the page as base64 bytes, quantised per unit to 0..255 between that unit's
minimum and maximum over the text, so a page with thousands of characters and hundreds of units
stays a few megabytes and opens without a server.
"""

from __future__ import annotations

import base64
import html
import json

import numpy as np

from rnnkit.diagnostics.inspect import Activity
from rnnkit.kinds import KINDS


def _encode(values: np.ndarray) -> dict:
    """(T, H) floats → per-unit range and base64 of the (H, T) uint8 codes (unit-major)."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    codes = np.round((values - lo) / span * 255).astype(np.uint8).T          # (H, T)
    return {"lo": np.round(lo, 5).tolist(), "hi": np.round(hi, 5).tolist(),
            "b64": base64.b64encode(codes.tobytes()).decode("ascii")}


def render(text: str, act: Activity, saturation: list[dict], correlated: list[dict], title: str) -> str:
    data = {
        "chars": list(text),
        "layers": [{q: _encode(v) | {"label": KINDS[act.cell].labels()[q], "gate": q in KINDS[act.cell].sigmoid_gates}
                    for q, v in layer.items()} for layer in act.layers],
    }
    sat_rows = "".join(
        f"<tr><td>{k}</td><td>{g}</td><td>{100 * lo:.1f}%</td><td>{100 * hi:.1f}%</td></tr>"
        for k, layer in enumerate(saturation) for g, (lo, hi) in layer.items())
    corr_rows = "".join(
        f'<tr class="unit" data-layer="{r["layer"]}" data-quantity="{r["quantity"]}" data-unit="{r["unit"]}">'
        f'<td>{html.escape(r["feature"])}</td><td>{r["layer"]}</td><td>{r["quantity"]}</td>'
        f'<td>{r["unit"]}</td><td>{r["r"]:+.3f}</td></tr>' for r in correlated)
    return (_TEMPLATE.replace("__TITLE__", html.escape(title))
            .replace("__SATURATION__", sat_rows or '<tr><td colspan="4">no sigmoid gates in a plain RNN</td></tr>')
            .replace("__CORRELATED__", corr_rows)
            .replace("__DATA__", json.dumps(data).replace("</", "<\\/")))


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
#controls { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; margin-bottom: .8em; }
#text { font-family: ui-monospace, monospace; font-size: 13px; line-height: 1.5; white-space: pre-wrap;
        border: 1px solid #ccc; padding: .8em; max-height: 60vh; overflow: auto; }
#text span { border-radius: 2px; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ddd; padding: .2em .6em; text-align: right; }
tr.unit { cursor: pointer; } tr.unit:hover { background: #eef; }
#legend { font-size: 12px; color: #555; }
</style></head>
<body>
<h1>__TITLE__</h1>
<div id="controls">
  <label>Layer <select id="layer"></select></label>
  <label>Value <select id="quantity"></select></label>
  <label>Unit <input id="unit" type="number" min="0" value="0" style="width:5em"></label>
  <button id="prev" type="button">&#9664;</button><button id="next" type="button">&#9654;</button>
  <span id="legend"></span>
</div>
<div id="text"></div>
<h2>Gate saturation</h2>
<table><tr><th>layer</th><th>gate</th><th>&lt; 0.1</th><th>&gt; 0.9</th></tr>__SATURATION__</table>
<h2>Units most correlated with features of the text (click a row to show it)</h2>
<table><tr><th>feature</th><th>layer</th><th>value</th><th>unit</th><th>r</th></tr>__CORRELATED__</table>
<script>
const DATA = __DATA__;
const $ = (id) => document.getElementById(id);
const textBox = $("text");
const spans = DATA.chars.map((ch) => {
  const s = document.createElement("span");
  s.textContent = ch;
  textBox.appendChild(s);
  return s;
});
function decode(entry) {
  if (!entry.codes) {
    const raw = atob(entry.b64);
    entry.codes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) entry.codes[i] = raw.charCodeAt(i);
  }
  return entry.codes;
}
function colour(v, gate, scale) {
  if (gate) {                                   // 0 white .. 1 green
    const a = Math.max(0, Math.min(1, v));
    return `rgba(0, 150, 60, ${a.toFixed(3)})`;
  }
  const a = Math.min(1, Math.abs(v) / (scale || 1));
  return v >= 0 ? `rgba(220, 40, 40, ${a.toFixed(3)})` : `rgba(40, 90, 220, ${a.toFixed(3)})`;
}
function fillSelects() {
  DATA.layers.forEach((_, k) => $("layer").add(new Option(`layer ${k}`, k)));
  const layer = DATA.layers[0];
  for (const q of Object.keys(layer)) $("quantity").add(new Option(layer[q].label, q));
}
function shade() {
  const layer = DATA.layers[+$("layer").value];
  const entry = layer[$("quantity").value];
  const H = entry.lo.length, T = spans.length;
  const unit = Math.max(0, Math.min(H - 1, +$("unit").value || 0));
  $("unit").value = unit;
  $("unit").max = H - 1;
  const codes = decode(entry);
  const lo = entry.lo[unit], hi = entry.hi[unit];
  const scale = Math.max(Math.abs(lo), Math.abs(hi));
  for (let t = 0; t < T; t++) {
    const v = lo + (codes[unit * T + t] / 255) * (hi - lo);
    spans[t].style.backgroundColor = colour(v, entry.gate, scale);
    spans[t].title = `${entry.label}, unit ${unit}: ${v.toFixed(3)}`;
  }
  $("legend").textContent = entry.gate ? `white 0 .. green 1 (range ${lo.toFixed(2)} .. ${hi.toFixed(2)})`
      : `blue negative .. red positive (range ${lo.toFixed(2)} .. ${hi.toFixed(2)})`;
}
fillSelects();
for (const id of ["layer", "quantity", "unit"]) $(id).addEventListener("change", shade);
$("prev").addEventListener("click", () => { $("unit").value = +$("unit").value - 1; shade(); });
$("next").addEventListener("click", () => { $("unit").value = +$("unit").value + 1; shade(); });
document.querySelectorAll("tr.unit").forEach((row) => row.addEventListener("click", () => {
  $("layer").value = row.dataset.layer;
  $("quantity").value = row.dataset.quantity;
  $("unit").value = row.dataset.unit;
  shade();
}));
shade();
</script>
</body></html>
"""
