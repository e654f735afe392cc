"""Person detection, segmentation and tracking behind one interface.

Backends register here by name; ``create_detector`` builds the full per-clip
chain (backend -> tracking -> temporal union + dilation) from a DetectConfig.
"""

from privvid.detect.base import Detections, Detector
from privvid.registry import Registry

DETECTORS = Registry("detector")
# name -> "module:factory"; each factory takes a DetectConfig
DETECTORS.register("ssd", "privvid.detect.ssd_backend:SsdDetector")
DETECTORS.register("mediapipe", "privvid.detect.mediapipe_backend:MediapipeDetector")
DETECTORS.register("yolo", "privvid.detect.yolo_backend:YoloDetector")
DETECTORS.register("sam", "privvid.detect.sam_backend:SamRefinedDetector")


def validate_options(cfg) -> None:  # noqa: ANN001 - DetectConfig
    """Raise ConfigError / UnknownBackend now (before any clip) for a bad backend name or option.

    A backend that hands its options to another one (``sam`` to its base detector) names that
    backend with ``options_backend(cfg)``; the options are checked against that backend's ``Options``.
    """
    from privvid.errors import ConfigError

    name = cfg.backend
    factory = DETECTORS.resolve(name)
    forward = getattr(factory, "options_backend", None)
    if forward is not None:
        base = forward(cfg)
        if base == name:
            raise ConfigError(f"detector {name!r} cannot take its options from itself")
        name, factory = base, DETECTORS.resolve(base)
    options_cls = getattr(factory, "Options", None)
    if options_cls is not None:
        from privvid.detect.common import options_from

        options_from(options_cls, cfg.options)
    elif cfg.options:
        via = "" if name == cfg.backend else f" (the base detector of {cfg.backend!r})"
        raise ConfigError(f"detector {name!r}{via} takes no --detect-opt options (given: {', '.join(cfg.options)})")

def build_mask_stream(cfg=None):  # noqa: ANN001, ANN201 - re-exported lazily (numpy/cv2 only when used)
    from privvid.detect.stream import build_mask_stream as _build

    return _build(cfg)


__all__ = ["DETECTORS", "Detections", "Detector", "build_mask_stream", "validate_options"]
