"""The ``rnnkit bench`` command line: parse, run, print the tables as they fill."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from rnnkit.bench import report
from rnnkit.bench.points import PRECISIONS
from rnnkit.bench.runner import BenchOptions, machine, run_bench
from rnnkit.checks import choice_problem
from rnnkit.errors import UserError
from rnnkit.outputs import output_file_or_stdout
from rnnkit.ranges import COUNT, NONNEGATIVE, POSITIVE


def add_bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="time rnnkit against PyTorch and onnxruntime",
        description="Time training (forward + backward) and inference of rnnkit, PyTorch and onnxruntime "
                    "layers, each contender in its own process, and the streaming cell step; optionally "
                    "train the same character LSTM with rnnkit and PyTorch (--lm). Peers are optional: "
                    "pip install 'rnnkit[bench]'.")
    p.add_argument("--quick", action="store_true", help="a few small points: a smoke test in seconds")
    p.add_argument("--threads", type=COUNT, default=2, help="threads for every contender (default 2)")
    p.add_argument("--min-time", type=POSITIVE, default=None,
                   help="seconds of repetitions per measurement (default 1, 0.2 with --quick)")
    p.add_argument("--precision", type=_precisions, default=("float32",), metavar="LIST",
                   help="comma-separated precisions to time: float32 (default), bfloat16, int8 (inference); "
                        "each low precision adds the LSTM and GRU at the GEMM-bound sizes")
    p.add_argument("--lm", type=NONNEGATIVE, default=0, metavar="SECONDS",
                   help="also train the same character LSTM with rnnkit and PyTorch for SECONDS each")
    p.add_argument("--text", nargs="+", default=(), metavar="PATH",
                   help="text for --lm (default: the standard library, as for 'rnnkit train')")
    p.add_argument("--no-grid", action="store_true", help="skip the layer grid (e.g. with --lm only)")
    p.add_argument("--json", metavar="FILE", type=output_file_or_stdout,
                   help="write every figure to FILE as JSON ('-': stdout)")
    p.set_defaults(func=cmd_bench)


def _precisions(text: str) -> tuple[str, ...]:
    """argparse ``type=`` of --precision: a comma-separated list of PRECISIONS."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names or ("",):
        if (problem := choice_problem("precision", name, PRECISIONS)) is not None:
            raise argparse.ArgumentTypeError(problem)
    return names


def cmd_bench(args: argparse.Namespace) -> int:
    if args.no_grid and not args.lm:
        raise UserError("--no-grid leaves nothing to run; add --lm SECONDS")
    if args.text and not args.lm:
        raise UserError("--text is the text for --lm; add --lm SECONDS")
    if args.text:
        _check_lm_text(tuple(args.text))        # unusable text fails now, not in a worker minutes later
    out = sys.stderr if args.json == "-" else sys.stdout
    min_time = args.min_time if args.min_time is not None else (0.2 if args.quick else 1.0)
    options = BenchOptions(quick=args.quick, threads=args.threads, min_time=min_time, precisions=args.precision)
    record = {"machine": machine(), "threads": args.threads}
    print(f"machine: {report.machine_line(record['machine'])}; {args.threads} threads per contender", file=out)
    print(report.engine_line(record["machine"]), file=out)
    if not args.no_grid:
        record.update(run_bench(options, _printer(out)))
        for line in report.notes(record):
            print(f"- {line}", file=out)
    if args.lm:
        record["lm"] = _lm(args.lm, args.threads, tuple(args.text), out)
    if args.json:
        text = json.dumps(record, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    return 0


def _check_lm_text(paths: tuple[str, ...]) -> None:
    """The text of --lm can be read and holds at least one batch of the race's configuration."""
    from rnnkit.bench.lm import lm_config
    from rnnkit.lm.data import read_corpus, split_text
    cfg = lm_config(1.0, "unused", paths)
    text, _, _ = read_corpus(list(paths))
    train_text, _ = split_text(text, cfg.val_fraction)
    need = cfg.batch_size * (cfg.seq_len + 1)
    if len(train_text) < need:
        raise UserError(f"--text: the language-model race reads {cfg.batch_size} streams of {cfg.seq_len + 1} "
                        f"characters, so it needs at least {need} characters of training text (after the "
                        f"held-out {cfg.val_fraction:.0%}), got {len(train_text)}; give more text")


def _printer(out):
    headers = {"layer": report.LAYER_HEADER, "low": report.LOW_HEADER, "stream": report.STREAM_HEADER}
    rows = {"layer": report.layer_row, "low": report.low_row, "stream": report.stream_row}
    printed = set()

    def show(kind: str, row: dict) -> None:
        if kind == "peak":
            print(report.peak_line(row), file=out, flush=True)
            return
        if kind not in printed:
            print("\n" + headers[kind], file=out)
            printed.add(kind)
        print(rows[kind](row), file=out, flush=True)
    return show


def _lm(seconds: float, threads: int, paths: tuple[str, ...], out) -> dict:
    from rnnkit.bench.lm import run_lm_bench
    print(f"\ncharacter LSTM, {seconds:g} s of training each (progress on stderr) ...", file=out, flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-lm-") as tmp:
        lm = run_lm_bench(seconds, threads, tmp, paths)
    print("\n| language model | chars/s | held-out bits/char | steps |\n|---|---|---|---|", file=out)
    for name, r in lm["results"].items():
        if "chars_per_s" in r:
            print(f"| {name} | {r['chars_per_s']:,.0f} | {r['bits_per_char']:.3f} | {r['steps']} |", file=out)
        else:
            print(f"| {name} | {r.get('skipped') or r.get('error')} | | |", file=out)
    return lm
