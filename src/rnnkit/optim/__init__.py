"""Optimizers (taking parameter lists), gradient clipping and learning-rate schedules."""

from rnnkit.optim.adagrad import Adagrad
from rnnkit.optim.adam import Adam, AdamW
from rnnkit.optim.base import Optimizer
from rnnkit.optim.clip import clip_grad_norm_, clip_grad_value_
from rnnkit.optim.rmsprop import RMSprop
from rnnkit.optim.schedules import Schedule
from rnnkit.optim.sgd import SGD

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}

__all__ = ["OPTIMIZERS", "SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "Schedule",
           "clip_grad_norm_", "clip_grad_value_"]
