"""Model files a user hands privvid: what format they are, and refusing the ones that can run code.

PyTorch ``.pt`` / ``.pth`` / ``.ckpt`` files and ``.pkl`` files are pickles: loading them (as
ultralytics, segment-anything and smplx do) executes whatever the file says. privvid refuses them
unless the user opts in (``--trust-model-files``); formats that hold only data (``.tflite``,
``.onnx``, ``.safetensors``, an ``.npz`` without object arrays) load without it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from privvid.errors import ConfigError, MissingWeights

PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar"}
TRUST_HINT = ("Loading it can run code stored in the file. Export it to .onnx / .tflite (ultralytics: "
              "`yolo export model=FILE format=onnx`) or, if you trust where it came from, pass --trust-model-files.")


def sniff(path: Path, by_suffix: bool = True) -> str:
    """``"tflite" | "onnx" | "safetensors" | "npz" | "pickle" | "unknown"`` from the file's bytes
    (and, with ``by_suffix``, its suffix where the bytes cannot tell). ``sniff(path, by_suffix=False) ==
    "pickle"``: the bytes are a file ``torch.save`` writes (its zip format, or a pickle stream)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    suffix = path.suffix.lower()
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"  # a raw pickle stream (protocol 2..5)
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any(n.endswith(".pkl") or n.endswith("/data.pkl") for n in names):
            return "pickle"  # torch.save's zip format: data.pkl plus tensor storages
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "unknown"
    if suffix == ".safetensors" and len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if not by_suffix:
        return "unknown"
    if suffix == ".onnx":
        return "onnx"
    if suffix in PICKLE_SUFFIXES:
        return "pickle"  # old torch tar format or a protocol-0/1 pickle: treat as code
    return "unknown"


def check_model_file(path: str | Path | None, what: str, hint: str, *, trust: bool = False,
                     allowed: tuple[str, ...] = ("tflite", "onnx", "safetensors", "npz", "pickle")) -> Path:
    """The user's model file, checked before anything loads it: it exists, it is a regular file of an
    accepted format, and it is not a pickle unless ``trust``. Raises MissingWeights / ConfigError."""
    if path is None:
        raise MissingWeights(what, None, hint)
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeights(what, path, hint)
    try:
        kind = sniff(path)
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from None
    if kind == "pickle":
        if not trust:
            raise ConfigError(f"{what} {path} is a pickle-based file (PyTorch / pickle format). {TRUST_HINT}")
        return path
    if kind == "npz":
        _check_npz(path, what, trust)
    if kind not in allowed and kind != "unknown":
        raise ConfigError(f"{what} {path} is a {kind} file; expected one of: {', '.join(allowed)}")
    if kind == "unknown" and not trust:
        raise ConfigError(f"{what} {path} is not a format privvid recognises ({', '.join(a for a in allowed)}); "
                          "a corrupt or truncated file? " + hint)
    return path


def _check_npz(path: Path, what: str, trust: bool) -> None:
    """Every array of the npz must load without pickle (object arrays need it) unless ``trust``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    archive[name]
                except ValueError:
                    if not trust:
                        raise ConfigError(f"{what} {path} holds a pickled object array ({name!r}). "
                                          f"{TRUST_HINT}") from None
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip / npy header errors: say so in one line
        raise ConfigError(f"{what} {path} is not a readable .npz ({type(exc).__name__}: {exc})") from None


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The plain (non-object) arrays of an npz, read without pickle."""
    out: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            try:
                out[name] = archive[name]
            except ValueError:
                continue
    return out


def recorded_path(path: str | os.PathLike[str]) -> str:
    """A model file's path as sidecars and params files record it: ``~/...`` when it lies in the home folder
    (whose name is often the user's; ``os.path.expanduser`` gives the path back), else as it is. A home of
    ``/`` (a service account's) or none leaves every path as it is."""
    try:
        home = Path.home().resolve()
        if home == Path(home.anchor):
            return str(path)
        return str(Path("~") / Path(path).resolve().relative_to(home))
    except (ValueError, RuntimeError, OSError):
        return str(path)
