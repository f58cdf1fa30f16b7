"""Each export format of the shipped model, checked on the 10,000 test images in its own runtime.

For LiteRT (the interpreter), SavedModel (TensorFlow) and ONNX (ONNX Runtime): top-1 agreement with
Keras, the largest probability difference, the export's size and how long exporting and checking
took. The bar: agreement >= 99.9% and probabilities within 1e-4. Run: `python -m benchmarks.exports`.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from fashion_core.artifacts import check_passes
from fashion_core.data import load_fashion_mnist
from fashion_core.export import EXPORT_FORMATS, EXPORT_NAMES, export_model, onnx_unavailable_reason, verify_export
from fashion_core.inference import Predictor
from fashion_core.registry import SHIPPED_MODELS_DIR, load_model


def _size_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure_exports(model_dir: Path = SHIPPED_MODELS_DIR / "default") -> dict:
    """`{format: {agreement, max_abs_difference, num_images, passes, size_bytes, export_s, check_s}}`."""
    model = load_model(model_dir)
    images = load_fashion_mnist(download=False).test_images
    reference = Predictor(model).predict(images)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as folder:
        for export_format in EXPORT_FORMATS:
            if export_format == "onnx" and (reason := onnx_unavailable_reason()):
                results[export_format] = {"error": reason}
                continue
            started = time.perf_counter()
            path = export_model(model, export_format, Path(folder) / EXPORT_NAMES[export_format])
            exported = time.perf_counter()
            check = verify_export(path, export_format, images, reference)
            results[export_format] = {
                "agreement": check.agreement,
                "max_abs_difference": check.max_abs_difference,
                "num_images": check.num_images,
                "passes": check_passes(check),
                "size_bytes": _size_bytes(path),
                "export_s": round(exported - started, 2),
                "check_s": round(time.perf_counter() - exported, 2),
            }
    return results


if __name__ == "__main__":
    print(json.dumps(measure_exports(), indent=2))
