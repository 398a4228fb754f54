"""YAML loading that turns parse errors into messages with the file and line, and refuses hostile files.

A manifest can come from anyone (a pull request, a downloaded example), so before anything is built from
it the file is checked within fixed bounds: its size, that it is UTF-8 text, how deeply it nests, how long
one value is, and how many values it holds once its aliases are expanded. The last one stops an alias
bomb ("billion laughs": nine lines whose aliases expand to 10⁹ values): the check walks the parser's
events, where an alias is one event however much it stands for, and adds up the size each anchor
expands to; it stops as soon as the total passes the budget, so refusing a bomb costs microseconds.
Anchors and aliases within the budget work as YAML says.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

from edgeopt.errors import ManifestError, shorten

MAX_BYTES = 1_000_000  # a manifest is a few kilobytes; the largest file in this repository is 4 KB
MAX_DEPTH = 64  # nested mappings and lists
MAX_SCALAR_CHARS = 65_536  # one key or value
MAX_NODES = 20_000  # values in the document once aliases are expanded (the largest manifest here has ~60)
MAX_EXPANDED_CHARS = 4_000_000  # characters of text in the document once aliases are expanded

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster on large files


def load_yaml(path: Path) -> Any:
    path = Path(path)
    return _load(path, _read_text(path), many=False)


def load_yaml_documents(path: Path) -> list[Any]:
    path = Path(path)
    return [doc for doc in _load(path, _read_text(path), many=True) if doc is not None]


def _read_text(path: Path) -> str:
    file = str(path)
    try:
        if path.is_dir():
            raise ManifestError(file, "", "is a folder; expected a YAML file")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(file, "", "file not found") from None
    except IsADirectoryError:
        raise ManifestError(file, "", "is a folder; expected a YAML file") from None
    except PermissionError:
        raise ManifestError(file, "", "permission denied: cannot read it") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ManifestError(file, "", f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if len(raw) > MAX_BYTES:
        raise ManifestError(file, "", f"larger than {MAX_BYTES // 1_000_000} MB: not a manifest (is it the right file?)")
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if raw.startswith(bom):
            raise ManifestError(file, "", f"is {name} text; save it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        what = "binary, not YAML text" if b"\0" in raw else "not UTF-8 text"
        raise ManifestError(file, f"line {line}", f"{what} (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                            "a manifest is UTF-8 YAML") from None
    if "\0" in text:
        offset = text.index("\0")
        raise ManifestError(file, f"line {text.count(chr(10), 0, offset) + 1}",
                            f"binary, not YAML text (a NUL character at offset {offset})")
    return text


def _load(path: Path, text: str, many: bool) -> Any:
    file = str(path)
    try:
        _check_bounds(text, file)
        loader = _Loader(text)
        try:
            if many:
                documents = []
                while loader.check_data():
                    documents.append(loader.get_data())
                return documents
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    except ManifestError:
        raise
    except RecursionError:  # cannot happen within MAX_DEPTH; kept so that it can never become a crash
        raise ManifestError(file, "", f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors on a value they cannot build: `2023-13-45`
        # (ValueError), `!!float ''` (IndexError), `!!timestamp x` (AttributeError)
        reason = str(exc).split("; use sys.set_int_max_str_digits", 1)[0]  # Python's advice is not the user's
        raise ManifestError(file, "", f"cannot read a value ({type(exc).__name__}: {shorten(reason)})") from None


def _check_bounds(text: str, file: str) -> None:
    """Walk the parser's events (no values are built) and refuse a document that nests too deeply, holds a
    too-long value, refers to itself, or whose aliases expand past the budget."""
    loader = _Loader(text)
    try:
        nodes = chars = 0
        aliases = 0
        open_anchors: dict[str, tuple[int, int]] = {}  # anchors of the collections being read: where they began
        sizes: dict[str, tuple[int, int]] = {}  # finished anchors: how many values and characters they stand for
        stack: list[str | None] = []  # the anchor of each open collection (None when it has none)
        while loader.check_event():
            event = loader.get_event()
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.ScalarEvent):
                if len(event.value) > MAX_SCALAR_CHARS:
                    raise ManifestError(file, f"line {line}", f"a value of {len(event.value):,} characters; at most "
                                        f"{MAX_SCALAR_CHARS:,} are read")
                nodes, chars = nodes + 1, chars + len(event.value)
                if event.anchor is not None:
                    sizes[event.anchor] = (1, len(event.value))
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    raise ManifestError(file, f"line {line}", f"nested more than {MAX_DEPTH} levels deep: not a manifest")
                nodes += 1
                stack.append(event.anchor)
                if event.anchor is not None:
                    open_anchors[event.anchor] = (nodes - 1, chars)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor = stack.pop() if stack else None
                if anchor is not None and anchor in open_anchors:
                    start_nodes, start_chars = open_anchors.pop(anchor)
                    sizes[anchor] = (nodes - start_nodes, chars - start_chars)
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if event.anchor in open_anchors:
                    raise ManifestError(file, f"line {line}", f"alias *{shorten(event.anchor, 40)} refers to the value "
                                        "that contains it: a cycle")
                more_nodes, more_chars = sizes.get(event.anchor, (1, 0))  # undefined: the loader says so next
                nodes, chars = nodes + more_nodes, chars + more_chars
            if nodes > MAX_NODES or chars > MAX_EXPANDED_CHARS:
                raise ManifestError(file, f"line {line}", _too_big(aliases, nodes > MAX_NODES))
    finally:
        loader.dispose()


def _too_big(aliases: int, by_nodes: bool) -> str:
    budget = f"{MAX_NODES:,} values" if by_nodes else f"{MAX_EXPANDED_CHARS:,} characters"
    if aliases:
        return (f"its aliases expand to more than {budget} (an alias bomb?); "
                "write the values out instead of repeating aliases")
    return f"more than {budget}: too large for a manifest"


def _yaml_error(file: str, exc: yaml.YAMLError) -> ManifestError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}" if mark is not None else ""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: not text
        return ManifestError(file, "", f"not YAML text: character #x{exc.character:04x} at offset {exc.position}"
                             if isinstance(exc.character, int) else f"not YAML text ({shorten(str(exc))})")
    problem = str(getattr(exc, "problem", None) or exc)
    context = getattr(exc, "context", None)  # "while parsing a flow sequence" + "did not find expected ']'"
    if context and problem == "second occurrence":  # "found duplicate anchor 'x'; first occurrence"
        problem, context = str(context).split(";")[0], None
    return ManifestError(file, where, f"not valid YAML: {shorten(f'{context}, {problem}' if context else problem)}")
