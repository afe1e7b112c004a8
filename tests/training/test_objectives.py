"""Schedules, the label-smoothed loss and the token accuracy against hand computations."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.training.losses import (
    LabelSmoothedCrossEntropy,
    fused_softmax_minus_target,
    softmax_minus_target,
)
from seq2seq.training.metrics import TokenAccuracy, label_has_top_logit
from seq2seq.training.schedules import InverseSqrtSchedule, get_schedule


def test_inverse_sqrt_warms_up_then_decays():
    schedule = InverseSqrtSchedule(peak_learning_rate=1e-3, warmup_steps=100)
    # Step s (0-based) uses s + 1.
    assert float(schedule(49)) == pytest.approx(1e-3 * 50 / 100)
    assert float(schedule(99)) == pytest.approx(1e-3)
    assert float(schedule(399)) == pytest.approx(1e-3 * math.sqrt(100 / 400))


def test_cosine_and_constant_schedules():
    cosine = get_schedule("cosine", 1e-3, 10, 110)
    assert float(cosine(10)) == pytest.approx(1e-3, rel=1e-3)
    assert float(cosine(110)) == pytest.approx(1e-4, rel=1e-3)  # alpha = 0.1 floor
    constant = get_schedule("constant", 1e-3, 10, 100)
    assert float(constant(50)) == pytest.approx(1e-3)
    with pytest.raises(ValueError,
                       match="'noam'; expected one of inverse_sqrt, linear, cosine, constant"):
        get_schedule("noam", 1e-3, 10, 100)


def test_linear_schedule_decays_to_zero_at_the_last_step_or_with_the_budget():
    budget_used = keras.Variable(0.0, trainable=False)
    linear = get_schedule("linear", 1e-3, 10, 100, budget_used=budget_used)
    # lr = peak * min(step / warmup, 1 - max(step / total, budget_used)), step 1-based.
    assert float(linear(4)) == pytest.approx(1e-3 * 5 / 10)
    assert float(linear(49)) == pytest.approx(1e-3 * (1 - 50 / 100))
    assert float(linear(99)) == 0.0
    assert float(linear(150)) == 0.0  # never negative
    budget_used.assign(0.8)  # the time budget ends first: it drives the decay
    assert float(linear(49)) == pytest.approx(1e-3 * 0.2)
    assert float(linear(4)) == pytest.approx(1e-3 * 0.2)  # the smaller of warmup and decay
    budget_used.assign(1.0)
    assert float(linear(49)) == 0.0
    # The budget is the state of one run, not part of the serialized schedule.
    restored = type(linear).from_config(linear.get_config())
    assert restored.get_config() == {"peak_learning_rate": 1e-3, "warmup_steps": 10,
                                     "total_steps": 100, "decay_fraction": 1.0}
    assert float(restored(49)) == pytest.approx(1e-3 * 0.5)


def test_linear_schedule_with_a_decay_fraction_holds_the_peak_then_decays_to_zero():
    budget_used = keras.Variable(0.0, trainable=False)
    wsd = get_schedule("linear", 1e-3, 10, 100, budget_used=budget_used, decay_fraction=0.2)
    # lr = peak * min(step / warmup, 1, (1 - used) / 0.2), step 1-based.
    assert float(wsd(4)) == pytest.approx(1e-3 * 5 / 10)  # warmup
    assert float(wsd(9)) == pytest.approx(1e-3)
    assert float(wsd(79)) == pytest.approx(1e-3)  # stable until the last 20%
    assert float(wsd(89)) == pytest.approx(1e-3 * 0.5)  # halfway through the decay
    assert float(wsd(99)) == 0.0
    budget_used.assign(0.95)  # the time budget decides where the decay is
    assert float(wsd(19)) == pytest.approx(1e-3 * 0.25)
    assert type(wsd).from_config(wsd.get_config()).decay_fraction == 0.2
    with pytest.raises(ValueError, match=r"decay_fraction must be in \(0, 1\]; received 0"):
        get_schedule("linear", 1e-3, 10, 100, decay_fraction=0)


def test_label_smoothed_loss_equals_the_formula_over_real_tokens():
    logits = np.array([[[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]]], "float32")
    labels = np.array([[0, 2, 0]])
    weights = np.array([[1.0, 1.0, 0.0]], "float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    eps = 0.1
    per_token = -(1 - eps) * log_probs[0, [0, 1], [0, 2]] - eps * log_probs[0, :2].mean(-1)
    loss = LabelSmoothedCrossEntropy(eps)(labels, logits, sample_weight=weights)
    assert float(loss) == pytest.approx(per_token.mean(), rel=1e-6)  # padding excluded
    plain = LabelSmoothedCrossEntropy(0.0)(labels, logits, sample_weight=weights)
    assert float(plain) == pytest.approx(-log_probs[0, [0, 1], [0, 2]].mean(), rel=1e-6)
    with pytest.raises(ValueError, match="label_smoothing=1.0; expected 0 <= value < 1"):
        LabelSmoothedCrossEntropy(1.0)


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("graph", [False, True])
def test_label_smoothed_loss_gradient_is_softmax_minus_the_smoothed_target(eps, graph):
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(2, 3, 5)), "float32")
    labels = np.array([[4, 0, 2], [1, 1, 0]])
    weights = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], "float32")

    def loss_and_gradient(logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = LabelSmoothedCrossEntropy(eps)(labels, logits, sample_weight=weights)
        return loss, tape.gradient(loss, logits)

    if graph:  # as Keras' train step runs it
        loss_and_gradient = tf.function(loss_and_gradient)
    loss, gradient = loss_and_gradient(logits)
    z = logits.numpy()
    softmax = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    target = (1 - eps) * np.eye(5)[labels] + eps / 5
    per_token = -(target * np.log(softmax)).sum(-1)
    assert float(loss) == pytest.approx((per_token * weights).sum() / weights.sum(), rel=1e-6)
    expected = (softmax - target) * weights[..., None] / weights.sum()
    np.testing.assert_allclose(gradient.numpy(), expected, atol=1e-6)
    assert np.all(gradient.numpy()[1, 1:] == 0.0)  # padding gets no gradient


def test_softmax_minus_target_is_the_same_op_by_op_as_xla_compiled():
    # Op by op is what Keras' JAX backend traces into its compiled step; TensorFlow runs the
    # XLA-compiled function (one fused loop).
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 7)).astype("float32")
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.array([[6, 0, 3], [1, 1, 5]], "int32")
    upstream = rng.random((2, 3)).astype("float32")
    eps = 0.1
    expected = upstream[..., None] * (probabilities - ((1 - eps) * np.eye(7)[labels] + eps / 7))
    for function in (softmax_minus_target, fused_softmax_minus_target()):
        gradient = function(tf.constant(probabilities), tf.constant(labels),
                            tf.constant(upstream), eps)
        np.testing.assert_allclose(np.asarray(gradient), expected, atol=1e-7)


def test_label_smoothed_loss_is_exact_where_the_label_probability_underflows():
    # p(label) = e^-300 is 0 in float32: log Z comes from the largest probability, so the
    # loss is the logit gap, not -log(0).
    logits = np.array([[[150.0, -150.0, 149.0]]], "float32")
    labels = np.array([[1]])
    log_normalizer = 150.0 + math.log(1.0 + math.exp(-1.0) + math.exp(-300.0))
    eps = 0.1
    expected = log_normalizer - (1 - eps) * -150.0 - eps * logits.mean()
    with tf.GradientTape() as tape:
        z = tf.constant(logits)
        tape.watch(z)
        loss = LabelSmoothedCrossEntropy(eps)(labels, z)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    softmax = np.exp(logits - log_normalizer)
    expected_gradient = softmax - ((1 - eps) * np.eye(3)[labels] + eps / 3)
    np.testing.assert_allclose(tape.gradient(loss, z).numpy(), expected_gradient, atol=1e-6)


def test_label_smoothed_loss_of_bfloat16_logits_is_computed_in_float32():
    logits = np.array([[[2.0, 0.5, -1.0, 0.25]]], "float32")
    labels = np.array([[1]])
    loss = LabelSmoothedCrossEntropy(0.1)(labels, tf.constant(logits, tf.bfloat16))
    assert loss.dtype == tf.float32
    exact = LabelSmoothedCrossEntropy(0.1)(labels, logits)  # bfloat16 holds these exactly
    assert float(loss) == float(exact)


def test_token_accuracy_counts_tokens_whose_label_has_the_largest_logit():
    logits = np.array([[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.4, 0.4, 0.2], [0.0, 0.0, 1.0]]],
                      "float32")
    labels = np.array([[1, 2, 1, 0]])
    # argmax: 1 (right), 0 (wrong), a tie of 0 and 1 (counted right), 2 (wrong; padding).
    np.testing.assert_array_equal(label_has_top_logit(labels, logits).numpy(), [[1, 0, 1, 0]])
    metric = TokenAccuracy()
    metric.update_state(labels, logits, sample_weight=np.array([[1.0, 1.0, 1.0, 0.0]]))
    assert float(metric.result()) == pytest.approx(2 / 3)
    assert metric.name == "accuracy"
    assert TokenAccuracy.from_config(metric.get_config()).name == "accuracy"
    # Without ties it is Keras' argmax accuracy.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 7, 11)).astype("float32")
    labels = rng.integers(0, 11, size=(4, 7))
    np.testing.assert_array_equal(
        label_has_top_logit(labels, logits).numpy(),
        keras.metrics.sparse_categorical_accuracy(labels, logits).numpy())
