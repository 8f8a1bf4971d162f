"""The character-level language model: data, model, training, checkpoints, scoring, sampling."""
