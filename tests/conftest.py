import numpy as np
import pytest
import soundfile


@pytest.fixture
def write_audio(tmp_path):
    """Write a test signal: ``write_audio(name, samples, rate, subtype=None)`` -> path."""

    def write(name, samples, rate=22050, subtype=None, format=None):
        path = tmp_path / name
        soundfile.write(str(path), samples, rate, subtype=subtype, format=format)
        return path

    return write


def sine(hz, seconds, rate, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)
