"""Turn real inputs into this package's model inputs, the way edgeopt fed them when it measured the model,
and name the outputs. Standalone: numpy, plus `tokenizers` for text and `pillow` for images.

    pip install tokenizers     # text models: preprocessing/tokenizer.json is the model's own tokenizer
    pip install pillow         # image models: resize, scale, mean/std and layout as in edgeopt-artifact.json

run_example.py uses it for --input / --text / --image, and for the packaged sample in --check.
"""

import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
FOLDER = HERE / "preprocessing"
SPEC = json.loads((HERE / "edgeopt-artifact.json").read_text())
STEPS = SPEC.get("preprocessing") or {}


def missing_library():
    """The library the packaged preprocessing needs and this device lacks, or None."""
    try:
        if STEPS.get("text"):
            import tokenizers  # noqa: F401
        if STEPS.get("image"):
            import PIL  # noqa: F401
    except ImportError as exc:
        return exc.name
    return None


def text_inputs(text: str) -> dict:
    """Token ids, attention mask and token types of one text, unpadded, for the inputs the model declares."""
    from tokenizers import Tokenizer

    steps = STEPS["text"]
    tokenizer = Tokenizer.from_file(str(FOLDER / steps["tokenizer"]))
    fixed = [spec["shape"][1] for spec in SPEC["io"]["inputs"] if len(spec["shape"]) > 1
             and isinstance(spec["shape"][1], int)]
    if fixed:  # a model made for one sequence length gets its inputs padded to it (the mask marks real tokens)
        tokenizer.enable_padding(length=fixed[0])
    else:
        tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=fixed[0] if fixed else steps["max_length"])
    encoding = tokenizer.encode(text)
    arrays = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask, "token_type_ids": encoding.type_ids}
    return {spec["name"]: np.asarray([arrays[spec["name"]]], dtype=spec["dtype"])
            for spec in SPEC["io"]["inputs"] if spec["name"] in arrays}


def image_inputs(path) -> dict:
    """One image: converted to RGB or grey, resized (Pillow's default filter), × scale, (x - mean) / std, NCHW."""
    from PIL import Image

    steps = STEPS["image"]
    height, width = steps["size"]
    with Image.open(path) as image:
        image = image.convert("L" if steps["channels"] == 1 else "RGB").resize((width, height))
        pixels = np.asarray(image, dtype=np.float32).reshape(height, width, steps["channels"])
    mean = np.asarray(steps["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(steps["std"], dtype=np.float32).reshape(-1, 1, 1)
    array = (pixels.transpose(2, 0, 1) * steps["scale"] - mean) / std
    name = SPEC["io"]["inputs"][0]["name"]
    return {name: array[np.newaxis].astype(np.float32)}


def sample_inputs():
    """The packaged sample (a sentence or an image from the evaluation data) as model inputs, and what it is."""
    sample = STEPS.get("sample")
    if not sample:
        return None, None
    path = FOLDER / sample
    if STEPS.get("text"):
        text = path.read_text()
        return text_inputs(text), f"text {text[:60]!r}"
    return image_inputs(path), f"image {sample}"


def labels():
    name = STEPS.get("labels")
    return (FOLDER / name).read_text().splitlines() if name else None


def describe_output(values: np.ndarray, top: int = 3) -> str:
    """The highest scores of the first sample, by label when the package has them."""
    names = labels()
    if names is None or values.ndim < 2 or values.shape[-1] != len(names):
        return ""
    scores = values.reshape(-1, values.shape[-1])[0]
    best = np.argsort(scores)[::-1][:top]
    return ", ".join(f"{names[i]} ({scores[i]:.3g})" for i in best)


def real_inputs(text=None, image=None):
    """(model inputs, what they are) for --text / --image, else for the packaged sample; (None, why not)
    when this device lacks the library the preprocessing needs."""
    missing = missing_library()
    if missing is not None:
        package = {"PIL": "pillow"}.get(missing, missing)
        return None, f"{missing} is not installed here: pip install {package} to run real inputs"
    if text is not None:
        return text_inputs(text), f"text {text[:60]!r}"
    if image is not None:
        return image_inputs(image), f"image {image}"
    feeds, what = sample_inputs()
    return (feeds, f"the packaged sample, {what}") if feeds else (None, "the package has no sample")


def model_inputs(placeholders: dict, arrays=None, text=None, image=None):
    """(inputs, what they are): arrays from an .npz (--input); else real inputs (--text, --image, or the
    packaged sample); else the placeholders, saying why."""
    if arrays is not None:
        with np.load(arrays) as data:
            return {i["name"]: data[i["name"]].astype(np.dtype(i["dtype"])) for i in SPEC["io"]["inputs"]}, \
                f"arrays from {arrays}"
    if not STEPS:
        if text is not None or image is not None:
            raise SystemExit("this package has no preprocessing: give the model's arrays with --input")
        return placeholders, "placeholder inputs"
    real, what = real_inputs(text, image)
    return ({**placeholders, **real}, what) if real else (placeholders, f"placeholder inputs ({what})")
