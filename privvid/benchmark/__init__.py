"""privvid.benchmark"""
