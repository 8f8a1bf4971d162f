"""The forecaster of :mod:`rnnkit.models` as ONNX: one forecast of ``output_steps`` from a window.

Inputs: ``input`` (B, L, F) float32, B windows of the last L = ``window_`` raw rows of the series
(fixed: the model reads windows of exactly that length); for a forecaster fitted with ``exog``,
also ``exog`` (B, L + H, E): the extra inputs aligned with the window and the H = ``output_steps``
steps after it. Output: ``forecast`` (B, H, F), the next H rows after each window — what
``RNNForecaster`` computes for one window (``predict(h, history=window)`` for h ≤ H). The graph
does the window normalisation of :mod:`rnnkit.models.series` (per ``normalize``):

    "global"  x̃ = (x − μ) / σ                      forecast = z σ + μ
    "last"    x̃ = (x − x_L) / σ_Δ                  forecast = z σ_Δ + x_L   (x_L: the window's last row)
    "both"    x̃ = [(x − x_L) / σ_Δ, (x − μ) / σ]   forecast as "last"

rows [x̃_s, ẽ_{s+1}, ..., ẽ_{s+H}] with ẽ = (e − μ_e) / σ_e, then the network (rnnkit.onnx.network).
Longer horizons (``predict(h)`` with h > H) feed forecasts back in a loop: that loop stays in the
caller (append the forecast to the window, drop its oldest rows, run again). float32, as the
other estimators (rnnkit.onnx.estimators).
"""

from __future__ import annotations

from rnnkit.models.forecaster import RNNForecaster
from rnnkit.models.series import target_scale
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
    x = g.add_input("input", g.elem_type, ["batch", L, F])                               # (B, L, F)
    rows, offset = normalised_rows(g, est, x)                                            # (B, L, ·)
    z = sequence_net(g, est.net_, g.op("Transpose", rows, perm=[1, 0, 2], hint="rows_time_major"), None)
    z = g.op("Reshape", z, g.ints([0, H, F]), hint="z_steps")                             # (B, H, F)
    scale = g.const(target_scale(est.normalize, est.scale_), "target_scale")
    g.add_output(g.op("Add", g.op("Mul", z, scale), offset, hint="forecast_raw"), "forecast", g.elem_type,
                 ["batch", H, F])
    g.metadata["rnnkit.estimator"] = "RNNForecaster"


def normalised_rows(g: Graph, est: RNNForecaster, x: str) -> tuple[str, str]:
    """(the network's input rows (B, L, F' + H·E), the offset added back to forecasts: (F,) or (B, 1, F))."""
    sc, L = est.scale_, est.window_
    mean, std = g.const(sc.mean, "x_mean"), g.const(sc.std, "x_std")
    if est.normalize == "global":
        offset, scale = mean, std
    else:
        offset, scale = g.op("Slice", x, g.ints([L - 1]), g.ints([L]), g.ints([1]), hint="x_last"), \
            g.const(sc.step, "x_step")                                                    # (B, 1, F)
    parts = [g.op("Div", g.op("Sub", x, offset), scale, hint="x_norm")]
    if est.normalize == "both":
        parts.append(g.op("Div", g.op("Sub", x, mean), std, hint="x_global"))
    if est.n_exog_:
        parts += exog_rows(g, est)
    rows = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=2, hint="rows")
    return rows, offset


def exog_rows(g: Graph, est: RNNForecaster) -> list[str]:
    """The input ``exog`` (B, L + H, E), standardised, as H blocks (B, L, E): block k holds ẽ_{s+1+k}."""
    L, H, sc = est.window_, int(est.output_steps), est.scale_
    e = g.add_input("exog", g.elem_type, ["batch", L + H, est.n_exog_])
    ez = g.op("Div", g.op("Sub", e, g.const(sc.exog_mean, "e_mean")), g.const(sc.exog_std, "e_std"), hint="e_norm")
    return [g.op("Slice", ez, g.ints([1 + k]), g.ints([L + 1 + k]), g.ints([1]), hint=f"e_ahead{k + 1}")
            for k in range(H)]
