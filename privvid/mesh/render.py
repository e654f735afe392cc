"""Offscreen rendering of body meshes with pyrender (EGL by default) and compositing."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

GREY = (0.62, 0.62, 0.62, 1.0)
# OpenCV camera axes (x right, y down, z forward) -> OpenGL (x right, y up, z backward)
CV_TO_GL = np.array([1.0, -1.0, -1.0], dtype=np.float32)


class MeshRenderer:
    """Renders all bodies of a frame in one scene (the depth buffer orders people) and
    returns colour + a coverage mask; one renderer per output resolution."""

    def __init__(self, width: int, height: int, focal: float, cx: float, cy: float,
                 faces: np.ndarray, platform: str | None = None) -> None:
        os.environ.setdefault("PYOPENGL_PLATFORM", platform or "egl")
        import pyrender

        self._pr = pyrender
        self.width, self.height = int(width), int(height)
        self.faces = np.ascontiguousarray(faces, dtype=np.uint32)
        self.renderer = pyrender.OffscreenRenderer(self.width, self.height)
        self.scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(0.35, 0.35, 0.35))
        cam = pyrender.IntrinsicsCamera(fx=focal, fy=focal, cx=cx, cy=cy,
                                        znear=0.05, zfar=200.0)
        self.scene.add(cam, pose=np.eye(4))
        light = pyrender.DirectionalLight(color=np.ones(3), intensity=2.5)
        tilt = np.eye(4)
        a = np.deg2rad(-25.0)
        tilt[:3, :3] = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        self.scene.add(light, pose=tilt)
        self.material = pyrender.MetallicRoughnessMaterial(baseColorFactor=GREY, metallicFactor=0.0,
                                                           roughnessFactor=0.9, alphaMode="OPAQUE")
        self._nodes: list[Any] = []

    def _normals(self, v: np.ndarray) -> np.ndarray:
        f = self.faces
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        vn = np.zeros_like(v)
        for c in range(3):  # area-weighted face normals summed per vertex (bincount beats add.at)
            vn[:, c] = sum(np.bincount(f[:, k], weights=fn[:, c], minlength=len(v)) for k in range(3))
        vn /= np.linalg.norm(vn, axis=1, keepdims=True).clip(1e-12)
        return vn.astype(np.float32)

    def render(self, vertices_cv: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """vertices_cv: list of (V, 3) arrays in OpenCV camera coordinates.
        Returns colour (H, W, 3) uint8 and coverage (H, W) bool."""
        pr = self._pr
        for node in self._nodes:
            self.scene.remove_node(node)
        self._nodes = []
        if not vertices_cv:
            return np.zeros((self.height, self.width, 3), np.uint8), np.zeros((self.height, self.width), bool)
        for v in vertices_cv:
            vg = (np.asarray(v, dtype=np.float32) * CV_TO_GL).astype(np.float32)
            prim = pr.Primitive(positions=vg, normals=self._normals(vg), indices=self.faces,
                                material=self.material, mode=4)
            self._nodes.append(self.scene.add(pr.Mesh(primitives=[prim])))
        color, depth = self.renderer.render(self.scene)
        return np.asarray(color[..., :3], dtype=np.uint8), depth > 0

    def close(self) -> None:
        try:
            self.renderer.delete()
        except Exception:
            pass


def composite(background: np.ndarray, color: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    out = background.copy()
    out[coverage] = color[coverage]
    return out
