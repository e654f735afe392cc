"""Typed configuration for the dataset processors, with presets.

``tiny`` is what a 2-core laptop runs; ``paper`` follows the papers' settings
(Mask2Mesh: 432x240 clips). Engine (training) configs live in ``privvid.engine.config``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from privvid.errors import ConfigError


def parse_tiles(spec: str | None) -> tuple[int, int] | None:
    """``"3x2"`` -> (3 columns, 2 rows); None, "", "none" or "off" -> None (tiling off). Anything else is a
    ValueError."""
    if spec is None or str(spec).strip().lower() in ("", "none", "off"):
        return None
    parts = str(spec).lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"tiles must look like COLSxROWS, e.g. '3x2', got {spec!r}")
    cols, rows = int(parts[0]), int(parts[1])
    if not (1 <= cols <= 16 and 1 <= rows <= 16) or cols * rows < 2:
        raise ConfigError(f"tiles {spec!r}: columns and rows must be 1..16 and give at least 2 tiles")
    return cols, rows


SAM_MODELS = ("vit_b", "vit_l", "vit_h")  # segment-anything architectures (a checkpoint is made for one)


@dataclass(frozen=True)
class DetectConfig:
    backend: str = "ssd"                 # registered name, see privvid.detect.DETECTORS
    options: dict[str, Any] = field(default_factory=dict)  # the backend's own options (--detect-opt; its
                                         # Options dataclass validates them: ssd_backend.SsdOptions,
                                         # mediapipe_backend.MediapipeOptions), e.g. {"tiles": "3x2"}
    weights: Path | None = None          # yolo: ultralytics weights file
    sam_weights: Path | None = None      # sam: segment-anything checkpoint (box-prompted refinement)
    sam_model: str = "vit_b"            # sam: the checkpoint's architecture, one of SAM_MODELS
    threshold: float = 0.2               # mask probability threshold
    dilate: int = 11                     # dilation kernel (px at output resolution) when dilate_rel = 0, and
                                         # the least one for person pixels of no instance (each connected
                                         # piece of them otherwise grows like an instance)
    dilate_rel: float = 0.08             # each instance grows by this share of its box height (its own
                                         # size, so the mask is the same at any resolution); 0 = fixed
    dilate_min: int = 3                  # ... but by at least this many px
    dilate_min_frame: float = 0.03       # ... and by at least this share of the frame's height (7 px at 240
                                         # lines): a person a few dozen px tall is segmented only to within a
                                         # pixel or two, and the share keeps it the same at any resolution
    temporal: int = 2                    # union of masks over +-temporal frames
    temporal_align: str = "flow"         # the neighbours' masks moved onto the frame by optical flow first
                                         # ("none": where they lie, the rule until 2026-12-05)
    temporal_grow: float = 0.5           # ... and grown by this share of their own dilation, at least by the
                                         # least one (dilate_min_frame); a person this frame missed: all of it
    temporal_vote: int = 1               # ... next to a person this frame found, a pixel of the neighbours' moved
                                         # masks is kept where this many of them hold it (1 = any of them, the
                                         # default; 2 keeps more scene, docs/privacy.md), or where the piece
                                         # fewer hold is ...
    temporal_sliver: float = 0.1         # ... thicker than this share of the height of the person it lies by (a
                                         # limb this frame missed; a thinner sliver along the person is a
                                         # neighbour's outline off by the flow's error; by a person whose sliver
                                         # is under the least margin, every pixel). Both only with temporal_align
                                         # = flow
    work_lines: int = 720                # detection, tracking, the union over frames and the margins run on the
                                         # frame scaled down until its shorter side is at most this long (clips
                                         # up to 720p, upright ones too, are detected at their own size); masks,
                                         # boxes and landmarks are scaled back up, the removal mask over every
                                         # pixel a working pixel touches. 0 = always at the frame's own size
    min_score: float = 0.3
    # yolo backend
    imgsz: int = 640                     # inference size (fixed-size exports ignore it)
    # sam backend
    sam_base: str = "ssd"                # backend whose boxes SAM refines (the multi-person default)
    trust_model_files: bool = False      # load pickle-based --weights / --sam-weights (can run code)
    # tracking
    track_iou: float = 0.3               # min box IoU to continue a track
    track_max_age: int = 10              # frames a lost track is kept

    def __post_init__(self) -> None:
        if not isinstance(self.options, dict):
            raise ConfigError(f"detector options must be a mapping, got {type(self.options).__name__}")
        if self.dilate_rel < 0 or self.dilate_min < 0:
            raise ConfigError(f"dilate_rel and dilate_min must be >= 0, got {self.dilate_rel}, {self.dilate_min}")
        if not 0.0 <= self.dilate_min_frame <= 0.25:
            raise ConfigError(f"dilate_min_frame must be in [0, 0.25] (share of the frame height), "
                              f"got {self.dilate_min_frame}")
        if self.work_lines != 0 and self.work_lines < 64:
            raise ConfigError(f"work_lines must be 0 (the frame's own size) or >= 64, got {self.work_lines}")
        if self.temporal_align not in ("flow", "none"):
            raise ConfigError(f"temporal_align must be flow or none, got {self.temporal_align!r}")
        if self.temporal_vote < 1:
            raise ConfigError(f"temporal_vote must be >= 1, got {self.temporal_vote}")
        if self.temporal > 0 and self.temporal_vote > 2 * self.temporal:   # without neighbours it is not read
            raise ConfigError(f"temporal_vote must be at most the {2 * self.temporal} neighbour frames of "
                              f"temporal={self.temporal}, got {self.temporal_vote}")
        if not 0.0 <= self.temporal_sliver <= 0.5:
            raise ConfigError(f"temporal_sliver must be in [0, 0.5] (share of the person's height), "
                              f"got {self.temporal_sliver}")
        if not 0.0 <= self.temporal_grow <= 1.0:
            raise ConfigError(f"temporal_grow must be in [0, 1] (share of the dilation), got {self.temporal_grow}")
        if self.sam_model not in SAM_MODELS:
            raise ConfigError(f"unknown SAM model {self.sam_model!r}; choose one of: {', '.join(SAM_MODELS)}")
        # a model file given to a built-in detector that never reads it would be ignored without a word
        # (plug-in backends, named as package.module:Class, may read either field)
        reader = self.sam_base if self.backend == "sam" else self.backend
        if self.weights is not None and reader in ("ssd", "mediapipe"):
            named = f"sam --sam-base {reader}" if self.backend == "sam" else reader
            raise ConfigError(f"--weights is not read by --detector {named}: it is for --detector yolo "
                              "(or sam --sam-base yolo)")
        if self.sam_weights is not None and self.backend in ("ssd", "mediapipe", "yolo"):
            raise ConfigError(f"--sam-weights is not read by --detector {self.backend}: it is for --detector sam")


# the settings the previous default (--detector mediapipe) was measured with and runs with from the CLI:
# a fixed dilation and the neighbours' masks where they lie (docs/mask_quality.md)
MEDIAPIPE_AS_MEASURED: dict[str, Any] = {"dilate_rel": 0.0, "temporal_align": "none"}


@dataclass(frozen=True)
class InpaintConfig:
    backend: str = "propagate"           # registered name, see privvid.inpaint.INPAINTERS
    weights: Path | None = None
    window: int = 24                     # frames per streamed window
    radius: int = 5                      # OpenCV inpainting radius for never-seen pixels
    # fields below: see docs/inpaint.md for what they do and the measurements behind the defaults
    method: str = "telea"                # OpenCV inpainting: telea | ns
    context: int = 4                     # propagate: context frames on each side of a window
    align: str = "auto"                  # propagate: auto | static | homography (camera motion model)
    margin: int = 0                      # propagate: px around a mask never used as a source
    max_probes: int = 16                 # propagate (moving camera): source frames tried per frame
    blend: bool = True                   # propagate: diffuse the colour mismatch at the hole border
    spatial_scale: float = 0.5           # propagate: scale at which never-seen pixels are inpainted
    motion_scale: float = 0.5            # propagate: scale of the camera-motion estimate
    static_px: float = 0.3               # propagate: camera moves when features shift more (px)
    agree_tol: int = 40                  # propagate: two sources of a hole pixel that differ by more (any
                                         # channel, 0-255) are not both background: spatial fill (0 = off)
    avoid_grow: float = 0.25             # pixels within this share of a detection's box size of it are never
                                         # a source in that frame
    guard: bool = True                   # with a detector other than ssd, the embedded SSD's person boxes
    guard_score: float = 0.3             # (at least this score) guard the sources as well
    copy_share: float = 0.6              # a person whose pixels the fill gives back within copy_tol levels (any
    copy_tol: int = 24                   # channel) on this share of them was pasted back from frames that show
                                         # them: their hole is filled spatially (0 = off)
    work_lines: int = 720                # frames whose shorter side is longer are filled on a copy scaled down
                                         # to this many lines, and the fill, scaled back up, is pasted into the
                                         # holes at the frame's own size (every other pixel stays the frame's
                                         # own; margin, radius and static_px are turned into working px, never
                                         # narrower). 0 = always at the frame's own size

    def __post_init__(self) -> None:
        if self.window < 1 or self.context < 0 or self.max_probes < 1 or self.radius < 1:
            raise ConfigError("inpaint window, radius and max_probes must be >= 1 and context >= 0, got "
                              f"{self.window}, {self.radius}, {self.max_probes}, {self.context}")
        if self.method not in ("telea", "ns") or self.align not in ("auto", "static", "homography"):
            raise ConfigError(f"inpaint method must be telea or ns, and align auto, static or homography; got "
                              f"method {self.method!r}, align {self.align!r}")
        if not 0 <= self.agree_tol <= 255 or self.avoid_grow < 0:
            raise ConfigError(f"agree_tol must be 0..255 and avoid_grow >= 0, got {self.agree_tol}, {self.avoid_grow}")
        if self.work_lines != 0 and self.work_lines < 64:
            raise ConfigError(f"inpaint work_lines must be 0 (the frame's own size) or >= 64, got {self.work_lines}")
        if not 0.0 <= self.copy_share <= 1.0 or not 0 <= self.copy_tol <= 255:
            raise ConfigError(f"copy_share must be in [0, 1] (0 = off) and copy_tol 0..255, got {self.copy_share}, "
                              f"{self.copy_tol}")


@dataclass(frozen=True)
class MeshConfig:
    body_model: Path | None = None       # SMPL-X model file (.npz); None = embedded mannequin
    gender: str = "neutral"
    pose_backend: str = "mediapipe"      # registered name, see privvid.mesh.POSE_SOURCES
    pose_weights: Path | None = None
    smooth: float = 1.0                  # temporal smoothing strength (0 = off)
    save_params: bool = False
    min_height: float = 0.15             # people shorter than this share of the frame height get no body
                                         # (removed only): too small to fit, and a crowd would cost a fit each
    min_frames: int = 5                  # a person gets a body once it has passed every check in this many frames
                                         # (the window being drawn included); people found for fewer stay removed,
                                         # without a body (mostly the scene taken for a person); 1 = every fit
    fallback: str | None = None          # None: a clip whose bodies cannot be drawn fails; "remove": it is
                                         # written as remove mode, said so in its sidecar and the summary
    trust_model_files: bool = False      # load pickle-based --body-model / --pose-weights (can run code)
    render_faces: int = 16000            # the body is drawn with at most this many triangles (quadric
                                         # decimation of the rest pose, once per body model); 0 = every face.
                                         # A body at most 160 / 80 px on screen gets a half / a quarter of
                                         # them, never under 1000 (privvid.mesh.render.DETAIL)

    def __post_init__(self) -> None:
        if self.render_faces != 0 and self.render_faces < 1000:
            raise ConfigError(f"--mesh-faces (render_faces) must be 0 (the full mesh) or at least 1000, got {self.render_faces}")
        if self.gender not in ("neutral", "male", "female"):
            raise ConfigError(f"--gender must be neutral, male or female, got {self.gender!r}")
        if self.gender != "neutral" and self.body_model is None:
            raise ConfigError(f"--gender {self.gender} needs --body-model (SMPL-X files of that gender); the "
                              "embedded mannequin is gender-neutral")
        if self.fallback not in (None, "remove"):
            raise ConfigError(f"mesh fallback must be 'remove' or none, got {self.fallback!r}")
        if isinstance(self.min_frames, bool) or not isinstance(self.min_frames, int) or self.min_frames < 1:
            raise ConfigError(f"--mesh-min-frames must be a whole number >= 1, got {self.min_frames!r}")
        if not 0 <= self.min_height <= 1 or self.smooth < 0:
            raise ConfigError(f"min_height must be 0..1 and smooth >= 0, got {self.min_height}, {self.smooth}")


# options a mode gives a detector backend where --detect-opt does not set them: {mode: {backend: options}}.
# Mesh mode draws one body per person, so there the ssd detector's large people get their instance from
# the pose model's one-person mask, whose run also gives their landmarks for the body (docs/mesh.md,
# "The detector's landmarks by default"); remove mode keeps the cheaper selfie instances. Applied by
# AnonymizeConfig.resolved(), which the pipeline runs, records and fingerprints
MODE_DETECT_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {"mesh": {"ssd": {"refine": "pose"}}}


FILL_MODES = ("remove", "mesh")               # modes that fill the people's pixels in from the scene
SHAPE_MODES = ("blur", "pixelate", "solid")   # modes that keep each person's place and shape in the frame
# a clip whose frames are more than this share anonymised on average keeps little scene: its sidecar says so,
# and a dataset's datasheet names such clips
LITTLE_SCENE = 0.9
# a mesh clip whose people never drawn as short-lived (found in fewer than MeshConfig.min_frames frames) hold this
# share of the person-frames with a body gets a note: the detector keeps finding people that do not last (often
# the scene taken for them)
BRIEF_SHARE = 0.25


# settings one mode each reads: field -> (its flag, that mode). Given for another mode they are refused
MODE_SETTINGS = {"blur_size": ("--blur-size", "blur"), "pixel_size": ("--pixel-size", "pixelate"),
                 "solid_color": ("--solid-color", "solid")}


def refuse_other_modes(mode: str, given: Sequence[str]) -> None:
    """:class:`ConfigError` for the first of ``given`` (names of :data:`MODE_SETTINGS`) that ``mode`` does not read."""
    for name in given:
        flag, reader = MODE_SETTINGS[name]
        if mode != reader:
            raise ConfigError(f"{flag} is read by --mode {reader} only, not by --mode {mode}")


def _check_config() -> Any:
    from privvid.anonymize.check import CheckConfig

    return CheckConfig()


@dataclass(frozen=True)
class AnonymizeConfig:
    mode: str = "remove"                 # remove | blur | pixelate | solid | mesh
    resize: tuple[int, int] | None = None  # (width, height); None keeps the input size
    fps: float | None = None             # None keeps the input frame rate
    save_masks: bool = False
    crf: int = 18
    gop: int = 16                        # key-frame interval of the output (fast seeking for training)
    detect: DetectConfig = field(default_factory=DetectConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    check: Any = field(default_factory=_check_config)  # privvid.anonymize.check.CheckConfig
    blur_size: float = 0.21              # blur: the Gaussian kernel's side as a share of the frame's shorter side,
                                         # at least 51 px (51 px at 240 lines, 227 at 1080: the same blur at any size)
    pixel_size: float = 0.067            # pixelate: a block's side as a share of the frame's shorter side, at least
                                         # 16 px (16 px at 240 lines, 72 at 1080)
    solid_color: tuple[int, int, int] = (128, 128, 128)
    record_paths: bool = False           # sidecars also hold the input's absolute path (it can name a person);
                                         # by default only its path relative to the input root and its hash

    def __post_init__(self) -> None:
        if self.fps is not None and not (0.01 <= self.fps <= 1000):   # H.264 in mp4 keeps rates down to 1/100
            raise ConfigError(f"--fps must be a frame rate from 0.01 to 1000, got {self.fps:g}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"--crf must be 0..51 (H.264 quality), got {self.crf}")
        if self.gop < 1:
            raise ConfigError(f"--gop must be >= 1 frame, got {self.gop}")
        if self.resize is not None:
            width, height = self.resize
            if not ((width >= 2 or width == -2) and (height >= 2 or height == -2)) or width == height == -2:
                raise ConfigError(f"resize must be WxH with sides >= 2 (one side may be -2), got {self.resize}")
            from privvid.io.video import MAX_SIDE

            if max(width, height) > MAX_SIDE:
                raise ConfigError(f"--resize sides must be at most {MAX_SIDE} px, got {width}x{height}")
        for flag, value in (("--blur-size", self.blur_size), ("--pixel-size", self.pixel_size)):
            if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0.01 <= value <= 1.0):
                raise ConfigError(f"{flag} is a share of the frame's shorter side from 0.01 to 1, got {value!r}")
        color = self.solid_color
        if not (isinstance(color, Sequence) and not isinstance(color, str) and len(color) == 3
                and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)):
            raise ConfigError(f"--solid-color must be three whole numbers 0..255 (R,G,B), got {color!r}")
        object.__setattr__(self, "solid_color", tuple(int(c) for c in color))   # a list or numpy ints as given

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def with_(self, **changes: Any) -> "AnonymizeConfig":
        return replace(self, **changes)

    def resolved(self) -> "AnonymizeConfig":
        """The settings as they run: the detector's options with this mode's own for its backend
        (:data:`MODE_DETECT_OPTIONS`) where ``detect.options`` does not set them. The pipeline runs, records
        and fingerprints this; ``self`` keeps only what was asked, so changing its mode or backend later
        carries no option of the old mode along."""
        given = MODE_DETECT_OPTIONS.get(self.mode, {}).get(self.detect.backend, {})
        if all(name in self.detect.options for name in given):
            return self
        return replace(self, detect=replace(self.detect, options={**given, **self.detect.options}))


# The scene preset's detector: one-person instances from the pose model for the large people (refine=pose);
# of the union's neighbour pixels next to a person this frame found, only those two neighbours hold or that
# lie in a piece thicker than a fifth of that person's height; margins of 0.06 of a person's height and at
# least 2.5% of the frame's. It keeps more of the scene around the people (on DAVIS; close-ups can lose more
# to the check's refills), at 1.4-2.4 times remove mode's detection time (docs/privacy.md, "A preset for the
# scene")
SCENE_DETECT = DetectConfig(temporal_vote=2, temporal_sliver=0.2, dilate_rel=0.06, dilate_min_frame=0.025,
                            options={"refine": "pose"})

PRESETS: dict[str, AnonymizeConfig] = {
    "tiny": AnonymizeConfig(),
    "paper": AnonymizeConfig(resize=(432, 240)),
    "scene": AnonymizeConfig(detect=SCENE_DETECT),
}


def preset(name: str) -> AnonymizeConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def parse_size(text: str) -> tuple[int, int]:
    """``"432x240"`` -> ``(432, 240)`` (width, height); ``"-2x240"`` = height 240, the width that keeps the
    input's aspect ratio (rounded to even), ``"432x-2"`` the same for the height."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"size must look like 432x240 or -2x240 (keep the aspect ratio), got {text!r}") from None
    if not ((width >= 2 or width == -2) and (height >= 2 or height == -2)) or width == height == -2:
        raise ConfigError(f"size must be at least 2x2, with -2 for at most one side, got {text!r}")
    return width, height
