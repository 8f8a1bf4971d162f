"""The command-line side of the diagnostics: ``rnnkit gradflow``, ``task``, ``inspect``, ``plot``.

Each function here parses nothing itself: it receives the parsed arguments, runs the library
function and prints.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np

from rnnkit.diagnostics.tasks import TASKS
from rnnkit.errors import UserError
from rnnkit.init import SCHEMES
from rnnkit.kinds import NAMES, NONLINEARITIES
from rnnkit.layer_flags import layer_accepts
from rnnkit.lm.load import add_checkpoint_option
from rnnkit.outputs import output_file
from rnnkit.ranges import COUNT, FINITE, POSITIVE, SEED

CELL_NAMES = NAMES                    # rnn, lstm, gru: the layers gradflow and task build


def cell_list(text: str) -> list[str]:
    """argparse ``type=`` of ``--cells``: comma-separated names of CELL_NAMES."""
    cells = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELL_NAMES]
    if unknown or not cells:
        raise argparse.ArgumentTypeError(f"must list {', '.join(CELL_NAMES)} (one or more, separated by "
                                         f"commas), got {text!r}")
    return cells


def scheme_list(text: str) -> list[str]:
    """argparse ``type=`` of gradflow's ``--init``: comma-separated names of rnnkit.init.SCHEMES."""
    schemes = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown or not schemes:
        raise argparse.ArgumentTypeError(f"must list {', '.join(SCHEMES)} (one or more, separated by commas), "
                                         f"got {text!r}")
    return schemes


def _add_layer_options(p, compare: bool) -> None:
    """--init, --nonlinearity and --layer-norm, the same on gradflow (columns to compare) and task."""
    if compare:
        p.add_argument("--init", type=scheme_list, default=["default"], metavar="SCHEMES",
                       help=f"initialisations to compare, comma-separated among {', '.join(SCHEMES)}: a column "
                            "per cell and scheme on the same inputs (kaiming: He, gain of the cell's φ) "
                            "(default: default)")
    else:
        p.add_argument("--init", choices=SCHEMES, default="default",
                       help="initialisation of the recurrent weights (kaiming: He, with the gain of the "
                            "cell's nonlinearity) (default: default)")
    p.add_argument("--nonlinearity", choices=NONLINEARITIES, default="tanh",
                   help="the plain RNN's nonlinearity (relu: where He's gain sqrt(2) belongs) (default tanh)")
    p.add_argument("--layer-norm", action="store_true",
                   help="also layer-normalised cells, a column each" if compare else "layer-normalised cells")


def _check_layer_norm(cells: list[str], wanted: bool) -> None:
    lacking = [c for c in cells if not layer_accepts(c, "layer_norm")]
    if wanted and lacking:
        raise UserError(f"--layer-norm needs recurrent layers with the layer_norm option, which the "
                        f"{', '.join(lacking)} layer{'s' if len(lacking) > 1 else ''} of this version of rnnkit "
                        f"{'do' if len(lacking) > 1 else 'does'} not have")


def _variants(args) -> list:
    """The InitOptions of every column: each --init scheme, each with and without --layer-norm."""
    from rnnkit.diagnostics.gradflow import InitOptions
    base = InitOptions(args.orthogonal, args.forget_bias, args.seq_len if args.chrono else 0, args.rnn_scale,
                       nonlinearity=args.nonlinearity)
    norms = (False, True) if args.layer_norm else (False,)
    return [replace(base, scheme=s, layer_norm=ln) for s in args.init for ln in norms]


def add_gradflow_parser(sub) -> None:
    p = sub.add_parser("gradflow", help="gradient norm reaching each time step (vanishing gradients)",
                       description="Norm of dL/dh_t (and dL/dc_t for the LSTM) for every step t, for a "
                                   "loss on the final step, plus the one-step Jacobian norms.")
    p.add_argument("run_dir", nargs="?", metavar="DIR",
                   help="a trained language model (a run directory of 'rnnkit train') instead of fresh layers")
    add_checkpoint_option(p)
    p.add_argument("--cells", type=cell_list, default=list(CELL_NAMES),
                   help=f"comma-separated cell types (default {','.join(CELL_NAMES)})")
    p.add_argument("--hidden", type=COUNT, default=64, help="hidden units (default 64)")
    p.add_argument("--input-size", type=COUNT, default=16, help="input features (default 16)")
    p.add_argument("--seq-len", type=COUNT, default=100, help="sequence length T (default 100)")
    p.add_argument("--batch", type=COUNT, default=32, help="random sequences averaged over (default 32)")
    p.add_argument("--orthogonal", action="store_true", help="orthogonal recurrent weights")
    p.add_argument("--forget-bias", type=FINITE, default=None, help="LSTM forget-gate bias (e.g. 1)")
    p.add_argument("--chrono", action="store_true", help="LSTM chrono initialisation for T = --seq-len")
    p.add_argument("--rnn-scale", type=FINITE, default=1.0, help="scale of the plain RNN's W_hh (default 1)")
    _add_layer_options(p, compare=True)
    p.add_argument("--text", nargs="+", metavar="PATH", help="with DIR: text to feed (default: "
                   "the run's own corpus)")
    p.add_argument("--no-jacobian", action="store_true", help="skip the Jacobian norms")
    p.add_argument("--plot", metavar="PNG", type=output_file, help="write a log-scale plot (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print one JSON object: cell -> per-step norms")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=cmd_gradflow)


def cmd_gradflow(args: argparse.Namespace) -> int:
    from rnnkit.diagnostics.gradflow import checkpoint_flow, compare_flows, format_table, plot
    if args.plot:
        _require_matplotlib()                     # before the work, not after it
    if args.text and not args.run_dir:
        raise UserError("--text needs a run directory DIR (the text is fed to a trained model): "
                        "rnnkit gradflow DIR --text PATH")
    if args.checkpoint and not args.run_dir:
        raise UserError("--checkpoint chooses the weights of a run directory: give the directory first, "
                        "rnnkit gradflow DIR --checkpoint best|latest|PATH")
    fresh_only = [name for name, on in (("--init", args.init != ["default"]), ("--layer-norm", args.layer_norm),
                                        ("--nonlinearity", args.nonlinearity != "tanh")) if on]
    if args.run_dir and fresh_only:
        raise UserError(f"{', '.join(fresh_only)} choose{'s' if len(fresh_only) == 1 else ''} how fresh layers "
                        "are built; a run directory's model has its own weights (drop DIR to compare fresh layers)")
    if args.run_dir:
        from rnnkit.lm.load import load_model
        model, vocab, config = load_model(args.run_dir, args.checkpoint)
        ids = _checkpoint_text(vocab, config, args.text)
        if len(ids) < args.seq_len + 1:
            raise UserError(f"--seq-len {args.seq_len} needs at least {args.seq_len + 1} characters of text, "
                            f"got {len(ids)}; give more text (--text) or a smaller --seq-len")
        flows = {model.cfg.cell: checkpoint_flow(model, ids, args.seq_len, args.batch, args.seed,
                                                 not args.no_jacobian)}
        title = f"trained {model.cfg.cell} ({args.run_dir}), T = {args.seq_len}"
    else:
        _check_layer_norm(args.cells, args.layer_norm)
        variants = _variants(args)
        flows = compare_flows(args.cells, variants, args.hidden, args.seq_len, args.batch, args.input_size,
                              args.seed, not args.no_jacobian)
        title = f"fresh layers, H = {args.hidden}, T = {args.seq_len}" + _init_label(variants[0])
    if args.plot:
        plot(flows, args.plot, title)
    if args.json:
        print(json.dumps({name: f.h_norms.tolist() for name, f in flows.items()}))
    else:
        print(f"||dL/dh_t|| for a loss at the last step ({title}):")
        print(format_table(flows))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'rnnkit[plot]'") from None


def _init_label(opts, with_scheme: bool = False) -> str:
    """", orthogonal W_hh, forget bias 1" and so on: the non-default initialisation options (with
    ``with_scheme`` also the scheme and layer norm, which gradflow shows as columns instead)."""
    parts = [f"{opts.scheme} init"] if with_scheme and opts.scheme != "default" else []
    parts += [label for label, on in (("orthogonal W_hh", opts.orthogonal), ("chrono", opts.chrono))
             if on]
    if opts.forget_bias is not None:
        parts.append(f"forget bias {opts.forget_bias:g}")
    if opts.rnn_scale != 1.0:
        parts.append(f"RNN scale {opts.rnn_scale:g}")
    if opts.nonlinearity != "tanh":
        parts.append(f"RNN {opts.nonlinearity}")
    if with_scheme and opts.layer_norm:
        parts.append("layer norm")
    return "".join(f", {p}" for p in parts)


def _checkpoint_text(vocab, config: dict, paths: list[str] | None) -> np.ndarray:
    from rnnkit.lm.config import TrainConfig
    from rnnkit.errors import CorpusError
    from rnnkit.lm.text import load_corpus
    if paths:
        from rnnkit.lm.data import read_corpus
        text, _, _ = read_corpus(paths)
    else:
        try:
            text, _, _ = load_corpus(TrainConfig.from_json(config["train"]))
        except CorpusError as exc:
            raise CorpusError(f"the text this run was trained on cannot be read any more ({exc}); "
                              "give text to use") from None
        text = text[-200_000:]                        # the held-out end of the run's own corpus
    ids, _ = vocab.encode(text)
    return ids


def add_task_parser(sub) -> None:
    p = sub.add_parser("task", help="long-range memory tasks: adding problem, copy memory",
                       description="Train a recurrent layer on a long-range memory task and report the "
                                   "test metric against the trivial baseline.")
    p.add_argument("name", choices=TASKS, help="adding: MSE of the sum of two marked "
                   "values; copy: recall 10 symbols after a delay of --seq-len blanks")
    p.add_argument("--seq-len", type=COUNT, default=50, help="sequence length / delay T (default 50)")
    p.add_argument("--cell", choices=CELL_NAMES, default="lstm", help="recurrent layer (default lstm)")
    p.add_argument("--hidden", type=COUNT, default=64, help="hidden units (default 64)")
    p.add_argument("--steps", type=COUNT, default=1000, help="training steps (default 1000)")
    p.add_argument("--lr", type=POSITIVE, default=1e-2, help="Adam learning rate (default 1e-2)")
    p.add_argument("--batch", type=COUNT, default=64, help="sequences per step (default 64)")
    p.add_argument("--eval-every", type=COUNT, default=100, help="steps between test evaluations")
    p.add_argument("--forget-bias", type=FINITE, default=None, help="LSTM forget-gate bias (e.g. 1)")
    p.add_argument("--chrono", action="store_true", help="LSTM chrono initialisation for T = --seq-len")
    p.add_argument("--orthogonal", action="store_true", help="orthogonal recurrent weights")
    _add_layer_options(p, compare=False)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_task)


def cmd_task(args: argparse.Namespace) -> int:
    import sys

    from rnnkit.diagnostics.gradflow import InitOptions
    from rnnkit.diagnostics.tasks import run_task
    if args.name == "adding" and args.seq_len < 2:
        raise UserError(f"the adding problem needs --seq-len >= 2, got {args.seq_len}")
    log = None if args.json else (lambda msg: print(msg, flush=True))
    _check_layer_norm([args.cell], args.layer_norm)
    init = InitOptions(args.orthogonal, args.forget_bias, args.seq_len if args.chrono else 0, scheme=args.init,
                       nonlinearity=args.nonlinearity, layer_norm=args.layer_norm)
    r = run_task(args.name, args.seq_len, args.cell, args.hidden, args.steps, args.lr, args.batch,
                 args.seed, args.eval_every, log=log, init=init)
    ratio = {name: float(f.h_norms[0] / f.h_norms[-1]) for name, f in
             (("before", r.flow_before), ("after", r.flow_after))}
    if args.json:
        print(json.dumps({"task": r.task, "cell": r.cell, "seq_len": r.seq_len, "steps": r.steps,
                          "init": init.scheme, "nonlinearity": init.nonlinearity, "layer_norm": init.layer_norm,
                          "test_metric": r.test_metric, "baseline": r.baseline, "solved": r.solved,
                          "copy_accuracy": r.copy_accuracy, "seconds": r.seconds,
                          "curve": [[s, m] for s, m in r.curve],
                          "grad_first_over_last": ratio,
                          "grad_norms_after": r.flow_after.h_norms.tolist()}))
    else:
        what = "MSE" if r.task == "adding" else "cross-entropy (nats/position)"
        print(f"{r.task}, T = {r.seq_len}, {r.cell.upper()} {args.hidden}{_init_label(init, True)}: test {what} {r.test_metric:.4f} "
              f"vs baseline {r.baseline:.4f} ({'solved' if r.solved else 'not solved'}; "
              f"{r.steps} steps, {r.seconds:.0f} s)"
              + (f"; symbols recalled {100 * r.copy_accuracy:.1f}%" if r.copy_accuracy is not None else ""))
        print(f"gradient of the last-step loss reaching step 1, relative to step T: "
              f"{ratio['before']:.2e} at initialisation, {ratio['after']:.2e} after training")
    sys.stdout.flush()
    return 0


def add_inspect_parser(sub) -> None:
    p = sub.add_parser("inspect", help="HTML page of unit and gate activity of a trained model on text",
                       description="Run a language model over text and write a self-contained HTML page "
                                   "that shades each character by a chosen unit's value; print gate "
                                   "saturation and the units most correlated with text features.")
    p.add_argument("run_dir", metavar="DIR", help="run directory written by 'rnnkit train'")
    p.add_argument("paths", nargs="*", metavar="PATH", help="text (default: the end of the run's corpus)")
    p.add_argument("--max-chars", type=COUNT, default=2000,
                   help="characters (a word or BPE run: tokens) to show (default 2000)")
    p.add_argument("--out", default="inspect.html", metavar="HTML", type=output_file,
                   help="page to write (default inspect.html)")
    add_checkpoint_option(p)
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rnnkit.diagnostics.inspect import activity, per_character, saturation, text_features, top_units
    from rnnkit.diagnostics.page import render
    from rnnkit.lm.load import load_model
    from rnnkit.lm.data import caution_unknown
    model, vocab, config = load_model(args.run_dir, args.checkpoint)
    ids = _checkpoint_text(vocab, config, args.paths or None)[: args.max_chars]
    caution_unknown(int(np.count_nonzero(ids == 0)), len(ids), "the model reads them all as one unknown "
                    "token, so the page and the correlations say little about this text")
    act = activity(model, ids)
    text = vocab.decode(ids)
    if vocab.kind != "char":                      # words, BPE: one step per token, shown per character
        act, text = per_character(act, vocab, ids)
    sat = saturation(act)
    corr = top_units(act, text_features(text), k=5)
    title = f"rnnkit inspect: {model.cfg.layers}-layer {model.cfg.cell.upper()} {model.cfg.hidden} ({args.run_dir})"
    Path(args.out).write_text(render(text, act, sat, corr, title), encoding="utf-8")
    for k, layer in enumerate(sat):
        stats = ", ".join(f"{g}: {100 * lo:.1f}% < 0.1, {100 * hi:.1f}% > 0.9" for g, (lo, hi) in layer.items())
        print(f"layer {k} gate saturation: {stats or 'no sigmoid gates'}")
    for feature in ("inside quotes", "inside brackets", "line position"):
        best = max((r for r in corr if r["feature"] == feature), key=lambda r: abs(r["r"]))
        print(f"most correlated with {feature}: layer {best['layer']} {best['quantity']} unit "
              f"{best['unit']} (r = {best['r']:+.3f})")
    print(f"page written to {args.out} ({len(text)} characters)")
    return 0


def add_plot_parser(sub) -> None:
    p = sub.add_parser("plot", help="a training run's curves as a PNG and an HTML page",
                       description="Draw a run's training and validation bits per character against "
                                   "the characters seen and the seconds of training, its learning rate "
                                   "and its validation samples: a PNG (needs matplotlib: pip install "
                                   "'rnnkit[plot]') and a self-contained HTML page. A run still training "
                                   "can be drawn at any time.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'rnnkit train'")
    p.add_argument("--png", metavar="PNG", type=output_file, help="the PNG to write (default RUN_DIR/training.png)")
    p.add_argument("--html", metavar="HTML", type=output_file,
                   help="the page to write (default RUN_DIR/training.html)")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from rnnkit.diagnostics.training import draw_run
    if args.png:
        from rnnkit.plots import require_matplotlib
        require_matplotlib("--png")               # before the work, not after it
    for path in draw_run(args.run_dir, args.png, args.html):
        print(f"drawn: {path}")
    return 0
