"""membot's entry points: settings, the CLI and the composition root."""

__version__ = "0.1.0"
