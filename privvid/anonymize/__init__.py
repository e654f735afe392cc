"""Compose the processors per mode: one clip in, one anonymised clip + sidecar out."""

from privvid.anonymize.dataset import ClipOutcome, RunSummary, anonymize_dataset, params_hash
from privvid.anonymize.modes import MODES
from privvid.anonymize.pipeline import ClipResult, anonymize_clip, output_paths

__all__ = [
    "MODES", "ClipOutcome", "ClipResult", "RunSummary",
    "anonymize_clip", "anonymize_dataset", "output_paths", "params_hash",
]
