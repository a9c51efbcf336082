"""The agent's three memories: core blocks (in the prompt), recall (every message), archival (passages)."""
