"""Programs that tests/test_distributed.py runs under ``mpiexec -n 2`` (not collected by pytest).

    python tests/mpi_scripts.py api                 rnnkit.distributed in a hand-written loop
    python tests/mpi_scripts.py drift ARGS...        `rnnkit train ARGS`, rank 1's replica perturbed
    python tests/mpi_scripts.py crash ARGS...        `rnnkit train ARGS`, rank 1 failing alone

The test hooks: ``drift`` adds 1e-3 to one weight on rank 1 after its step 5, the way a faulty
node or a non-deterministic reduction would let a replica drift; ``crash`` raises on rank 1 alone
at step 5, the way a bug or a full disk on one machine would.
"""

from __future__ import annotations

import sys

import numpy as np

HOOK_STEP = 5


def api() -> int:
    """Parameters broadcast from rank 0, gradients of each rank's half of a batch averaged with
    allreduce_gradients: equal to the whole batch's gradient on one process, the same Adam step."""
    import rnnkit
    from rnnkit.distributed import allreduce_gradients, broadcast_parameters, world
    from rnnkit.linear import Linear
    from rnnkit.losses import softmax_cross_entropy
    from rnnkit.optim import Adam

    w = world()
    assert w.size == 2, w

    def build(seed):
        gru, head = rnnkit.GRU(3, 8, num_layers=2, rng=seed), Linear(8, 5, rng=seed)
        return gru, head, gru.parameters() + head.parameters()

    def grads(gru, head, params, x, y):
        out, _ = gru(x)
        loss, dz = softmax_cross_entropy(head(out), y)
        for p in params:
            p.grad.fill(0)
        gru.backward(head.backward(dz))
        return loss

    gru, head, params = build(seed=w.rank)                   # different weights on each rank
    broadcast_parameters(params)
    ref_gru, ref_head, ref = build(seed=0)                   # rank 0's weights, whole batch
    assert all(np.array_equal(p.data, q.data) for p, q in zip(params, ref))
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((6, 4, 3)).astype(np.float32), rng.integers(0, 5, (6, 4))
    share = w.share(4)
    grads(gru, head, params, x[:, share], y[:, share])
    allreduce_gradients(params)
    grads(ref_gru, ref_head, ref, x, y)
    worst = max(float(np.max(np.abs(p.grad - q.grad)) / np.max(np.abs(q.grad))) for p, q in zip(params, ref))
    assert worst < 1e-5, worst
    Adam(params, lr=0.01).step()
    w.check_replicas([p.data for p in params])               # the same step on every rank
    print(f"rank {w.rank}: gradient relative error {worst:.1e}", flush=True)
    return 0


def hooked_train(mode: str, argv: list[str]) -> int:
    from rnnkit.cli import main
    from rnnkit.lm import train

    real_step = train.Trainer.train_step

    def train_step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        if self.world.rank == 1 and self.step == HOOK_STEP:
            if mode == "drift":
                self.params[0].data.flat[0] += 1e-3
            else:
                raise RuntimeError("simulated failure of rank 1 alone")
        return result

    train.Trainer.train_step = train_step
    return main(["train", *argv])


if __name__ == "__main__":
    sys.exit(api() if sys.argv[1] == "api" else hooked_train(sys.argv[1], sys.argv[2:]))
