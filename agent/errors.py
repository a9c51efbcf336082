"""membot's exception tree.

MembotError           everything we raise on purpose
  UserError           its text is safe to show a person in a channel or terminal, as is
    ConfigError       a setting is missing or malformed
    NotFound          a named source, agent or document does not exist
    FileRejected      a file could not be loaded (type, size, corrupt, encrypted, empty)
    EmbeddingMismatch a source was embedded with another model than the one configured
    StoreUnavailable  a database or Milvus could not be opened or reached
    ToolFailure       a tool call failed; written for the model to read and recover from
Anything else is a bug: log it with an error id and show the person only that id.
"""

from __future__ import annotations


class MembotError(Exception):
    """Base of every error membot raises on purpose."""


class UserError(MembotError):
    """An error whose message is written for the person using membot and is safe to show."""


class ConfigError(UserError):
    pass


class NotFound(UserError):
    pass


class FileRejected(UserError):
    """A file that cannot be loaded; the message names the reason, the loader adds the file name."""


class EmbeddingMismatch(UserError):
    pass


class StoreUnavailable(UserError):
    pass


class ToolFailure(UserError):
    """Raised by a tool with a message written for the model to read and recover from (and safe to show)."""
