"""The shared agent core: memory, data sources, archival search and the agent loop."""
