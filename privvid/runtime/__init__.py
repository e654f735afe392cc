"""privvid.runtime"""
