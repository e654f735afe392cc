"""Parametric actions of one body, as SMPL-X body poses over a clip.

Each motion is a function of the phase ``t`` (an array in [0, 1), one value per frame: where in its
cycle the action is) and :class:`MotionParams`. It returns joint angles for the 21 body joints of
SMPL-X (the pelvis is the root and has none), a root yaw, a root shift on the floor and a lift above
the floor. :func:`pose_clip` turns that into what ``smplx.SMPLX`` takes: ``body_pose`` (T, 21, 3) and
``global_orient`` (T, 3) as axis-angle, and a root translation (T, 3).

Conventions (the body's rest frame, which is SMPL-X's): y up, the body faces +z, its left side is +x,
the rest pose is a T-pose. A joint's angles are Euler angles in degrees about the parent's rest axes,
applied z first, then y, then x (``scipy``'s extrinsic ``"zyx"``). So for the left side:

- shoulder z < 0 lowers the arm from the T-pose, z > 0 raises it; shoulder y < 0 swings it forward;
  with the arm hanging, shoulder x < 0 swings it forward and up;
- hip x < 0 lifts the thigh forward, hip z > 0 spreads the leg outwards; knee x > 0 bends the knee;
- spine x > 0 bends the trunk forward, spine z < 0 bends it to the body's left.

A motion is written for its leading side = left; ``side = -1`` mirrors it (left and right joints
swapped, the y and z angles negated, the yaw and the sideways shift negated).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

# SMPL-X body joints in their order (smplx.joint_names.JOINT_NAMES[:22]); body_pose holds 1..21
JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
BODY_JOINTS = JOINTS[1:]
EULER_ORDER = "zyx"


@dataclass(frozen=True)
class MotionParams:
    """How one clip performs its action (all drawn per clip)."""

    amplitude: float = 1.0   # scales the action's angles and heights (about 0.75-1.25)
    cycles: float = 1.0      # action cycles in the clip
    phase: float = 0.0       # where in its cycle the clip starts, in [0, 1)
    side: int = 1            # +1: the left limb leads (or turns left), -1: mirrored
    rest_arm: float = 12.0   # degrees the hanging arms stand off the body
    lean: float = 2.0        # degrees of static forward lean of the trunk

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Angles:
    """A motion's raw output over T frames."""

    joints: dict[str, np.ndarray]   # joint name -> (T, 3) Euler degrees (x, y, z), see the module doc
    yaw: np.ndarray                 # (T,) degrees about the vertical axis
    shift: np.ndarray               # (T, 2) metres on the floor (x sideways, z forwards)
    lift: np.ndarray                # (T,) metres between the lowest point of the body and the floor
    pitch: np.ndarray | None = None  # (T,) degrees the whole body tips forwards (about the pelvis)


@dataclass
class ClipPose:
    """What smplx takes, per frame."""

    body_pose: np.ndarray       # (T, 21, 3) axis-angle, radians
    global_orient: np.ndarray   # (T, 3) axis-angle, radians
    transl: np.ndarray          # (T, 3): x, z shift on the floor; y = lift above the floor


@dataclass(frozen=True)
class Motion:
    name: str
    func: Callable[[np.ndarray, MotionParams], Angles]
    cycles: tuple[float, float]           # range of cycles per clip
    phase: tuple[float, float] = (0.0, 1.0)
    about: str = ""


# ---------------------------------------------------------------- building blocks

def _wave(t: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """sin over the cycle."""
    return np.sin(2.0 * np.pi * (t + shift))


def _bump(t: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """0 -> 1 -> 0 over the cycle (raised cosine)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * (t + shift))


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _rest(t: np.ndarray, p: MotionParams) -> Angles:
    """Standing, arms hanging a little off the body, elbows slightly bent."""
    n = len(t)
    j = {name: np.zeros((n, 3)) for name in BODY_JOINTS}
    j["left_shoulder"][:, 2] = -(90.0 - p.rest_arm)
    j["right_shoulder"][:, 2] = 90.0 - p.rest_arm
    j["left_elbow"][:, 1] = -12.0
    j["right_elbow"][:, 1] = 12.0
    for name, share in (("spine1", 0.5), ("spine2", 0.3), ("spine3", 0.2)):
        j[name][:, 0] = p.lean * share
    return Angles(j, np.zeros(n), np.zeros((n, 2)), np.zeros(n))


def _both(a: Angles, joint: str, x: object = None, y: object = None, z: object = None) -> None:
    """Set a left joint's angles and the mirrored right ones (x kept, y and z negated)."""
    for side, sign in (("left_", 1.0), ("right_", -1.0)):
        arr = a.joints[side + joint]
        for axis, value, s in ((0, x, 1.0), (1, y, sign), (2, z, sign)):
            if value is not None:
                arr[:, axis] = s * np.asarray(value, dtype=float)


def _leg_flat_foot(a: Angles, side: str) -> None:
    """Keep the sole parallel to the thigh + shin chain's start (ankle undoes hip + knee pitch)."""
    a.joints[f"{side}_ankle"][:, 0] = -(a.joints[f"{side}_hip"][:, 0] + a.joints[f"{side}_knee"][:, 0])


# ---------------------------------------------------------------- the motions

def wave(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    s = _wave(t)
    a.joints["left_shoulder"][:] = np.stack([np.zeros_like(t), np.full_like(t, -20.0), np.full_like(t, 25.0)], 1)
    a.joints["left_elbow"][:] = np.stack([np.zeros_like(t), np.zeros_like(t), 75.0 + 35.0 * p.amplitude * s], 1)
    a.joints["left_wrist"][:, 2] = 15.0 * p.amplitude * s
    return a


def clap(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    open_ = 1.0 - _bump(t)                      # 0 = hands together
    _both(a, "shoulder", x=0.0, y=-84.0 + 55.0 * p.amplitude * open_, z=-12.0)
    _both(a, "elbow", x=0.0, y=-18.0, z=0.0)
    return a


def jump(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    flying = t < 0.5
    u = np.where(flying, t / 0.5, 0.0)
    flight = 4.0 * u * (1.0 - u)                                  # 0 -> 1 -> 0 while in the air
    crouch = np.where(flying, 0.0, np.sin(np.pi * (t - 0.5) / 0.5))
    a.lift = 0.28 * p.amplitude * flight
    _both(a, "hip", x=-45.0 * p.amplitude * crouch - 8.0 * flight)
    _both(a, "knee", x=80.0 * p.amplitude * crouch + 12.0 * flight)
    _leg_flat_foot(a, "left")
    _leg_flat_foot(a, "right")
    a.joints["spine1"][:, 0] += 25.0 * crouch
    _both(a, "shoulder", x=-140.0 * p.amplitude * flight + 35.0 * crouch)
    return a


def squat(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    d = _bump(t) * min(p.amplitude, 1.15)
    _both(a, "hip", x=-95.0 * d)
    _both(a, "knee", x=115.0 * d)
    _leg_flat_foot(a, "left")
    _leg_flat_foot(a, "right")
    a.joints["spine1"][:, 0] += 22.0 * d
    a.joints["spine2"][:, 0] += 8.0 * d
    _both(a, "shoulder", x=-85.0 * d)
    a.shift[:, 1] = -0.12 * d
    return a


def _gait(t: np.ndarray, p: MotionParams, hip: float, knee: float, arm: float, elbow: float) -> Angles:
    a = _rest(t, p)
    for side, shift, sign in (("left", 0.0, 1.0), ("right", 0.5, -1.0)):
        s = _wave(t, shift)
        swing = np.clip(_wave(t, shift + 0.25), 0.0, None)      # the leg moves forwards: bend the knee
        a.joints[f"{side}_hip"][:, 0] = -hip * p.amplitude * s
        a.joints[f"{side}_knee"][:, 0] = 8.0 + knee * p.amplitude * swing
        a.joints[f"{side}_ankle"][:, 0] = -0.3 * a.joints[f"{side}_hip"][:, 0]
        arm_x = arm * p.amplitude * s                              # arms swing against the legs
        a.joints[f"{side}_shoulder"][:, 0] = arm_x
        a.joints[f"{side}_elbow"][:, 1] = -sign * elbow
    a.yaw = 4.0 * _wave(t)
    return a


def walk(t: np.ndarray, p: MotionParams) -> Angles:
    return _gait(t, p, hip=28.0, knee=45.0, arm=22.0, elbow=15.0)


def run(t: np.ndarray, p: MotionParams) -> Angles:
    a = _gait(t, p, hip=45.0, knee=85.0, arm=45.0, elbow=85.0)
    for name, share in (("spine1", 0.6), ("spine2", 0.4)):
        a.joints[name][:, 0] += 10.0 * share
    a.lift = 0.05 * p.amplitude * np.abs(_wave(2.0 * t))
    return a


def kick(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    k = np.clip(_wave(t), 0.0, None) ** 1.5               # one kick per cycle, then standing
    a.joints["left_hip"][:, 0] = -85.0 * p.amplitude * k
    a.joints["left_knee"][:, 0] = 75.0 * 4.0 * k * (1.0 - k) + 5.0  # chambered on the way up and down
    a.joints["left_ankle"][:, 0] = 20.0 * k
    a.joints["spine1"][:, 0] -= 12.0 * k
    a.joints["spine2"][:, 0] -= 6.0 * k
    _both(a, "shoulder", z=-(90.0 - p.rest_arm) + 35.0 * k)   # arms out for balance
    return a


def punch(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    for side, shift, sign in (("left", 0.0, 1.0), ("right", 0.5, -1.0)):
        e = np.clip(_wave(t, shift), 0.0, None) ** 0.7 * min(p.amplitude, 1.1)   # 0 guard, 1 arm out
        e = np.clip(e, 0.0, 1.0)
        a.joints[f"{side}_shoulder"][:] = np.stack(
            [np.zeros_like(t), sign * (-55.0 - 33.0 * e), sign * (-45.0 * (1.0 - e) - 5.0)], 1)
        a.joints[f"{side}_elbow"][:] = np.stack(
            [np.zeros_like(t), sign * (-30.0 * (1.0 - e)), sign * (115.0 * (1.0 - e))], 1)
    a.yaw = 12.0 * _wave(t)                                # the trunk turns into each punch
    return a


def bend(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    d = _bump(t) * p.amplitude
    pitch = 55.0 * d
    a.joints["spine1"][:, 0] += 18.0 * d
    a.joints["spine2"][:, 0] += 12.0 * d
    a.joints["spine3"][:, 0] += 8.0 * d
    # the whole body tips forwards about the pelvis (global orient); the hips keep the legs upright
    a.joints["left_hip"][:, 0] = -pitch
    a.joints["right_hip"][:, 0] = -pitch
    _both(a, "shoulder", x=-0.85 * (pitch + 38.0 * d))    # arms keep hanging down
    a.shift[:, 1] = -0.15 * d
    a.pitch = pitch
    return a


def turn(t: np.ndarray, p: MotionParams) -> Angles:
    a = _gait(t * 2.0 % 1.0, p, hip=12.0, knee=25.0, arm=8.0, elbow=15.0)
    a.yaw = 360.0 * t                                        # one full turn per cycle
    return a


def raise_arms(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    d = _bump(t)
    top = min(80.0, 40.0 + 40.0 * p.amplitude)
    _both(a, "shoulder", x=0.0, y=-10.0 * d, z=-(90.0 - p.rest_arm) + (90.0 - p.rest_arm + top) * d)
    _both(a, "elbow", y=-12.0 * (1.0 - d))
    return a


def sit_down(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    # down over the first third of the cycle, sitting in the middle third, up over the last third
    g = np.where(t < 0.5, _smooth(t / 0.33), _smooth((1.0 - t) / 0.33))
    moving = np.sin(np.pi * g)                 # the trunk leans forwards while getting down or up
    _both(a, "hip", x=-88.0 * g)
    _both(a, "knee", x=88.0 * g)
    _leg_flat_foot(a, "left")
    _leg_flat_foot(a, "right")
    a.joints["spine1"][:, 0] += 25.0 * p.amplitude * moving + 5.0 * g
    _both(a, "shoulder", x=-45.0 * g)
    a.shift[:, 1] = -0.42 * g
    return a


def jumping_jack(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    d = _bump(t)
    top = min(85.0, 45.0 + 35.0 * p.amplitude)
    _both(a, "shoulder", x=0.0, z=-(90.0 - p.rest_arm) + (90.0 - p.rest_arm + top) * d)
    _both(a, "hip", z=18.0 * p.amplitude * d)
    _both(a, "ankle", z=-14.0 * p.amplitude * d)
    a.lift = 0.07 * p.amplitude * np.abs(np.sin(2.0 * np.pi * t))
    return a


def side_bend(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    s = _wave(t) * p.amplitude                  # > 0: bends to the body's left
    for name, deg in (("spine1", 16.0), ("spine2", 13.0), ("spine3", 10.0)):
        a.joints[name][:, 2] = -deg * s
    up_r = np.clip(s, 0.0, None)                # the other arm goes overhead
    up_l = np.clip(-s, 0.0, None)
    a.joints["right_shoulder"][:, 2] = (90.0 - p.rest_arm) - (90.0 - p.rest_arm + 70.0) * up_r
    a.joints["left_shoulder"][:, 2] = -(90.0 - p.rest_arm) + (90.0 - p.rest_arm + 70.0) * up_l
    return a


def arm_circles(t: np.ndarray, p: MotionParams) -> Angles:
    a = _rest(t, p)
    r = 28.0 * p.amplitude
    _both(a, "shoulder", x=0.0, y=r * np.cos(2.0 * np.pi * t), z=-5.0 + r * np.sin(2.0 * np.pi * t))
    _both(a, "elbow", y=0.0)
    return a


MOTIONS: tuple[Motion, ...] = (
    Motion("wave", wave, (2.0, 4.0), about="one hand raised, the forearm swinging side to side"),
    Motion("clap", clap, (3.0, 5.0), about="arms forwards, hands meeting in front of the chest"),
    Motion("jump", jump, (1.5, 3.0), about="crouch and jump straight up, arms swinging up"),
    Motion("squat", squat, (1.5, 3.0), about="deep knee bends, arms forwards"),
    Motion("walk", walk, (1.0, 2.0), about="walking on the spot, arms swinging"),
    Motion("run", run, (2.0, 3.5), about="running on the spot, high knees, bent elbows"),
    Motion("kick", kick, (1.0, 2.5), about="one leg kicks forwards, arms out"),
    Motion("punch", punch, (1.5, 3.0), about="alternating straight punches from a guard"),
    Motion("bend", bend, (1.0, 2.0), about="bending forwards at the hips and back up"),
    Motion("turn", turn, (0.6, 1.2), about="turning round on the spot with small steps"),
    Motion("raise_arms", raise_arms, (1.0, 2.0), about="both arms from the sides to overhead and down"),
    Motion("sit_down", sit_down, (0.9, 1.1), (0.0, 0.1), about="sitting down (on nothing) and standing up"),
    Motion("jumping_jack", jumping_jack, (1.5, 3.0), about="arms overhead and legs apart, hopping"),
    Motion("side_bend", side_bend, (1.0, 2.0), about="the trunk bends left and right, one arm overhead"),
    Motion("arm_circles", arm_circles, (2.0, 4.0), about="arms out to the sides, circling"),
)
MOTION_NAMES = tuple(m.name for m in MOTIONS)


def get_motion(name: str) -> Motion:
    for m in MOTIONS:
        if m.name == name:
            return m
    raise KeyError(f"no motion named {name!r} (known: {', '.join(MOTION_NAMES)})")


def phases(frames: int, params: MotionParams) -> np.ndarray:
    """The phase of each frame: ``cycles`` cycles over the clip, from ``phase``."""
    return (params.phase + params.cycles * np.arange(frames) / frames) % 1.0


def _mirror(a: Angles) -> Angles:
    out: dict[str, np.ndarray] = {}
    for name, arr in a.joints.items():
        other = ("right_" + name[5:] if name.startswith("left_") else
                 "left_" + name[6:] if name.startswith("right_") else name)
        out[other] = arr * np.array([1.0, -1.0, -1.0])
    shift = a.shift.copy()
    shift[:, 0] *= -1.0
    return Angles(out, -a.yaw, shift, a.lift, a.pitch)


def motion_angles(motion: Motion, frames: int, params: MotionParams) -> Angles:
    a = motion.func(phases(frames, params), params)
    return _mirror(a) if params.side < 0 else a


def _euler_to_rotvec(deg: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    # columns are (x, y, z); "zyx" wants them as (z, y, x)
    flat = deg.reshape(-1, 3)[:, ::-1]
    return Rotation.from_euler(EULER_ORDER, flat, degrees=True).as_rotvec().reshape(deg.shape)


def pose_clip(motion: Motion, frames: int, params: MotionParams) -> ClipPose:
    """The motion's per-frame SMPL-X parameters (body frame: y up, facing +z)."""
    a = motion_angles(motion, frames, params)
    body = np.stack([a.joints[name] for name in BODY_JOINTS], axis=1)           # (T, 21, 3)
    from scipy.spatial.transform import Rotation

    pitch = np.zeros(frames) if a.pitch is None else a.pitch
    # tip forwards first, then turn about the vertical (world) axis
    root = Rotation.from_euler("xy", np.stack([pitch, a.yaw], axis=1), degrees=True).as_rotvec()
    transl = np.stack([a.shift[:, 0], a.lift, a.shift[:, 1]], axis=1)
    return ClipPose(body_pose=_euler_to_rotvec(body), global_orient=root, transl=transl)
