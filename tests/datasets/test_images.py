"""Reading an image file (benchmark/images.py ``read_image``, what every dataset loads through): grey,
RGBA, 16-bit images converted; tiny, broken, truncated and oversized ones an error naming the file."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmark.errors import DataError
from benchmark.images import read_image

from helpers.images import random_image_file


def test_bad_images_are_converted_or_named(tmp_path, monkeypatch):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 40), 100, np.uint8)).save(grey)
    assert (read_image(grey) == 100).all() and read_image(grey).shape == (40, 40, 3)
    rgba = tmp_path / "rgba.png"
    a = np.zeros((40, 40, 4), np.uint8)
    a[..., 0], a[..., 3] = 255, 0                      # fully transparent red -> white
    Image.fromarray(a).save(rgba)
    assert (read_image(rgba) == 255).all()
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((40, 40), 65535, np.uint16)).save(deep)
    assert (read_image(deep) == 255).all()
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny)
    with pytest.raises(DataError, match="tiny.png is 8×8"):
        read_image(tiny)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.jpg"):
        read_image(broken)
    truncated = tmp_path / "truncated.png"
    random_image_file(truncated, 1, size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated.png"):
        read_image(truncated)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    huge = tmp_path / "huge.png"
    random_image_file(huge, 2, size=(64, 64))
    with pytest.raises(DataError, match="huge.png is too large"):
        read_image(huge)
