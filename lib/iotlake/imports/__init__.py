"""Datasets imported from the data files of earlier tools (no packets) and the re-derivation of their summaries."""
