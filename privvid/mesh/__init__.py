"""privvid.mesh"""
