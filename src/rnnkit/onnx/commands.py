"""``rnnkit export RUN_DIR MODEL.onnx``: a trained language model as ONNX, its vocabulary beside it.

The vocabulary goes to ``MODEL.vocab.json`` (``{"unknown_id": 0, "chars": [...]}``, id k ≥ 1 is
``chars[k-1]``) with the graph's interface, so a runtime needs nothing else to generate text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.lm.errors import UserError
from rnnkit.outputs import output_file
from rnnkit.ranges import Range

OPSET = Range(int, low=14)       # the oldest opset with every operator the graphs use; export checks the newest


def add_export_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export a trained language model to ONNX",
        description="Write the ONNX graph of a run's language model (inputs tokens (T, B) int64, h0, c0; "
                    "outputs logits (T, B, V), h_n, c_n) and its vocabulary as MODEL.vocab.json beside it. "
                    "Needs the onnx extra: pip install 'rnnkit[onnx]'.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'rnnkit train'")
    p.add_argument("out", metavar="MODEL.onnx", type=output_file, help="the ONNX file to write")
    p.add_argument("--checkpoint", choices=["best", "latest"], default="best",
                   help="which weights (default best; latest when the run has no best yet)")
    p.add_argument("--opset", type=OPSET, default=None, help="ONNX opset (default: rnnkit.onnx.DEFAULT_OPSET)")
    p.set_defaults(func=cmd_export)


def vocab_path(model_path: Path) -> Path:
    """Where the vocabulary of ``model.onnx`` goes: ``model.vocab.json``."""
    return model_path.with_suffix(".vocab.json")


def cmd_export(args: argparse.Namespace) -> int:
    from rnnkit.lm.checkpoint import load_model, write_json
    from rnnkit.onnx import export
    from rnnkit.onnx.deps import MissingDependency

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise UserError(f"MODEL.onnx must end in .onnx (the vocabulary goes beside it), got {args.out!r}")
    model, vocab, _ = load_model(args.run_dir, args.checkpoint)
    if vocab.size != model.cfg.vocab_size:
        raise UserError(f"{Path(args.run_dir) / 'vocab.json'} has {vocab.size} symbols (with the unknown one) "
                        f"but the model was trained on {model.cfg.vocab_size}: the run directory is inconsistent")
    try:
        export(model, out, opset=args.opset)
    except MissingDependency as exc:
        raise UserError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"--opset: {exc}" if "opset" in str(exc) else str(exc)) from None
    cfg = model.cfg
    states = ["h", "c"] if cfg.cell == "lstm" else ["h"]
    write_json(vocab_path(out), {
        **vocab.to_json(), "model": out.name, "cell": cfg.cell, "layers": cfg.layers, "hidden": cfg.hidden,
        "inputs": {"tokens": "(T, B) int64", **{f"{s}0": f"({cfg.layers}, B, {cfg.hidden}), optional" for s in states}},
        "outputs": {"logits": f"(T, B, {cfg.vocab_size})", **{f"{s}_n": f"({cfg.layers}, B, {cfg.hidden})" for s in states}},
    })
    print(f"wrote {out} ({out.stat().st_size / 1024:,.0f} KiB, {cfg.layers}-layer {cfg.cell.upper()} {cfg.hidden}, "
          f"vocabulary {cfg.vocab_size}) and {vocab_path(out)}")
    return 0
