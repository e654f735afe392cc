"""privvid.shards"""
