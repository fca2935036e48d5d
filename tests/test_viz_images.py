"""kdteach.viz.plot_image_grid: a grid of images in [0, 1] (generated samples of the dafl notebook)."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kdteach.viz import plot_image_grid


def test_grid_shape_titles_and_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 3, 4, 4, generator=g)
    x[0] = 2.0                                   # clipped to 1, not rescaled
    fig = plot_image_grid(x, titles=[f"c{i}" for i in range(10)], ncols=4, title="samples")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 12                   # 3 rows x 4 columns, two blank cells
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 10 and [ax.get_title() for ax in shown[:2]] == ["c0", "c1"]
    np.testing.assert_allclose(shown[1].images[0].get_array(), x[1].permute(1, 2, 0).numpy(), rtol=1e-6)
    assert np.all(shown[0].images[0].get_array() == 1.0)
    assert fig._suptitle.get_text() == "samples"
    assert not fig.axes[-1].axison              # the unused cell is blank


def test_grid_fewer_images_than_columns_and_grey():
    fig = plot_image_grid(torch.rand(3, 1, 5, 5), ncols=8)
    assert len(fig.axes) == 3 and fig.axes[0].images[0].get_array().shape == (5, 5, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(images=torch.rand(2, 5, 4, 4)), r"images must have shape \(N, 3, H, W\)"),
    (dict(images=torch.rand(0, 3, 4, 4)), "images must not be empty"),
    (dict(images=torch.rand(2, 3, 4, 4), titles=["a"]), r"titles must hold one caption per image \(2\), got 1"),
    (dict(images=torch.rand(2, 3, 4, 4), ncols=0), "ncols must be a positive int"),
    (dict(images=torch.rand(2, 3, 4, 4), cell=0), "cell must be a number > 0"),
])
def test_grid_bad_input(kwargs, match):
    images = kwargs.pop("images")
    with pytest.raises(ValueError, match=match):
        plot_image_grid(images, **kwargs)
