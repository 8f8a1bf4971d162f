"""The optimizer base: a list of parameters, a learning rate, per-parameter state arrays.

Optimizers know nothing of layers: they take ``module.parameters()`` (or any list of
:class:`~rnnkit.module.Parameter`) and update ``p.data`` in place from ``p.grad``.
``state_dict()`` returns plain data — scalars plus NumPy arrays keyed by parameter index — so a
checkpoint can store it without pickle and a resumed run continues exactly.
"""

from __future__ import annotations

import numpy as np

from rnnkit.module import Parameter
from rnnkit.ranges import NONNEGATIVE


class Optimizer:
    #: names of the per-parameter state arrays, created as zeros on the first step
    state_names: tuple[str, ...] = ()

    def __init__(self, params, lr: float, weight_decay: float = 0.0) -> None:
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = NONNEGATIVE.check("lr", lr, ValueError)
        self.weight_decay = NONNEGATIVE.check("weight_decay", weight_decay, ValueError)
        self.steps = 0
        self.state: list[dict[str, np.ndarray]] = [
            {name: np.zeros_like(p.data) for name in self.state_names} for p in self.params
        ]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad.fill(0)

    def step(self) -> None:
        self.steps += 1
        for p, state in zip(self.params, self.state):
            self.update(p, p.grad, state)

    def update(self, p: Parameter, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def decayed(self, p: Parameter, g: np.ndarray) -> np.ndarray:
        """The gradient with L2 weight decay folded in (g + λ·p), as torch.optim does."""
        return g + self.weight_decay * p.data if self.weight_decay else g

    def state_dict(self) -> dict:
        return {
            "lr": self.lr,
            "steps": self.steps,
            "state": {f"{i}.{name}": a.copy() for i, st in enumerate(self.state) for name, a in st.items()},
        }

    def load_state_dict(self, sd: dict) -> None:
        expected = {f"{i}.{name}": a.shape for i, st in enumerate(self.state) for name, a in st.items()}
        got = {k: np.asarray(v).shape for k, v in sd["state"].items()}
        if got != expected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state keys/shapes {got} "
                             f"do not match this optimizer's {expected}")
        self.lr, self.steps = float(sd["lr"]), int(sd["steps"])
        for i, st in enumerate(self.state):
            for name in st:
                st[name][...] = sd["state"][f"{i}.{name}"]
