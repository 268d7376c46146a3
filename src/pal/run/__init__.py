"""``pal run``: the 2018 experiment, from its configuration to a run folder on disk.

- :mod:`.config`: the experiment's settings, from flags or a TOML file, checked before anything is
  written.
- :mod:`.experiment`: one generator per (clip, loss, seed), all trained at once, into a run folder.
- :mod:`.train`: the training loops, one run alone or every run in one batched step.
- :mod:`.generator`: the post's tiny upsampling network.
- :mod:`.sources`: finding audio and naming clips.
- :mod:`.folder`: the run folder, the one module that knows its layout and records.
- :mod:`.sweep_folder`: the sweep folder's names.

It may import :mod:`pal.core`, :mod:`pal.clips`, :mod:`pal.losses` and :mod:`pal.measures`.
"""
