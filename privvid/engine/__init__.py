"""privvid.engine"""
