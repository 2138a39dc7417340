"""Exception and warning types of r2dn.

Every error about a value or a shape is a ``ValueError``; every error about a kind is a
``TypeError``. Corrupt or hostile files raise a subclass of :class:`FormatError` (itself a
``ValueError``) that names the file and the key or offset at fault.
"""

from __future__ import annotations


class R2DNWarning(UserWarning):
    """Warnings raised by r2dn itself (tests turn these into errors)."""


class FormatError(ValueError):
    """A file that r2dn reads is truncated, malformed, hostile or inconsistent."""


class CheckpointError(FormatError):
    """A safetensors checkpoint is unreadable or does not describe a valid model."""


class BSONError(FormatError):
    """A BSON / BSON.jl file is truncated, malformed, hostile or of an unsupported shape."""
