"""Mask2Mesh: replace each person by a rendered, gender-neutral SMPL-X body.

``MeshStage`` is the processor the anonymize pipeline calls for ``--mode mesh``;
pose sources register by name in ``POSE_SOURCES`` (each factory takes the
optional ``--pose-weights`` path). A pose source has ``reset()``, ``info()`` and
``__call__(frame, box, track_id=-1, frame_index=None) -> PoseResult | None``; the frame
index lets one that keeps per-track state tell a person who has gone from one still seen.
"""

from privvid.registry import Registry

POSE_SOURCES = Registry("pose source")
POSE_SOURCES.register("mediapipe", "privvid.mesh.pose:MediapipePose")
POSE_SOURCES.register("yolo", "privvid.mesh.pose:YoloPose")


def __getattr__(name: str):  # keep `import privvid.mesh` light: torch/smplx load on first use
    if name == "MeshStage":
        from privvid.mesh.stage import MeshStage

        return MeshStage
    if name in ("load_body_model", "embedded_model_path", "BodyModel"):
        from privvid.mesh import body_model

        return getattr(body_model, name)
    raise AttributeError(name)


__all__ = ["POSE_SOURCES", "MeshStage", "load_body_model", "embedded_model_path", "BodyModel"]
