"""The shipped model, checked as a stranger would use it: plain Keras, no fashion_core."""

import json
import subprocess
import sys

from tests.conftest import SHIPPED_MODEL_DIR

STANDALONE_EVALUATION = """
import gzip, sys
import numpy as np
import keras

folder = "/usr/share/datasets/fashion-mnist"
with gzip.open(f"{folder}/t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1).astype("float32")
with gzip.open(f"{folder}/t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
model = keras.saving.load_model(sys.argv[1])
probabilities = model.predict(images, batch_size=1000, verbose=0)
assert "fashion_core" not in sys.modules
assert probabilities.shape == (10000, 10)
assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
print((probabilities.argmax(axis=1) == labels).mean())
"""


def test_shipped_model_scores_at_least_0_93_in_a_process_without_fashion_core():
    result = subprocess.run(
        [sys.executable, "-c", STANDALONE_EVALUATION, str(SHIPPED_MODEL_DIR / "model.keras")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    accuracy = float(result.stdout.strip().splitlines()[-1])
    assert accuracy >= 0.93
    recorded = json.loads((SHIPPED_MODEL_DIR / "metadata.json").read_text())["test_accuracy"]
    assert abs(accuracy - recorded) < 0.002  # metadata tells the truth about the file shipped
