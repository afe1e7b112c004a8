"""Training: schedules, losses, callbacks, checkpoints and `train_and_evaluate()`."""
