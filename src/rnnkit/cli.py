"""The ``rnnkit`` command line. It only parses arguments and hands them to the library.

    rnnkit                                  the commands, each with its one-line summary
    rnnkit train [PATH ...]                 train a character language model (default: stdlib)
    rnnkit eval DIR PATH ... [--json]       bits per character and perplexity on text
    rnnkit generate DIR --prime TEXT ...    stream generated text to stdout
    rnnkit gradflow [DIR] [--cells ...]     gradient norm reaching each time step
    rnnkit task adding|copy [--seq-len T]   long-range memory tasks against their baselines
    rnnkit inspect DIR [PATH ...]           HTML page of unit and gate activity on text
    rnnkit plot DIR                         a run's curves: training.png and training.html
    rnnkit bench [--quick] [--lm SECONDS]   time rnnkit against PyTorch and onnxruntime
    rnnkit export DIR MODEL.onnx            the language model as ONNX, vocabulary beside it
    rnnkit export M.safetensors MODEL.onnx  a saved classifier/regressor/forecaster as ONNX
    rnnkit classify TRAIN TEST | --dataset  sequence classification against baselines
    rnnkit forecast SERIES --horizon N      forecasting against last-value and seasonal naive

Every command that uses a trained language model takes ``--checkpoint best|latest|PATH``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from contextlib import contextmanager
from dataclasses import fields

from rnnkit.bench.commands import add_bench_parser
from rnnkit.cli_parser import TopParser
from rnnkit.diagnostics.commands import add_gradflow_parser, add_inspect_parser, add_plot_parser, add_task_parser
from rnnkit.errors import EXIT_INTERRUPTED, Caution, Note, exit_code, user_message
from rnnkit.lm.config import DEFAULT_TEMPERATURE, GENERATE_LIMITS, TRAIN_CHOICES, TRAIN_LIMITS, TrainConfig
from rnnkit.lm.load import add_checkpoint_option
from rnnkit.lm.softmax import AUTO_ADAPTIVE
from rnnkit.lm.tokens import DEFAULT_SIZES
from rnnkit.onnx.commands import add_export_parser
from rnnkit.outputs import output_dir
from rnnkit.models.commands import add_classify_parser, add_forecast_parser

def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a language model of characters, words or BPE tokens",
                       argument_default=argparse.SUPPRESS,
                       description="Train a language model of characters (or of words or BPE tokens: "
                                   "--tokens) on UTF-8 text (files or directories, read recursively); "
                                   "with no PATH, on the Python standard library's sources.")
    d = TrainConfig()
    p.add_argument("paths", nargs="*", metavar="PATH", help="text files or directories")
    p.add_argument("--cell", choices=TRAIN_CHOICES["cell"], help=f"recurrent cell (default {d.cell})")
    p.add_argument("--peephole", action="store_true", help="LSTM with peephole connections")
    p.add_argument("--norm-between", choices=TRAIN_CHOICES["norm_between"],
                   help="batch or layer normalisation after each recurrent layer, before the next and the "
                        f"output layer (default {d.norm_between})")
    p.add_argument("--init", choices=TRAIN_CHOICES["init"],
                   help="initialisation of the recurrent weights: PyTorch's default, Glorot, orthogonal "
                        f"W_hh, or He (kaiming) with the cell's gain (default {d.init})")
    p.add_argument("--layer-norm", action="store_true", help="layer-normalised recurrent cells")
    p.add_argument("--recurrent-dropout", type=TRAIN_LIMITS["recurrent_dropout"],
                   help=f"dropout of the state entering the recurrent product, one mask per sequence "
                        f"(default {d.recurrent_dropout})")
    p.add_argument("--zoneout", type=TRAIN_LIMITS["zoneout"],
                   help=f"probability of keeping each unit's previous state at a step (default {d.zoneout})")
    for name, what in [("layers", "recurrent layers"), ("hidden", "hidden units per layer"),
                       ("embed", "embedding size"), ("dropout", "dropout probability"),
                       ("seq-len", "BPTT chunk length"), ("batch-size", "parallel streams"),
                       ("lr", "learning rate"), ("clip", "gradient-norm clip, 0 = off"),
                       ("warmup", "warm-up steps"),
                       ("max-steps", "exactly this many steps, 0 = until --time-budget; given alone, "
                                     "no time limit: the same run on every run and machine"),
                       ("schedule-steps", "the step where the cosine schedule reaches 5%% of --lr; 0 = "
                                          "--max-steps, or fitted to --time-budget"),
                       ("time-budget", "seconds of training, 0 = no limit (then give --max-steps)"),
                       ("val-fraction", "held-out fraction at the end of the text"),
                       ("eval-every", "steps between validations"),
                       ("sample-chars", "length of the final sample"), ("seed", "random seed"),
                       ("threads", "engine threads per process, 0 = the cores this process may use "
                                   "divided among the processes of its machine (mpiexec -n)")]:
        field = name.replace("-", "_")
        p.add_argument(f"--{name}", type=TRAIN_LIMITS[field],
                       help=f"{what} (default {getattr(d, field)})")
    p.add_argument("--tokens", choices=TRAIN_CHOICES["tokens"],
                   help=f"what the model predicts: characters, words (the --vocab-size most frequent, "
                        f"rarer ones spelled out) or byte-level BPE (needs the bpe extra) (default {d.tokens})")
    p.add_argument("--vocab-size", type=TRAIN_LIMITS["vocab_size"],
                   help="words (--tokens word) or tokens (--tokens bpe) to learn; 0 = the default "
                        f"({', '.join(f'{k} {v}' for k, v in DEFAULT_SIZES.items())})")
    p.add_argument("--softmax", choices=TRAIN_CHOICES["softmax"],
                   help=f"output layer: auto = adaptive from {AUTO_ADAPTIVE} ids on, else full (default {d.softmax})")
    p.add_argument("--precision", choices=TRAIN_CHOICES["precision"],
                   help="the training step's recurrent products: bfloat16 operands with float32 sums "
                        f"(rnnkit.autocast; needs AVX512_BF16 or AMX) or float32 (default {d.precision})")
    p.add_argument("--optimizer", choices=TRAIN_CHOICES["optimizer"], help=f"(default {d.optimizer})")
    p.add_argument("--schedule", choices=TRAIN_CHOICES["schedule"], help=f"(default {d.schedule})")
    p.add_argument("--out", metavar="DIR", type=output_dir, help=f"run directory (default {d.out})")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    again.add_argument("--overwrite", action="store_true",
                       help="start again in an --out that holds a run: its files are replaced once the new "
                            "run has saved its first checkpoint (without --resume or --overwrite, such an "
                            "--out is refused)")
    p.add_argument("--plot", action="store_true", help="at the end, draw the run's curves into "
                   "training.png (needs matplotlib) and training.html in --out, as 'rnnkit plot' does")
    p.set_defaults(func=cmd_train)


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="perplexity and bits per character of a model on text")
    p.add_argument("run_dir", metavar="DIR", help="run directory written by 'rnnkit train'")
    p.add_argument("paths", nargs="+", metavar="PATH", help="text files or directories")
    add_checkpoint_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)


def _generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate text, streamed to stdout")
    p.add_argument("run_dir", metavar="DIR", help="run directory written by 'rnnkit train'")
    p.add_argument("--prime", default="\n", help="text to start from, printed first (default: a newline)")
    p.add_argument("--length", type=GENERATE_LIMITS["length"], default=500,
                   help="tokens to generate: characters, or a word/BPE run's tokens (default 500)")
    p.add_argument("--temperature", type=GENERATE_LIMITS["temperature"], default=DEFAULT_TEMPERATURE,
                   help=f"sampling temperature, 0 = always the most likely (default {DEFAULT_TEMPERATURE:g}: "
                        "the model's own distribution)")
    p.add_argument("--top-k", type=GENERATE_LIMITS["top_k"], default=0,
                   help="sample among the k most likely, 0 = all")
    p.add_argument("--top-p", type=GENERATE_LIMITS["top_p"], default=1.0,
                   help="nucleus sampling: among the most likely whose probabilities add up to p, 1 = all (default 1)")
    p.add_argument("--seed", type=GENERATE_LIMITS["seed"], default=None, help="random seed (default: fresh)")
    add_checkpoint_option(p)
    p.set_defaults(func=cmd_generate)


def build_parser() -> TopParser:
    parser = TopParser(prog="rnnkit", description="Recurrent networks in NumPy: character language models, "
                                                  "sequence classifiers and forecasters, ONNX export.")
    sub = parser.add_commands(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    _eval_parser(sub)
    _generate_parser(sub)
    add_gradflow_parser(sub)
    add_task_parser(sub)
    add_inspect_parser(sub)
    add_plot_parser(sub)
    add_bench_parser(sub)
    add_export_parser(sub)
    add_classify_parser(sub)
    add_forecast_parser(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.lm.run import run_train
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if "paths" in given:
        given["paths"] = tuple(given["paths"])
        if not given["paths"]:
            del given["paths"]
    return run_train(given, resume=getattr(args, "resume", False), plot=getattr(args, "plot", False),
                     overwrite=getattr(args, "overwrite", False))


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit.lm.run import run_eval
    result = run_eval(args.run_dir, args.paths, args.checkpoint)
    if args.json:
        print(json.dumps(result))
    else:
        tokens = "" if result["token_kind"] == "char" else f" per {result['token_kind']} token ({result['tokens']:,} tokens)"
        print(f"{result['bits_per_char']:.4f} bits/char, perplexity {result['perplexity']:.3f}{tokens} "
              f"over {result['chars']:,} characters ({result['unknown_chars']:,} unseen in training"
              + (f"; {result['bits_per_char_known']:.4f} bits/char without them)" if result["unknown_chars"] else ")"))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from rnnkit.lm.run import run_generate
    stream = run_generate(args.run_dir, args.prime, args.length, args.temperature, args.top_k, args.seed,
                          args.checkpoint, args.top_p)
    sys.stdout.write(args.prime)
    for ch in stream:
        sys.stdout.write(ch)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


@contextmanager
def notes_on_stderr(command: str):
    """Print the library's Notes as ``rnnkit CMD: note: ...`` and its Cautions as ``rnnkit CMD:
    warning: ...`` (every one, as it happens; above a progress bar if one is showing)."""
    from tqdm import tqdm
    with warnings.catch_warnings():
        warnings.simplefilter("always", Note)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, Note):
                kind = "warning" if issubclass(category, Caution) else "note"
                tqdm.write(f"rnnkit {command}: {kind}: {message}", file=sys.stderr)
                sys.stderr.flush()
            else:
                shown(message, category, filename, lineno, file, line)
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Parse (a bad option exits with code 2: ``rnnkit CMD: error: ...`` and a line pointing at the
    help), run, and turn the errors a user can fix into one line ``rnnkit CMD: error: ...`` with
    exit code 2 (74: a file could not be written); a bug keeps its traceback. ``rnnkit`` alone
    lists the commands."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):        # text the console cannot encode: \uXXXX, not a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        with notes_on_stderr(args.command):
            return args.func(args)
    except BrokenPipeError:                       # e.g. `rnnkit generate ... | head`
        return 0
    except KeyboardInterrupt:
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise                                 # a bug in rnnkit: the traceback is the report
        print(f"rnnkit {args.command}: error: {message}", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
