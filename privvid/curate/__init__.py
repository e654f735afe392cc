"""Dataset curation: K-NEXUS class selection (Mask2Mesh section 3.1) and a random baseline."""

from privvid.curate.run import CurateConfig, CurationResult, curate, default_cache, overlap
from privvid.curate.sources import CurationError, CurationSource, VideoRef, load_source

__all__ = ["CurateConfig", "CurationError", "CurationResult", "CurationSource", "VideoRef", "curate",
           "default_cache", "load_source", "overlap"]
