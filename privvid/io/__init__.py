"""privvid.io"""
