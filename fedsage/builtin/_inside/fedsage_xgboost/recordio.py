"""SageMaker's RecordIO-protobuf format, with the standard library and numpy.

A file (or request body) is a sequence of frames: the magic number ``0xCED7230A`` and
the payload length as little-endian ``uint32`` (the upper three bits of the length are
MXNet's continuation flag, always 0 in SageMaker's files), the payload, then zero
padding to a multiple of four bytes.  Each payload is one ``aialgs.data.Record``
protocol-buffers message (``record.proto`` in the SageMaker Python SDK)::

    Record        { map<string, Value> features = 1; map<string, Value> label = 2; ... }
    Value         { oneof { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                            Int32Tensor int32_tensor = 7; Bytes bytes = 9; } }
    *Tensor       { repeated values = 1 [packed]; repeated uint64 keys = 2 [packed];
                    repeated uint64 shape = 3 [packed]; }

A tensor with ``keys`` is sparse: ``keys`` are the column indices of ``values`` and
``shape[0]`` the number of columns.  The protocol-buffers wire format is decoded here
directly (varints, length-delimited fields, fixed32/64), packed or not, so nothing
beyond numpy and scipy is needed.  The algorithm reads the feature tensor named
``values`` and the label tensor named ``values``, as SageMaker's XGBoost does.
"""

import struct

import numpy as np

MAGIC = 0xCED7230A
_LENGTH_MASK = (1 << 29) - 1
_HEADER = struct.Struct("<II")
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_TENSOR_FIELDS = {2: "<f4", 3: "<f8", 7: "int32"}
_NATIVE = {2: np.float32, 3: np.float64, 7: np.int32}


class RecordIOError(ValueError):
    """The bytes are not SageMaker RecordIO-protobuf."""


# ----------------------------------------------------------------- framing
def iter_frames(buf):
    """Yield the payload of every RecordIO frame in ``buf`` (bytes-like)."""
    view = memoryview(buf)
    pos, end = 0, len(view)
    while pos < end:
        if end - pos < 8:
            raise RecordIOError("truncated RecordIO header at byte %d" % pos)
        magic, length = _HEADER.unpack_from(view, pos)
        if magic != MAGIC:
            raise RecordIOError(
                "invalid RecordIO magic number 0x%08X at byte %d (expected 0x%08X)"
                % (magic, pos, MAGIC)
            )
        length &= _LENGTH_MASK
        start = pos + 8
        stop = start + length
        if stop > end:
            raise RecordIOError(
                "truncated RecordIO record at byte %d: %d bytes announced, %d left"
                % (pos, length, end - start)
            )
        yield view[start:stop]
        pos = stop + (-length % 4)


def frame(payload):
    """One RecordIO frame around ``payload`` (bytes)."""
    return _HEADER.pack(MAGIC, len(payload)) + bytes(payload) + b"\0" * (-len(payload) % 4)


# ----------------------------------------------------------------- protobuf wire format
def _varint(view, pos):
    result = shift = 0
    while True:
        if pos >= len(view):
            raise RecordIOError("truncated varint in a Record")
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise RecordIOError("varint longer than 10 bytes in a Record")


def _fields(view):
    """Yield ``(field_number, wire_type, value)``; value is an int or a memoryview."""
    pos, end = 0, len(view)
    while pos < end:
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(view, pos)
        elif wire == _LENGTH:
            size, pos = _varint(view, pos)
            if pos + size > end:
                raise RecordIOError("truncated field %d in a Record" % number)
            value = view[pos : pos + size]
            pos += size
        elif wire == _FIXED32:
            value = view[pos : pos + 4]
            pos += 4
        elif wire == _FIXED64:
            value = view[pos : pos + 8]
            pos += 8
        else:
            raise RecordIOError("unsupported protobuf wire type %d in a Record" % wire)
        yield number, wire, value


def _varints(view):
    out, pos = [], 0
    while pos < len(view):
        value, pos = _varint(view, pos)
        out.append(value)
    return out


def _to_int32(values):
    return [v - (1 << 64) if v >= 1 << 63 else v for v in values]


def decode_tensor(view, kind):
    """Decode a ``*Tensor`` message: ``(values, keys or None, shape)``."""
    dtype = _TENSOR_FIELDS[kind]
    chunks, keys, shape = [], [], []
    for number, wire, value in _fields(view):
        if number == 1:
            if dtype == "int32":
                ints = _varints(value) if wire == _LENGTH else [value]
                chunks.append(np.array(_to_int32(ints), dtype=np.int32))
            else:
                chunks.append(np.frombuffer(bytes(value), dtype=dtype))
        elif number == 2:
            keys.extend(_varints(value) if wire == _LENGTH else [value])
        elif number == 3:
            shape.extend(_varints(value) if wire == _LENGTH else [value])
    native = _NATIVE[kind]
    values = np.concatenate(chunks).astype(native) if chunks else np.zeros(0, native)
    return values, (np.array(keys, dtype=np.uint64) if keys else None), shape


def _decode_value(view):
    for number, _wire, value in _fields(view):
        if number in _TENSOR_FIELDS:
            return decode_tensor(value, number)
        if number == 9:
            raise RecordIOError("Bytes values are not numeric data")
    return np.zeros(0, np.float32), None, []


def _decode_map(view, into):
    key, value = "", None
    for number, _wire, item in _fields(view):
        if number == 1:
            key = bytes(item).decode("utf-8")
        elif number == 2:
            value = item
    into[key] = _decode_value(value) if value is not None else (np.zeros(0), None, [])


def decode_record(payload):
    """One ``Record``: ``(features, label)``, dicts of name -> ``(values, keys, shape)``."""
    features, label = {}, {}
    for number, _wire, value in _fields(memoryview(payload)):
        if number == 1:
            _decode_map(value, features)
        elif number == 2:
            _decode_map(value, label)
    return features, label


# ----------------------------------------------------------------- matrices
def read_matrix(buffers):
    """Features and labels of every record in ``buffers`` (an iterable of bytes-likes).

    Returns
    -------
    (features, labels) or None
        ``features`` a 2-D numpy array (dense tensors) or a ``scipy.sparse.csr_matrix``
        (sparse tensors), ``labels`` a 1-D array (empty when the records carry none);
        ``None`` when there is no record at all.

    Raises
    ------
    RecordIOError
        When the bytes are not RecordIO-protobuf, or records mix dense and sparse
        tensors or differ in width.
    """
    rows, labels = [], []
    sparse = None
    for buf in buffers:
        for payload in iter_frames(buf):
            features, label = decode_record(payload)
            if "values" not in features:
                raise RecordIOError(
                    "a record has no feature tensor named 'values' (features: %s)"
                    % (", ".join(sorted(features)) or "none")
                )
            values, keys, shape = features["values"]
            is_sparse = keys is not None or (bool(shape) and values.size == 0)
            if sparse is None:
                sparse = is_sparse
            elif sparse != is_sparse:
                raise RecordIOError("records mix dense and sparse feature tensors")
            rows.append((values, keys, shape))
            if "values" in label:
                labels.append(label["values"][0])
    if not rows:
        return None
    label_array = np.concatenate(labels) if labels else np.zeros(0, np.float32)
    if not sparse:
        widths = set(len(values) for values, _k, _s in rows)
        if len(widths) > 1:
            raise RecordIOError(
                "dense records differ in width (%s values)" % ", ".join(map(str, sorted(widths)))
            )
        return np.vstack([values for values, _k, _s in rows]), label_array
    return _csr(rows), label_array


def _csr(rows):
    from scipy.sparse import csr_matrix

    width = 0
    indptr = [0]
    for values, keys, shape in rows:
        count = 0 if keys is None else len(keys)
        if keys is not None and len(keys) != len(values):
            raise RecordIOError(
                "a sparse record has %d keys for %d values" % (len(keys), len(values))
            )
        indptr.append(indptr[-1] + count)
        if shape:
            width = max(width, int(shape[0]))
        elif count:
            width = max(width, int(keys.max()) + 1)
    data = [values for values, keys, _s in rows if keys is not None]
    indices = [keys.astype(np.int64) for _v, keys, _s in rows if keys is not None]
    dtype = data[0].dtype if data else np.float32
    matrix = csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, dtype),
            np.concatenate(indices) if indices else np.zeros(0, np.int64),
            np.array(indptr, dtype=np.int64),
        ),
        shape=(len(rows), width),
    )
    return matrix


# ----------------------------------------------------------------- writing
def _encode_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_field(number, payload):
    return _encode_varint((number << 3) | _LENGTH) + _encode_varint(len(payload)) + payload


def encode_label_record(label):
    """A ``Record`` whose ``label`` map holds float32 tensors (``{name: [floats]}``)."""
    out = b""
    for name, values in label.items():
        packed = np.asarray(values, dtype="<f4").tobytes()
        tensor = _length_field(1, packed)
        value = _length_field(2, tensor)
        entry = _length_field(1, name.encode("utf-8")) + _length_field(2, value)
        out += _length_field(2, entry)
    return out
