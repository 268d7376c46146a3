"""The harness's loss registry: one record per registered name, and what it declares agrees with
the module its factory builds."""

import pytest
import torch

from pal.losses.peers import PEER_LOSSES
from pal.losses.registry import (MASK_SECTION, REGISTERED, DecodingLoss, filtering_method, needs_section,
                                 registered, registered_names)
from pal.losses.specs import build_loss, parse_loss_spec
from perceptual_audio_loss import LOSSES, PerceptualLoss

RATE = 11025


def test_every_registered_name_has_one_record():
    assert set(REGISTERED) == set(LOSSES) | set(PEER_LOSSES) == set(registered_names())
    assert not set(LOSSES) & set(PEER_LOSSES)
    for name, loss in REGISTERED.items():
        assert loss.name == name and loss.peer == (name in PEER_LOSSES)
        assert loss.factory is (PEER_LOSSES if loss.peer else LOSSES)[name]


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_what_a_record_declares_is_what_its_loss_does(name):
    loss = build_loss(parse_loss_spec(name), RATE)
    assert isinstance(loss, DecodingLoss) == REGISTERED[name].decodes
    if REGISTERED[name].decodes:  # the generator's channels decode to one sample each
        output = torch.randn(2, loss.output_channels, 64)
        assert loss.decode(output).shape == (2, 64)
    assert (filtering_method(loss) is not None) == isinstance(loss, PerceptualLoss)
    estimate = REGISTERED[name].memory.estimate({}, RATE, 8192)
    assert isinstance(estimate, int) and 2**20 < estimate < 2**31


def test_a_label_names_its_registered_loss_through_its_spec():
    labels = ["mse", "masked:band_width_bark=0.5", "masked_mine.py:Mine"]
    sources = {label: parse_loss_spec(label).record() for label in labels[:2]}
    sources[labels[2]] = {"label": labels[2], "kind": "file", "target": "/x/masked_mine.py"}
    assert [registered(label, sources) for label in labels] == [REGISTERED["mse"], REGISTERED["masked"], None]
    assert registered("masked+perceptual", {}) is REGISTERED["masked+perceptual"]  # a run recorded before specs
    assert needs_section(MASK_SECTION, labels, sources)
    assert not needs_section(MASK_SECTION, ["mse", labels[2]], sources)  # a user's loss named masked...: no mask
    assert {name for name, loss in REGISTERED.items() if MASK_SECTION in loss.sections} == {"masked", "masked+perceptual"}


def test_a_users_perceptual_loss_in_its_guard_still_records_its_filtering():
    """The run's record reads the filtering through the guard, as the guard's attribute passthrough did before."""
    from pal.losses.guard import guarded, unguarded

    mine = PerceptualLoss(RATE, method="direct")
    assert filtering_method(unguarded(guarded(mine, "mine.py:Mine"))) == "direct"
    assert unguarded(mine) is mine
