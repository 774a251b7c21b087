"""Backends: turn a firmware model into files (RTL, HLS projects)."""
