"""Built-in clips: five real recordings (the default set) and five synthetic stand-ins."""

from .builtin import BUILTIN_CLIPS, DEFAULT_CLIPS, BuiltinClip, builtin_clip

__all__ = ["BUILTIN_CLIPS", "DEFAULT_CLIPS", "BuiltinClip", "builtin_clip"]
