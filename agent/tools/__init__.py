"""The agent's tools: plain typed functions whose JSON schemas come from their signatures and docstrings."""
