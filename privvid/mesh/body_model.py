"""Body models for Mask2Mesh, all loaded through ``smplx.SMPLX``.

Two sources share one code path:

* the user's own SMPL-X ``.npz`` (``--body-model``), used as is;
* the embedded mannequin: privvid converts the Apache-licensed 'wooden' mannequin
  of ``mannequin-x`` into an SMPL-X-format ``.npz`` once, into the user cache
  (``$PRIVVID_CACHE`` or ``~/.cache/privvid``), written atomically.

The conversion keeps the mannequin's rest mesh, faces and skinning, remaps its
54 joints onto the 55 SMPL-X joints, derives 10 shape directions from the
mannequin's own shape response (central differences) and builds a joint
regressor that reproduces the mannequin skeleton for every shape sample.

On top of smplx, :class:`BodyModel` knows where the BlazePose landmarks sit on
the body (SMPL-X joints or surface vertices), which the fitter needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privvid.errors import ConfigError, MissingWeights
from privvid.io.atomic import savez_atomic

EMBEDDED_NAME = "mannequin_smplx_v1.npz"
NUM_BETAS = 10
NUM_EXPR = 10

# SMPL-X kinematic tree (55 joints): body 0-21, jaw 22, eyes 23-24, left hand 25-39, right hand 40-54
SMPLX_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
    + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
    + [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53],
    dtype=np.int64,
)

# BlazePose landmark -> SMPL-X joint (the fitter's correspondences)
LANDMARK_JOINTS = {11: 16, 12: 17, 13: 18, 14: 19, 15: 20, 16: 21, 23: 1, 24: 2, 25: 4, 26: 5, 27: 7, 28: 8}
# BlazePose landmark -> named surface point (vertex)
LANDMARK_VERTICES = {0: "nose", 2: "leye", 5: "reye", 7: "lear", 8: "rear", 29: "LHeel", 30: "RHeel",
                     31: "LBigToe", 32: "RBigToe"}
SURFACE_POINTS = ("nose", "leye", "reye", "lear", "rear", "LHeel", "RHeel", "LBigToe", "RBigToe")


def cache_dir() -> Path:
    root = os.environ.get("PRIVVID_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "privvid"


def _mannequin_to_smplx_index() -> np.ndarray:
    """For each of the mannequin's 54 joints, the SMPL-X joint it becomes."""
    idx = list(range(22))          # body joints share names and order
    idx += [20, 21]                # L_Hand / R_Hand carriers sit at the wrists
    idx += list(range(25, 40))     # left fingers
    idx += list(range(40, 55))     # right fingers
    return np.array(idx, dtype=np.int64)


def _affine_regressor(samples_v: np.ndarray, samples_j: np.ndarray, k: int = 48) -> np.ndarray:
    """Weights over ``k`` nearest rest vertices, summing to one, that map every
    vertex sample (S, V, 3) to its joint sample (S, 3) (least squares, min norm)."""
    rest_v, rest_j = samples_v[0], samples_j[0]
    near = np.argsort(np.linalg.norm(rest_v - rest_j, axis=1))[:k]
    # unknowns w (k): rows: sum w = 1 (weighted strongly), then x,y,z per sample
    rows = [np.ones((1, k)) * 10.0]
    rhs = [np.array([10.0])]
    for v, j in zip(samples_v, samples_j):
        rows.append(v[near].T)     # (3, k)
        rhs.append(j)
    a = np.concatenate(rows)
    b = np.concatenate(rhs)
    # ridge around uniform weights keeps the weights small, so float32 storage stays exact enough
    w0 = np.full(k, 1.0 / k)
    lam = 1e-6
    d = np.linalg.solve(a.T @ a + lam * np.eye(k), a.T @ (b - a @ w0))
    w = w0 + d
    out = np.zeros(rest_v.shape[0])
    out[near] = w
    return out


def build_embedded_model(path: Path) -> Path:
    """Convert the mannequin-x 'wooden' mannequin into an SMPL-X npz at ``path`` (atomic)."""
    from mannequin import Mannequin

    man = Mannequin("wooden")
    rest = man.rest_pose()
    v0 = man.vertices(rest).astype(np.float64)
    j0m = man.joint_transforms(rest)[:, :3, 3].astype(np.float64)
    n_v = v0.shape[0]
    to_x = _mannequin_to_smplx_index()

    def smplx_joints(jm: np.ndarray) -> np.ndarray:
        j = np.zeros((55, 3))
        j[:22] = jm[:22]
        j[25:55] = jm[24:54]
        head, neck = jm[15], jm[12]
        up = head - neck
        # jaw and eyes have no mannequin counterpart: place them on the head
        j[22] = head - 0.35 * up + np.array([0.0, 0.0, 0.04])
        j[23] = head + 0.25 * up + np.array([0.03, 0.0, 0.07])
        j[24] = head + 0.25 * up + np.array([-0.03, 0.0, 0.07])
        return j

    # shape directions: central differences of the mannequin's shape response
    samples_v, samples_j = [v0], [smplx_joints(j0m)]
    shapedirs = np.zeros((n_v, 3, NUM_BETAS + NUM_EXPR))
    for i in range(NUM_BETAS):
        vs = []
        for sign in (1.0, -1.0):
            beta = np.zeros(NUM_BETAS, np.float32)
            beta[i] = sign
            man.reshape(beta)
            p = man.rest_pose()
            v = man.vertices(p).astype(np.float64)
            vs.append(v)
            samples_v.append(v)
            samples_j.append(smplx_joints(man.joint_transforms(p)[:, :3, 3].astype(np.float64)))
        shapedirs[:, :, i] = 0.5 * (vs[0] - vs[1])
    man.reshape(np.zeros(NUM_BETAS, np.float32))

    sv = np.stack(samples_v)
    sj = np.stack(samples_j)
    j_reg = np.stack([_affine_regressor(sv, sj[:, j]) for j in range(55)])

    # skinning weights remapped onto SMPL-X joints
    weights = np.zeros((n_v, 55))
    ji = man._skin_joint_indices
    jw = man._skin_weights
    np.add.at(weights, (np.repeat(np.arange(n_v), ji.shape[1]), to_x[ji.reshape(-1)]), jw.reshape(-1))
    weights /= weights.sum(axis=1, keepdims=True)

    hand_mean = np.asarray(man._calibration.hand_mean, dtype=np.float64)  # (30, 3)
    faces = man.faces.astype(np.int64)

    # named surface points for landmarks (geometric, on the rest mesh)
    surface = _surface_points(v0, smplx_joints(j0m), weights)

    lmk_faces_idx = np.zeros(51, dtype=np.int64)
    head_faces = np.where(weights[faces[:, 0], 15] > 0.9)[0]
    if len(head_faces):
        lmk_faces_idx[:] = head_faces[np.linspace(0, len(head_faces) - 1, 51).astype(int)]
    data = dict(
        v_template=v0.astype(np.float32),
        f=faces,
        J_regressor=j_reg.astype(np.float32),
        weights=weights.astype(np.float32),
        kintree_table=np.stack([SMPLX_PARENTS, np.arange(55)]).astype(np.int64),
        shapedirs=shapedirs.astype(np.float32),
        posedirs=np.zeros((n_v, 3, 54 * 9), np.float32),
        hands_componentsl=np.eye(45, dtype=np.float32),
        hands_componentsr=np.eye(45, dtype=np.float32),
        hands_meanl=hand_mean[:15].reshape(-1).astype(np.float32),
        hands_meanr=hand_mean[15:].reshape(-1).astype(np.float32),
        lmk_faces_idx=lmk_faces_idx,
        lmk_bary_coords=np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (51, 1)),
        privvid_surface_names=np.array(SURFACE_POINTS),
        privvid_surface_vertices=np.array([surface[n] for n in SURFACE_POINTS], dtype=np.int64),
        privvid_source=np.array("mannequin-x 0.3.0 wooden (Apache-2.0), converted by privvid"),
    )
    savez_atomic(path, **data)
    return path


def _surface_points(v: np.ndarray, j: np.ndarray, weights: np.ndarray) -> dict[str, int]:
    """Vertex ids of nose, eyes, ears, heels and big toes on a rest mesh (y up, facing +z)."""
    out: dict[str, int] = {}
    head_v = np.where(weights[:, 15] + weights[:, 22] + weights[:, 23] + weights[:, 24] > 0.5)[0]
    hv = v[head_v]
    top, bottom = hv[:, 1].max(), hv[:, 1].min()
    eye_y = bottom + 0.55 * (top - bottom)
    nose_y = bottom + 0.42 * (top - bottom)

    def pick(candidates: np.ndarray, target: np.ndarray, scale: np.ndarray) -> int:
        d = ((v[candidates] - target) * scale) ** 2
        return int(candidates[np.argmin(d.sum(axis=1))])

    cx = float(j[15, 0])
    out["nose"] = pick(head_v, np.array([cx, nose_y, hv[:, 2].max() + 1.0]), np.array([4.0, 4.0, 1.0]))
    for side, sx in (("l", 1.0), ("r", -1.0)):
        out[f"{side}eye"] = pick(head_v, np.array([cx + sx * 0.035, eye_y, hv[:, 2].max() + 1.0]),
                                 np.array([4.0, 4.0, 1.0]))
        out[f"{side}ear"] = pick(head_v, np.array([cx + sx * 1.0, eye_y, j[15, 2]]), np.array([1.0, 4.0, 4.0]))
    for side, ankle, foot in (("L", 7, 10), ("R", 8, 11)):
        foot_v = np.where(weights[:, ankle] + weights[:, foot] > 0.5)[0]
        fv = v[foot_v]
        floor = fv[:, 1].min()
        out[f"{side}Heel"] = pick(foot_v, np.array([j[ankle, 0], floor, fv[:, 2].min() - 1.0]),
                                  np.array([4.0, 4.0, 1.0]))
        out[f"{side}BigToe"] = pick(foot_v, np.array([j[foot, 0], floor, fv[:, 2].max() + 1.0]),
                                    np.array([2.0, 4.0, 1.0]))
    return out


def embedded_model_path() -> Path:
    """The embedded mannequin in SMPL-X format, built on first use."""
    path = cache_dir() / "body_models" / EMBEDDED_NAME
    if not path.is_file():
        build_embedded_model(path)
    return path


@dataclass
class BodyModel:
    """An ``smplx.SMPLX`` model plus the landmark correspondences the fitter uses."""

    smplx_model: Any                 # smplx.SMPLX (batch 1 defaults; callers pass full tensors)
    path: Path
    embedded: bool
    gender: str
    faces: np.ndarray                # (F, 3) int64
    parents: np.ndarray              # (55,)
    j_template: np.ndarray           # (55, 3) rest joints
    j_shapedirs: np.ndarray          # (55, 3, B)
    surface_vertices: dict[str, int]
    sha256: str

    @property
    def num_betas(self) -> int:
        return self.j_shapedirs.shape[-1]

    @property
    def num_vertices(self) -> int:
        return int(self.smplx_model.v_template.shape[0])

    def info(self) -> dict[str, Any]:
        from privvid.io.model_files import recorded_path

        shown = recorded_path(self.path)
        return {
            "body_model": "embedded mannequin (mannequin-x 0.3.0 wooden, Apache-2.0)" if self.embedded else shown,
            "body_model_path": shown,   # under the home folder as ~/...: the record does not name the user
            "body_model_sha256": self.sha256,
            "gender": self.gender,
            "vertices": self.num_vertices,
            "faces": int(len(self.faces)),
            "num_betas": self.num_betas,
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _plain_copy(path: Path, trust: bool) -> tuple[Path, list[str]]:
    """smplx reads npz files with ``allow_pickle=True``: a pickled object array in the user's file would
    run code. Unless ``trust``, hand smplx a copy holding only the file's plain arrays (read with
    ``allow_pickle=False``; object arrays, which SMPL-X does not need, are left out). Returns the file to
    load and the names of the arrays left out."""
    if trust:
        return path, []
    import zipfile

    from privvid.io.model_files import npz_arrays

    if not zipfile.is_zipfile(path):   # numpy would read it as a pickle, and say so
        raise MissingWeights("SMPL-X body model", path, "An .npz file is a zip archive of arrays; this one is not.",
                             problem="is not a readable .npz file")
    try:
        arrays = npz_arrays(path)
        with np.load(path, allow_pickle=False) as archive:
            left_out = sorted(set(archive.files) - set(arrays))
    except Exception as exc:  # noqa: BLE001 - a broken archive
        raise MissingWeights("SMPL-X body model", path, f"{type(exc).__name__}: {exc}.",
                             problem="is not a readable .npz file") from exc
    digest = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()
    copy = cache_dir() / "plain" / f"{digest[:16]}.npz"
    if not copy.is_file():
        savez_atomic(copy, **arrays)
    return copy, left_out


def load_body_model(body_model: Path | None = None, gender: str = "neutral", trust: bool = False) -> BodyModel:
    """Load the user's SMPL-X npz (file, or folder with ``SMPLX_<GENDER>.npz``) or the embedded one.
    A user's file is read without pickle unless ``trust`` (``--trust-model-files``)."""
    import smplx
    import torch

    if gender not in ("neutral", "male", "female"):
        raise ConfigError(f"gender must be neutral, male or female, got {gender!r}")
    embedded = body_model is None
    if embedded:
        path = embedded_model_path()
        gender = "neutral"
    else:
        path = Path(body_model).expanduser()
        if path.is_dir():
            path = path / f"SMPLX_{gender.upper()}.npz"
        hint = ("Give --body-model an SMPL-X .npz file (or a folder holding SMPLX_NEUTRAL.npz / SMPLX_MALE.npz / "
                "SMPLX_FEMALE.npz, from smpl-x.is.tue.mpg.de) or leave it out to use the embedded mannequin; "
                "privvid downloads nothing.")
        if not path.is_file():
            raise MissingWeights("SMPL-X body model", path, hint)
        if path.suffix != ".npz":
            raise MissingWeights("SMPL-X body model", path, "Only .npz SMPL-X files are supported "
                                 "(the .pkl release needs chumpy). " + hint, problem="is not an .npz file")
    load_from, left_out = (path, []) if embedded else _plain_copy(path, trust)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = smplx.SMPLX(str(load_from), gender=gender, use_pca=False, num_betas=NUM_BETAS,
                                num_expression_coeffs=NUM_EXPR, flat_hand_mean=False, ext="npz")
        with np.load(path, allow_pickle=False) as raw:
            if "privvid_surface_names" in raw.files:
                surface = {str(n): int(i) for n, i in zip(raw["privvid_surface_names"],
                                                          raw["privvid_surface_vertices"])}
            else:
                from smplx.vertex_ids import vertex_ids

                surface = {n: int(vertex_ids["smplx"][n]) for n in SURFACE_POINTS}
    except MissingWeights:
        raise
    except Exception as exc:  # unreadable / not SMPL-X
        # named where the failure is about one of them (SMPL-X's own files hold object arrays it does not need)
        missed = [name for name in left_out if name in str(exc)]
        unread = (f" Its object arrays ({', '.join(missed)}) hold pickled data, which privvid does not load "
                  "(--trust-model-files loads them, and they can run code)." if missed else "")
        raise MissingWeights("SMPL-X body model", path, f"{type(exc).__name__}: {exc}.{unread}",
                             problem="could not be loaded as SMPL-X") from exc
    with torch.no_grad():
        jr = model.J_regressor.double()
        j_template = (jr @ model.v_template.double()).numpy()
        j_shapedirs = torch.einsum("jv,vcb->jcb", jr, model.shapedirs.double()).numpy()
    faces = np.asarray(model.faces, dtype=np.int64)
    if max(surface.values()) >= model.v_template.shape[0]:
        raise MissingWeights("SMPL-X body model", path, "Its landmark vertices are out of range.",
                             problem="does not have the standard SMPL-X topology")
    return BodyModel(
        smplx_model=model, path=path, embedded=embedded, gender=gender, faces=faces,
        parents=model.parents.numpy().astype(np.int64), j_template=j_template.astype(np.float32),
        j_shapedirs=j_shapedirs.astype(np.float32), surface_vertices=surface, sha256=_sha256(path),
    )
