"""Opening onnxruntime sessions the same way for every model.

Several stages (and several engineers' services) share two cores: a session that spins its
threads waiting for work slows everything else down, so sessions default to one intra-op
thread and no spinning (see the models README).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnxruntime as ort


class ModelError(Exception):
    """A model file that is missing, unreadable or does not fit the configured format.

    The service turns it into exit code 2 at start: running with the wrong model would
    publish wrong detections, which is worse than not running.
    """


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_session(path: str | Path, intra_op_threads: int = 1, sha256: str = "") -> ort.InferenceSession:
    """`sha256`, when given, pins the exact file: evidence must say which model produced it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if sha256 and file_sha256(path) != sha256.lower():
        raise ModelError(f"model file {path} has SHA-256 {file_sha256(path)}, expected {sha256.lower()}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # initializer-as-input warnings from old exporters are noise
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise ModelError(f"cannot load model {path}: {exc}") from exc


def static_hw(session: ort.InferenceSession, default: tuple[int, int]) -> tuple[int, int]:
    """Input height and width when the model fixes them, else the configured default."""
    shape = session.get_inputs()[0].shape
    if len(shape) != 4:
        raise ModelError(f"model input must be NCHW, got shape {shape}")
    h, w = shape[2], shape[3]
    return (h if isinstance(h, int) else default[0], w if isinstance(w, int) else default[1])
