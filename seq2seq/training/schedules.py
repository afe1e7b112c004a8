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


@keras.saving.register_keras_serializable(package="seq2seq")
class LinearDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak_learning_rate`, then linear decay to zero where training ends:
    after `total_steps`, or, with a time budget, when the budget runs out, whichever is first.

    lr(step) = peak * min(step / warmup, 1, (1 - used) / decay_fraction),
    used = max(step / total_steps, budget_used)

    With `decay_fraction` 1 the rate falls from the end of the warmup on; with a smaller one it
    stays at the peak and falls over the last `decay_fraction` of training only
    (warmup-stable-decay, Hägele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations", 2024), which keeps the rate high while the model is far from converged.

    `budget_used` is the fraction of the time budget spent, a variable the trainer's
    `BudgetClock` callback advances; without one (no time budget, or a schedule rebuilt from
    its config) the decay depends on the step alone. Under a fixed budget, decaying linearly
    to zero at its end trains better than a schedule that does not know where the end is
    (Li, Yumer and Ramanan, "Budgeted Training", ICLR 2020): the inverse square root still sits at
    a third of its peak when a 10-minute CPU run stops.
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps, budget_used=None,
                 decay_fraction=1.0):
        if not 0.0 < decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction must be in (0, 1]; received {decay_fraction}.")
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.budget_used = budget_used
        self.decay_fraction = decay_fraction

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        used = step / float(max(self.total_steps, 1))
        if self.budget_used is not None:
            used = ops.maximum(used, ops.cast(self.budget_used, "float32"))
        warmup = step / float(max(self.warmup_steps, 1))
        decay = (1.0 - used) / self.decay_fraction
        return self.peak_learning_rate * ops.clip(ops.minimum(warmup, decay), 0.0, 1.0)

    def get_config(self):
        # budget_used is the state of one run, not a setting: it is not serialized.
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "decay_fraction": self.decay_fraction}


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
    "inverse_sqrt": lambda peak, warmup, total, budget, decay: InverseSqrtSchedule(peak, warmup),
    "linear": LinearDecaySchedule,
    "cosine": lambda peak, warmup, total, budget, decay: _cosine(peak, warmup, total),
    "constant": lambda peak, warmup, total, budget, decay: WarmupConstantSchedule(peak, warmup),
}


def get_schedule(name, peak_learning_rate, warmup_steps, total_steps, budget_used=None,
                 decay_fraction=1.0):
    """The schedule `name`; `budget_used` (a variable, the fraction of the time budget spent)
    and `decay_fraction` are read by the schedule that ends with the budget ("linear"); the
    others ignore them, so that a config can switch schedules with one override."""
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}.")
    return SCHEDULES[name](
        peak_learning_rate, warmup_steps, total_steps, budget_used, decay_fraction
    )
