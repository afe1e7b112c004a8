"""Learning-rate schedules, chosen by name."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seq2seq")
class InverseSqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak_learning_rate`, then decay with the inverse square root of the step
    (the schedule of Vaswani et al., written with the peak as the parameter instead of
    d_model ** -0.5, as fairseq's `inverse_sqrt` does).

    lr(step) = peak * min(step / warmup, sqrt(warmup / step))
    """

    def __init__(self, peak_learning_rate, warmup_steps):
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.maximum(ops.cast(step, "float32") + 1.0, 1.0)
        warmup = float(max(self.warmup_steps, 1))
        return self.peak_learning_rate * ops.minimum(step / warmup, ops.sqrt(warmup / step))

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="seq2seq")
class WarmupConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak_learning_rate`, then constant."""

    def __init__(self, peak_learning_rate, warmup_steps):
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        return self.peak_learning_rate * ops.minimum(step / max(self.warmup_steps, 1), 1.0)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps}


def _cosine(peak, warmup, total):
    # Keras' own cosine decay with linear warmup.
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total - warmup, 1),
        warmup_target=peak,
        warmup_steps=warmup,
        alpha=0.1,
    )


SCHEDULES = {
    "inverse_sqrt": lambda peak, warmup, total: InverseSqrtSchedule(peak, warmup),
    "cosine": _cosine,
    "constant": lambda peak, warmup, total: WarmupConstantSchedule(peak, warmup),
}


def get_schedule(name, peak_learning_rate, warmup_steps, total_steps):
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}.")
    return SCHEDULES[name](peak_learning_rate, warmup_steps, total_steps)
