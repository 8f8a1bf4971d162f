"""The three jobs of the command line, as functions: train, eval, generate."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rnnkit import distributed
from rnnkit.errors import EXIT_FAILED, EXIT_USAGE
from rnnkit.lm.config import GENERATE_LIMITS, TrainConfig, option_name
from rnnkit.lm.data import read_corpus
from rnnkit.lm.errors import UserError
from rnnkit.lm.infer import sample, score
from rnnkit.lm.rundir import load_run
from rnnkit.lm.train import NonFiniteLoss, Trainer, TrainResult, resume_config


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_train(given: dict, resume: bool = False) -> int:
    """Train with the options the user gave (all others default); print the final report.

    Under an MPI launcher (``mpiexec -n N rnnkit train``) every process runs this; rank 0 alone
    prints, and every process ends with the same exit code (:func:`rnnkit.distributed.exit_together`).
    """
    size_numba_pool(given.get("threads", 0))
    try:
        world = distributed.world()
    except distributed.MPIUnavailable:
        if distributed.launcher_rank() == 0:
            raise                                 # said once, by the first process
        return EXIT_USAGE
    return distributed.exit_together(world, lambda: _train(given, resume, world), "train")


def size_numba_pool(threads: int) -> None:
    """Numba sizes its pool of threads once, when it is first imported: ``--threads N`` sets
    NUMBA_NUM_THREADS to N before that (the engine has not been imported yet when a command starts)."""
    if threads > 0 and "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)


def _train(given: dict, resume: bool, world: distributed.World) -> int:
    cfg = world.together(lambda: _train_config(given, resume))
    say = log if world.root else (lambda msg: None)
    try:                      # the step-0 save checks the replicas: its drift is reported here too
        trainer = Trainer(cfg, resume=resume, log=say, world=world)
        _describe(trainer, world, say)
        result = trainer.run()
    except (NonFiniteLoss, distributed.ReplicaDrift) as exc:
        say(f"rnnkit train: error: {exc}")
        return EXIT_FAILED
    if world.root:
        _report(trainer, result)
    return 128 + result.signal if result.interrupted else 0


def _describe(trainer: Trainer, world: distributed.World, say) -> None:
    cfg = trainer.cfg
    corpus = "the Python standard library" if not cfg.paths else ", ".join(cfg.paths)
    say(f"training a {cfg.layers}-layer {cfg.cell.upper()} ({cfg.hidden} units) on {corpus}: "
        f"{trainer.streams.data.size:,} training and {len(trainer.val_ids):,} validation {_unit(trainer.vocab)}, "
        f"vocabulary {trainer.vocab.size}" + (", adaptive softmax" if trainer.model.adaptive else "") + "; "
        + (f"budget {cfg.time_budget:g} s" if cfg.time_budget else "no time limit")
        + (f", {cfg.max_steps} steps" if cfg.max_steps else ""))
    if world.size > 1:
        say(f"data parallel: {world.size} processes ({world.local_size} on this machine), "
            f"{cfg.batch_size // world.size} streams each, "
            + (f"{trainer.threads} engine thread(s) each" if trainer.threads else "engine threads from the environment"))


def _unit(vocab) -> str:
    return "characters" if vocab.kind == "char" else f"{vocab.kind} tokens"


def _train_config(given: dict, resume: bool) -> TrainConfig:
    try:
        return resume_config(given.get("out", TrainConfig.out), given) if resume else TrainConfig(**given)
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _report(trainer: Trainer, result: TrainResult) -> None:
    cfg, val = trainer.cfg, result.val
    chars = len(result.losses) * cfg.batch_size * cfg.seq_len
    rate = chars / result.train_seconds if result.train_seconds else 0.0
    print(f"steps: {result.steps} ({chars:,} characters in {result.train_seconds:.0f} s of training, "
          f"{rate:,.0f} chars/s)" + (f"; last training loss {result.losses[-1] / np.log(2):.3f} bits/char"
                                      if result.losses else ""))
    tokens = "" if trainer.vocab.kind == "char" else f" per {trainer.vocab.kind} token, {val.chars:,} tokens"
    print(f"validation: {val.bits_per_char:.3f} bits/char (perplexity {val.perplexity:.2f}{tokens}) on "
          f"{val.characters or val.chars:,} held-out characters; unigram entropy of the corpus: "
          f"{result.unigram_bits:.3f} bits/char")
    if cfg.sample_chars:
        print("--- sample ---")
        print(trainer.sample_text(cfg.sample_chars))
        print("--------------")
    print(f"checkpoints in {cfg.out}/ (best.safetensors, latest.safetensors); "
          f"try: {generate_command(cfg.out, trainer.prime)}")


def generate_command(run_dir: str, prime: str) -> str:
    """``rnnkit generate DIR --prime TEXT``, quoted for a POSIX shell (``--prime=TEXT`` when TEXT
    starts with '-', which argparse would otherwise take for an option)."""
    command = f"rnnkit generate {shlex.quote(run_dir)}"
    if not prime:
        return command
    quoted = shlex.quote(prime)
    return command + (f" --prime={quoted}" if prime.startswith("-") else f" --prime {quoted}")


def run_eval(run_dir: str, paths: list[str]) -> dict:
    run = load_run(run_dir)
    model, vocab = run.model, run.vocab
    text, _, _ = read_corpus(paths)
    ids, unknown = vocab.encode(text)
    if len(ids) < 2:
        what = "characters" if vocab.kind == "char" else "tokens"
        raise UserError(f"need at least 2 {what} of text to evaluate, got {len(ids)}")
    characters = len(text) - vocab.lead_chars(ids)           # the first token is never predicted
    s = score(model, ids, characters=characters)
    result = {"bits_per_char": s.bits_per_char, "perplexity": s.perplexity, "chars": characters,
              "tokens": s.chars, "token_kind": vocab.kind, "bits_per_token": s.bits_per_token,
              "nll_nats": s.nll, "unknown_chars": unknown, "run_dir": str(Path(run_dir)),
              "checkpoint": run.weights.name, "step": run.step}
    if unknown:
        known = score(model, ids, skip_unknown=True, characters=characters - unknown)
        result["bits_per_char_known"] = known.bits_per_char
    return result


def run_generate(run_dir: str, prime: str, length: int, temperature: float, top_k: int,
                 seed: int | None, top_p: float = 1.0) -> Iterator[str]:
    """Check everything first (so errors come before any output), then return the stream."""
    given = {"length": length, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
    problems = [p for k, v in given.items() if v is not None
                and (p := GENERATE_LIMITS[k].problem(option_name(k), v)) is not None]
    if problems:
        raise UserError("; ".join(problems))
    run = load_run(run_dir)
    model, vocab = run.model, run.vocab
    if not prime:
        raise UserError("--prime must hold at least one character")
    unseen = vocab.unseen(prime)
    if unseen:
        default = "; a newline is the default --prime, and this model's text had none: give --prime TEXT" \
            if prime == "\n" else ""
        raise UserError(f"--prime has characters the model never saw in training: {''.join(unseen)!r}{default}")
    return sample(model, vocab, prime, length, temperature, top_k, np.random.default_rng(seed), top_p)
