"""What a device must do to a real input before the model, and what the outputs are called: read from the
manifest once a build has run, kept in the report, and shipped in packages (preprocessing/ and preprocess.py).

Text: the tokenizer.json the evaluation data was tokenized with. Images: size, channels, scale, mean/std
(an image folder's own, or `package.image` for data a hook prepares). Labels: `package.labels`, or an image
folder's class sub-folders. A sample from the evaluation data (a sentence, an image) lets `edgeopt verify` run
the whole path, real input to named output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgeopt.manifest import ImageFolderData, ImageSteps, Manifest, TextLinesData, resolve_path

FOLDER = "preprocessing"


class TextSteps(BaseModel):
    model_config = ConfigDict(frozen=True)
    tokenizer: str  # file name under preprocessing/
    max_length: int


class Preprocessing(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: TextSteps | None = None
    image: ImageSteps | None = None
    labels: str | None = None  # file name under preprocessing/, one label per line in output order
    sample: str | None = None  # file name under preprocessing/: one real input from the evaluation data

    def files(self) -> list[str]:
        return [name for name in (self.text and self.text.tokenizer, self.labels, self.sample) if name]


def collect_preprocessing(manifest: Manifest, build_dir: Path) -> Preprocessing | None:
    """Writes build_dir/preprocessing/ and says what is in it; None when there is nothing a device could use
    (arrays given as .npz/.npy, a hook without `package.image`)."""
    folder = Path(build_dir) / FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data = manifest.evaluation.data
    text = image = sample = None
    if isinstance(data, TextLinesData):
        text, sample = _text(data, manifest, folder)
    elif isinstance(data, ImageFolderData):
        image = ImageSteps(**data.model_dump(include=set(ImageSteps.model_fields)))
        sample = _first_image(resolve_path(data.path), folder)
    elif manifest.package.image is not None:
        image = manifest.package.image
        sample = _image_from_array(Path(build_dir) / "data" / "eval.npz", image, folder)
    labels = _labels(manifest, folder)
    if text is None and image is None and labels is None:
        shutil.rmtree(folder)
        return None
    return Preprocessing(text=text, image=image, labels=labels, sample=sample)


def _text(data: TextLinesData, manifest: Manifest, folder: Path) -> tuple[TextSteps, str | None]:
    from edgeopt.datasets import text_samples, tokenizer_file

    shutil.copyfile(tokenizer_file(data, manifest), folder / "tokenizer.json")
    found = text_samples(data, resolve_path(data.path))
    if found:
        (folder / "sample.txt").write_text(found[0])
    return TextSteps(tokenizer="tokenizer.json", max_length=data.max_length), "sample.txt" if found else None


def _first_image(root: Path, folder: Path) -> str | None:
    """The evaluation's first image, as a file of the package."""
    from edgeopt.datasets import image_files

    found = image_files(root)
    if not found:
        return None
    first = found[0][0]
    name = f"sample{first.suffix.lower()}"
    shutil.copyfile(first, folder / name)
    return name


def _image_from_array(prepared: Path, steps: ImageSteps, folder: Path) -> str | None:
    """The first evaluation image back in pixels (the hook's arrays undone by `package.image`), as a PNG."""
    try:
        from PIL import Image
    except ImportError:
        return None  # the package then has no sample; verify runs on placeholder inputs and says so
    if not prepared.is_file():
        return None
    from edgeopt.datafiles import load_arrays

    arrays, _ = load_arrays(prepared, limit=1)
    if len(arrays) != 1:
        return None
    first = next(iter(arrays.values()))[0]
    height, width = steps.size
    if first.shape != (steps.channels, height, width):
        return None
    mean = np.asarray(steps.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(steps.std, dtype=np.float32).reshape(-1, 1, 1)
    pixels = np.clip(np.rint((first * std + mean) / steps.scale), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    Image.fromarray(pixels[..., 0] if steps.channels == 1 else pixels).save(folder / "sample.png")
    return "sample.png"


def _labels(manifest: Manifest, folder: Path) -> str | None:
    given = manifest.package.labels
    data = manifest.evaluation.data
    if isinstance(given, list):
        names = given
    elif isinstance(given, str):
        names = [line.strip() for line in resolve_path(given).read_text().splitlines() if line.strip()]
    elif isinstance(data, ImageFolderData):
        from edgeopt.datasets import image_classes

        names = image_classes(resolve_path(data.path))
    else:
        names = None
    if not names:
        return None
    (folder / "labels.txt").write_text("\n".join(names) + "\n")
    return "labels.txt"
