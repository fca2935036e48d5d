"""CIFAR-10/100 for the course: torchvision or offline subsets, and device-resident batches.

Where the images come from is decided by :mod:`kdteach.config`:

* ``KDTEACH_DATA`` set: the offline subsets ``cifar10_subset.npz`` / ``cifar100_subset.npz`` in that
  folder, each array verified against its SHA-256 (a mismatch is an error, never a silent fallback).
* otherwise: ``torchvision.datasets.CIFAR10/100`` in :func:`kdteach.config.data_root`, downloaded
  when missing unless ``KDTEACH_DOWNLOAD=0``.

The training hot path is :class:`DeviceLoader`: the whole split lives on the device as one uint8
tensor, and a batch is cropped, flipped and normalised there in a few tensor operations, so there
is no per-sample Python. :func:`torchvision_dataset` keeps the usual ``Dataset`` path for users who
bring their own data.

Reference: A. Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, 2009.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import config

DATASETS = ("cifar10", "cifar100")

#: Per-channel mean and std of the full training sets (RGB, in [0, 1]); the values used by the
#: CRD benchmark (cifar100) and the common CIFAR-10 recipe.
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}

OFFLINE_FILES = {"cifar10": "cifar10_subset.npz", "cifar100": "cifar100_subset.npz"}

#: SHA-256 of each array's raw C-order bytes. CIFAR-10: as listed in the subsets' README.
#: CIFAR-100: that README lists only the file hash (30ef94e0…512e); these were computed from the
#: file carrying that hash.
OFFLINE_SHA256 = {
    "cifar10": {
        "x_train": "44ae451d14fd510247eac049e54ebc59d72ce890f00403e20300220ddba6e404",
        "y_train": "75576bec0cee88f7ccb6d8f72158cab1d4df055caf108898e8c02f7191d2ca26",
        "x_test": "48bde46fb9080c13770d6a8c4163dc24cff90c2802470aa26c4d6c392faf50f3",
        "y_test": "27d28d901527806280ef341c3ceeb4d5eb20462432b015952af5df7448e18eb9",
        "class_names": "0cd4e425527caa80530bc5c762cd5a696c8e31782e3984fe3cedcf5c4e5ac572",
    },
    "cifar100": {
        "x_train": "cee692f49619ea7b6756985a231001d8480f150e465f3339624597ba222ccfa6",
        "y_train": "3e9b377acdc8ba4911bc42741714ab49e682eed2d6e306dd27ee41faa6bfb037",
        "x_test": "1ef09273f5e23b0eafdfbe359f051ece75f575379d5afbc2c307e768c4f73b08",
        "y_test": "1ae03edb19467df2a5b239ca57770ecf71ff95b2d7cb00c954a9df983f54d24d",
        "fine_class_names": "fdfe43fd1c56f307c18f45a6b15965b98be1bcd2d5462f85525b7a885cac0ea8",
    },
}


class DatasetNotFoundError(FileNotFoundError):
    """CIFAR is neither on disk nor downloadable; the message says where it looked and what to do."""


class DatasetChecksumError(ValueError):
    """An offline subset's array does not match its recorded SHA-256."""


@dataclass
class ImageSplit:
    """One split of an image classification dataset, kept as tensors.

    Attributes:
        images: uint8 tensor (N, 3, H, W), values 0-255, RGB.
        labels: int64 tensor (N,).
        class_names: list of C names.
        name: dataset name (``cifar10`` or ``cifar100``).
        source: where it came from (``offline:<path>`` or ``torchvision:<root>``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    name: str
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, n: int | None) -> "ImageSplit":
        """The first ``n`` images (all of them when ``n`` is None or larger than the split)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"subset size n must be positive, got {n}")
        return ImageSplit(self.images[:n], self.labels[:n], self.class_names, self.name, self.source)

    def resized(self, resolution: int) -> "ImageSplit":
        """A copy downsampled to ``resolution`` x ``resolution`` (area averaging, kept as uint8)."""
        return ImageSplit(resize_uint8(self.images, resolution), self.labels, self.class_names, self.name,
                          self.source + f"@{resolution}px")


def _check_name(name: str) -> str:
    key = name.lower().replace("-", "")
    if key not in DATASETS:
        raise ValueError(f"dataset {name!r} is not supported; expected one of {', '.join(DATASETS)}")
    return key


def _not_found_message(name: str, looked: list[str]) -> str:
    where = "\n".join(f"  - {p}" for p in looked)
    return (
        f"{name} was not found. Looked in:\n{where}\n"
        f"To fix it, either\n"
        f"  * go online and let torchvision download it (unset KDTEACH_DATA, keep KDTEACH_DOWNLOAD=1; "
        f"it is stored in {config.data_root()} or KDTEACH_DATA_ROOT), or\n"
        f"  * point KDTEACH_DATA at a folder holding the offline subset {OFFLINE_FILES[name]} "
        f"(e.g. export KDTEACH_DATA=../shared/data)."
    )


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _load_offline(name: str, train: bool, folder: Path, verify: bool) -> ImageSplit:
    path = folder / OFFLINE_FILES[name]
    if not path.is_file():
        raise DatasetNotFoundError(_not_found_message(name, [str(path) + "  (KDTEACH_DATA)"]))
    split = "train" if train else "test"
    with np.load(path, allow_pickle=False) as z:
        x = z[f"x_{split}"]
        y = z[f"y_{split}"]
        names_key = "class_names" if name == "cifar10" else "fine_class_names"
        names = z[names_key]
        if verify:
            for key, arr in ((f"x_{split}", x), (f"y_{split}", y), (names_key, names)):
                got = _sha256(arr)
                want = OFFLINE_SHA256[name][key]
                if got != want:
                    raise DatasetChecksumError(
                        f"{path}: array {key!r} has SHA-256 {got}, expected {want}. The file is damaged or "
                        f"not the course's subset; replace it (see the subsets' README) or unset KDTEACH_DATA "
                        f"to use torchvision's download."
                    )
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(y.astype(np.int64))
    return ImageSplit(images, labels, [str(n) for n in names], name, f"offline:{path}")


def _load_torchvision(name: str, train: bool) -> ImageSplit:
    import torchvision

    root = config.data_root()
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        ds = cls(root=str(root), train=train, download=False)
    except RuntimeError:
        if not config.download_allowed():
            raise DatasetNotFoundError(
                _not_found_message(name, [f"{root} (torchvision; downloading is off: KDTEACH_DOWNLOAD=0)"])
            ) from None
        try:
            ds = cls(root=str(root), train=train, download=True)
        except Exception as exc:  # no network, disk full, ...
            raise DatasetNotFoundError(
                _not_found_message(name, [f"{root} (torchvision; download failed: {exc})"])
            ) from exc
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return ImageSplit(images, labels, list(ds.classes), name, f"torchvision:{root}")


def load_split(name: str = "cifar10", train: bool = True, *, verify: bool = True) -> ImageSplit:
    """Load a CIFAR split as uint8 tensors.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        train: training split if True, else test split.
        verify: check offline arrays against their SHA-256 (torchvision checks its own files).

    Returns:
        :class:`ImageSplit` with ``images`` uint8 (N, 3, 32, 32) and ``labels`` int64 (N,).

    Raises:
        DatasetNotFoundError: neither the offline subset nor torchvision's copy is available.
        DatasetChecksumError: an offline array does not match its checksum.
    """
    name = _check_name(name)
    folder = config.offline_data_dir()
    if folder is not None:
        return _load_offline(name, train, folder, verify)
    return _load_torchvision(name, train)


def resize_uint8(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Downsample uint8 images (N, C, H, W) to (N, C, r, r) by area averaging, rounding back to uint8."""
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if resolution <= 0 or resolution > images.shape[-1]:
        raise ValueError(f"resolution must be in 1..{images.shape[-1]}, got {resolution}")
    if resolution == images.shape[-1]:
        return images
    out = F.interpolate(images.float(), size=(resolution, resolution), mode="area")
    return out.round_().clamp_(0, 255).to(torch.uint8)


def normalize(images: torch.Tensor, dataset: str = "cifar10") -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 normalised with the dataset's mean/std, same device."""
    mean, std = NORMALIZATION[_check_name(dataset)]
    m = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - m) / s


def denormalize(x: torch.Tensor, dataset: str = "cifar10") -> torch.Tensor:
    """Inverse of :func:`normalize`: float (N, 3, H, W) -> float in [0, 1] (for plotting)."""
    mean, std = NORMALIZATION[_check_name(dataset)]
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x * s + m).clamp(0, 1)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int = 4,
                     flip: bool = True) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) and horizontal flip, done on the images' device.

    Args:
        images: (B, C, H, W) tensor of any dtype.
        generator: a CPU ``torch.Generator``; the random offsets are drawn from it, so the result
            depends only on its state (the same on every device).
        pad: zero padding on each side before cropping back to (H, W).
        flip: also flip a random half of the batch left-right.

    Returns:
        Tensor of the same shape, dtype and device.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    b, _, h, w = images.shape
    dev = images.device
    out = images
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
        rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])  # (B, H)
        cols = (ox[:, None] + torch.arange(w, device=dev)[None, :])  # (B, W)
        bi = torch.arange(b, device=dev)[:, None, None]
        # advanced indexing on dims 0, 2, 3 -> (B, H, W, C)
        out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(dev).view(b, 1, 1, 1)
        out = torch.where(mask, out.flip(3), out)
    return out.contiguous()


#: The strong view's operations and magnitude ranges, as in FixMatch's RandAugment list that the MLKD
#: authors' data code uses (14 operations; a magnitude is drawn uniformly in its range per image).
#: Factors < 1 for brightness / colour / contrast / sharpness only weaken them; rotate in degrees,
#: shear as a slope, translate as a fraction of the side, solarize as a threshold on 0..255 values.
STRONG_AUGMENT_OPS: dict[str, tuple[float, float]] = {
    "autocontrast": (0.0, 1.0), "brightness": (0.05, 0.95), "color": (0.05, 0.95),
    "contrast": (0.05, 0.95), "equalize": (0.0, 1.0), "identity": (0.0, 1.0), "posterize": (4.0, 8.0),
    "rotate": (-30.0, 30.0), "sharpness": (0.05, 0.95), "shear_x": (-0.3, 0.3), "shear_y": (-0.3, 0.3),
    "solarize": (0.0, 256.0), "translate_x": (-0.3, 0.3), "translate_y": (-0.3, 0.3),
}
_GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
_CUTOUT_GRAY = (125 / 255, 123 / 255, 114 / 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (PIL's "L"), (B, 1, H, W)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _affine(x: torch.Tensor, which: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PIL's affine operations on (n, 3, H, W) in [0, 1]: image i gets ``_GEOMETRIC_OPS[which[i]]`` with
    magnitude ``v[i]``. Output-to-input maps in normalised coordinates (pixel centres, as PIL samples
    them), black fill, bilinear sampling (PIL's default is nearest); one ``grid_sample`` for all."""
    n = x.shape[0]
    which, v = which.to(x.device), v.to(x.device, x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    a = torch.where(which == 0, -torch.deg2rad(v), torch.zeros_like(v))      # rotate: counter-clockwise
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), torch.sin(a)
    theta[:, 1, 0], theta[:, 1, 1] = -torch.sin(a), torch.cos(a)
    shear_x, shear_y = which == 1, which == 2                                 # x_in = x + v y (PIL (1, v, 0, 0, 1, 0))
    theta[:, 0, 1] += torch.where(shear_x, v, 0.0)
    theta[:, 1, 0] += torch.where(shear_y, v, 0.0)
    theta[:, 0, 2] = torch.where(shear_x, v, 0.0) + torch.where(which == 3, 2 * v, 0.0)   # translate: x_in = x + v W
    theta[:, 1, 2] = torch.where(shear_y, v, 0.0) + torch.where(which == 4, 2 * v, 0.0)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram equalisation on the 0..255 levels (the textbook CDF mapping)."""
    b, c, h, w = x.shape
    q = (x * 255).round().clamp(0, 255).long().reshape(b * c, h * w)
    hist = torch.zeros(b * c, 256, dtype=x.dtype, device=x.device).scatter_add_(1, q, torch.ones_like(q, dtype=x.dtype))
    cdf = hist.cumsum(1)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, float(h * w))).amin(1, keepdim=True)
    span = (h * w - cdf_min).clamp_min(1)
    lut = ((cdf - cdf_min) / span).clamp(0, 1)
    out = lut.gather(1, q).reshape(b, c, h, w)
    flat = (span <= 1).reshape(b, c, 1, 1)          # one level only: leave the channel as it is
    return torch.where(flat, x, out)


def _augment_op(x: torch.Tensor, op: str, v: torch.Tensor) -> torch.Tensor:
    """One operation of :data:`STRONG_AUGMENT_OPS` on the whole batch, magnitude ``v`` (B,) per image."""
    f = v.view(-1, 1, 1, 1)
    if op == "identity":
        return x
    if op == "autocontrast":
        lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
        return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-12), x)
    if op == "brightness":
        return (f * x).clamp(0, 1)
    if op == "color":
        g = _gray(x)
        return (g + f * (x - g)).clamp(0, 1)
    if op == "contrast":
        m = _gray(x).mean((2, 3), keepdim=True)
        return (m + f * (x - m)).clamp(0, 1)
    if op == "equalize":
        return _equalize(x)
    if op == "posterize":                   # keep the top int(v) bits of each 0..255 value
        step = torch.exp2(8 - v.floor().clamp(1, 8)).view(-1, 1, 1, 1)
        return torch.floor((x * 255).round() / step) * step / 255
    if op == "sharpness":                   # blend with PIL's SMOOTH filter, borders kept
        smooth = x.clone()                  # kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 on the interior
        smooth[:, :, 1:-1, 1:-1] = (9 * F.avg_pool2d(x, 3, stride=1) + 4 * x[:, :, 1:-1, 1:-1]) / 13
        return (smooth + f * (x - smooth)).clamp(0, 1)
    if op == "solarize":                    # invert the values at or above the threshold
        return torch.where(x * 255 >= f, 1 - x, x)
    if op in _GEOMETRIC_OPS:
        return _affine(x, torch.full(v.shape, _GEOMETRIC_OPS.index(op), dtype=torch.long), v)
    raise ValueError(f"op must be one of {', '.join(STRONG_AUGMENT_OPS)}, got {op!r}")


def strong_augment(images: torch.Tensor, generator: torch.Generator, num_ops: int = 2,
                   cutout: float = 0.5) -> torch.Tensor:
    """A batched RandAugment-style strong view, done on the images' device (MLKD's strong view).

    For each image, ``num_ops`` operations are drawn uniformly (with replacement) from the 14 of
    :data:`STRONG_AUGMENT_OPS`, each with a magnitude drawn uniformly in its range, and applied in
    turn; then a grey square of side ``u · cutout · W`` (u uniform in [0, 1]) at a random centre is
    painted over it (Cutout). This is the FixMatch-style ``RandAugment(2, 10)`` + Cutout that the
    MLKD authors' data code applies to its strong view (the magnitude 10 is unused there too: each
    magnitude is random), re-implemented as tensor operations on a whole batch (the images that
    drew the same operation are processed together). Differences from the PIL original: geometric
    operations sample bilinearly (PIL: nearest), so edge pixels blend with the black fill; Equalize is
    the textbook CDF mapping, a few grey levels off PIL's; values stay float (PIL rounds to uint8
    after every operation).

    Args:
        images: float (B, 3, H, W) images in [0, 1] (not normalised; see :func:`denormalize`).
        generator: a CPU ``torch.Generator``; all random choices are drawn from it, so the result
            depends only on its state (the same on every device).
        num_ops: operations per image (>= 0).
        cutout: largest Cutout side as a fraction of the image side, in [0, 1] (0: no Cutout).

    Returns:
        Float tensor of the same shape, dtype and device, in [0, 1].
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {type(images).__name__} "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else ''}".rstrip())
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [0, 1] (denormalised), got dtype {images.dtype}")
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"num_ops must be an int >= 0, got {num_ops!r}")
    if isinstance(cutout, bool) or not isinstance(cutout, (int, float)) or not 0.0 <= cutout <= 1.0:
        raise ValueError(f"cutout must be a number in [0, 1], got {cutout!r}")
    b, _, h, w = images.shape
    dev = images.device
    names = list(STRONG_AUGMENT_OPS)
    out = images.clone()
    for _ in range(num_ops):
        pick = torch.randint(0, len(names), (b,), generator=generator)
        u = torch.rand(b, generator=generator)
        lo, hi = (torch.tensor([STRONG_AUGMENT_OPS[n][i] for n in names]) for i in (0, 1))
        mag = lo[pick] + (hi[pick] - lo[pick]) * u                  # each image's magnitude in its op's range
        geo = torch.tensor([n in _GEOMETRIC_OPS for n in names])[pick]
        if bool(geo.any()):                                         # all geometric ops in one resampling
            rows = geo.nonzero().flatten()
            which = torch.tensor([_GEOMETRIC_OPS.index(n) if n in _GEOMETRIC_OPS else -1 for n in names])[pick[rows]]
            out[rows.to(dev)] = _affine(out[rows.to(dev)], which, mag[rows])
        for k in pick[~geo].unique().tolist():                     # the others, one op at a time
            rows = (pick == k).nonzero().flatten()
            idx = rows.to(dev)
            out[idx] = _augment_op(out[idx], names[k], mag[rows].to(dev, images.dtype))
    if cutout > 0:
        side = (torch.rand(b, generator=generator) * cutout * w).to(dev)
        cy = (torch.rand(b, generator=generator) * h).to(dev)
        cx = (torch.rand(b, generator=generator) * w).to(dev)
        y0, x0 = (cy - side / 2).clamp_min(0).floor(), (cx - side / 2).clamp_min(0).floor()
        rows = torch.arange(h, device=dev, dtype=side.dtype)[None, :]
        cols = torch.arange(w, device=dev, dtype=side.dtype)[None, :]
        in_rows = (rows >= y0[:, None]) & (rows < y0[:, None] + side[:, None].round())
        in_cols = (cols >= x0[:, None]) & (cols < x0[:, None] + side[:, None].round())
        box = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)      # (B, 1, H, W)
        gray = torch.tensor(_CUTOUT_GRAY, dtype=images.dtype, device=dev).view(1, 3, 1, 1)
        out = torch.where(box, gray, out)
    return out.contiguous()


class DeviceLoader:
    """Iterate over (normalised images, labels) batches with the whole split held on a device.

    Each epoch draws its permutation and augmentation from a CPU generator seeded with
    ``(seed, epoch)``, so epoch ``e`` yields the same batches whether training ran from epoch 0 or
    resumed at ``e`` (exact resume), and the same on every device.

    Args:
        split: an :class:`ImageSplit` (uint8 images).
        batch_size: images per batch.
        device: where the data and batches live.
        train: shuffle and augment (crop + flip) if True; fixed order, no augmentation if False.
        seed: base seed for shuffling and augmentation.
        pad: crop padding; default ``resolution // 8`` (4 at 32x32, 2 at 16x16).
        drop_last: drop the last incomplete batch (default: True when training).
        channels_last: return batches in channels_last memory format.
        with_index: also yield each image's position in ``split`` (a method's per-sample state, such as
            CRD's memory bank, is indexed by it; :attr:`kdteach.methods.Method.needs_index`).

    Yields:
        ``(x, y)`` with x float32 (B, 3, H, W) normalised, y int64 (B,), both on ``device``; with
        ``with_index``, ``(x, y, index)`` with index int64 (B,) on ``device``.
    """

    def __init__(self, split: ImageSplit, batch_size: int, device: torch.device | str = "cpu", *,
                 train: bool = True, seed: int = 0, pad: int | None = None,
                 drop_last: bool | None = None, channels_last: bool = True, with_index: bool = False):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.dataset = split.name
        self.batch_size = int(batch_size)
        self.train = train
        self.seed = int(seed)
        self.pad = split.resolution // 8 if pad is None else int(pad)
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.with_index = bool(with_index)
        self.epoch = 0
        mean, std = NORMALIZATION[split.name]
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        n = int(self.labels.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Select which epoch's shuffle/augmentation the next iteration uses."""
        self.epoch = int(epoch)

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float().div_(255.0) - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self):
        n = self.num_samples
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=gen).to(self.device) if self.train else None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            if order is None:
                idx = torch.arange(lo, hi, device=self.device)
                xb, yb = self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = self.images[idx], self.labels[idx]
                xb = random_crop_flip(xb, gen, pad=self.pad)
            yield (self._to_float(xb), yb, idx) if self.with_index else (self._to_float(xb), yb)
        if self.train:
            self.epoch += 1


def example_batch(n: int = 8, dataset: str = "cifar10", resolution: int = 32,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed tiny batch for loss demonstrations and figures: one test image per class, in class order.

    The images are the first test image of class 0, 1, 2, ... (cycling when ``n`` exceeds the number
    of classes), so the batch is the same for the offline subset and the full dataset.

    Returns:
        ``(x, y)``: x float32 (n, 3, r, r) normalised, y int64 (n,).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    split = load_split(dataset, train=False)
    if resolution != split.resolution:
        split = split.resized(resolution)
    picked: list[int] = []
    per_class: dict[int, list[int]] = {}
    for i, lab in enumerate(split.labels.tolist()):
        per_class.setdefault(lab, []).append(i)
    rank = 0
    while len(picked) < n:
        added = False
        for c in range(split.num_classes):
            if len(picked) == n:
                break
            if rank < len(per_class.get(c, [])):
                picked.append(per_class[c][rank])
                added = True
        if not added:
            raise ValueError(f"the {dataset} test split has fewer than {n} images")
        rank += 1
    idx = torch.tensor(picked)
    x = normalize(split.images[idx], split.name).to(device)
    return x, split.labels[idx].to(device)


def torchvision_dataset(name: str = "cifar10", train: bool = True, augment: bool | None = None,
                        root: str | Path | None = None, download: bool | None = None):
    """The classic ``torchvision`` Dataset with the usual transforms (for your own data or loops).

    Train: RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize; test: ToTensor +
    Normalize. This is the per-sample path most KD repositories use (and our benchmark's reference).
    """
    import torchvision
    import torchvision.transforms as T

    name = _check_name(name)
    augment = train if augment is None else augment
    mean, std = NORMALIZATION[name]
    tf = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    transform = T.Compose(tf + [T.ToTensor(), T.Normalize(mean, std)])
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    root = Path(root) if root is not None else config.data_root()
    download = config.download_allowed() if download is None else download
    try:
        return cls(root=str(root), train=train, download=download, transform=transform)
    except RuntimeError as exc:
        raise DatasetNotFoundError(_not_found_message(name, [f"{root} (torchvision: {exc})"])) from exc


class TensorImageDataset(torch.utils.data.Dataset):
    """A map-style Dataset over an :class:`ImageSplit` that yields PIL-free CHW uint8 tensors.

    Used with ``torchvision.transforms.v2`` style per-sample transforms when a user wants the
    ``DataLoader`` path on the offline subsets.
    """

    def __init__(self, split: ImageSplit, transform=None):
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        x = self.split.images[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.split.labels[i])
