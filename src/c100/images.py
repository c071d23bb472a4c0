"""Image files to the (3, 32, 32) uint8 pixels a c100 model takes: one decoding rule (``PREPROCESSING``).

Decode with Pillow (first frame, EXIF orientation applied), convert to RGB (transparent pixels onto
white, 16-bit values scaled to 8 bits, CMYK and palettes converted without colour management), cut the
largest centred square and resize it to 32x32 with Pillow's antialiased bicubic filter (the same as:
shorter side to 32 px, centre 32x32 crop). A 32x32 image is used pixel for pixel, so a CIFAR-100 image
saved losslessly gives the data set's logits. The training normalisation comes after, on the model's side.
"""
import os
from pathlib import Path

import numpy as np
import torch

from c100.errors import InputImageError

SIZE = 32
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                    ".ppm", ".pgm", ".pbm", ".pnm")
PREPROCESSING = ("decode with Pillow (first frame, EXIF rotation applied); convert to RGB "
                 "(transparency composited on white, 16-bit scaled to 8-bit); cut the largest centred "
                 "square and resize it to 32x32 with antialiased bicubic (= shorter side to 32 px, centre "
                 "crop); normalise uint8 pixels as in training")


def image_files(paths):
    """Expand arguments into (files, errors): folders recursively by extension, files as given.

    A file named explicitly is always tried (and refused later if it is not an image); inside a folder
    only files with an image extension count, hidden files and folders are skipped, and a folder
    with no image at all is an error. Duplicates are dropped. ``errors`` is a list of (path, message).
    """
    files, errors = [], []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                errors.append((str(p), f"{p}: folder holds no image files "
                                       f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)})"))
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            errors.append((str(p), f"{p}: no such file or folder"))
    seen = set()  # a file named twice (or also found in a folder) is predicted once
    unique = [f for f in files if not (f.resolve() in seen or seen.add(f.resolve()))]
    return unique, errors


def open_image(path):
    """A PIL RGB image from a file; InputImageError naming the file if it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise InputImageError(f"{path}: cannot open ({e.strerror or e})") from e
    except Image.DecompressionBombError as e:
        raise InputImageError(f"{path}: refused, too many pixels ({e})") from e
    except UnidentifiedImageError as e:
        what = "empty file" if path.stat().st_size == 0 else "not an image Pillow can read"
        raise InputImageError(f"{path}: {what}") from e
    except InputImageError as e:
        raise InputImageError(f"{path}: {e}") from e
    except Exception as e:  # truncated or garbled data: OSError, SyntaxError, ValueError, EOFError, ...
        raise InputImageError(f"{path}: truncated or corrupt image ({type(e).__name__}: {e})") from e


def to_rgb(im):
    """Any Pillow mode to 8-bit RGB; see PREPROCESSING."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        a = np.asarray(im).astype(np.float64)
        # integer modes hold 16-bit samples (8-bit files open as "L"); float images in [0, 1] or [0, 255]
        scale = 255.0 / 65535.0 if im.mode != "F" else (255.0 if a.size and a.max() <= 1.0 else 1.0)
        im = Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8))  # 2-D uint8: mode L
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise InputImageError(f"image mode {im.mode} cannot be converted to RGB") from e


def resize_center(im, size=SIZE):
    """The largest centred square, resized to size x size (antialiased bicubic); identity at size x size."""
    from PIL import Image

    w, h = im.size
    if (w, h) == (size, size):
        return im
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    return im.resize((size, size), Image.Resampling.BICUBIC, box=box)


def image_to_uint8(im) -> torch.Tensor:
    """(3, 32, 32) uint8 from a PIL image of any size and mode."""
    return _chw(resize_center(to_rgb(im)))


def load_image(path) -> torch.Tensor:
    """(3, 32, 32) uint8 from an image file; InputImageError naming the file otherwise."""
    return _chw(resize_center(open_image(path)))


def _chw(rgb_im) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb_im, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def as_uint8_batch(images) -> torch.Tensor:
    """(N, 3, 32, 32) uint8 from paths, PIL images, HWC uint8 arrays, or uint8 tensors (N, 3, 32, 32)."""
    from PIL import Image

    if isinstance(images, torch.Tensor):
        return _check_uint8_tensor(images if images.dim() == 4 else images.unsqueeze(0))
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        images = [images]
    out = []
    for item in images:
        if isinstance(item, (str, os.PathLike)):
            out.append(load_image(item))
        elif isinstance(item, Image.Image):
            out.append(image_to_uint8(item))
        elif isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim not in (2, 3):
                raise InputImageError(f"arrays must be uint8 HxW or HxWxC images, got {item.dtype} {item.shape}")
            out.append(image_to_uint8(Image.fromarray(item)))
        elif isinstance(item, torch.Tensor):
            out.append(_check_uint8_tensor(item.unsqueeze(0))[0])
        else:
            raise InputImageError(f"cannot use {type(item).__name__} as an image: pass paths, PIL images, "
                                  f"uint8 arrays or uint8 tensors")
    if not out:
        return torch.empty(0, 3, SIZE, SIZE, dtype=torch.uint8)
    return torch.stack(out)


def _check_uint8_tensor(t):
    if t.dtype != torch.uint8 or t.dim() != 4 or tuple(t.shape[1:]) != (3, SIZE, SIZE):
        raise InputImageError(f"image tensors must be uint8 (N, 3, {SIZE}, {SIZE}), got {t.dtype} "
                              f"{tuple(t.shape)}; pass PIL images or files of other sizes")
    return t
