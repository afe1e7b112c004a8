"""One training process of the distribution tests (run as a subprocess).

    python distributed_worker.py CONFIG RUN_DIR STRATEGY LOGICAL_CPUS OUT_JSON [OVERRIDE ...]

WORKER_CPU_FLAGS, when set, stands in for this CPU's flags (`precision: auto`'s first look).
WORKER_PLAIN_SGD=1 trains with Keras' SGD instead of Adam (same schedule and clipping), whose
weights show the summed gradients themselves.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

config_path, run_dir, strategy, logical_cpus, out = sys.argv[1:6]
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * int(logical_cpus)
)

import numpy as np  # noqa: E402

from seq2seq import config as config_lib  # noqa: E402
from seq2seq.training import precision, trainer  # noqa: E402

if os.environ.get("WORKER_PLAIN_SGD"):
    import keras  # noqa: E402

    class PlainSGD(keras.optimizers.SGD):
        def __init__(self, beta_2=None, epsilon=None, **options):
            super().__init__(**options)

    trainer.OPTIMIZERS["adam"] = PlainSGD
if "WORKER_CPU_FLAGS" in os.environ:
    precision.cpu_flags = lambda: frozenset(os.environ["WORKER_CPU_FLAGS"].split())
lines = []
config = config_lib.load(config_path, [f"training.strategy={strategy}", *sys.argv[6:]])
run = trainer.train(config, run_dir, print_fn=lines.append)
losses = [float(line.split(" loss ")[1].split()[0]) for line in lines if line.startswith("step ")]
weights = [np.asarray(w) for w in run.model.trainable_weights]
np.savez(os.path.splitext(out)[0] + ".npz", *weights)  # every weight, for exact comparisons
with open(out, "w") as f:
    json.dump({
        "replicas": run.strategy.num_replicas_in_sync,
        "printed": [line for line in lines if not line.startswith("step ")],
        "losses": losses,
        "weight_sum": float(sum(np.abs(w).sum() for w in weights)),
        "first_kernel": weights[1].ravel()[:16].tolist(),
    }, f)
