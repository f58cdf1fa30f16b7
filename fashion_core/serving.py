"""Answers from the LiteRT file beside a model: no TensorFlow, a fraction of its memory and start-up.

`LiteRTPredictor` follows the same protocol as `fashion_core.inference.Predictor` (`predict`,
`predict_one`, `flip_average`), so a page or an explanation method can take either. It runs the
`model.tflite` that `fashion_core.artifacts` writes beside every saved `model.keras` through
`ai_edge_litert`'s interpreter.

An interpreter is not safe to call from two threads at once, and Streamlit runs every session's
script in its own thread. The predictor keeps a small pool: a call borrows an idle interpreter (or
makes one, up to `max_interpreters`), runs, and gives it back, so eight sessions predicting at once
each get their own and one session never pays for building one again.

This module needs neither TensorFlow nor Keras.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from pathlib import Path

import numpy as np

from fashion_core.data import IMAGE_SIZE, NUM_CLASSES, as_model_input

# Larger batches are cut into invokes of at most this many images (mirror images included). An
# interpreter keeps its memory at the largest batch it has run: after a 1024-image call the shipped
# CNN's process held 108 MB with invokes of 256, 67 MB with 64. Throughput is no better above 64.
MAX_IMAGES_PER_INVOKE = 64


# An interpreter uses at most this many threads: two halve one answer's time (1.16 -> 0.60 ms for the
# shipped model's flip-averaged pair on the 2-core machine); more gain nothing on a 28x28 CNN. Only the
# pool's first interpreter gets them: those added when calls overlap get one thread each, since the
# overlapping calls already keep the cores busy and more threads than cores only wait for each other
# (eight threads asking at once on the 2-core machine: 2,050 answers/s against 1,730 with two threads
# in every interpreter; one call alone still gets 0.49 ms).
MAX_INTERPRETER_THREADS = 2


def usable_cpus() -> int:
    """How many CPUs this process may run on: its CPU affinity, capped by a cgroup CPU quota.

    A container (Community Cloud's, say) or `taskset` can give a process fewer cores than the
    machine has, and `os.cpu_count()` still counts the machine's.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else max(1, cpus)


def _cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the cgroup grants per period (cgroup v2 `cpu.max`, or v1), or `None` when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def default_interpreter_threads() -> int:
    """Threads per interpreter: one per usable CPU, at most `MAX_INTERPRETER_THREADS`.

    On one core (Community Cloud's fraction of one, `taskset -c 0`) a second thread would only
    wait for the first; on two, one answer takes half the time, and eight sessions asking at
    once lost 5% of their throughput to it.
    """
    return min(MAX_INTERPRETER_THREADS, usable_cpus())


class ServingError(ValueError):
    """Raised for a LiteRT file that is missing, unreadable, corrupt or not a Fashion-MNIST model."""


class _Runner:
    """One interpreter with its input and output tensors, resized only when the batch size changes."""

    def __init__(self, model_content: bytes, num_threads: int, source: str):
        self.num_threads = num_threads
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:  # no wheel for this platform (Linux aarch64): the app serves with TensorFlow
            raise ServingError(
                "The LiteRT interpreter (`ai-edge-litert`) is not installed on this machine, so the model is "
                f"served with TensorFlow. Received: {error}"
            ) from error
        try:
            self.interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ServingError(
                f"{source} is not a LiteRT model the interpreter can run ({error}). It is corrupt or was not "
                f"written by `model.export(..., format='litert')`; run `python -m fashion_core prepare "
                f"MODEL_DIR` to write it again. Received: model_path={source}"
            ) from error
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        input_shape = tuple(inputs[0]["shape_signature"]) if len(inputs) == 1 else ()
        output_shape = tuple(outputs[0]["shape_signature"]) if len(outputs) == 1 else ()
        if input_shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1) or output_shape[1:] != (NUM_CLASSES,):
            raise ServingError(
                f"{source} takes {input_shape} and gives {output_shape}; a Fashion-MNIST Studio model takes "
                f"(-1, 28, 28, 1) and gives (-1, 10). Export the right model. Received: model_path={source}"
            )
        self.input_index = inputs[0]["index"]
        self.output_index = outputs[0]["index"]
        self.batch_size = int(inputs[0]["shape"][0])
        self.buffer = np.empty((self.batch_size, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)

    def run(self, images: np.ndarray, flip_average: bool) -> np.ndarray:
        """`(n, 10)` float32 outputs for `(n, 28, 28)` or `(n, 28, 28, 1)` 0..255 images, optionally flip-averaged.

        The images (and their mirror images) are written straight into one float32 buffer that is
        kept between calls of the same size, so a single image costs no allocation but the answer.
        """
        count = len(images)
        size = 2 * count if flip_average else count
        if size != self.batch_size:
            self.interpreter.resize_tensor_input(self.input_index, [size, IMAGE_SIZE, IMAGE_SIZE, 1], strict=True)
            self.interpreter.allocate_tensors()
            self.batch_size = size
            self.buffer = np.empty((size, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        self.buffer[:count] = images.reshape(count, IMAGE_SIZE, IMAGE_SIZE)  # converts to float32 in place
        if flip_average:
            # The mirror images go in the same invoke: one answer is one call into the interpreter.
            self.buffer[count:] = self.buffer[:count, :, ::-1]
        self.interpreter.set_tensor(self.input_index, self.buffer.reshape(size, IMAGE_SIZE, IMAGE_SIZE, 1))
        self.interpreter.invoke()
        outputs = self.interpreter.get_tensor(self.output_index)  # a copy, safe to keep
        if flip_average:
            return (outputs[:count] + outputs[count:]) * np.float32(0.5)
        return outputs


class LiteRTPredictor:
    """Predicts with a LiteRT (`.tflite`) model: same protocol as `inference.Predictor`, no TensorFlow.

    Args:
        model_path: the `.tflite` file, e.g. `MODEL_DIR/model.tflite`.
        flip_average: whether to average the probabilities of each image and its mirror image
            (both run in one invoke). Defaults to `False`.
        num_threads: CPU threads of the pool's first interpreter, the one every call uses while calls
            do not overlap; interpreters added for overlapping calls use one thread each. Defaults to
            `default_interpreter_threads()`: one per usable CPU, at most two.
        max_interpreters: at most this many calls run at once; more wait for a free interpreter.
            Defaults to 8.

    Raises:
        ServingError: when the file is missing, unreadable or not a model with the project's contract.

    Example:
        >>> predictor = LiteRTPredictor("model_artifacts/default/model.tflite", flip_average=True)
        >>> predictor.predict_one(image)  # (10,) float32 probabilities
    """

    def __init__(
        self,
        model_path: str | Path,
        flip_average: bool = False,
        num_threads: int | None = None,
        max_interpreters: int = 8,
    ):
        num_threads = default_interpreter_threads() if num_threads is None else num_threads
        if num_threads < 1 or max_interpreters < 1:
            raise ServingError(
                "num_threads and max_interpreters must be at least 1. "
                f"Received: num_threads={num_threads}, max_interpreters={max_interpreters}"
            )
        self.model_path = Path(model_path)
        self.flip_average = flip_average
        self.num_threads = num_threads
        self.max_interpreters = max_interpreters
        self._model_content = _read_model_file(self.model_path)
        # Idle interpreters, most threads first: a call that overlaps no other gets the first interpreter.
        self._idle: queue.PriorityQueue[tuple[int, int, _Runner]] = queue.PriorityQueue()
        self._runners = [self._new_runner(num_threads)]  # built now, so a bad file fails here and not on first use
        self._give_back(self._runners[0])
        self._reserved = 1  # interpreters built or being built
        self._create_lock = threading.Lock()

    @classmethod
    def from_model_dir(
        cls, model_dir: str | Path, num_threads: int | None = None, max_interpreters: int = 8
    ) -> LiteRTPredictor:
        """The app's predictor for a model folder: its checked `model.tflite`, flip-averaged when trained with flips.

        Raises:
            ServingError: when the folder has no LiteRT file made from its current `model.keras`
                (none yet, a stale one, or one that failed its check).
        """
        from fashion_core.artifacts import fresh_litert_file
        from fashion_core.metadata import ModelMetadata

        path = fresh_litert_file(model_dir)
        if path is None:
            raise ServingError(
                f"{model_dir} has no checked LiteRT file made from its current model.keras. Run "
                f"`python -m fashion_core prepare {model_dir}` to write one. Received: model_dir={model_dir}"
            )
        flip_average = ModelMetadata.read(model_dir).trained_with_flips
        return cls(path, flip_average=flip_average, num_threads=num_threads, max_interpreters=max_interpreters)

    def _new_runner(self, num_threads: int) -> _Runner:
        return _Runner(self._model_content, num_threads, str(self.model_path))

    @property
    def num_interpreters(self) -> int:
        """How many interpreters the pool holds now (at most `max_interpreters`)."""
        return len(self._runners)

    @property
    def interpreter_threads(self) -> tuple[int, ...]:
        """The threads of each interpreter in the pool, the first one's first."""
        return tuple(runner.num_threads for runner in self._runners)

    def _give_back(self, runner: _Runner) -> None:
        self._idle.put((-runner.num_threads, id(runner), runner))

    def _borrow(self) -> _Runner:
        """The idle interpreter with the most threads, a new one-thread interpreter while fewer than
        `max_interpreters` exist, or else the next one freed."""
        try:
            return self._idle.get_nowait()[-1]
        except queue.Empty:
            pass
        with self._create_lock:
            create = self._reserved < self.max_interpreters
            self._reserved += create
        if not create:
            return self._idle.get()[-1]
        try:
            runner = self._new_runner(1)
        except BaseException:
            with self._create_lock:
                self._reserved -= 1
            raise
        with self._create_lock:
            self._runners.append(runner)
        return runner

    def predict(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Returns `(N, 10)` float32 probabilities of 0..255 images: `(28, 28)`, `(N, 28, 28)`, `(N, 28, 28, 1)`.

        Images are converted to float32 one batch at a time, so a uint8 set is never copied whole.

        Raises:
            ValueError: when the images are not 28x28 single-channel images.
        """
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if images.ndim not in (3, 4) or images.shape[1:] not in ((IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE, IMAGE_SIZE, 1)):
            as_model_input(images)  # raises, with the shape received
        if len(images) == 0:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        step = max(1, min(batch_size, MAX_IMAGES_PER_INVOKE // (2 if self.flip_average else 1)))
        runner = self._borrow()
        try:
            outputs = [
                runner.run(images[start : start + step], self.flip_average) for start in range(0, len(images), step)
            ]
        finally:
            self._give_back(runner)
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """Returns the `(10,)` probabilities of a single image."""
        return self.predict(image)[0]


def _read_model_file(path: Path) -> bytes:
    """The bytes of a `.tflite` file, or a `ServingError` that says how to make one."""
    try:
        content = path.read_bytes()
    except FileNotFoundError as error:
        raise ServingError(
            f"There is no LiteRT file at {path}. Run `python -m fashion_core prepare {path.parent}` to export "
            f"the model beside its model.keras. Received: model_path={path}"
        ) from error
    except OSError as error:
        raise ServingError(f"{path} cannot be read ({error}). Received: model_path={path}") from error
    # A flatbuffer's file identifier sits at bytes 4..8; "TFL3" marks a LiteRT model.
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ServingError(
            f"{path} is not a LiteRT model (no 'TFL3' identifier): it is corrupt or another kind of file. "
            f"Run `python -m fashion_core prepare {path.parent}` to write it again. Received: model_path={path}"
        )
    return content
