"""privvid.anonymize"""
