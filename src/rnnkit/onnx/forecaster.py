"""The forecaster of :mod:`rnnkit.models` as ONNX: one forecast of ``output_steps`` from a window.

Inputs: ``input`` (B, L, F) float32, B windows of the last L = ``window_`` raw rows of the series
(fixed: the model reads windows of exactly that length); ``start`` (B,) int64 when the model
removes seasonal offsets: the row of each window's first row, counted from the first row of the
training series (``predict(h, history=w)`` takes ``len(w) − L`` for it; the forecast after the
training series: ``n_train_ − L``); for a forecaster fitted with ``exog``, also ``exog``
(B, L + H, E): the extra inputs aligned with the window and the H = ``output_steps`` steps after
it. Outputs: ``forecast`` (B, H, F), the next H rows after each window — what ``RNNForecaster``
computes for one window (``predict(H, history=...)``, the median after a transform) — and
``one_step`` (B, F), the mean of the next row (``predict(X_new)``'s one-step forecasts, bias-adjusted:
``RNNForecaster.one_step_variance``). The graph is the model of :mod:`rnnkit.models.forecaster`:

    y = g_λ(x)                       Log (λ = 0), Pow then Sub and Div (0 < λ < 1), Sub (λ = 1)
    a = y − S[(start + 0..L−1) mod m]     a Gather of the stored offsets, then Sub
    â = Aᵀ a + b                      the linear path: one batched MatMul with A (F, L, H)
      + α σ_r · net(rows)             the correction (absent when α = 0; an ensemble's mean:
                                      one network per member, a Sum, a Div); rows as in
                                      rnnkit.models.series, from a: "global" (a − μ)/σ, "last"
                                      (a − a_L)/σ_Δ, or both, then [ã_s, ẽ_{s+1..s+H}]
    forecast = g_λ⁻¹(ŷ),  ŷ = â + S[(start + L + 0..H−1) mod m]   Exp / Pow / Add
    one_step = g_λ⁻¹(ŷ_1) (1 + v_1² (1 − λ) / (2 (λ ŷ_1 + 1)²))      Slice, then Mul by the factor

Longer horizons (``predict(h)`` with h > H) feed forecasts back in a loop: that loop stays in the
caller (append the forecast to the window, drop its oldest rows, add H to ``start``, run again).
Prediction intervals (``predict_interval``) are not part of the graph: their coverage is chosen
when they are asked for. float32, as the other estimators (rnnkit.onnx.estimators).
"""

from __future__ import annotations

import numpy as np

from rnnkit.models.forecaster import RNNForecaster
from rnnkit.models.transforms import BASE_FLOOR
from rnnkit.onnx.deps import require_onnx
from rnnkit.onnx.errors import ExportValueError
from rnnkit.onnx.estimators import check_fitted, float32
from rnnkit.onnx.graph import Graph
from rnnkit.onnx.network import sequence_net
from rnnkit.onnx.registry import register_exporter


@register_exporter(RNNForecaster, dtype=float32)
def export_forecaster(g: Graph, est: RNNForecaster, lengths: bool) -> None:
    check_fitted(est)
    L, H, F = est.window_, int(est.output_steps), est.n_features_in_
    if lengths:
        raise ExportValueError("lengths", f"rnnkit.onnx.export: lengths=True does not apply to an RNNForecaster: "
                                          f"it forecasts from windows of exactly window_={L} rows; export it "
                                          f"with lengths=False")
    p = est.path_
    x = g.add_input("input", g.elem_type, ["batch", L, F])                               # (B, L, F)
    start = g.add_input("start", require_onnx().TensorProto.INT64, ["batch"]) if np.any(p.offsets) else None
    e = g.add_input("exog", g.elem_type, ["batch", L + H, est.n_exog_]) if est.n_exog_ else None  # (unused if α = 0)
    y = box_cox(g, x, p.lam)
    a = g.op("Sub", y, offsets_at(g, p.offsets, start, 0, L), hint="a") if start else y  # (B, L, F)
    A, b = p.affine(L, H)                                                                # (F, L, H), (F, H)
    a_t = g.op("Unsqueeze", g.op("Transpose", a, perm=[0, 2, 1]), g.ints([2]), hint="a_rows")  # (B, F, 1, L)
    lin = g.op("Squeeze", g.op("MatMul", a_t, g.const(A, "ar_map"), hint="ar"), g.ints([2]))   # (B, F, H)
    out = g.op("Transpose", g.op("Add", lin, g.const(b, "ar_bias")), perm=[0, 2, 1], hint="linear")  # (B, H, F)
    if est.correction_ != 0:
        rows = normalised_rows(g, est, a, e)
        x_tm = g.op("Transpose", rows, perm=[1, 0, 2], hint="rows_time_major")
        z = sequence_net(g, est.net_, x_tm, None)                         # (B, H·F), the ensemble's mean
        z = g.op("Reshape", z, g.ints([0, H, F]), hint="z_steps")                         # (B, H, F)
        out = g.op("Add", out, g.op("Mul", z, g.const(est.correction_ * p.scale, "correction_scale")),
                   hint="a_hat")
    if start:
        out = g.op("Add", out, offsets_at(g, p.offsets, start, L, H), hint="y_hat")
    g.add_output(inverse_box_cox(g, out, p.lam), "forecast", g.elem_type, ["batch", H, F])
    g.add_output(one_step_mean(g, out, p.lam, est.one_step_variance()), "one_step", g.elem_type, ["batch", F])
    g.metadata["rnnkit.estimator"] = "RNNForecaster"


def offsets_at(g: Graph, offsets: np.ndarray, start: str, first: int, T: int) -> str:
    """S at rows start + first .. start + first + T − 1: (B, T, F), from offsets (F, m)."""
    m = offsets.shape[1]
    rows = g.op("Add", g.op("Unsqueeze", start, g.ints([1])), g.ints(np.arange(first, first + T)), hint="rows")
    phase = g.op("Mod", rows, g.ints(m), hint="phase")                                   # (B, T)
    return g.op("Gather", g.const(np.ascontiguousarray(offsets.T), "offsets"), phase, axis=0, hint="seasonal")


def _mixed(g: Graph, lam: np.ndarray, parts: dict[float, str], hint: str) -> str:
    """Per column, the part of its λ class (0, 1, or other): Where over the columns."""
    keys = list(parts)
    out = parts[keys[-1]]
    for key in keys[:-1]:
        cls = lam == 0 if key == 0 else (lam == 1 if key == 1 else (lam != 0) & (lam != 1))
        out = g.op("Where", g.const(cls, f"{hint}_is_{key}", dtype=np.bool_), parts[key], out, hint=hint)
    return out


def box_cox(g: Graph, x: str, lam: np.ndarray) -> str:
    """g_λ(x) per column (rnnkit.models.transforms.box_cox)."""
    parts = {}
    if np.any(lam == 0):
        parts[0] = g.op("Log", x, hint="log_x")
    if np.any(lam == 1):
        parts[1] = g.op("Sub", x, g.const(np.array(1.0), "one"), hint="x_minus_1")
    if np.any((lam != 0) & (lam != 1)):
        safe = np.where((lam == 0) | (lam == 1), 1.0, lam)
        powered = g.op("Pow", x, g.const(safe, "lambda"), hint="x_pow")
        parts[0.5] = g.op("Div", g.op("Sub", powered, g.const(np.array(1.0), "one")), g.const(safe, "lambda"),
                          hint="box_cox")
    return _mixed(g, lam, parts, "box_cox_y")


def one_step_mean(g: Graph, y_hat: str, lam: np.ndarray, var: np.ndarray) -> str:
    """(B, F) the mean of the next value from ŷ (B, H, F) (RNNForecaster.predict(X_new)):
    g_λ⁻¹(ŷ_1) (1 + var (1 − λ) / (2 (λ ŷ_1 + 1)²)) (rnnkit.models.transforms.bias_adjusted_inverse)."""
    y1 = g.op("Squeeze", g.op("Slice", y_hat, g.ints([0]), g.ints([1]), g.ints([1])), g.ints([1]),
              hint="y_hat_1")                                                        # (B, F)
    x1 = inverse_box_cox(g, y1, lam)
    half_var = var * (1.0 - lam) / 2.0                                               # (F,) 0 where λ = 1
    if not np.any(half_var):
        return g.op("Identity", x1, hint="one_step_mean")
    base = g.op("Max", g.op("Add", g.op("Mul", y1, g.const(lam, "lambda_1")), g.const(np.array(1.0), "one")),
                g.const(np.array(BASE_FLOOR), "base_floor"), hint="base_1")
    factor = g.op("Add", g.const(np.array(1.0), "one"),
                  g.op("Div", g.const(half_var, "half_variance"), g.op("Mul", base, base)), hint="bias_factor")
    return g.op("Mul", x1, factor, hint="one_step_mean")


def inverse_box_cox(g: Graph, y: str, lam: np.ndarray) -> str:
    """g_λ⁻¹(y) per column (rnnkit.models.transforms.inverse_box_cox)."""
    parts = {}
    if np.any(lam == 0):
        parts[0] = g.op("Exp", y, hint="exp_y")
    if np.any(lam == 1):
        parts[1] = g.op("Add", y, g.const(np.array(1.0), "one"), hint="y_plus_1")
    if np.any((lam != 0) & (lam != 1)):
        safe = np.where((lam == 0) | (lam == 1), 1.0, lam)
        base = g.op("Max", g.op("Add", g.op("Mul", y, g.const(safe, "lambda")), g.const(np.array(1.0), "one")),
                    g.const(np.array(BASE_FLOOR), "base_floor"), hint="base")
        parts[0.5] = g.op("Pow", base, g.const(1.0 / safe, "inv_lambda"), hint="y_pow")
    return _mixed(g, lam, parts, "x_hat")


def normalised_rows(g: Graph, est: RNNForecaster, a: str, e: str | None) -> str:
    """The network's input rows (B, L, F' + H·E) from the adjusted windows a (B, L, F)."""
    sc, L = est.scale_, est.window_
    mean, std = g.const(sc.mean, "a_mean"), g.const(sc.std, "a_std")
    if est.normalize == "global":
        offset, scale = mean, std
    else:
        offset, scale = g.op("Slice", a, g.ints([L - 1]), g.ints([L]), g.ints([1]), hint="a_last"), \
            g.const(sc.step, "a_step")                                                    # (B, 1, F)
    parts = [g.op("Div", g.op("Sub", a, offset), scale, hint="a_norm")]
    if est.normalize == "both":
        parts.append(g.op("Div", g.op("Sub", a, mean), std, hint="a_global"))
    if e is not None:
        parts += exog_rows(g, est, e)
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=2, hint="rows")


def exog_rows(g: Graph, est: RNNForecaster, e: str) -> list[str]:
    """The input ``exog`` (B, L + H, E), standardised, as H blocks (B, L, E): block k holds ẽ_{s+1+k}."""
    L, H, sc = est.window_, int(est.output_steps), est.scale_
    ez = g.op("Div", g.op("Sub", e, g.const(sc.exog_mean, "e_mean")), g.const(sc.exog_std, "e_std"), hint="e_norm")
    return [g.op("Slice", ez, g.ints([1 + k]), g.ints([L + 1 + k]), g.ints([1]), hint=f"e_ahead{k + 1}")
            for k in range(H)]
