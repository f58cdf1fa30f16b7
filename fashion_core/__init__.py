"""Fashion-MNIST Studio's library: data, preprocessing, models, training, evaluation, explanations.

It never imports Streamlit, so everything the app shows can be computed and tested without it.
Submodules are imported on demand (`from fashion_core.data import load_fashion_mnist`) so that
importing the package stays cheap.
"""

__version__ = "1.0.0"
