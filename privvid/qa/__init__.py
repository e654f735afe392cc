"""privvid.qa"""
