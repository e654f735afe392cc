"""Offscreen rendering of body meshes with pyrender (EGL by default) and compositing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

GREY = (0.8, 0.8, 0.8, 1.0)
# OpenCV camera axes (x right, y down, z forward) -> OpenGL (x right, y up, z backward)
CV_TO_GL = np.array([1.0, -1.0, -1.0], dtype=np.float32)
# baked lighting (OpenGL camera axes: light comes from above, slightly right, towards the scene)
LIGHT_DIR = np.array([0.3, 0.6, 0.75], dtype=np.float32) / np.linalg.norm([0.3, 0.6, 0.75])
AMBIENT, DIFFUSE, HEADLIGHT = 0.35, 0.55, 0.35


def simplified(rest_vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh drawn: ``(vertex index (K,) into the body's vertices, faces (F', 3) into those K)``.

    llvmpipe's cost follows the triangles facing the camera (13-17 ms per body for the mannequin's 48k
    faces at 432x240, 6-8 ms for 16k), and a person a few hundred pixels tall shows no more detail than
    ~16k of them give. The
    rest pose is decimated once (quadric error, fast-simplification); each kept vertex is the body vertex
    nearest its simplified position, so the posed body is drawn from its own vertices. ``max_faces`` 0 or a
    mesh already small enough: the full mesh.
    """
    faces = np.asarray(faces, dtype=np.int64)
    n = len(rest_vertices)
    if max_faces <= 0 or len(faces) <= max_faces:
        return np.arange(n), faces
    import fast_simplification

    rest = np.asarray(rest_vertices, dtype=np.float64)
    _, _, collapses = fast_simplification.simplify(rest, faces, target_count=max_faces, return_collapses=True)
    points, small, mapping = fast_simplification.replay_simplification(rest, faces, collapses)
    kept = np.nonzero(mapping >= 0)[0]
    offset = np.linalg.norm(rest[kept] - points[mapping[kept]], axis=1)
    order = np.lexsort((offset, mapping[kept]))          # by new vertex, nearest body vertex first
    group = mapping[kept][order]
    first = np.r_[True, group[1:] != group[:-1]]
    index = np.full(len(points), -1, dtype=np.int64)
    index[group[first]] = kept[order][first]
    used = np.unique(small)
    if (index[used] < 0).any():  # pragma: no cover - every simplified vertex comes from body vertices
        raise ValueError("mesh simplification left a vertex without a body vertex")
    # keep only the vertices the simplified faces use, numbered densely
    slot = np.full(len(points), -1, dtype=np.int64)
    slot[used] = np.arange(len(used))
    return index[used], slot[small]


# a body at most this many px on screen (the longer of its width and height) is drawn with 1/4 (1/2) of the
# faces: below ~1.5 px a triangle adds no detail (at 80 px the mannequin's 4k-face mesh gives ~1 px a
# front-facing triangle)
DETAIL = ((80.0, 4), (160.0, 2))


def detail_levels(rest_vertices: np.ndarray, faces: np.ndarray, max_faces: int
                  ) -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[float, np.ndarray, np.ndarray]]]:
    """The mesh a body is drawn with (:func:`simplified` to ``max_faces``) and the coarser ones for small
    bodies (``MeshRenderer(coarser=...)``: :data:`DETAIL`'s shares of that mesh's faces, never under 1000,
    each level fewer faces than the next larger one). ``max_faces`` 0 (every face): no coarser mesh."""
    top = simplified(rest_vertices, faces, max_faces)
    coarser: list[tuple[float, np.ndarray, np.ndarray]] = []
    if max_faces > 0:
        base = len(top[1])
        for px, part in sorted(DETAIL, reverse=True):      # largest first: each level under the one above
            n = max(1000, base // part)
            if n < (len(coarser[0][2]) if coarser else base):
                coarser.insert(0, (px, *simplified(rest_vertices, faces, n)))
    return top, coarser


class _Level:
    """One mesh a body may be drawn with, for bodies at most ``max_size`` px on screen (the longer side)."""

    def __init__(self, max_size: float, index: np.ndarray | None, faces: np.ndarray) -> None:
        from scipy.sparse import csr_matrix

        self.max_size = max_size
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.faces = np.ascontiguousarray(faces, dtype=np.uint32)
        # vertex x face incidence: a vertex normal is the sum of its faces' (area-weighted) normals
        f = self.faces.astype(np.int64)
        n_vertices = int(f.max()) + 1 if len(f) else 0
        self.incidence = csr_matrix((np.ones(f.size, np.float32), (f.ravel(), np.repeat(np.arange(len(f)), 3))),
                                    shape=(n_vertices, len(f)))


class MeshRenderer:
    """Renders all bodies of a frame in one scene (the depth buffer orders people) and
    returns colour + a coverage mask; one renderer per output resolution."""

    def __init__(self, width: int, height: int, focal: float, cx: float, cy: float,
                 faces: np.ndarray, platform: str | None = None, vertex_index: np.ndarray | None = None,
                 coarser: Sequence[tuple[float, np.ndarray, np.ndarray]] = (), samples: int = 0) -> None:
        """``faces`` index the drawn vertices: the body's own, or ``vertices[vertex_index]`` (a simplified
        mesh, see :func:`simplified`). ``coarser``: (size in px, vertex index, faces) of coarser meshes; a
        body no larger on screen than that (its longer side) is drawn with the coarsest such mesh
        (:func:`detail_levels`).
        ``samples``: multisampling of the framebuffer (pyrender's own is 4). The stage composites the
        drawn pixels by coverage, so a multisampled edge pixel is the body's grey blended with the black
        clear colour, a dark outline, and llvmpipe spends about 40% of a body's drawing on it (7.3 -> 4.4
        ms for a 16k-face body at 432x240 on one core, 2026-12-06): 0, none, by default."""
        os.environ.setdefault("PYOPENGL_PLATFORM", platform or "egl")
        import pyrender

        self._pr = pyrender
        self.width, self.height = int(width), int(height)
        self.focal = float(focal)
        self.samples = int(samples)
        top = _Level(np.inf, vertex_index, faces)
        self._levels = sorted((_Level(float(px), idx, f) for px, idx, f in coarser), key=lambda lv: lv.max_size)
        self._levels.append(top)
        self.drawn = {len(lv.faces): 0 for lv in self._levels}   # bodies drawn, by the faces of their mesh
        self.renderer = pyrender.OffscreenRenderer(self.width, self.height)
        self._configured = False
        self.scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0))
        cam = pyrender.IntrinsicsCamera(fx=focal, fy=focal, cx=cx, cy=cy,
                                        znear=0.05, zfar=200.0)
        self.scene.add(cam, pose=np.eye(4))
        self.material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0), metallicFactor=0.0,
                                                           roughnessFactor=1.0, alphaMode="OPAQUE")
        self._nodes: list[Any] = []

    def _normals(self, v: np.ndarray, level: _Level | None = None) -> np.ndarray:
        """Vertex normals of ``v`` drawn with ``level``'s faces (default: the full mesh)."""
        level = self._levels[-1] if level is None else level
        f, incidence = level.faces, level.incidence
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])   # area-weighted face normals
        vn = np.zeros_like(v)
        n = incidence.shape[0]
        vn[:n] = incidence @ fn
        vn /= np.linalg.norm(vn, axis=1, keepdims=True).clip(1e-12)
        return vn.astype(np.float32)

    def _shade(self, vg: np.ndarray, level: _Level | None = None) -> np.ndarray:
        """Per-vertex grey: ambient + Lambert from a light above and behind the camera."""
        n = self._normals(vg, level)
        light = LIGHT_DIR
        lambert = np.clip(n @ light, 0.0, None)
        # surfaces facing the viewer get a little extra (soft headlight), so nothing goes black
        head = np.clip(n[:, 2], 0.0, None)
        g = np.clip(AMBIENT + DIFFUSE * lambert + HEADLIGHT * head, 0.0, 1.0) * GREY[0]
        rgba = np.empty((len(vg), 4), np.float32)
        rgba[:, :3] = g[:, None]
        rgba[:, 3] = 1.0
        return rgba

    def render(self, vertices_cv: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """vertices_cv: list of (V, 3) arrays in OpenCV camera coordinates.
        Returns colour (H, W, 3) uint8 and coverage (H, W) bool."""
        pr = self._pr
        for node in self._nodes:
            self.scene.remove_node(node)
        self._nodes = []
        if not vertices_cv:
            return np.zeros((self.height, self.width, 3), np.uint8), np.zeros((self.height, self.width), bool)
        drawn = []
        for v in vertices_cv:
            v = np.asarray(v, dtype=np.float32)
            level = self._level(v)
            if level.index is not None:
                v = v[level.index]
            vg = v * CV_TO_GL
            prim = pr.Primitive(positions=vg, color_0=self._shade(vg, level), indices=level.faces, material=self.material,
                                mode=4)
            self._nodes.append(self.scene.add(pr.Mesh(primitives=[prim])))
            drawn.append(len(level.faces))
        # lighting is baked into vertex colours on the CPU, so the GPU (llvmpipe) runs the cheap
        # unlit shader instead of pyrender's PBR pass
        if self._configured:
            color, depth = self.renderer.render(self.scene, flags=pr.RenderFlags.FLAT)
        else:
            # pyrender makes its framebuffer on the first render, always with 4 samples: ask for ours (a
            # pyrender without that GL name keeps its own 4, and the sidecar says so)
            import pyrender.renderer as pr_renderer

            storage = getattr(pr_renderer, "glRenderbufferStorageMultisample", None)
            if storage is None:
                self.samples = 4
                color, depth = self.renderer.render(self.scene, flags=pr.RenderFlags.FLAT)
            else:
                pr_renderer.glRenderbufferStorageMultisample = \
                    lambda target, _samples, *rest: storage(target, self.samples, *rest)
                try:
                    color, depth = self.renderer.render(self.scene, flags=pr.RenderFlags.FLAT)
                finally:
                    pr_renderer.glRenderbufferStorageMultisample = storage
            self._configured = True
        for n in drawn:                       # counted once drawn
            self.drawn[n] += 1
        return np.asarray(color[..., :3], dtype=np.uint8), depth > 0

    def reset_counts(self) -> None:
        """Start :attr:`drawn` afresh (a new clip)."""
        self.drawn = dict.fromkeys(self.drawn, 0)

    def _level(self, v: np.ndarray) -> _Level:
        """The coarsest mesh whose limit the body's size on screen (px, the longer of its width and height)
        is within; the full one for a body reaching behind the camera (or not finite)."""
        if len(self._levels) == 1:
            return self._levels[0]
        z = v[:, 2]
        if not (z > 0).all():
            return self._levels[-1]
        xy = v[:, :2] / z[:, None]
        size = self.focal * float((xy.max(axis=0) - xy.min(axis=0)).max())
        return next((lv for lv in self._levels if size <= lv.max_size), self._levels[-1])

    def close(self) -> None:
        try:
            self.renderer.delete()
        except Exception:
            pass


def composite(background: np.ndarray, color: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    out = background.copy()
    out[coverage] = color[coverage]
    return out
