"""Embedding providers behind one small interface, and the token counters used to size chunks."""
