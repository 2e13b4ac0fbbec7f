"""Viseme and prosody events become per-frame mouth weights (the mixer), then composed frames."""
