"""Manifests, mmaction2 / VideoMAE lists and WebDataset shards for anonymised datasets."""

from privvid.shards.build import Entry, build, collect, split_entries

__all__ = ["Entry", "build", "collect", "split_entries"]
