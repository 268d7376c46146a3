"""Built-in clips: five synthetic stand-ins for the 2018 post's recordings."""

from .builtin import BUILTIN_CLIPS, builtin_clip

__all__ = ["BUILTIN_CLIPS", "builtin_clip"]
