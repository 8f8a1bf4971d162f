"""An ensemble of the estimators' networks: the mean of their outputs.

    z = (1/M) Σ_m z_m          z_m = net_m(x, lengths)      (B, K)

The members share one configuration and differ in their initialisation and the order they saw
the batches in. For the classifier z holds logits, so the ensemble's probabilities are the
normalised geometric mean of the members' (softmax of the mean logits); the regressor and the
forecaster average their predictions. Parameter names are the members' behind their index
(``0.rnn.weight_ih_l0``, ``1.fcn.conv0.weight``, ...), as in a PyTorch ``ModuleList``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.models.network import NetConfig, SequenceNet, with_dtype
from rnnkit.module import Module


class NetEnsemble(Module):
    def __init__(self, members: list[SequenceNet]) -> None:
        if not members:
            raise ValueError("NetEnsemble needs at least one member")
        super().__init__(dtype=members[0].dtype)
        self.members = list(members)
        for m, net in enumerate(self.members):
            self.register_module(str(m), net)

    @property
    def cfg(self) -> NetConfig:
        return self.members[0].cfg

    def __len__(self) -> int:
        return len(self.members)

    def __call__(self, x, lengths=None) -> np.ndarray:
        return self.forward(x, lengths)

    def forward(self, x, lengths=None) -> np.ndarray:
        """x (T, B, input_size), lengths (B,) or None → the members' mean output (B, K)."""
        z = self.members[0](x, lengths)
        for net in self.members[1:]:
            z = z + net(x, lengths)
        return z / len(self.members) if len(self.members) > 1 else z

    @classmethod
    def build(cls, cfg: NetConfig, members: int, dtype) -> "NetEnsemble":
        """``members`` untrained networks of ``cfg`` (weights to be loaded)."""
        return cls([SequenceNet(cfg, dtype=dtype, rng=0) for _ in range(members)])

    def with_dtype(self, dtype) -> "NetEnsemble":
        """A copy computing in ``dtype``, in eval mode (see :func:`rnnkit.models.network.with_dtype`)."""
        return NetEnsemble([with_dtype(net, dtype) for net in self.members]).eval()
