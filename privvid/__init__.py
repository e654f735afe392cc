"""privvid: privacy-preserving action-video datasets.

Sub-packages, one job each:
  io/ detect/ inpaint/ mesh/ anonymize/ curate/ qa/ shards/ engine/ benchmark/ runtime/
The command line lives in the top-level ``cli/`` folder, installed as ``privvid.cli``.
"""

__version__ = "0.1.0"
