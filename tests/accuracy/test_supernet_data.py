"""Data: the embedded digits set and ImageNet-layout folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nag.accuracy.supernet import DataError
from nag.accuracy.supernet.data import DataSpec, load_data


def test_digits_are_upsampled_three_channel_and_split_deterministically() -> None:
    data = load_data(DataSpec(resolution=32, val_fraction=0.2, seed=4))
    assert data.num_classes == 10
    assert len(data.train) + len(data.val) == 1797 and len(data.val) == 359  # type: ignore[arg-type]
    image, label = data.val[0]
    assert image.shape == (3, 32, 32) and torch.equal(image[0], image[2]) and 0 <= int(label) < 10
    assert float(image.min()) >= -1.0 and float(image.max()) <= 1.0 and float(image.std()) > 0.1
    again = load_data(DataSpec(resolution=32, val_fraction=0.2, seed=4))
    assert torch.equal(again.val[5][0], data.val[5][0])
    other = load_data(DataSpec(resolution=32, val_fraction=0.2, seed=5))
    assert not torch.equal(other.val[5][0], data.val[5][0])
    assert load_data(DataSpec(resolution=64)).train[0][0].shape == (3, 64, 64)


def _write_folder(root: Path, classes: dict[str, int], *, size: tuple[int, int] = (40, 30)) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for index, (name, count) in enumerate(classes.items()):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.full((size[1], size[0], 3), 40 * index, dtype=np.uint8) + rng.integers(
                    0, 20, (size[1], size[0], 3), dtype=np.uint8
                )
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_image_folder_resizes_crops_and_labels(tmp_path: Path) -> None:
    _write_folder(tmp_path, {"cat": 3, "dog": 2})
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    data = load_data(DataSpec(source=str(tmp_path), resolution=16))
    assert data.classes == ("cat", "dog")
    assert len(data.train) == 5 and len(data.val) == 5  # type: ignore[arg-type]
    labels = [data.train[i][1] for i in range(5)]
    assert labels == [0, 0, 0, 1, 1]
    image = data.train[3][0]
    assert image.shape == (3, 16, 16)
    # Class 1 pixels are 40..59: normalised with ImageNet's red mean/std.
    assert (40 / 255 - 0.485) / 0.229 - 1e-4 <= float(image[0].min()) <= float(image[0].max()) <= (60 / 255 - 0.485) / 0.229
    batch = next(iter(data.loader("val", batch_size=4)))
    assert batch[0].shape == (4, 3, 16, 16)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither 'digits' nor a directory"):
        load_data(DataSpec(source=str(tmp_path / "missing")))
    _write_folder(tmp_path / "a", {"cat": 1})
    (tmp_path / "a" / "val" / "bird").mkdir()
    with pytest.raises(DataError, match=r"classes \['bird'\] that train/ lacks"):
        load_data(DataSpec(source=str(tmp_path / "a"), resolution=16))
    (tmp_path / "b" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "b" / "val").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_data(DataSpec(source=str(tmp_path / "b"), resolution=16))
    _write_folder(tmp_path / "c", {"cat": 1})
    (tmp_path / "c" / "val" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    data = load_data(DataSpec(source=str(tmp_path / "c"), resolution=16))
    with pytest.raises(DataError, match="cannot read image"):
        data.val[1]
    with pytest.raises(DataError, match="resolution"):
        load_data(DataSpec(resolution=4))
