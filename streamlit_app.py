"""Fashion-MNIST Studio: the entry point. `streamlit run streamlit_app.py` (or `make run`).

It only sets the page up and routes: each page is a file in `pages/`, and all the work is done by
`fashion_core`.
"""

import streamlit as st

from pages.common import install_rerun_cleanup, server_activity, sidebar_model_picker, start_warmup

# Streamlit clears the Keras session after every run: 0.4 s of CPU each time (see pages/common.py).
install_rerun_cleanup()

st.set_page_config(page_title="Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")

PAGES = {
    "Classify": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/predict.py", title="Predict", icon=":material/photo_camera:"),
        st.Page("pages/gradcam.py", title="Grad-CAM", icon=":material/visibility:"),
    ],
    "Explore": [
        st.Page("pages/evaluation.py", title="Evaluation", icon=":material/analytics:"),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/grid_view:"),
        st.Page("pages/photos.py", title="Photos", icon=":material/photo_library:"),
    ],
    "Train": [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
    ],
}

navigation = st.navigation({section: pages for section, pages in PAGES.items() if pages})
sidebar_model_picker()
st.sidebar.caption("Fashion-MNIST Studio: classify clothing images, and see why.")
with server_activity().page_run():  # background loads that can wait start when no page runs
    navigation.run()
# Then the default model, what a first answer runs and the dataset load in the background (once per
# process; see pages/common.py): after the page is drawn, so a first visitor's page does not wait on them.
start_warmup()
