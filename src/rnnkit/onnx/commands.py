"""``rnnkit export RUN_DIR MODEL.onnx``: a trained language model as ONNX, its vocabulary beside it;
``rnnkit export MODEL.safetensors MODEL.onnx``: a sequence estimator saved by ``save``.

The vocabulary goes to ``MODEL.vocab.json`` (``{"unknown_id": 0, "chars": [...]}``, id k ≥ 1 is
``chars[k-1]``, or the word and BPE forms of :mod:`rnnkit.lm.tokens`; ``token_bytes``: the bytes
each id stands for, in hex) with the graph's interface, so a runtime needs nothing else to generate
text — but for BPE, Hugging Face ``tokenizers`` and ``MODEL.tokenizer.json`` to read the prime. An
estimator's graph is described in :mod:`rnnkit.onnx.estimators` and :mod:`rnnkit.onnx.forecaster`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.kinds import kind
from rnnkit.lm.load import add_checkpoint_option, language_model_checkpoint
from rnnkit.lm.rundir import CHECKPOINTS
from rnnkit.onnx.export import MIN_OPSET
from rnnkit.outputs import output_file, replacing
from rnnkit.ranges import Range

OPSET = Range(int, low=MIN_OPSET)      # export checks the newest (the installed onnx's)


def add_export_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export a trained language model or a saved sequence model to ONNX",
        description="Write the ONNX graph of a run's language model (inputs tokens (T, B) int64 and the "
                    "state h0 (, c0) (L, B, H), zeros for a fresh stream; outputs logits (T, B, V), h_n (, c_n)) "
                    "and its vocabulary as MODEL.vocab.json beside it; "
                    "or of a sequence model saved by 'rnnkit classify/forecast --save' or estimator.save "
                    "(inputs input (B, T, F) float32 [, lengths (B,) int64]; outputs label and probabilities, "
                    "prediction, or forecast). Needs the onnx extra: pip install 'rnnkit[onnx]'.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'rnnkit train', or a "
                   "MODEL.safetensors file written by an estimator's save")
    p.add_argument("out", metavar="MODEL.onnx", type=output_file,
                   help="the ONNX file to write (a file there is replaced, as cp does, and so are its sidecars)")
    add_checkpoint_option(p)
    p.add_argument("--lengths", action="store_true",
                   help="add the input lengths (B,) int64: sequences of different lengths, padded")
    p.add_argument("--opset", type=OPSET, default=None, help="ONNX opset (default: rnnkit.onnx.DEFAULT_OPSET)")
    p.set_defaults(func=cmd_export)


def vocab_path(model_path: Path) -> Path:
    """Where the vocabulary of ``model.onnx`` goes: ``model.vocab.json``."""
    return model_path.with_suffix(".vocab.json")


def tokenizer_path(model_path: Path) -> Path:
    """Where the BPE tokenizer of ``model.onnx`` goes: ``model.tokenizer.json``."""
    return model_path.with_suffix(".tokenizer.json")


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise UserError(f"MODEL.onnx must end in .onnx (the vocabulary goes beside it), got {args.out!r}")
    if Path(args.run_dir).suffix == ".safetensors":
        return _export_estimator(Path(args.run_dir), out, args)
    return _export_language_model(out, args)


def _export(module, out: Path, args: argparse.Namespace):
    """rnnkit.onnx.export (→ what it wrote), its errors as the command's (naming the option at fault)."""
    from rnnkit.onnx.deps import MissingDependency
    from rnnkit.onnx.errors import ExportArgumentError
    from rnnkit.onnx.export import write
    try:
        return write(module, out, lengths=args.lengths, opset=args.opset)
    except MissingDependency as exc:
        raise UserError(str(exc)) from None
    except ExportArgumentError as exc:
        raise UserError(f"--{exc.argument}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _export_estimator(source: Path, out: Path, args: argparse.Namespace) -> int:
    from rnnkit.models.persist import load_estimator
    from rnnkit.onnx.estimators import CLASSES_SUFFIX

    if language_model_checkpoint(source):
        which = source.stem if source.stem in CHECKPOINTS else str(source)
        raise UserError(f"{source} is a language-model checkpoint written by 'rnnkit train', not a saved sequence "
                        f"model: export its run directory, rnnkit export {source.parent} {out} --checkpoint {which}")
    if args.checkpoint is not None:
        raise UserError(f"--checkpoint chooses the weights of a run directory; {source} is a saved model "
                        "with one set of weights: leave --checkpoint out")
    est = load_estimator(source)
    replaced = replacing(out)
    written = _export(est, out, args)
    graph = written.model.graph
    names = lambda values: ", ".join(v.name for v in values)  # noqa: E731
    sidecar = written.sidecars.get(CLASSES_SUFFIX)
    print(f"wrote {out} ({out.stat().st_size / 1024:,.0f} KiB, {type(est).__name__}: inputs {names(graph.input)}; "
          f"outputs {names(graph.output)})" + (f" and {sidecar}" if sidecar else "") + replaced)
    return 0


def _export_language_model(out: Path, args: argparse.Namespace) -> int:
    from rnnkit.files import atomic_write, write_json
    from rnnkit.lm.load import load_run

    run = load_run(args.run_dir, args.checkpoint)
    model, vocab = run.model, run.vocab
    if vocab.size != model.cfg.vocab_size:
        raise UserError(f"{Path(args.run_dir) / 'vocab.json'} has {vocab.size} symbols (with the unknown one) "
                        f"but the model was trained on {model.cfg.vocab_size}: the run directory is inconsistent")
    replaced = replacing(out)
    _export(model, out, args)
    cfg = model.cfg
    states = kind(cfg.cell).states
    lengths = {"lengths": "(B,) int64"} if args.lengths else {}
    tokens = vocab.to_json()
    if vocab.kind == "bpe":                  # the tokenizer beside the model, named in the vocabulary
        tokens["tokenizer"] = tokenizer_path(out).name
        atomic_write(tokenizer_path(out), lambda tmp: Path(tmp).write_text(vocab.json, encoding="utf-8"))
    write_json(vocab_path(out), {
        **tokens, "token_bytes": [vocab.token_bytes(i).hex() for i in range(vocab.size)],
        "model": out.name, "cell": cfg.cell, "layers": cfg.layers, "hidden": cfg.hidden,
        "softmax": cfg.softmax, "logits": "log-probabilities" if cfg.softmax == "adaptive" else "logits",
        "inputs": {"tokens": "(T, B) int64",
                   **{f"{s}0": f"({cfg.layers}, B, {cfg.hidden}) float32; zeros for a fresh stream" for s in states},
                   **lengths},
        "outputs": {"logits": f"(T, B, {cfg.vocab_size})", **{f"{s}_n": f"({cfg.layers}, B, {cfg.hidden})" for s in states}},
    })
    step = f", step {run.step}" if run.step is not None else ""
    print(f"wrote {out} ({out.stat().st_size / 1024:,.0f} KiB, {cfg.layers}-layer {cfg.cell.upper()} {cfg.hidden}, "
          f"vocabulary {cfg.vocab_size}, from {run.weights}{step}) and {vocab_path(out)}{replaced}")
    return 0
