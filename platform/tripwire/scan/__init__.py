"""Scanning a catalogue with Ray Data: the job's config, its stages (decode, moderate), and its output
(write, resume, read back)."""
