"""Fit SMPL-X body parameters to landmarks, batched over frames and people, in torch.

Per person track: global orientation, 21 body joint rotations and translation per
frame, one shape (betas) shared by the whole track. Terms: 2D reprojection of the
landmarks (pinhole camera at the origin, OpenCV axes: x right, y down, z forward),
3D agreement with metric world landmarks when the pose source has them, a pose
prior, joint limits (knees and elbows bend one way), a shape prior, and temporal
smoothness (acceleration of landmarks and of joint rotations) that also links the
first frames of a window to the last frames fitted in the previous window.

The forward kinematics here is the smplx formulation (rest joints regressed from
the shaped template, rotations chained along the SMPL-X tree, linear blend
skinning for surface landmarks), restricted to the 25 joints the landmarks need,
so each iteration is cheap; ``tests/unit/test_mesh_fit.py`` checks it against
``smplx.SMPLX`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from privvid.mesh.body_model import LANDMARK_JOINTS, LANDMARK_VERTICES, BodyModel

NJ = 25  # body joints 0-21, jaw, eyes: everything the landmarks depend on
HIP_L, HIP_R = 23, 24
MIN_CONF = 0.3
# landmark weights: hips are defined differently by BlazePose and SMPL-X, trust them less
LANDMARK_WEIGHT = np.ones(33, dtype=np.float32)
LANDMARK_WEIGHT[[23, 24]] = 0.5
LANDMARK_WEIGHT[[1, 3, 4, 6, 9, 10, 17, 18, 19, 20, 21, 22]] = 0.0  # no model counterpart used
# the pose prior pulls towards arms hanging down (shoulders, joints 16/17, turned 1.2 rad about z), not
# towards the model's T-pose: a limb with no confident landmark then rests at the side, not sticking out
PRIOR_MEAN = np.zeros((21, 3), dtype=np.float32)
PRIOR_MEAN[15, 2], PRIOR_MEAN[16, 2] = -1.2, 1.2
# metric 3D landmarks of limbs the pose model rates as hidden are still its best guess of where they
# are (it infers them from the rest of the body): they count in the 3D term at least this much
WORLD_MIN_CONF = 0.3


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3)."""
    angle = torch.sqrt((aa * aa).sum(-1, keepdim=True) + 1e-12)
    axis = aa / angle
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype).expand(k.shape)
    return eye + s * k + (1 - c) * (k @ k)


def rotmat_to_aa(r: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> axis-angle (3,)."""
    cos = np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    if np.pi - angle < 1e-4:
        # axis from the symmetric part
        m = (r + np.eye(3)) / 2
        axis = np.sqrt(np.clip(np.diag(m), 0, None))
        i = int(np.argmax(axis))
        axis = m[i] / max(axis[i], 1e-9)
        return axis / np.linalg.norm(axis) * angle
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2 * np.sin(angle))
    return axis * angle


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R minimising sum |R src_i - dst_i|^2 (points already centred)."""
    u, _, vt = np.linalg.svd(dst.T @ src)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


class Kinematics(torch.nn.Module):
    """Landmarks and joints of the body model for batches of parameters."""

    def __init__(self, body: BodyModel) -> None:
        super().__init__()
        m = body.smplx_model
        self.parents = [int(p) for p in body.parents[:NJ]]
        # the kinematic chain level by level (joints at the same depth of the tree at once): 8 batched
        # steps instead of 24 one-joint steps (forward + backward on a 24-frame window 2.9 -> 1.9 ms)
        depth = [0] * NJ
        for i in range(1, NJ):
            depth[i] = depth[self.parents[i]] + 1
        self.levels: list[tuple[list[int], list[int], list[int]]] = []  # (joints, parents, parents' slots)
        slot = {0: 0}
        for level in range(1, max(depth) + 1):
            joints = [i for i in range(NJ) if depth[i] == level]
            parents = [self.parents[i] for i in joints]
            self.levels.append((joints, parents, [slot[p] for p in parents]))
            slot.update({j: k for k, j in enumerate(joints)})
        order = [0] + [j for joints, _, _ in self.levels for j in joints]
        self.register_buffer("unlevel", torch.tensor(np.argsort(order)), persistent=False)
        self.register_buffer("j_t", torch.tensor(body.j_template[:NJ], dtype=torch.float32))
        self.register_buffer("j_sd", torch.tensor(body.j_shapedirs[:NJ], dtype=torch.float32))
        vids = [body.surface_vertices[LANDMARK_VERTICES[i]] for i in sorted(LANDMARK_VERTICES)]
        w = m.lbs_weights[vids][:, :NJ].float()
        self.register_buffer("v_w", w / w.sum(1, keepdim=True).clamp_min(1e-8))
        self.register_buffer("v_t", m.v_template[vids].float())
        self.register_buffer("v_sd", m.shapedirs[vids].float())
        # landmark i -> row in cat(joints, surface points)
        src = np.full(33, -1, dtype=np.int64)
        for lm, j in LANDMARK_JOINTS.items():
            src[lm] = j
        for k, lm in enumerate(sorted(LANDMARK_VERTICES)):
            src[lm] = NJ + k
        self.available = src >= 0
        self.register_buffer("src", torch.tensor(np.where(src >= 0, src, 0)))

    def forward(self, go: torch.Tensor, bp: torch.Tensor, tr: torch.Tensor, betas: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """go (N,3), bp (N,21,3), tr (N,3), betas (N,B) -> landmarks (N,33,3), joints (N,22,3)."""
        n = go.shape[0]
        j = self.j_t[None] + torch.einsum("jcb,nb->njc", self.j_sd, betas)
        aa = torch.cat([go[:, None], bp, torch.zeros(n, NJ - 22, 3, dtype=go.dtype)], 1)
        rot = rodrigues(aa)  # (N, NJ, 3, 3)
        level_rot, level_pos = [rot[:, :1]], [j[:, :1]]
        for joints, parents, slots in self.levels:
            parent_rot, parent_pos = level_rot[-1][:, slots], level_pos[-1][:, slots]
            level_rot.append(parent_rot @ rot[:, joints])
            level_pos.append(parent_pos + (parent_rot @ (j[:, joints] - j[:, parents])[..., None])[..., 0])
        rots = torch.cat(level_rot, 1)[:, self.unlevel]
        pos = torch.cat(level_pos, 1)[:, self.unlevel]
        v = self.v_t[None] + torch.einsum("pcb,nb->npc", self.v_sd, betas)  # (N, P, 3)
        rel = v[:, :, None, :] - j[:, None, :, :]  # (N, P, NJ, 3)
        moved = (rots[:, None] @ rel[..., None])[..., 0] + pos[:, None]
        surf = (moved * self.v_w[None, :, :, None]).sum(2)
        pts = torch.cat([pos, surf], 1) + tr[:, None]
        return pts[:, self.src], pos[:, :22] + tr[:, None]


@dataclass
class TrackState:
    """What one track carries from one window to the next."""

    betas: np.ndarray
    last_frame: int = -10
    go: np.ndarray | None = None            # (3,)  last frame's parameters (warm start)
    bp: np.ndarray | None = None            # (21, 3)
    tr: np.ndarray | None = None            # (3,)
    anchor_pts: list = field(default_factory=list)   # up to 2 previous frames' landmarks (33, 3)
    anchor_bp: list = field(default_factory=list)
    anchor_frames: list = field(default_factory=list)
    windows: int = 0


@dataclass
class FitWeights:
    reproj: float = 1.0
    world: float = 4.0
    pose_prior: float = 2e-3
    joint_limit: float = 0.1
    shape_prior: float = 5e-3
    smooth_lateral: float = 0.02
    smooth_depth: float = 0.1
    smooth_pose: float = 0.002


class Fitter:
    """Fits one window of rows (track, frame, landmarks) for a fixed camera."""

    def __init__(self, body: BodyModel, focal: float, cx: float, cy: float, smooth: float = 1.0,
                 iters_cold: int = 80, iters_warm: int = 40, iters_smooth: int = 30, weights: FitWeights | None = None,
                 optimizer: str = "lbfgs") -> None:
        self.optimizer = optimizer
        self.kin = Kinematics(body)
        self.nb = body.num_betas
        self.focal, self.cx, self.cy = float(focal), float(cx), float(cy)
        self.smooth = float(smooth)
        self.iters_cold, self.iters_warm, self.iters_smooth = iters_cold, iters_warm, iters_smooth
        self.w = weights or FitWeights()
        with torch.no_grad():
            zero = torch.zeros(1, 3)
            self._rest_pts = self.kin(zero, torch.zeros(1, 21, 3), zero, torch.zeros(1, self.nb))[0][0].numpy()

    def project(self, pts: torch.Tensor) -> torch.Tensor:
        z = pts[..., 2:3].clamp_min(0.05)
        return torch.cat([self.focal * pts[..., 0:1] / z + self.cx, self.focal * pts[..., 1:2] / z + self.cy], -1)

    # ---- initialisation -------------------------------------------------
    def _init_row(self, img: np.ndarray, world: np.ndarray | None, prev: TrackState | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        conf = (img[:, 2] >= MIN_CONF) & self.kin.available & (LANDMARK_WEIGHT > 0)
        rest = self._rest_pts
        rest_hip = 0.5 * (rest[HIP_L] + rest[HIP_R])
        torso = [11, 12, 23, 24]
        bp = prev.bp.copy() if prev is not None and prev.bp is not None else PRIOR_MEAN.astype(np.float64)
        if world is not None:
            src = rest[torso] - rest[torso].mean(0)
            dst = world[torso] - world[torso].mean(0)
            r = kabsch(src, dst)
            w_hip = 0.5 * (world[HIP_L] + world[HIP_R])
            x3 = world - w_hip
            use = conf.copy()
        else:
            # 2D only: facing the camera if the person's left shoulder is on the image right
            facing = img[11, 0] >= img[12, 0]
            r = np.diag([1.0, -1.0, -1.0]) if facing else np.diag([-1.0, -1.0, 1.0])
            x3 = (rest - rest_hip) @ r.T
            use = conf.copy()
        # translation of the hip midpoint: linear least squares on the pinhole equations
        t = self._solve_translation(x3[use], img[use, :2])
        if t is None or t[2] <= 0.2:
            h = max(np.ptp(img[conf, 1]) if conf.sum() >= 2 else 100.0, 10.0)
            t = np.array([0.0, 0.0, self.focal * 1.6 / h])
            if conf.any():
                mx, my = img[conf, :2].mean(0)
                t[0], t[1] = (mx - self.cx) * t[2] / self.focal, (my - self.cy) * t[2] / self.focal
        j0 = self.kin.j_t[0].numpy()
        tr = t - r @ (rest_hip - j0) - j0
        return rotmat_to_aa(r), bp, tr

    def _solve_translation(self, x3: np.ndarray, uv: np.ndarray) -> np.ndarray | None:
        if len(x3) < 3:
            return None
        f, cx, cy = self.focal, self.cx, self.cy
        du, dv = uv[:, 0] - cx, uv[:, 1] - cy
        a = np.zeros((2 * len(x3), 3))
        b = np.zeros(2 * len(x3))
        a[0::2, 0], a[0::2, 2], b[0::2] = f, -du, du * x3[:, 2] - f * x3[:, 0]
        a[1::2, 1], a[1::2, 2], b[1::2] = f, -dv, dv * x3[:, 2] - f * x3[:, 1]
        t, *_ = np.linalg.lstsq(a, b, rcond=None)
        return t

    # ---- fitting ----------------------------------------------------------
    def fit(self, rows: list[dict], states: dict[int, TrackState]) -> list[dict]:
        """Fit one window (see ``_fit``). Runs torch on one thread: the tensors are small (a few
        thousand numbers), so a second thread only adds synchronisation; measured 8x faster on this
        shared 2-core machine under load."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._fit(rows, states)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, rows: list[dict], states: dict[int, TrackState]) -> list[dict]:
        """rows: dicts with track, frame, image (33,3), world (33,3)|None, box_h. Sorted by (track, frame).

        Returns per row: go, bp, tr, betas, joints (22,3), landmarks (33,3), err_px, err_rel.
        """
        if not rows:
            return []
        tracks = sorted({r["track"] for r in rows})
        tix = {t: i for i, t in enumerate(tracks)}
        for t in tracks:
            states.setdefault(t, TrackState(betas=np.zeros(self.nb, np.float32)))
        init = [self._init_row(r["image"], r["world"], states[r["track"]]) for r in rows]
        go = torch.tensor(np.stack([i[0] for i in init]), dtype=torch.float32, requires_grad=True)
        bp = torch.tensor(np.stack([i[1] for i in init]), dtype=torch.float32, requires_grad=True)
        tr = torch.tensor(np.stack([i[2] for i in init]), dtype=torch.float32, requires_grad=True)
        betas = torch.tensor(np.stack([states[t].betas for t in tracks]), dtype=torch.float32, requires_grad=True)
        row_track = torch.tensor([tix[r["track"]] for r in rows])

        img = torch.tensor(np.stack([r["image"] for r in rows]), dtype=torch.float32)
        usable = torch.tensor(LANDMARK_WEIGHT * self.kin.available, dtype=torch.float32)
        conf = img[..., 2] * (img[..., 2] >= MIN_CONF) * usable
        scale = torch.tensor([max(r["box_h"], 8.0) for r in rows], dtype=torch.float32)
        has_world = torch.tensor([r["world"] is not None for r in rows], dtype=torch.float32)
        world = torch.tensor(np.stack([r["world"] if r["world"] is not None else np.zeros((33, 3), np.float32)
                                       for r in rows]), dtype=torch.float32)
        world = world - 0.5 * (world[:, HIP_L:HIP_L + 1] + world[:, HIP_R:HIP_R + 1])
        c3_weight = img[..., 2].clamp_min(WORLD_MIN_CONF) * usable * has_world[:, None]
        prior_mean = torch.tensor(PRIOR_MEAN)

        # temporal triplets over [anchors of each track] + rows
        anchor_pts, anchor_bp, trip = [], [], []
        n_rows = len(rows)
        seq_index: list[tuple[int, int]] = []  # (combined index, frame) per track sequence
        for t in tracks:
            st = states[t]
            seq = []
            for p, b_, f in zip(st.anchor_pts, st.anchor_bp, st.anchor_frames):
                anchor_pts.append(p)
                anchor_bp.append(b_)
                seq.append((n_rows + len(anchor_pts) - 1, f))
            seq += [(i, r["frame"]) for i, r in enumerate(rows) if r["track"] == t]
            for k in range(2, len(seq)):
                (a, fa), (b, fb), (c, fc) = seq[k - 2], seq[k - 1], seq[k]
                if fb - fa == 1 and fc - fb == 1:
                    trip.append((a, b, c))
            seq_index += seq
        trip_t = torch.tensor(trip, dtype=torch.long).reshape(-1, 3)
        a_pts = torch.tensor(np.stack(anchor_pts), dtype=torch.float32) if anchor_pts else torch.zeros(0, 33, 3)
        a_bp = torch.tensor(np.stack(anchor_bp), dtype=torch.float32) if anchor_bp else torch.zeros(0, 21, 3)

        warm = all(states[t].windows > 0 for t in tracks)
        iters = self.iters_warm if warm else self.iters_cold
        # shape is fitted while a track is new, then kept (warm windows refine pose only)
        opt = torch.optim.Adam([{"params": [go, bp], "lr": 0.04}, {"params": [tr], "lr": 0.02},
                                {"params": [betas], "lr": 0.0 if warm else 0.02}])
        w = self.w
        lim_sign = torch.zeros(21, 3)
        # knees (joints 4, 5) bend with positive x; left elbow (18) negative y, right elbow (19) positive y
        for joint, axis, sign in ((4, 0, -1.0), (5, 0, -1.0), (18, 1, 1.0), (19, 1, -1.0)):
            lim_sign[joint - 1, axis] = sign
        twist = torch.zeros(21, 3)
        for joint in (4, 5):
            twist[joint - 1, 1:] = 1.0
        for joint in (18, 19):
            twist[joint - 1, [0, 2]] = 1.0

        def loss_fn() -> torch.Tensor:
            b_rows = betas[row_track]
            pts, _ = self.kin(go, bp, tr, b_rows)
            uv = self.project(pts)
            e2 = ((uv - img[..., :2]) ** 2).sum(-1) / scale[:, None] ** 2
            l2d = (conf * e2).sum() / conf.sum().clamp_min(1.0)
            rel = pts - 0.5 * (pts[:, HIP_L:HIP_L + 1] + pts[:, HIP_R:HIP_R + 1])
            e3 = ((rel - world) ** 2).sum(-1)
            c3 = c3_weight
            l3d = (c3 * e3).sum() / c3.sum().clamp_min(1.0)
            prior = ((bp - prior_mean) ** 2).mean()
            limit = (torch.relu(bp * lim_sign) ** 2).sum(-1).sum(-1).mean() + \
                    ((bp * twist) ** 2).sum(-1).sum(-1).mean() * 0.3
            shape = (betas ** 2).mean()
            loss = w.reproj * l2d + w.world * l3d + w.pose_prior * prior + w.joint_limit * limit + \
                w.shape_prior * shape
            if smooth_now[0] > 0 and len(trip_t):
                all_pts = torch.cat([pts, a_pts], 0)
                all_bp = torch.cat([bp, a_bp], 0)
                acc = all_pts[trip_t[:, 0]] - 2 * all_pts[trip_t[:, 1]] + all_pts[trip_t[:, 2]]
                acc_bp = all_bp[trip_t[:, 0]] - 2 * all_bp[trip_t[:, 1]] + all_bp[trip_t[:, 2]]
                # Charbonnier (smooth L1): small jitter is pulled to zero while large, real
                # accelerations (kicks, jumps) cost only linearly; depth is the least observed
                # direction, so it is smoothed harder than the image-plane motion
                eps = 0.005
                lat = torch.sqrt((acc[..., :2] ** 2).sum(-1) + eps ** 2) - eps
                dep = torch.sqrt(acc[..., 2] ** 2 + eps ** 2) - eps
                rot = torch.sqrt((acc_bp ** 2).sum(-1) + 0.01 ** 2) - 0.01
                loss = loss + smooth_now[0] * (w.smooth_lateral * lat.mean() + w.smooth_depth * dep.mean() +
                                             w.smooth_pose * rot.mean())
            return loss

        smooth_now = [0.0]
        if self.optimizer == "lbfgs":
            # two passes: every frame is first fitted to its own landmarks (no temporal term, so
            # nothing holds a limb at the pose it started from), then the smoothness term is
            # switched on and the whole window is refined from there
            passes = [(0.0, iters)] + ([(self.smooth, self.iters_smooth)] if self.smooth > 0 and len(trip_t)
                                       else [])
            for smooth_now[0], n_it in passes:
                lbfgs = torch.optim.LBFGS([go, bp, tr] + ([] if warm else [betas]), lr=1.0, max_iter=n_it,
                                          history_size=20, line_search_fn="strong_wolfe",
                                          tolerance_grad=1e-9, tolerance_change=1e-12)

                def closure() -> torch.Tensor:
                    lbfgs.zero_grad(set_to_none=True)  # noqa: B023 - called within this iteration
                    loss = loss_fn()
                    loss.backward()
                    return loss

                lbfgs.step(closure)
        else:
            smooth_now[0] = self.smooth
            for _ in range(iters):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn()
                loss.backward()
                opt.step()

        with torch.no_grad():
            b_rows = betas[row_track]
            pts, joints = self.kin(go, bp, tr, b_rows)
            uv = self.project(pts)
            err = torch.sqrt(((uv - img[..., :2]) ** 2).sum(-1))
            valid = conf > 0
            err_px = (err * valid).sum(1) / valid.sum(1).clamp_min(1)
        out = []
        go_n, bp_n, tr_n, b_n = go.detach().numpy(), bp.detach().numpy(), tr.detach().numpy(), betas.detach().numpy()
        pts_n, j_n = pts.numpy(), joints.numpy()
        for i, r in enumerate(rows):
            n_valid = int(valid[i].sum())
            out.append(dict(go=go_n[i], bp=bp_n[i], tr=tr_n[i], betas=b_n[tix[r["track"]]], joints=j_n[i],
                            landmarks=pts_n[i], err_px=float(err_px[i]) if n_valid else float("nan"),
                            err_rel=float(err_px[i]) / max(r["box_h"], 1.0) if n_valid else float("nan"),
                            n_valid=n_valid))
        # carry state
        for t in tracks:
            st = states[t]
            idx = [i for i, r in enumerate(rows) if r["track"] == t]
            st.betas = b_n[tix[t]].copy()
            last = idx[-1]
            st.go, st.bp, st.tr = go_n[last].copy(), bp_n[last].copy(), tr_n[last].copy()
            frames = [rows[i]["frame"] for i in idx]
            keep = idx[-2:]
            if len(keep) == 1 and st.anchor_pts and st.anchor_frames[-1] == rows[keep[0]]["frame"] - 1:
                st.anchor_pts, st.anchor_bp, st.anchor_frames = (
                    [st.anchor_pts[-1], pts_n[keep[0]]], [st.anchor_bp[-1], bp_n[keep[0]]],
                    [st.anchor_frames[-1], rows[keep[0]]["frame"]])
            else:
                st.anchor_pts = [pts_n[i] for i in keep]
                st.anchor_bp = [bp_n[i] for i in keep]
                st.anchor_frames = [rows[i]["frame"] for i in keep]
            st.last_frame = frames[-1]
            st.windows += 1
        return out
