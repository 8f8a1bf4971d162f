"""Backward call plans: the records of :func:`rnnkit.engine.layer.backward_directions` replayed.

As forward (:mod:`.callplan`), a backward record holds, besides the call's own arrays (the tape's,
``dout``, ``da``, the carried gradients), only what the weights, the shape and the thread count
give: W_hh's panels, the absent arrays, the scheduler's plan. The first backward call of a shape
keeps its records; the next ones, while the weights are the same arrays with the same bits, put
the call's arrays into them (and new work arrays where a record has its own), then everything
after the launch — the weight gradients' products, dx — runs as ever. Only cells whose
``backward_job`` builds a record and computes nothing take plans: not the LSTM with a projection,
which forms dL/dh of the last step there, nor the GRU in Cho's form (a work array starts at zero).
"""

from __future__ import annotations

from rnnkit.engine import callplan
from rnnkit.engine.callplan import PLANS, keep, new_plan, rebuild, serves, small, tape_arrays, weight_arrays
from rnnkit.engine.gru import GRUJobs
from rnnkit.engine.layer import backward_directions
from rnnkit.engine.lstm import LSTMJobs
from rnnkit.engine.rnn import RNNJobs

# The job builders whose backward records may be replayed, each with its records' own work arrays
# (outputs of the recurrence, written at every step before they are read: new ones per call).
OWN_ARRAYS = {LSTMJobs: (), RNNJobs: (), GRUJobs: ("da_h", "dh")}


def plain(jobs, tapes: list) -> bool:
    """A replayable cell (not projected), its tapes without lengths or masks inside the recurrence,
    in the layer's own precision (:func:`.callplan.plain`)."""
    return (callplan.plain(jobs, tapes[0].gates.dtype) and type(jobs) in OWN_ARRAYS
            and not getattr(jobs.kernel, "proj_size", 0) and all(t.mask is None and t.masks is None for t in tapes))


def call_arrays(tape, dout, da, carry) -> tuple:
    """A backward call's own arrays, in the order a kept record's slots count them."""
    return (*tape_arrays(tape), dout, da, *carry)


def backward(jobs, ws: list, dws: list, tapes: list, douts: list, dfinals: list, workers: int) -> list[tuple]:
    """:func:`~rnnkit.engine.layer.backward_directions`, its records replayed where a plan applies."""
    arrays = weight_arrays(ws)
    g = tapes[0].gates
    if not (plain(jobs, tapes) and small(arrays, g.dtype)):
        return backward_directions(jobs, ws, dws, tapes, douts, dfinals, workers)
    key = ("backward", id(jobs.kernel), id(arrays[0]), len(ws), g.shape, g.dtype.str, workers)
    plan = PLANS.take(key)
    if plan is not None and serves(plan, jobs.kernel, arrays):
        kept = iter(plan.directions)

        def build(w, tape, dout, da, carry, mask, threads):
            return rebuild(next(kept), call_arrays(tape, dout, da, carry))

        results = backward_directions(jobs, ws, dws, tapes, douts, dfinals, workers, build=build)
    else:
        made = []

        def build(w, tape, dout, da, carry, mask, threads):
            record = jobs.backward_job(w, tape, dout, da, carry, mask, threads)
            made.append(keep(record, call_arrays(tape, dout, da, carry), (tape.x,), OWN_ARRAYS[type(jobs)]))
            return record

        results = backward_directions(jobs, ws, dws, tapes, douts, dfinals, workers, build=build)
        plan = None if None in made else new_plan(jobs.kernel, arrays, made)
    if plan is not None:
        PLANS.put(key, plan)
    return results
