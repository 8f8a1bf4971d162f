"""The three jobs of the command line, as functions: train, eval, generate."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from rnnkit import distributed
from rnnkit.errors import EXIT_FAILED, EXIT_USAGE, CorpusError, UserError
from rnnkit.lm.config import GENERATE_LIMITS, RUN_LENGTH_OPTIONS, TrainConfig, option_name, step_limits
from rnnkit.lm.data import caution_unknown, read_corpus
from rnnkit.lm.infer import sample, score
from rnnkit.lm.load import load_run
from rnnkit.lm.rundir import RunDirectory
from rnnkit.lm.summary import generate_command, report
from rnnkit.lm.loop import TrainResult
from rnnkit.lm.train import NonFiniteLoss, Trainer

__all__ = ["generate_command", "run_eval", "run_generate", "run_train"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_train(given: dict, resume: bool = False, plot: bool = False, overwrite: bool = False) -> int:
    """Train with the options the user gave (all others default); print the final report (and,
    with ``plot``, draw the run's curves into its directory, as ``rnnkit plot`` does).

    The run directory is claimed first (:meth:`rnnkit.lm.rundir.RunDirectory.claim`): refused if another
    ``rnnkit train`` is writing it, or if it holds a run and neither ``resume`` (continue it) nor
    ``overwrite`` (start again, replacing it once the new run has saved its first checkpoint) is
    given; else locked until the command ends. Under MPI rank 0 holds the lock.

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
    return distributed.exit_together(world, lambda: _train(given, resume, world, plot, overwrite), "train")


def size_numba_pool(threads: int) -> None:
    """Numba sizes its pool of threads once, when it is first imported: ``--threads N`` sets
    NUMBA_NUM_THREADS to N before that (the engine has not been imported yet when a command starts)."""
    if threads > 0 and "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)


def _train(given: dict, resume: bool, world: distributed.World, plot: bool = False,
           overwrite: bool = False) -> int:
    cfg = world.together(lambda: _train_config(given, resume))
    say = log if world.root else (lambda msg: None)
    if plot and world.root:
        from rnnkit.diagnostics.training import check_plot_extra
        check_plot_extra()                        # before the work: the PNG needs matplotlib
    locks = []                                    # rank 0's lock of the run directory
    world.together(lambda: locks.append(RunDirectory(cfg.out).claim(resume=resume, overwrite=overwrite)),
                   root_only=True)
    try:
        return _locked_train(cfg, resume, world, plot, say)
    finally:
        for held in locks:
            held.release()


def _locked_train(cfg: TrainConfig, resume: bool, world: distributed.World, plot: bool, say) -> int:
    try:                      # the step-0 save checks the replicas: its drift is reported here too
        trainer = Trainer(cfg, resume=resume, log=say, world=world)
        _describe(trainer, world, say)
        result = trainer.run()
    except (NonFiniteLoss, distributed.ReplicaDrift) as exc:
        say(f"rnnkit train: error: {exc}")
        return EXIT_FAILED
    if world.root:
        _report(trainer, result)
        if plot:
            from rnnkit.diagnostics.training import draw_run
            for path in draw_run(cfg.out, note_missing=False):      # said before training
                print(f"drawn: {path}")
    return 128 + result.signal if result.interrupted else 0


def _describe(trainer: Trainer, world: distributed.World, say) -> None:
    cfg = trainer.cfg
    corpus = "the Python standard library" if not cfg.paths else ", ".join(cfg.paths)
    say(f"training a {cfg.layers}-layer {cfg.cell.upper()} ({cfg.hidden} units) on {corpus}: "
        f"{trainer.text.streams.data.size:,} training and {len(trainer.text.val_ids):,} validation "
        f"{_unit(trainer.text.vocab)}, vocabulary {trainer.text.vocab.size}"
        + (", adaptive softmax" if trainer.model.adaptive else "") + "; "
        + (f"budget {cfg.time_budget:g} s" if cfg.time_budget else "no time limit")
        + (f", {cfg.max_steps} steps" if cfg.max_steps else ""))
    if world.size > 1:
        say(f"data parallel: {world.size} processes ({world.local_size} on this machine), "
            f"{cfg.batch_size // world.size} streams each, "
            + (f"{trainer.threads} engine thread(s) each" if trainer.threads else "engine threads from the environment"))


def _unit(vocab) -> str:
    return "characters" if vocab.kind == "char" else f"{vocab.kind} tokens"


def _train_config(given: dict, resume: bool) -> TrainConfig:
    given = step_limits(given)
    try:
        return resume_config(given.get("out", TrainConfig.out), given) if resume else TrainConfig(**given)
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def resume_config(run_dir: str, overrides: dict) -> TrainConfig:
    """The saved configuration of a run, with the options a resumed run may change applied.

    ``overrides`` holds only the options the user gave; any other option that differs from the
    saved run is an error (a resumed run must continue the same model on the same data).
    """
    config = RunDirectory(run_dir).resumable_config(given=run_dir)         # checked against the schema
    saved = TrainConfig.from_json(config["train"])
    changed = sorted(k for k, v in overrides.items()
                     if k not in RUN_LENGTH_OPTIONS and k != "out" and getattr(saved, k) != v)
    if changed:
        raise CorpusError("--resume continues the saved run; these options differ from it: "
                          + ", ".join("PATH" if k == "paths" else option_name(k) for k in changed))
    return replace(saved, out=str(run_dir), **{k: v for k, v in overrides.items() if k in RUN_LENGTH_OPTIONS})


def _report(trainer: Trainer, result: TrainResult) -> None:
    lines = report(trainer, result)
    print("\n".join(lines[:-1]))
    if trainer.cfg.sample_chars:
        print("--- sample ---")
        print(trainer.sample_text(trainer.cfg.sample_chars))
        print("--------------")
    print(lines[-1])


def run_eval(run_dir: str, paths: list[str], checkpoint: str | None = None) -> dict:
    """Bits per character of the model of ``run_dir`` (``checkpoint``: best, latest or a file;
    None: best, else latest) on the text of ``paths``; a Caution when much of the text is
    characters the model never saw."""
    run = load_run(run_dir, checkpoint)
    model, vocab = run.model, run.vocab
    text, _, _ = read_corpus(paths)
    ids, unknown = vocab.encode(text)
    if len(ids) < 2:
        what = "characters" if vocab.kind == "char" else "tokens"
        raise UserError(f"need at least 2 {what} of text to evaluate, got {len(ids)}")
    caution_unknown(unknown, len(text), "each is scored as the unknown token, which costs the model about "
                                       "10 bits, so the figures say little about how well it models this text "
                                       "(bits_per_char_known leaves them out)")
    characters = len(text) - vocab.lead_chars(ids)           # the first token is never predicted
    s = score(model, ids, characters=characters)
    result = {"bits_per_char": s.bits_per_char, "perplexity": s.perplexity, "chars": characters,
              "tokens": s.chars, "token_kind": vocab.kind, "bits_per_token": s.bits_per_token,
              "nll_nats": s.nll, "unknown_chars": unknown, "run_dir": str(Path(run_dir)),
              "checkpoint": run.weights.name, "step": run.step, "unknown_share": unknown / len(text)}
    if unknown:
        known = score(model, ids, skip_unknown=True, characters=characters - unknown)
        result["bits_per_char_known"] = known.bits_per_char
    return result


def run_generate(run_dir: str, prime: str, length: int, temperature: float, top_k: int,
                 seed: int | None, checkpoint: str | None = None, top_p: float = 1.0) -> Iterator[str]:
    """Check everything first (so errors come before any output), then return the stream."""
    given = {"length": length, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
    problems = [p for k, v in given.items() if v is not None
                and (p := GENERATE_LIMITS[k].problem(option_name(k), v)) is not None]
    if problems:
        raise UserError("; ".join(problems))
    run = load_run(run_dir, checkpoint)
    model, vocab = run.model, run.vocab
    if not prime:
        raise UserError("--prime must hold at least one character")
    unseen = vocab.unseen(prime)
    if unseen:
        default = "; a newline is the default --prime, and this model's text had none: give --prime TEXT" \
            if prime == "\n" else ""
        raise UserError(f"--prime has characters the model never saw in training: {''.join(unseen)!r}{default}")
    return sample(model, vocab, prime, length, temperature, top_k, np.random.default_rng(seed), top_p)
