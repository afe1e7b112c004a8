"""Hyperparameter search with KerasTuner, on the metric users care about.

Each trial trains the recipe's model with the trial's values for a fixed budget of steps (or
minutes) through the same `seq2seq.training.trainer.train` as `seq2seq train`, and reports the
validation sacreBLEU / chrF / ROUGE (maximised) or the validation loss (minimised) to the
oracle: BayesianOptimization (default), Hyperband or RandomSearch, by name. KerasTuner's own
project directory keeps the oracle's state, so re-running the same command continues an
interrupted search without redoing finished trials. A trial that fails (NaN, out of memory) or
names an invalid architecture (hidden size not divisible by the heads) is recorded as failed and
the search goes on.
"""

import copy
import dataclasses
import json
import pathlib
import shutil

import keras
import keras_tuner as kt
import tensorflow as tf

from seq2seq import config as config_lib
from seq2seq.models.factory import SIZE_OVERRIDES, build_model
from seq2seq.training import inputs, trainer

TUNERS = {
    "bayesian": kt.BayesianOptimization,
    "hyperband": kt.Hyperband,
    "random": kt.RandomSearch,
}


def declare(hp, space):
    """Declares the search space on `hp`; returns `{"section.field": value}` of this trial."""
    values = {}
    for name, spec in space.items():
        kind = spec.get("type", "float")
        _check_space_range(name, spec)
        if kind == "int":
            values[name] = hp.Int(name, spec["min"], spec["max"], step=spec.get("step"),
                                  sampling=spec.get("sampling", "linear"))
        elif kind == "float":
            values[name] = hp.Float(name, spec["min"], spec["max"], step=spec.get("step"),
                                    sampling=spec.get("sampling", "linear"))
        elif kind == "choice":
            values[name] = hp.Choice(name, spec["values"])
        elif kind == "boolean":
            values[name] = hp.Boolean(name)
        else:
            raise ValueError(
                f"tuning.space[{name!r}] has type {kind!r}; expected int, float, choice or boolean."
            )
    return values


def _check_space_range(name, spec):
    """A space's ends (or choices) must be values the field takes (`config.RANGES`)."""
    bounds = config_lib.RANGES.get(name)
    if bounds is None:
        return
    ends = spec["values"] if "values" in spec else [spec.get("min"), spec.get("max")]
    for end in ends:
        if isinstance(end, (int, float)) and not isinstance(end, bool) and not bounds.admits(end):
            raise ValueError(
                f"tuning.space[{name!r}] reaches {end!r}; expected {bounds.describe(name)}."
            )


def apply_values(config, values):
    """A copy of `config` with `{"section.field": value}` set."""
    config = copy.deepcopy(config)
    for name, value in values.items():
        section, field = name.split(".", 1)
        setattr(getattr(config, section), field, value)
    return config


def check_architecture(config):
    """Raises `FailedTrialError` for combinations no model can have."""
    from seq2seq.models.sizes import size_kwargs

    model = {**size_kwargs(config.model.size),
             **{k: v for k, v in dataclasses.asdict(config.model).items()
                if k in SIZE_OVERRIDES and v is not None}}
    if model["hidden_dim"] % model["num_heads"]:
        raise kt.errors.FailedTrialError(
            f"invalid combination: hidden_dim {model['hidden_dim']} is not divisible by "
            f"num_heads {model['num_heads']}"
        )


class TransformerHyperModel(kt.HyperModel):
    """Builds the Transformer and its optimizer from `hp`, over the recipe's config.

    Args:
        config: the recipe's `Config`; its `tuning.space` is the search space.
    """

    def __init__(self, config):
        super().__init__(name="transformer")
        self.config = config

    def trial_config(self, hp):
        """The recipe's config with this trial's values."""
        return apply_values(self.config, declare(hp, self.config.tuning.space))

    def build(self, hp):
        config = self.trial_config(hp)
        check_architecture(config)
        vocabulary = config.data.vocabulary_size
        model = build_model(config.model, vocabulary, vocabulary)
        trainer.compile_model(model, config)
        return model


def _objective(config):
    # config.check has held the name to its task's metrics; None is the task's main one.
    name = config.tuning.objective or config_lib.TASK_METRICS[config.data.task][0]
    if name == "loss":
        return kt.Objective("val_loss", direction="min")
    return kt.Objective(f"val_{name}", direction="max")


def make_tuner(config, directory, print_fn=print):
    """The KerasTuner tuner named by `config.tuning.tuner`, its trials running `train()`."""
    tuning = config.tuning
    hypermodel = TransformerHyperModel(config)
    trials_dir = pathlib.Path(directory) / "trials"

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        trial_config = hypermodel.trial_config(hp)
        check_architecture(trial_config)
        steps = tuning.steps_per_trial
        if "tuner/epochs" in hp.values:  # Hyperband's budget: a share of steps_per_trial
            steps = max(1, round(steps * hp.values["tuner/epochs"] / self.oracle.max_epochs))
        trial_config.training.steps = steps
        trial_config.training.eval_every = steps
        trial_config.training.time_budget_minutes = tuning.minutes_per_trial
        trial_config.training.early_stopping_patience = None
        trial_config.export.enabled = False
        run_dir = trials_dir / trial.trial_id
        shutil.rmtree(run_dir, ignore_errors=True)  # a half-run trial restarts from scratch
        keras.backend.clear_session()
        try:
            run = trainer.train(trial_config, run_dir, print_fn=lambda *a: None)
        except (FloatingPointError, tf.errors.ResourceExhaustedError) as error:
            raise kt.errors.FailedTrialError(f"trial {trial.trial_id} failed: {error}") from error
        result = _validation_result(run, trial_config)
        print_fn(f"trial {trial.trial_id}: " + " ".join(f"{k} {v:.3f}" for k, v in result.items())
                 + " | " + json.dumps({k: v for k, v in hp.values.items()
                                       if not k.startswith("tuner/")}))
        _write_trial_hparams(pathlib.Path(directory) / "logs" / trial.trial_id, hp, result)
        return result

    def populate_initial_space(self):
        # KerasTuner builds the model once per default point to discover conditional
        # hyperparameters; this space has none, and a default point may be an invalid
        # architecture, so declaring the space is enough.
        hp = self.oracle.get_space()
        declare(hp, tuning.space)
        self.oracle.update_space(hp)

    tuner_class = type(
        f"Seq2Seq{TUNERS[tuning.tuner].__name__}",
        (TUNERS[tuning.tuner],),
        {"run_trial": run_trial, "_populate_initial_space": populate_initial_space,
         "save_model": lambda *a, **k: None, "load_model": lambda *a, **k: None},
    )
    options = dict(hypermodel=hypermodel, objective=_objective(config), seed=tuning.seed,
                   directory=str(directory), project_name="keras_tuner", overwrite=False,
                   max_consecutive_failed_trials=tuning.max_trials)
    if tuning.tuner == "hyperband":
        options.update(max_epochs=3, factor=3, hyperband_iterations=1)
    else:
        options.update(max_trials=tuning.max_trials)
    return tuner_class(**options)


def _validation_result(run, config):
    """Validation metrics of a trained trial, as `{"val_...": value}`."""
    pairs = inputs.evaluation_pairs(config.data, "valid", run.source_tokenizer,
                                    config.training.valid_sentences)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    hypotheses = run.translator.translate(sources, strategy="greedy")
    from seq2seq.evaluation import metrics

    scores = metrics.task_scores(config.data.task, hypotheses, references)
    result = {f"val_{name}": float(score) for name, score in scores.items()}
    if config.tuning.objective == "loss":
        from seq2seq.data.pipeline import encode_pairs, make_dataset

        sources_ids, target_ids, _ = encode_pairs(
            pairs, run.source_tokenizer, run.target_tokenizer, config.model.max_length,
            config.data.max_source_length,
        )
        dataset = make_dataset(sources_ids, target_ids, batch_size=32, shuffle=False,
                               max_length=config.model.max_length)
        result["val_loss"] = float(run.model.evaluate(dataset, verbose=0, return_dict=True)["loss"])
    return result


def _write_trial_hparams(log_dir, hp, result):
    from tensorboard.plugins.hparams import api as hparams_api

    values = {k: v for k, v in hp.values.items() if isinstance(v, (bool, int, float, str))}
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=0):
        hparams_api.hparams(values, trial_id=log_dir.name)
        for name, value in result.items():
            tf.summary.scalar(name, value)
    writer.flush()


def tune(config, run_dir, print_fn=print):
    """Runs (or continues) the search; writes `summary.md` and `best_config.yaml`.

    Returns:
        `{"best_config": path, "best_score": value, "trials": n, "failed": n}`.
    """
    config_lib.check_objective(config)
    config_lib.check_training_data(config)
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_lib.save(config, run_dir / "config.yaml")
    tuner = make_tuner(config, run_dir, print_fn)
    tuner.search()
    trials = list(tuner.oracle.trials.values())
    objective = tuner.oracle.objective
    rows = []
    for trial in sorted(trials, key=lambda t: int(t.trial_id) if t.trial_id.isdigit() else 0):
        values = {k: v for k, v in trial.hyperparameters.values.items()
                  if not k.startswith("tuner/")}
        rows.append(f"| {trial.trial_id} | {trial.status} | {trial.score} | "
                    f"{json.dumps(values)} |")
    (run_dir / "summary.md").write_text(
        f"# Search: {config.tuning.tuner}, objective {objective.name} ({objective.direction})\n\n"
        "| trial | status | score | values |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    completed = [t for t in trials if t.status == "COMPLETED"]
    summary = {"trials": len(trials), "failed": len(trials) - len(completed)}
    if completed:
        best = tuner.oracle.get_best_trials(1)[0]
        best_config = TransformerHyperModel(config).trial_config(best.hyperparameters)
        config_lib.save(best_config, run_dir / "best_config.yaml")
        summary.update(best_config=str(run_dir / "best_config.yaml"), best_score=best.score)
    return summary
