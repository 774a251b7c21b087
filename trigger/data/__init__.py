"""Data sources: seeded toy physics generators (and, later, file readers)."""
