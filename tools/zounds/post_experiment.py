"""The 2018 experiment done the 2018 way with zounds 1.57.0's own loss: the baseline of ``pal bench``.

One (clip, loss) at a time, a freshly seeded generator trained against one fixed target with
zounds' ``PerceptualLoss`` (configured as the post did, by ``harness.post_loss``) or torch's MSE,
the target's features recomputed at every step as zounds does. Run with the venv that
``tools/zounds/make-venv`` builds; it never imports ``perceptual_audio_loss`` or ``pal``::

    .venv-zounds/bin/python tools/zounds/post_experiment.py --targets windows.npy \\
        --names speech,piano,drums --iterations 150 --out /tmp/seed-run

``windows.npy`` holds the target windows ``(clips, samples)``, in ``--names`` order. Writes
``OUT/<clip>-<loss>.npy``: the checkpoints ``(n, samples)`` at the iterations listed in
``OUT/checkpoints.json``, and prints one JSON line with the training seconds.

The generator copies the facts of ``src/pal/generator.py`` (the post's architecture) and is run
literally, as the post ran it: nearest upsampling then a bias-free ``Conv1d``, seven times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import post_loss  # noqa: E402  (zounds' loss as the post configured it)

# The post's generator (as src/pal/generator.py records it): a 128-d latent, 32 channels, and
# (upsampling factor, kernel size) per block, 1 -> 8192 samples; leaky ReLU(0.2) between blocks.
LATENT_DIM = 128
CHANNELS = 32
BLOCKS = ((4, 3), (4, 15), (4, 25), (4, 25), (4, 25), (4, 25), (2, 25))
LEAKY_SLOPE = 0.2
# The post's optimiser: Adam, lr 1e-4, betas (0, 0.9) (WGAN-GP style: Gulrajani et al., 2017).
LEARNING_RATE = 1e-4
BETAS = (0.0, 0.9)


class SeedGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        widths = [LATENT_DIM] + [CHANNELS] * (len(BLOCKS) - 1) + [1]
        self.factors = [factor for factor, _ in BLOCKS]
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
            for (_, kernel), c_in, c_out in zip(BLOCKS, widths[:-1], widths[1:])
        )

    def reset_parameters(self, rng: torch.Generator) -> None:
        """Xavier-normal, leaky-ReLU gain for hidden layers and 1 for the last, drawn in layer order."""
        hidden_gain = nn.init.calculate_gain("leaky_relu", LEAKY_SLOPE)
        for index, conv in enumerate(self.convs):
            gain = 1.0 if index == len(self.convs) - 1 else hidden_gain
            nn.init.xavier_normal_(conv.weight, gain=gain, generator=rng)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = latent.view(latent.shape[0], LATENT_DIM, 1)
        for index, (factor, conv) in enumerate(zip(self.factors, self.convs)):
            x = conv(F.interpolate(x, scale_factor=factor, mode="nearest"))
            if index != len(self.convs) - 1:
                x = F.leaky_relu(x, LEAKY_SLOPE)
        return x


def seeded(seed: int) -> tuple[SeedGenerator, torch.Tensor]:
    """The generator's weights, then its N(0, I) latent, drawn from one seeded stream."""
    rng = torch.Generator().manual_seed(seed)
    model = SeedGenerator()
    model.reset_parameters(rng)
    return model, torch.randn(1, LATENT_DIM, generator=rng)


def checkpoint_iterations(iterations: int, every: int) -> list[int]:
    marks = list(range(every, iterations + 1, every))
    return marks if marks and marks[-1] == iterations else marks + [iterations]


def train(target: np.ndarray, loss_fn, seed: int, marks: list[int]) -> np.ndarray:
    model, latent = seeded(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=BETAS)
    target = torch.tensor(target.reshape(1, -1), dtype=torch.float32)
    kept = []
    for iteration in range(1, marks[-1] + 1):
        optimizer.zero_grad()
        loss = loss_fn(model(latent).view(1, -1), target)
        loss.backward()
        optimizer.step()
        if iteration in marks:
            kept.append(model(latent).detach().view(-1).numpy().copy())
    return np.stack(kept)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", required=True, help=".npy of target windows (clips, samples)")
    parser.add_argument("--names", required=True, help="comma-separated clip names, in the targets' order")
    parser.add_argument("--losses", default="mse,perceptual")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=None, help="default: only the last iteration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    targets = np.load(args.targets)
    names = args.names.split(",")
    if len(names) != len(targets):
        parser.error(f"{len(names)} names for {len(targets)} target windows")
    builders = {"mse": nn.MSELoss, "perceptual": post_loss}
    marks = checkpoint_iterations(args.iterations, args.checkpoint_every or args.iterations)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name, target in zip(names, targets):
        for loss_name in args.losses.split(","):
            checkpoints = train(target, builders[loss_name](), args.seed, marks)
            np.save(args.out / f"{name}-{loss_name}.npy", checkpoints)
    seconds = time.perf_counter() - started
    (args.out / "checkpoints.json").write_text(json.dumps({"iterations": marks}))
    print(json.dumps({"train_seconds": seconds, "runs": len(names) * len(args.losses.split(",")),
                      "iterations": args.iterations, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
