"""Fashion-MNIST Studio's library: data, preprocessing, models, training, evaluation, explanations.

It never imports Streamlit, so everything the app shows can be computed and tested without it.
Submodules are imported on demand (`from fashion_core.data import load_fashion_mnist`) so that
importing the package stays cheap.

**Which code needs TensorFlow.** Importing TensorFlow costs seconds and hundreds of megabytes, so
only the modules listed in `TENSORFLOW_MODULES` may import it (or Keras) when they are imported:
the ones that build, train, differentiate or export networks. Everything else is "light": it runs
on NumPy, OpenCV, the LiteRT interpreter (`fashion_core.serving`) or metadata alone, and imports
TensorFlow inside a function only when that function is given a Keras model. The app's answers,
its default explanations, the Home card, dataset browsing, the Models table and stored evaluations
all run on light modules; `tests/test_architecture_rules.py` imports every light module in a fresh
interpreter and checks that TensorFlow stayed out.
"""

__version__ = "1.0.0"

# Modules that import TensorFlow or Keras at import time (a name covers its submodules).
TENSORFLOW_MODULES = frozenset(
    {
        "fashion_core.models",  # Keras architectures
        "fashion_core.inference",  # the TensorFlow predictor (a traced tf.function)
        "fashion_core.gradients",  # Grad-CAM, Grad-CAM++, saliency, SmoothGrad: gradients need TensorFlow
        "fashion_core.export",  # LiteRT, SavedModel and ONNX exports
        "fashion_core.training",  # fit loops, callbacks, jobs
        "fashion_core.cli",  # its flags come from TrainingConfig, whose architectures are Keras builders
    }
)


def needs_tensorflow(module_name: str) -> bool:
    """Whether `module_name` (a `fashion_core` module) is allowed to import TensorFlow when imported."""
    return any(module_name == heavy or module_name.startswith(heavy + ".") for heavy in TENSORFLOW_MODULES)
