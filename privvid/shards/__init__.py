"""WebDataset shards, manifests, datasheets and list exports for anonymised datasets."""

from privvid.shards.build import Entry, ShardError, build, collect, export, shard_key, split_entries, verify

__all__ = ["Entry", "ShardError", "build", "collect", "export", "shard_key", "split_entries", "verify"]
