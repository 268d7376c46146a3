"""What every domain of ``pal`` shares, and nothing else: it imports none of them.

- :mod:`.errors`: :class:`~.errors.UserError`, the one exception the command line turns into a
  one-line message and exit status 2.
- :mod:`.commandline`: exit statuses and the argument parser every ``pal`` command uses.
- :mod:`.audio`: reading audio into training targets, and writing WAV files.
- :mod:`.files`: writing files whole or not at all.
- :mod:`.records`: reading records back as typed values, or refusing them in one line.
- :mod:`.locks`: one writer per folder.
- :mod:`.names`: folder names made from labels.
"""
