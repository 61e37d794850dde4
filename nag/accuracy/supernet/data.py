"""Data for training and evaluating a supernet: the embedded digits set, or an ImageNet-layout folder.

``DataSpec.source`` is ``"digits"`` (scikit-learn's 1,797 8x8 grey digits, 10 classes, upsampled
bilinearly to ``resolution`` and replicated to 3 channels, split deterministically by ``seed`` into
train and val) or a directory laid out as ImageNet::

    DIR/train/<class>/*.{jpg,jpeg,png,...}
    DIR/val/<class>/*.{jpg,jpeg,png,...}

Folder images are resized (shorter side to ``resolution / 0.875``, as OFA's 256 for 224), centre-cropped to
``resolution`` and normalised with ImageNet's mean and standard deviation. Classes are the sorted names of
``train/``'s subfolders; ``val/`` must use the same names. No torchvision: transforms are PIL + torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from nag.accuracy.supernet.errors import DataError
from nag.errors import MissingDependencyError

__all__ = ["DIGITS", "Data", "DataSpec", "ImageFolder", "load_data"]

DIGITS = "digits"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"})
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875  # resize to resolution / 0.875, then centre-crop (OFA: 256 -> 224)


@dataclass(frozen=True)
class DataSpec:
    """Where the images come from and how they are shaped; picklable, so Ray workers rebuild the data."""

    source: str = DIGITS  # "digits" or an ImageNet-layout directory
    resolution: int = 32  # input height = width, pixels
    val_fraction: float = 0.2  # digits only: share of the 1,797 images held out for validation
    seed: int = 0  # digits only: the split's permutation


@dataclass(frozen=True)
class Data:
    """Loaded train and validation sets of one :class:`DataSpec`."""

    spec: DataSpec  # what was loaded
    train: Dataset[tuple[torch.Tensor, int]]  # (image CHW float, label) pairs
    val: Dataset[tuple[torch.Tensor, int]]
    classes: tuple[str, ...]  # class names, index = label

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def loader(
        self, split: str, *, batch_size: int, shuffle: bool = False, seed: int = 0
    ) -> DataLoader[tuple[torch.Tensor, int]]:
        """A single-process loader over ``"train"`` or ``"val"``; shuffling is seeded."""
        dataset = self.train if split == "train" else self.val
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def _check_spec(spec: DataSpec) -> None:
    if isinstance(spec.resolution, bool) or not isinstance(spec.resolution, int) or not 8 <= spec.resolution <= 1024:
        raise DataError(f"resolution must be an integer from 8 to 1024 pixels, got {spec.resolution!r}; e.g. 32 for digits")
    if not 0.0 < spec.val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {spec.val_fraction!r}; e.g. 0.2")


def load_data(spec: DataSpec) -> Data:
    """Load ``spec`` (see the module docstring); raises :class:`DataError` for an unusable source."""
    _check_spec(spec)
    if spec.source == DIGITS:
        return _digits(spec)
    root = Path(spec.source)
    if not root.is_dir():
        raise DataError(f"data source {spec.source!r} is neither 'digits' nor a directory; give DIR with DIR/train and DIR/val")
    train = ImageFolder(root / "train", resolution=spec.resolution)
    val = ImageFolder(root / "val", resolution=spec.resolution, classes=train.classes)
    return Data(spec=spec, train=train, val=val, classes=train.classes)


def _digits(spec: DataSpec) -> Data:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MissingDependencyError("the embedded 'digits' data set needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    images = torch.tensor(np.asarray(bunch.images), dtype=torch.float32).unsqueeze(1) / 16.0  # N x 1 x 8 x 8 in [0, 1]
    images = F.interpolate(images, size=(spec.resolution, spec.resolution), mode="bilinear", align_corners=False)
    images = ((images - 0.5) / 0.5).expand(-1, 3, -1, -1).contiguous()
    labels = torch.tensor(np.asarray(bunch.target), dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(spec.seed))
    n_val = round(len(labels) * spec.val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Data(
        spec=spec,
        train=TensorDataset(images[train_idx], labels[train_idx]),  # type: ignore[arg-type]
        val=TensorDataset(images[val_idx], labels[val_idx]),  # type: ignore[arg-type]
        classes=tuple(str(i) for i in range(10)),
    )


class ImageFolder(Dataset[tuple[torch.Tensor, int]]):
    """Images under ``root/<class>/``; resize + centre crop + ImageNet normalisation, loaded lazily with PIL."""

    def __init__(self, root: Path, *, resolution: int, classes: tuple[str, ...] | None = None) -> None:
        if not root.is_dir():
            raise DataError(f"{str(root)!r} is not a directory; an image folder needs {root.name}/<class>/<image> files")
        found = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
        if classes is None:
            classes = found
        elif set(found) - set(classes):
            raise DataError(
                f"{str(root)!r} has classes {sorted(set(found) - set(classes))} that train/ lacks; use the same class folders"
            )
        if not classes:
            raise DataError(f"{str(root)!r} has no class subfolders; expected {root}/<class>/<image> files")
        self.root, self.resolution, self.classes = root, resolution, classes
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(classes):
            folder = root / name
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                self.samples += [(p, label) for p in files]
        if not self.samples:
            raise DataError(f"{str(root)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return transform_image(path, self.resolution), label


def transform_image(path: Path, resolution: int) -> torch.Tensor:
    """Resize the shorter side to ``round(resolution / 0.875)`` (bilinear), centre-crop, normalise: 3 x R x R."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {str(path)!r}: {exc}; remove or replace the file") from None
    short = round(resolution / CROP_FRACTION)
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.Resampling.BILINEAR)
    w, h = image.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (array - mean) / std
