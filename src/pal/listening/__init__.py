"""The blind listening test over a run folder or a codec run folder: stimuli, the ratings store,
results, the server.

``pal listen RUN_DIR`` serves it; ``pal listen RUN_DIR --results`` summarises what raters said.
Nothing here is imported by ``import perceptual_audio_loss``.
"""
