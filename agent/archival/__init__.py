"""Archival storage: passages in Milvus, the source catalog in SQL, and hybrid search over both."""
