"""Loading files into data sources: read, chunk, embed, store atomically per file."""
