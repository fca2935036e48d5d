"""Generators for the data-free protocol: latent vectors z (B, latent_dim) -> images (B, 3, r, r).

:class:`DAFLGenerator` follows the architecture of the DAFL authors' code (Chen et al., ICCV 2019,
``DAFL-train.py``), itself the DCGAN-style generator of the PyTorch-GAN examples: a linear layer to a
128-channel map of side r/4, two nearest-neighbour upsamplings each followed by a 3x3 convolution,
batch normalisation and LeakyReLU(0.2), a 3x3 convolution to 3 channels, tanh, and a final batch
normalisation without affine parameters, so the images come out per-channel standardised, like
the normalised inputs a CIFAR teacher expects. Two details kept from that code: its middle batch
norms use ``eps = 0.8`` (the positional argument of ``nn.BatchNorm2d(128, 0.8)``), and the first
one has default settings.
"""

from __future__ import annotations

import torch
from torch import nn


class DAFLGenerator(nn.Module):
    """DAFL's generator.

    Args:
        latent_dim: size of z (the authors use 100 for MNIST and 1000 for CIFAR).
        resolution: side r of the generated images (divisible by 4).
        channels: image channels (3).
    """

    def __init__(self, latent_dim: int = 100, resolution: int = 32, channels: int = 3):
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("resolution", resolution), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if resolution % 4:
            raise ValueError(f"resolution must be divisible by 4 (two 2x upsamplings), got {resolution}")
        self.latent_dim, self.resolution, self.channels = latent_dim, resolution, channels
        self.init_size = resolution // 4
        self.fc = nn.Linear(latent_dim, 128 * self.init_size ** 2)
        self.bn0 = nn.BatchNorm2d(128)
        self.block1 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.BatchNorm2d(128, eps=0.8),
                                    nn.LeakyReLU(0.2))
        self.block2 = nn.Sequential(nn.Conv2d(128, 64, 3, padding=1), nn.BatchNorm2d(64, eps=0.8),
                                    nn.LeakyReLU(0.2), nn.Conv2d(64, channels, 3, padding=1), nn.Tanh(),
                                    nn.BatchNorm2d(channels, affine=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, channels, resolution, resolution)."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {shape}")
        x = self.bn0(self.fc(z).view(z.shape[0], 128, self.init_size, self.init_size))
        x = self.block1(nn.functional.interpolate(x, scale_factor=2))
        return self.block2(nn.functional.interpolate(x, scale_factor=2))
