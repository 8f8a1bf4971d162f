"""The ``rnnkit`` command line. It only parses arguments and hands them to the library.

    rnnkit train [PATH ...]                 train a character language model (default: stdlib)
    rnnkit eval DIR PATH ... [--json]       bits per character and perplexity on text
    rnnkit generate DIR --prime TEXT ...    stream generated text to stdout
    rnnkit gradflow [--cells rnn,lstm,gru]  gradient norm reaching each time step
    rnnkit task adding|copy [--seq-len T]   long-range memory tasks against their baselines
    rnnkit inspect DIR [PATH ...]           HTML page of unit and gate activity on text
    rnnkit bench [--quick] [--lm SECONDS]   time rnnkit against PyTorch and onnxruntime
    rnnkit export DIR MODEL.onnx            the language model as ONNX, vocabulary beside it
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from rnnkit.bench.commands import add_bench_parser
from rnnkit.diagnostics.commands import add_gradflow_parser, add_inspect_parser, add_task_parser
from rnnkit.lm.config import TrainConfig
from rnnkit.lm.errors import UserError
from rnnkit.onnx.commands import add_export_parser

EXIT_USAGE, EXIT_FAILED = 2, 1


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a character-level language model",
                       argument_default=argparse.SUPPRESS,
                       description="Train a character-level language model on UTF-8 text (files or "
                                   "directories, read recursively); with no PATH, on the Python "
                                   "standard library's sources.")
    d = TrainConfig()
    p.add_argument("paths", nargs="*", metavar="PATH", help="text files or directories")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], help=f"recurrent cell (default {d.cell})")
    p.add_argument("--peephole", action="store_true", help="LSTM with peephole connections")
    for name, typ, what in [("layers", int, "recurrent layers"), ("hidden", int, "hidden units per layer"),
                            ("embed", int, "embedding size"), ("dropout", float, "dropout probability"),
                            ("seq-len", int, "BPTT chunk length"), ("batch-size", int, "parallel streams"),
                            ("lr", float, "learning rate"), ("clip", float, "gradient-norm clip, 0 = off"),
                            ("warmup", int, "warm-up steps"), ("max-steps", int, "step limit, 0 = none"),
                            ("time-budget", float, "seconds of training"),
                            ("val-fraction", float, "held-out fraction at the end of the text"),
                            ("eval-every", int, "steps between validations"),
                            ("sample-chars", int, "length of the final sample"), ("seed", int, "random seed")]:
        default = getattr(d, name.replace("-", "_"))
        p.add_argument(f"--{name}", type=typ, help=f"{what} (default {default})")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"],
                   help=f"(default {d.optimizer})")
    p.add_argument("--schedule", choices=["constant", "cosine", "step"], help=f"(default {d.schedule})")
    p.add_argument("--out", metavar="DIR", help=f"run directory (default {d.out})")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.set_defaults(func=cmd_train)


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="perplexity and bits per character of a model on text")
    p.add_argument("run_dir", metavar="DIR", help="run directory written by 'rnnkit train'")
    p.add_argument("paths", nargs="+", metavar="PATH", help="text files or directories")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)


def _generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate text, streamed to stdout")
    p.add_argument("run_dir", metavar="DIR", help="run directory written by 'rnnkit train'")
    p.add_argument("--prime", default="\n", help="text to start from, printed first (default: a newline)")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely, 0 = all")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    p.set_defaults(func=cmd_generate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent networks in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    _eval_parser(sub)
    _generate_parser(sub)
    add_gradflow_parser(sub)
    add_task_parser(sub)
    add_inspect_parser(sub)
    add_bench_parser(sub)
    add_export_parser(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.lm.run import run_train
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if "paths" in given:
        given["paths"] = tuple(given["paths"])
        if not given["paths"]:
            del given["paths"]
    return run_train(given, resume=getattr(args, "resume", False))


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit.lm.run import run_eval
    result = run_eval(args.run_dir, args.paths)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['bits_per_char']:.4f} bits/char, perplexity {result['perplexity']:.3f} "
              f"over {result['chars']:,} characters ({result['unknown_chars']:,} unseen in training"
              + (f"; {result['bits_per_char_known']:.4f} bits/char without them)" if result["unknown_chars"] else ")"))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from rnnkit.lm.run import run_generate
    stream = run_generate(args.run_dir, args.prime, args.length, args.temperature, args.top_k, args.seed)
    sys.stdout.write(args.prime)
    for ch in stream:
        sys.stdout.write(ch)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"rnnkit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:                       # e.g. `rnnkit generate ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
