"""privvid.curate"""
