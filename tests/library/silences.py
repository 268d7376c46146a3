"""The silent inputs every loss must survive with a finite value and gradient: the contract's test
on the CPU (``test_contract``) and on CUDA (``test_cuda``) share them."""

import torch

SILENT_CASES = ["silent target", "silent input", "both silent", "one target channel silent"]


def silenced(case: str, input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input, target)`` with the silence of ``case`` (one of :data:`SILENT_CASES`); new tensors
    where silenced, the arguments left as they were."""
    if case in ("silent target", "both silent"):
        target = torch.zeros_like(target)
    if case in ("silent input", "both silent"):
        input = torch.zeros_like(input)
    if case == "one target channel silent":
        target = target.clone()
        target[:, 1] = 0.0
    return input, target
