"""Checks on model files from outside before any framework opens them.

Frameworks parse model files in C++ and follow what the file says: an ONNX tensor's external-data
`location` is opened as given (`../../etc/passwd`, `/dev/zero`), a declared shape is allocated as
declared. These checks read only the file's structure (never its external data) and refuse, with a
ModelRejected (exit 2), a file that is truncated or corrupt, points outside its folder, or declares
sizes no real model has.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path, PurePosixPath, PureWindowsPath

from edgeopt.errors import MissingDependency, ModelRejected, quote, shorten

MAX_DIM = 2**31  # one declared dimension
MAX_TENSOR_BYTES = 64 * 2**30  # one declared tensor, elements × element size
MAX_PROTO_BYTES = 2**31 - 1  # protobuf cannot hold more; larger weights must be external data
MAX_XML_BYTES = 2 * 2**30  # an OpenVINO IR's .xml (the weights are in the .bin)

_EXTERNAL = 1  # onnx.TensorProto.EXTERNAL


# -- ONNX -------------------------------------------------------------------------------------------------------
def check_onnx(path: str | Path):
    """Refuse an ONNX file that cannot be parsed, is missing its graph, keeps external data outside its
    folder (or past the end of the data file), or declares absurd dimensions. Reads no external data.
    Returns the checked ModelProto (weights in external files not loaded), so callers parse it once."""
    path = Path(path)
    size = _regular_file(path, "ONNX model")
    if size > MAX_PROTO_BYTES:
        raise ModelRejected(f"{path}: {size:,} bytes, more than an ONNX file can hold (2 GiB); large weights "
                            "belong in external data files")
    try:
        import onnx
    except ImportError:
        raise MissingDependency("onnx (to check an ONNX model)", "pip install 'edgeopt[onnx]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, and whatever else a corrupt file raises
        raise ModelRejected(f"{path}: not a readable ONNX model, truncated or corrupt "
                            f"({shorten(type(exc).__name__ + ': ' + str(exc), 160)})") from None
    if not model.HasField("graph") or not model.opset_import or not model.graph.output:
        missing = ("graph" if not model.HasField("graph") else "opset_import" if not model.opset_import
                   else "graph outputs")
        raise ModelRejected(f"{path}: not a complete ONNX model (no {missing}): truncated or corrupt")
    folder = path.resolve().parent
    for where, tensor in _tensors(model):
        _check_tensor(path, folder, where, tensor)
    for where, value_info in _value_infos(model):
        _check_value_info(path, where, value_info)
    return model


def _tensors(model):
    """Every TensorProto in the model: initializers, sparse initializers, tensor attributes, in every
    graph and subgraph and in model-local functions."""
    def in_graph(graph, prefix):
        for tensor in graph.initializer:
            yield f"{prefix}initializer {tensor.name!r}", tensor
        for sparse in graph.sparse_initializer:
            yield f"{prefix}sparse initializer {sparse.values.name!r}", sparse.values
            yield f"{prefix}sparse initializer {sparse.values.name!r} indices", sparse.indices
        yield from in_nodes(graph.node, prefix)

    def in_nodes(nodes, prefix):
        for node in nodes:
            for attribute in node.attribute:
                where = f"{prefix}node {node.name or node.op_type!r} attribute {attribute.name!r}"
                if attribute.HasField("t"):
                    yield where, attribute.t
                for tensor in attribute.tensors:
                    yield where, tensor
                if attribute.HasField("sparse_tensor"):
                    yield where, attribute.sparse_tensor.values
                    yield where, attribute.sparse_tensor.indices
                for sparse in attribute.sparse_tensors:
                    yield where, sparse.values
                    yield where, sparse.indices
                if attribute.HasField("g"):
                    yield from in_graph(attribute.g, f"{where} subgraph: ")
                for graph in attribute.graphs:
                    yield from in_graph(graph, f"{where} subgraph: ")

    yield from in_graph(model.graph, "")
    for function in model.functions:
        yield from in_nodes(function.node, f"function {function.name!r} ")


def _value_infos(model):
    def in_graph(graph, prefix):
        for kind, infos in (("input", graph.input), ("output", graph.output), ("value", graph.value_info)):
            for info in infos:
                yield f"{prefix}{kind} {info.name!r}", info
        for node in graph.node:
            for attribute in node.attribute:
                where = f"{prefix}node {node.name or node.op_type!r} attribute {attribute.name!r} subgraph: "
                if attribute.HasField("g"):
                    yield from in_graph(attribute.g, where)
                for graph_ in attribute.graphs:
                    yield from in_graph(graph_, where)

    yield from in_graph(model.graph, "")


def _check_tensor(path: Path, folder: Path, where: str, tensor) -> None:
    dims = list(tensor.dims)
    _check_dims(path, where, dims, tensor.data_type)
    if tensor.data_location == _EXTERNAL:
        _check_external(path, folder, where, tensor)
    elif tensor.raw_data:
        itemsize = _itemsize(tensor.data_type, exact=True)
        if itemsize:
            expected = _product(dims) * itemsize
            if len(tensor.raw_data) != expected:
                raise ModelRejected(f"{path}: {where} declares {dims} ({expected:,} bytes) but holds "
                                    f"{len(tensor.raw_data):,} bytes: corrupt")


UNKNOWN_DIM = -1


def _check_value_info(path: Path, where: str, value_info) -> None:
    tensor_type = value_info.type.tensor_type if value_info.type.HasField("tensor_type") else None
    if tensor_type is None or not tensor_type.HasField("shape"):
        return
    # -1 is how some exporters (paddle2onnx, e.g. PaddleOCR's models in rapidocr) write a dynamic dimension
    dims = [d.dim_value for d in tensor_type.shape.dim if d.HasField("dim_value") and d.dim_value != UNKNOWN_DIM]
    fixed = len(dims) == len(tensor_type.shape.dim)
    _check_dims(path, where, dims, tensor_type.elem_type, whole=fixed)


def _check_dims(path: Path, where: str, dims: list[int], data_type: int, whole: bool = True) -> None:
    for dim in dims:
        if dim > MAX_DIM or dim < 0:
            raise ModelRejected(f"{path}: {where} declares a dimension of {dim:,}: no real model has one "
                                f"(at most {MAX_DIM:,})")
    if whole:
        size = _product(dims) * _itemsize(data_type)
        if size > MAX_TENSOR_BYTES:
            raise ModelRejected(f"{path}: {where} declares {dims}, {size / 2**30:,.0f} GiB: more than "
                                f"{MAX_TENSOR_BYTES // 2**30} GiB")


def _check_external(path: Path, folder: Path, where: str, tensor) -> None:
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    said = quote(location)
    if not location or "\0" in location:
        raise ModelRejected(f"{path}: {where} keeps its data externally but names no valid file ({said})")
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("\\", "/", "~")):
        raise ModelRejected(f"{path}: {where} has external data at the absolute path {said}: refused; external "
                            "data must lie in the model's folder")
    if ".." in posix.parts or ".." in windows.parts:
        raise ModelRejected(f"{path}: {where} has external data at {said}, outside the model's folder: refused")
    target = folder / location
    resolved = Path(os.path.realpath(target))  # follows links without opening the file
    if resolved != folder and folder not in resolved.parents:
        raise ModelRejected(f"{path}: {where} has external data at {said}, which links outside the model's "
                            "folder: refused")
    try:
        offset, length = int(entries.get("offset", 0) or 0), entries.get("length")
        length = int(length) if length not in (None, "") else None
    except ValueError:
        raise ModelRejected(f"{path}: {where} has an external data offset or length that is not a number") from None
    if offset < 0 or (length is not None and length < 0):
        raise ModelRejected(f"{path}: {where} has a negative external data offset or length")
    if not resolved.is_file():
        raise ModelRejected(f"{path}: {where} keeps its data in {said}, which is missing beside the model")
    available = resolved.stat().st_size
    needed = offset + (length if length is not None else 0)
    if needed > available:
        raise ModelRejected(f"{path}: {where} reads bytes {offset:,}..{needed:,} of {said}, which has "
                            f"{available:,}: truncated")


_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 1, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1, 24: 1}  # onnx.TensorProto.DataType → bytes
_PACKED = {21, 22, 23, 25, 26, 27, 28}  # 4-, 2- and 6-bit types: values share bytes
_NOT_FIXED = {8}  # strings


def _itemsize(data_type: int, exact: bool = False) -> int:
    """Bytes per element of an ONNX data type; 0 when `exact` and the size per element is not a whole byte
    or not fixed; at least 1 otherwise (so unknown future types still get their element count bounded)."""
    if exact and (data_type in _PACKED or data_type in _NOT_FIXED or data_type not in _ITEMSIZE):
        return 0
    return _ITEMSIZE.get(data_type, 1)


def _product(dims: list[int]) -> int:
    total = 1
    for dim in dims:
        total *= max(dim, 0)
    return total


# -- GGUF -------------------------------------------------------------------------------------------------------
GGUF_MAGIC = b"GGUF"
GGUF_HEADER = 24  # magic, uint32 version, uint64 tensor count, uint64 metadata count (versions 2 and 3)
GGUF_VERSIONS = (1, 2, 3)
_MIN_TENSOR_INFO = 8 + 1 + 4 + 8 + 4 + 8  # name length + 1 char, dims count, one dim, type, offset
_MIN_METADATA = 8 + 1 + 4 + 1  # key length + 1 char, value type, a one-byte value


def _magic_header(path: Path, magic: bytes, length: int, kind: str, article: str) -> tuple[int, bytes]:
    """(size, the first `length` bytes) of a binary model that must start with `magic` and hold a whole header."""
    size = _regular_file(path, f"{kind} model")
    with open(path, "rb") as f:
        header = f.read(length)
    if header[:len(magic)] != magic:
        raise ModelRejected(f"{path}: not {article} {kind} file (starts with {quote(header[:len(magic)])}, not {magic!r})")
    if len(header) < length:
        raise ModelRejected(f"{path}: {size} bytes, shorter than {article} {kind} header ({length}): truncated")
    return size, header


def check_gguf(path: str | Path) -> None:
    """Refuse a file that is not GGUF (magic bytes), shorter than its header, of a version this edgeopt does
    not know, or declaring more tensors or metadata entries than its size could hold."""
    path = Path(path)
    size, header = _magic_header(path, GGUF_MAGIC, GGUF_HEADER, "GGUF", "a")
    (version,) = struct.unpack_from("<I", header, 4)
    if version not in GGUF_VERSIONS:
        raise ModelRejected(f"{path}: GGUF version {version}; this edgeopt reads versions "
                            f"{', '.join(map(str, GGUF_VERSIONS))}")
    if version == 1:
        tensors, metadata = struct.unpack_from("<II", header, 8)
    else:
        tensors, metadata = struct.unpack_from("<QQ", header, 8)
    if tensors * _MIN_TENSOR_INFO + metadata * _MIN_METADATA > size:
        raise ModelRejected(f"{path}: declares {tensors:,} tensors and {metadata:,} metadata entries, more than "
                            f"its {size:,} bytes can hold: truncated or corrupt")


# -- RKNN -------------------------------------------------------------------------------------------------------
RKNN_MAGIC = b"RKNN"
RKNN_HEADER = 64  # magic, 4 reserved bytes, version (u64), the model section's length (u64), 40 more bytes


def check_rknn(path: str | Path) -> None:
    """Refuse a file that is not an .rknn (magic bytes) or whose sections do not add up to its size. The layout
    is not documented: it is read off rknn-toolkit2 2.5.0's exports (a 64-byte header, the model section, then
    a u64 length and that many bytes of JSON that end the file). The toolkit's own load_rknn accepts a
    truncated file, so this is the check that catches one."""
    path = Path(path)
    size, header = _magic_header(path, RKNN_MAGIC, RKNN_HEADER, "RKNN", "an")
    (section,) = struct.unpack_from("<Q", header, 16)
    with open(path, "rb") as f:
        f.seek(RKNN_HEADER + section)
        length = f.read(8)
        first = f.read(1)
    described = struct.unpack("<Q", length)[0] if len(length) == 8 else None
    if described is None or RKNN_HEADER + section + 8 + described != size or first != b"{":
        raise ModelRejected(f"{path}: {size:,} bytes, which is not what its header's sections add up to: truncated "
                            "or corrupt")


# -- OpenVINO IR ------------------------------------------------------------------------------------------------
def check_openvino_ir(xml: str | Path) -> None:
    """Refuse an IR whose .xml is not well-formed XML, has a DTD or entities (XML bombs, external entities),
    is not an IR (<net>), or whose weights (.bin beside it) are missing or shorter than the .xml says."""
    from xml.parsers import expat

    xml = Path(xml)
    size = _regular_file(xml, "OpenVINO IR")
    if size > MAX_XML_BYTES:
        raise ModelRejected(f"{xml}: {size:,} bytes of XML: not an OpenVINO IR")
    weights = xml.with_suffix(".bin")
    state = {"root": None, "end": 0}

    def refuse(*_):
        raise ModelRejected(f"{xml}: declares a DTD or entities: refused (an IR has none)")

    def start(name, attributes):
        if state["root"] is None:
            state["root"] = name
        if name == "data" and "offset" in attributes and "size" in attributes:
            try:
                end = int(attributes["offset"]) + int(attributes["size"])
            except ValueError:
                raise ModelRejected(f"{xml}: a <data> element with offset {quote(attributes['offset'])} and size "
                                    f"{quote(attributes['size'])}: not numbers") from None
            state["end"] = max(state["end"], end)

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    try:
        with open(xml, "rb") as f:
            parser.ParseFile(f)
    except expat.ExpatError as exc:
        raise ModelRejected(f"{xml}: not well-formed XML (line {exc.lineno}: "
                            f"{expat.ErrorString(exc.code)}): truncated or corrupt") from None
    if state["root"] != "net":
        raise ModelRejected(f"{xml}: not an OpenVINO IR (the root element is {quote(state['root'])}, not <net>)")
    if not weights.is_file():
        raise ModelRejected(f"{xml}: its weights {weights.name} are missing beside it")
    available = weights.stat().st_size
    if state["end"] > available:
        raise ModelRejected(f"{xml}: reads weights up to byte {state['end']:,} of {weights.name}, which has "
                            f"{available:,}: truncated")


def _regular_file(path: Path, what: str) -> int:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelRejected(f"{path}: no such {what}") from None
    except (OSError, ValueError) as exc:
        raise ModelRejected(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    import stat

    if stat.S_ISDIR(info.st_mode):
        raise ModelRejected(f"{path}: is a folder; expected a {what} file")
    if not stat.S_ISREG(info.st_mode):
        raise ModelRejected(f"{path}: not a regular file (a device or a pipe); expected a {what} file")
    return info.st_size
