"""What the units of a trained language model do on text (after Karpathy, Johnson & Fei-Fei 2015).

``activity`` runs a model over a text one token at a time and records, for every layer and
step, the hidden state, the cell state (LSTM) and every gate; for a model of words or BPE tokens,
``per_character`` gives each character the values of the step that read it (the step whose token
completes it). From that:

- gate saturation per layer: the fraction of gate values below 0.1 or above 0.9 (a saturated
  gate is a switch: a forget gate at 1 keeps the cell, at 0 resets it);
- the units most correlated with simple features of the text: inside a string quote, inside
  brackets, position in the line;
- a self-contained HTML page (:mod:`rnnkit.diagnostics.page`) that shades each character by a
  chosen unit's value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.diagnostics.stepping import between_steps, layer_cells, run_forward
from rnnkit.kinds import KINDS

# The gates worth showing: a gated cell's (an RNN's single "gate" is its state h itself).
GATE_NAMES = {name: k.gates if k.sigmoid_gates else () for name, k in KINDS.items()}


@dataclass(frozen=True)
class Activity:
    """Per layer, name → (T, H) array: "h", "c" (LSTM) and each gate."""

    cell: str
    layers: list[dict[str, np.ndarray]]


def activity(model, ids: np.ndarray) -> Activity:
    cell = model.cfg.cell
    cells = layer_cells(model.rnn)
    x = model.embed.weight.data[ids][:, None, :]                        # (T, 1, E)
    trace = run_forward(cells, x, between_steps(model.rnn))            # norms between layers, if any
    H = model.cfg.hidden
    layers = []
    for k in range(len(cells)):
        values: dict[str, list] = {s: [] for s in KINDS[cell].states}
        for name in GATE_NAMES[cell]:
            values[name] = []
        for t in range(len(ids)):
            tape = trace.caches[t][k].tape
            gates = tape.gates[0, 0]                                     # (G·H,) activations
            for g, name in enumerate(GATE_NAMES[cell]):
                values[name].append(gates[g * H:(g + 1) * H])
            for s, states in zip(KINDS[cell].states, tape.states):
                values[s].append(states[1, 0])
        layers.append({name: np.array(v) for name, v in values.items()})
    return Activity(cell, layers)


def per_character(act: Activity, tokens, ids: np.ndarray) -> tuple[Activity, str]:
    """(the activity with each token's step repeated for each character its bytes complete, the
    text): what the page and the character features need of a word or BPE model."""
    from rnnkit.lm.tokens import StreamDecoder
    decode = StreamDecoder(tokens)
    pieces = [decode(int(i)) for i in ids]
    pieces[-1] += decode.flush()
    counts = np.array([len(p) for p in pieces])                          # (T,) characters per step
    layers = [{name: np.repeat(v, counts, axis=0) for name, v in layer.items()} for layer in act.layers]
    return Activity(act.cell, layers), "".join(pieces)


def saturation(act: Activity) -> list[dict[str, tuple[float, float]]]:
    """Per layer, gate → (fraction < 0.1, fraction > 0.9)."""
    return [{g: (float(np.mean(layer[g] < 0.1)), float(np.mean(layer[g] > 0.9)))
             for g in KINDS[act.cell].sigmoid_gates} for layer in act.layers]


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per character: inside a quoted string, inside brackets, and position within its line."""
    quote, depth, column = None, 0, 0
    in_quote, in_bracket, position = [], [], []
    for ch in text:
        in_quote.append(quote is not None)
        in_bracket.append(depth > 0)
        position.append(column)
        if quote is None and ch in "\"'":
            quote = ch
        elif quote is not None and ch == quote:
            quote = None
        elif quote is None and ch in "([{":
            depth += 1
        elif quote is None and ch in ")]}" and depth:
            depth -= 1
        column = 0 if ch == "\n" else column + 1
        if ch == "\n":
            quote = None                      # an unclosed quote does not run past the line
    return {"inside quotes": np.array(in_quote, float), "inside brackets": np.array(in_bracket, float),
            "line position": np.array(position, float)}


def top_units(act: Activity, features: dict[str, np.ndarray], k: int = 5) -> list[dict]:
    """For each layer, quantity (h, c) and feature: the k units with the largest |correlation|."""
    rows = []
    for li, layer in enumerate(act.layers):
        for q in ("h", "c"):
            if q not in layer:
                continue
            a = layer[q] - layer[q].mean(axis=0)                         # (T, H)
            for fname, f in features.items():
                fc = f - f.mean()
                denom = np.sqrt((a * a).sum(axis=0) * (fc * fc).sum())
                r = np.divide(a.T @ fc, denom, out=np.zeros(a.shape[1]), where=denom > 0)
                for unit in np.argsort(-np.abs(r))[:k]:
                    rows.append({"layer": li, "quantity": q, "feature": fname, "unit": int(unit),
                                 "r": float(r[unit])})
    return rows
