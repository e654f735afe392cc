"""Render a :class:`~privvid.synth.spec.ClipSpec`: the embedded mannequin body (through ``smplx``), posed
by its motion, seen by a pinhole camera, drawn by privvid's :class:`~privvid.mesh.render.MeshRenderer`
over the clip's background.

World frame: y up, the floor is y = 0, the body stands at the origin facing +z before the clip's yaw
turns it. The camera (OpenCV axes, focal length as in mesh mode) stands in front of it at ``height``,
far enough back that the body's reach (its height plus 0.4 m for raised arms and jumps) spans
``fill`` of the frame height, and looks at the middle of that reach (plus ``target`` metres).

Lighting is per clip: ambient + Lambert from a light at (azimuth, elevation) in the camera frame + a
soft headlight, baked into the vertex colours (shirt, trousers, skin, shoes by skinning region). The
body is drawn at twice the output size and averaged down, so its outline is anti-aliased; a soft
contact shadow darkens the floor under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from privvid.mesh.render import MeshRenderer
from privvid.synth.backgrounds import make_background
from privvid.synth.motions import ClipPose, get_motion, pose_clip
from privvid.synth.spec import ClipSpec

REACH_MARGIN = 0.4     # metres above the head the camera keeps in view (raised arms, jumps)
SUPERSAMPLE = 2
# SMPL-X joints whose skinned vertices take each colour (the rest is the shirt)
PART_JOINTS = {
    "trousers": (0, 1, 2, 4, 5),
    "shoes": (7, 8, 10, 11),
    "skin": (12, 15, 20, 21, 22, 23, 24, *range(25, 55)),
}
HEADLIGHT = 0.2


class _LitRenderer(MeshRenderer):
    """MeshRenderer with per-clip vertex colours and light instead of its fixed grey."""

    base: np.ndarray = np.full((1, 3), 0.8, np.float32)
    light: np.ndarray = np.array([0.0, 0.6, 0.8], np.float32)
    ambient: float = 0.35
    diffuse: float = 0.55

    def _shade(self, vg: np.ndarray, level: Any = None) -> np.ndarray:
        n = self._normals(vg, level)
        lambert = np.clip(n @ self.light, 0.0, None)
        head = np.clip(n[:, 2], 0.0, None)
        g = np.clip(self.ambient + self.diffuse * lambert + HEADLIGHT * head, 0.0, 1.2)
        rgba = np.ones((len(vg), 4), np.float32)
        rgba[:, :3] = np.clip(self.base * g[:, None], 0.0, 1.0)
        return rgba


def look_at(eye: np.ndarray, target: np.ndarray, roll_deg: float = 0.0) -> np.ndarray:
    """World -> OpenCV camera rotation (rows: right, down, forward) for a camera at ``eye``."""
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    r = np.deg2rad(roll_deg)
    right, down = np.cos(r) * right + np.sin(r) * down, -np.sin(r) * right + np.cos(r) * down
    return np.stack([right, down, fwd])


class SynthRenderer:
    """Body model + one offscreen renderer for one output size; renders clips one after another."""

    def __init__(self, width: int, height: int, body: Any = None) -> None:
        from privvid.mesh.body_model import load_body_model
        from privvid.mesh.stage import default_focal

        self.body = body if body is not None else load_body_model()
        self.width, self.height = int(width), int(height)
        self.focal = default_focal(self.width, self.height)
        ss = SUPERSAMPLE
        self._renderer = _LitRenderer(self.width * ss, self.height * ss, self.focal * ss, self.width * ss / 2.0,
                                      self.height * ss / 2.0, self.body.faces, samples=4)
        weights = self.body.smplx_model.lbs_weights.detach().numpy()
        owner = weights.argmax(axis=1)
        self._part = np.full(len(owner), "shirt", dtype=object)
        for part, joints in PART_JOINTS.items():
            self._part[np.isin(owner, joints)] = part

    # ------------------------------------------------------------------ body
    def forward(self, pose: ClipPose, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (T, V, 3) and body joints (T, 22, 3) in the body's frame, standing on the floor
        (y = 0) with the motion's lift, shifted by the motion's floor shift."""
        import torch

        m = self.body.smplx_model
        n = len(pose.body_pose)
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
        threads = torch.get_num_threads()
        torch.set_num_threads(1)   # one thread: the same sums in the same order on every run
        try:
            with torch.no_grad():
                z3 = torch.zeros(n, 3)
                out = m(global_orient=f32(pose.global_orient), body_pose=f32(pose.body_pose.reshape(n, 63)),
                        transl=z3, betas=f32(np.tile(np.asarray(betas, np.float32)[None], (n, 1))),
                        jaw_pose=z3, leye_pose=z3, reye_pose=z3, left_hand_pose=torch.zeros(n, 45),
                        right_hand_pose=torch.zeros(n, 45), expression=torch.zeros(n, m.num_expression_coeffs),
                        return_verts=True)
        finally:
            torch.set_num_threads(threads)
        v = out.vertices.numpy().astype(np.float64)
        j = out.joints[:, :22].numpy().astype(np.float64)
        offset = np.zeros((n, 1, 3))
        offset[:, 0, 0] = pose.transl[:, 0]
        offset[:, 0, 1] = pose.transl[:, 1] - v[:, :, 1].min(axis=1)
        offset[:, 0, 2] = pose.transl[:, 2]
        return v + offset, j + offset

    def rest_height(self, betas: np.ndarray) -> float:
        jt = self.body.smplx_model
        import torch

        with torch.no_grad():
            v = jt(betas=torch.as_tensor(np.asarray(betas, np.float32))[None]).vertices[0].numpy()
        return float(v[:, 1].max() - v[:, 1].min())

    # ------------------------------------------------------------------ camera
    def camera(self, spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
        """(R, eye): world -> camera is ``R @ (p - eye)``."""
        cam = spec.camera
        h = self.rest_height(np.asarray(spec.betas))
        reach = h + REACH_MARGIN
        dist = self.focal * reach / (self.height * float(cam["fill"]))
        side = -float(cam["offset"]) * self.width * dist / self.focal
        aim = np.array([side, reach / 2.0 + float(cam["target"]), 0.0])
        eye = np.array([side, float(cam["height"]), dist])
        return look_at(eye, aim, float(cam["roll"])), eye

    def _project(self, p: np.ndarray, rot: np.ndarray, eye: np.ndarray) -> np.ndarray:
        q = (p - eye) @ rot.T
        z = np.clip(q[:, 2], 1e-3, None)
        return np.stack([self.focal * q[:, 0] / z + self.width / 2.0, self.focal * q[:, 1] / z + self.height / 2.0], 1)

    # ------------------------------------------------------------------ drawing
    def _look(self, spec: ClipSpec) -> None:
        colors = {k: np.asarray(v, np.float32) / 255.0 for k, v in spec.colors.items()}
        base = np.empty((len(self._part), 3), np.float32)
        for part in ("shirt", "trousers", "skin", "shoes"):
            base[self._part == part] = colors[part]
        az, el = np.deg2rad(spec.light["azimuth"]), np.deg2rad(spec.light["elevation"])
        r = self._renderer
        r.base = base
        r.light = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], np.float32)
        r.ambient, r.diffuse = float(spec.light["ambient"]), float(spec.light["diffuse"])

    def _shadow(self, frame: np.ndarray, ground: np.ndarray, lift: float, rot: np.ndarray, eye: np.ndarray
                ) -> np.ndarray:
        import cv2

        a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        ring = np.stack([ground[0] + 0.32 * np.cos(a), np.zeros_like(a), ground[2] + 0.24 * np.sin(a)], 1)
        uv = self._project(ring, rot, eye)
        poly = np.zeros(frame.shape[:2], np.float32)
        cv2.fillPoly(poly, [np.round(uv * 8).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=3)
        k = max(3, int(self.width / 16) | 1)
        mask = np.asarray(cv2.GaussianBlur(poly, (k, k), 0), np.float32)
        strength = 0.4 * (1.0 - min(lift / 0.4, 1.0) * 0.6)
        return frame * (1.0 - strength * mask[..., None])

    def render(self, spec: ClipSpec, frames: int, backgrounds: Path | None = None) -> np.ndarray:
        """The clip's frames (T, H, W, 3) uint8."""
        import cv2

        motion = get_motion(spec.motion)
        pose = pose_clip(motion, frames, spec.params)
        verts, joints = self.forward(pose, np.asarray(spec.betas))
        yaw = _yaw(spec.camera["yaw"])
        rot, eye = self.camera(spec)
        bg = make_background(spec.background, self.width, self.height, frames, backgrounds)
        self._look(spec)
        out = np.empty((frames, self.height, self.width, 3), np.uint8)
        size = (self.width, self.height)
        for t in range(frames):
            world = verts[t] @ yaw.T
            cam = (world - eye) @ rot.T
            color, hit = self._renderer.render([cam.astype(np.float32)])
            alpha = cv2.resize(hit.astype(np.float32), size, interpolation=cv2.INTER_AREA)
            premult = cv2.resize(color.astype(np.float32), size, interpolation=cv2.INTER_AREA)
            ground = joints[t, 0] @ yaw.T
            frame = self._shadow(bg[t].astype(np.float32), ground, float(pose.transl[t, 1]), rot, eye)
            frame = frame * (1.0 - alpha[..., None]) + premult
            out[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        return out

    def close(self) -> None:
        self._renderer.close()


def _yaw(deg: float) -> np.ndarray:
    a = np.deg2rad(float(deg))
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
