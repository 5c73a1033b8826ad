# ruff: noqa: UP004, UP031  (Python 3.7 syntax on purpose)
"""Socket-free checks of the worker's handler half, in Python 3.7 syntax.

pytest runs them in fedsage's interpreter (test_worker_handlers.py) and, as a script,
under Python 3.7 with numpy only:  ``python worker_checks.py WORKER_PATH`` (the folder
the supervisor runs, which holds the ``fedsage_worker`` package).
"""

import importlib
import io
import json
import sys
import types

import numpy as np

W = None  # the worker package (with its submodules imported), set by load()


def load(folder=None):
    """Import the worker package from ``folder``, or fedsage's own copy when None."""
    global W
    if folder is None:
        prefix = "fedsage.serving._worker.fedsage_worker"
    else:
        sys.path.insert(0, folder)
        prefix = "fedsage_worker"
    for name in ("codecs", "protocol", "response", "service"):
        importlib.import_module(prefix + "." + name)
    W = importlib.import_module(prefix)
    return W


class SumModel(object):
    n_features_in_ = 2

    def predict(self, X):
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError("Expected 2D array with %d features" % self.n_features_in_)
        return X.sum(axis=1)


class OneFeatureModel(SumModel):
    n_features_in_ = 1


def service(model=None, default_accept=None, **handlers):
    module = types.ModuleType("user_script")
    module.model_fn = lambda model_dir: model or SumModel()
    for name, fn in handlers.items():
        setattr(module, name, fn)
    return W.service.Service("/nonexistent", module, default_accept)


def body_of(response):
    return response.get_data()


def check_json_both_ways():
    r = service().invoke(b"[[1, 2], [3, 4.5]]", "application/json", "application/json")
    assert r.status_code == 200, body_of(r)
    assert r.content_type == "application/json"
    assert body_of(r) == b"[3.0, 7.5]", body_of(r)


def check_csv_both_ways():
    r = service().invoke(b"1,2\n3,4.5\n", "text/csv", "text/csv")
    assert r.status_code == 200 and r.content_type == "text/csv; charset=utf-8"
    assert body_of(r) == b"3.0\n7.5\n", body_of(r)


def check_npy_both_ways():
    stream = io.BytesIO()
    np.save(stream, np.array([[1.0, 2.0], [3.0, 4.0]]))
    r = service().invoke(stream.getvalue(), "application/x-npy", "application/x-npy")
    assert r.status_code == 200 and r.content_type == "application/x-npy"
    out = np.load(io.BytesIO(body_of(r)))
    assert out.tolist() == [3.0, 7.0]


def check_one_row_works():
    for body, kind in ((b"1,2", "text/csv"), (b"[1, 2]", "application/json")):
        r = service().invoke(body, kind, "application/json")
        assert r.status_code == 200 and body_of(r) == b"[3.0]", body_of(r)


def check_single_column_stays_rows():
    r = service(OneFeatureModel()).invoke(b"1\n2\n3\n", "text/csv", "application/json")
    assert body_of(r) == b"[1.0, 2.0, 3.0]", body_of(r)


def check_default_accept():
    r = service(default_accept="text/csv").invoke(b"[[1, 2]]", "application/json", None)
    assert r.content_type.startswith("text/csv") and body_of(r) == b"3.0\n"
    r = service(default_accept="text/csv").invoke(b"[[1, 2]]", "application/json", "*/*")
    assert r.content_type.startswith("text/csv")
    r = service().invoke(b"[[1, 2]]", None, None)
    assert r.content_type == "application/json"


def check_content_type_parameters_ignored():
    r = service().invoke(b"1,2", "text/csv; charset=utf-8", "application/json")
    assert r.status_code == 200


def check_error_codes():
    s = service()
    cases = [
        ((b"1,2", "text/plain", "application/json"), 415),
        ((b"1,2", "text/csv", "application/xml"), 406),
        ((b"\xff\xfe", "text/csv", "application/json"), 400),
        ((b"a,b\n1,2", "text/csv", "application/json"), 400),
        ((b"[[1, 2", "application/json", "application/json"), 400),
        ((b"not npy", "application/x-npy", "application/json"), 400),
        ((b"1,2,3", "text/csv", "application/json"), 400),  # the model refuses 3 features
    ]
    for args, status in cases:
        r = s.invoke(*args)
        assert r.status_code == status, (args, r.status_code, body_of(r))
        reason = json.loads(body_of(r).decode("utf-8"))
        assert set(reason) == {"error", "message"}, reason


def check_npy_refuses_pickles_and_bombs():
    stream = io.BytesIO()
    np.save(stream, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert service().invoke(stream.getvalue(), "application/x-npy", None).status_code == 400
    stream = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**10, 2)}
    np.lib.format.write_array_header_1_0(stream, header)
    bomb = stream.getvalue() + b"\0" * 16
    assert service().invoke(bomb, "application/x-npy", None).status_code == 400


def check_model_fault_is_500_without_traceback():
    def predict_fn(data, model):
        raise RuntimeError("boom\nsecond line")

    r = service(predict_fn=predict_fn).invoke(b"1,2", "text/csv", "application/json")
    assert r.status_code == 500
    text = body_of(r).decode("utf-8")
    assert "\n" not in text and "Traceback" not in text and "boom" in text, text


def check_missing_model_fn():
    s = W.service.Service("/nonexistent", None)
    r = s.ping()
    assert r.status_code == 500 and b"model_fn" in body_of(r)


def check_custom_handlers():
    def input_fn(body, content_type):
        assert isinstance(body, str)  # text types are decoded to str, as in the image
        return np.array([[float(v) for v in body.split("|")]])

    def output_fn(prediction, accept):
        return "sum=%s" % prediction[0], "text/plain"

    r = service(input_fn=input_fn, output_fn=output_fn).invoke(b"1|2", "text/csv", "x/y")
    assert r.status_code == 200 and r.content_type == "text/plain" and body_of(r) == b"sum=3.0"


def check_output_fn_shapes():
    for result, kind, data in (
        (b"raw", "text/html; charset=utf-8", b"raw"),
        ("text", "text/html; charset=utf-8", b"text"),
        (W.Response("made", 201, mimetype="a/b"), "a/b", b"made"),
    ):
        r = service(output_fn=lambda p, a, result=result: result).invoke(b"1,2", "text/csv", None)
        assert (r.content_type, body_of(r)) == (kind, data), (r.content_type, body_of(r))


def check_transform_fn():
    def transform_fn(model, body, content_type, accept):
        return json.dumps({"n": len(body), "ct": content_type}), "application/json"

    r = service(transform_fn=transform_fn).invoke(b"abc", "weird/type", "other/type")
    assert r.status_code == 200 and json.loads(body_of(r).decode()) == {"n": 3, "ct": "weird/type"}


def check_transform_fn_with_input_fn_is_refused():
    try:
        service(transform_fn=lambda *a: "", input_fn=lambda b, c: b)
    except W.service.UserError as exc:
        assert "transform_fn" in str(exc)
    else:
        raise AssertionError("transform_fn together with input_fn must be refused")


def check_execution_parameters():
    assert service().execution_parameters().status_code == 404
    s = service(execution_parameters_fn=lambda: {"MaxPayloadInMB": 6})
    r = s.execution_parameters()
    assert r.status_code == 200 and json.loads(body_of(r).decode()) == {"MaxPayloadInMB": 6}


def check_chunked_parser():
    wire = b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT"
    buf = bytearray(wire)
    chunks = W.protocol.ChunkedBody(100)
    assert chunks.feed(buf) and chunks.body() == b"abcde" and buf == b"NEXT"
    chunks, buf = W.protocol.ChunkedBody(100), bytearray()
    for i in range(len(wire) - 4):  # byte by byte: done only at the last byte of the body
        buf += wire[i : i + 1]
        assert chunks.feed(buf) == (i == len(wire) - 5), i
    assert chunks.body() == b"abcde" and buf == b""
    assert not W.protocol.ChunkedBody(100).feed(bytearray(b"3\r\nab"))


def _refused(status, feed):
    try:
        feed()
    except W.HttpError as exc:
        assert exc.status == status, (exc.status, exc.message)
        return exc.message
    raise AssertionError("accepted, expected %d" % status)


def check_chunked_parser_limits():
    P = W.protocol
    line = P.MAX_LINE
    cases = [
        (400, b"f" * (line + 2)),  # a chunk-size line that never ends
        (400, b"1;" + b"x" * line + b"\r\nA\r\n0\r\n\r\n"),  # one that is too long
        (400, b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"),  # int() would take these
        (400, b"0x5\r\nabcde\r\n0\r\n\r\n"),
        (400, b"-1\r\n"),
        (400, b"\r\n"),
        (400, b"3\r\nabcd\r\n"),  # a chunk longer than announced
        (413, b"40\r\n" + b"a" * 64 + b"\r\n41\r\n"),  # 64 + 65 > 100
        (431, b"0\r\n" + b"X: y\r\n" * (P.MAX_HEAD // 6 + 1)),  # trailers
        (431, b"0\r\nX: " + b"y" * line),
    ]
    for status, wire in cases:
        message = _refused(status, lambda wire=wire: P.ChunkedBody(100).feed(bytearray(wire)))
        if status == 413:
            assert "100" in message, message
    # The limit is on the sum of the chunks: 100 one-byte chunks fit, 101 do not.
    assert P.ChunkedBody(100).feed(bytearray(b"1\r\na\r\n" * 100 + b"0\r\n\r\n"))
    _refused(413, lambda: P.ChunkedBody(100).feed(bytearray(b"1\r\na\r\n" * 101)))


def check_accept_empty_list_elements_are_ignored():
    choose = W.codecs.choose_accept
    assert choose("x/abc, , y/def", "application/json") == "x/abc"
    assert choose(",text/csv", "application/json") == "text/csv"
    assert choose("x/abc, */*", "text/csv") == "text/csv"
    for empty in (None, "", " ", " , "):  # empty as a whole: the default
        assert choose(empty, "text/csv") == "text/csv", repr(empty)
    r = service().invoke(b"1,2", "text/csv", "x/abc, , y/def")
    assert r.status_code == 406, body_of(r)
    assert service().invoke(b"1,2", "text/csv", "x/abc, ,text/csv").status_code == 200


def check_host_names():
    P = W.protocol
    assert P.host_name(b"LocalHost:8080") == b"localhost"
    assert P.host_name(b"[::1]:8080") == b"::1" and P.host_name(b"[::1]") == b"::1"
    assert P.host_name(b"127.0.0.1") == b"127.0.0.1" and P.host_name(b"a.b:") == b"a.b"
    for bad in (b"", b":80", b"localhost:http", b"[::1", b"::1", b"[::1]x", b"a:1:2"):
        assert P.host_name(bad) is None, bad
    loopback = P.allowed_hosts(None)
    assert loopback == {b"localhost", b"localhost.", b"127.0.0.1", b"::1"}
    assert P.allowed_hosts("") == loopback and P.allowed_hosts("*") is None
    assert P.allowed_hosts(" [::2], My.Host ") == loopback | {b"::2", b"my.host"}


def check_csv_fast_path_matches_csv_reader():
    import csv

    texts = [
        "",
        "\n",
        "1,2",
        "1,2\n",
        "1,2\n3,4",
        "1,2\n\n3,4\n",
        "a,,b",
        ",",
        "\n\n",
        " 1 , 2 ",
        "1;2",
        "1\t2,3",
        '"1",2',
        "1,2\r\n3,4",
        "\u00e9,\u00fc",
        "x" * 1000,
    ]
    for text in texts:
        expected = list(
            csv.reader(
                io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True
            )
        )
        assert W.codecs.csv_rows(text) == expected, text[:40]
    try:
        W.codecs.csv_rows("1" * 200000)
    except Exception as exc:  # csv's field size limit still applies to long fields
        assert "field larger than field limit" in str(exc), exc
    else:
        raise AssertionError("a field above csv's limit was accepted")


def check_json_encoder_layout():
    for value in (
        np.array([1.0, 2.5]),
        np.array([[1, 2]], dtype=np.int64),
        np.array(3.0, dtype=np.float32),
        [np.float64(0.1), 2],
        {"a": np.arange(2)},
    ):
        assert W.codecs.array_to_json(value) == json.dumps(value, default=lambda x: x.tolist())


def _outcome(decode, text):
    """What a decoder gives: the array's dtype, shape and bytes, or the error it raises."""
    try:
        array = decode(text)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    data = repr(array.tolist()) if array.dtype.hasobject else array.tobytes()
    return ("array", array.dtype.str, array.shape, data)


def _image_csv(text):
    """The scikit-learn image's CSV decoder, as written there (csv.reader, float64)."""
    import csv

    rows = list(
        csv.reader(io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True)
    )
    return np.array(rows).squeeze().astype(None)


_ODD_FIELDS = [
    "", " ", "a", "x1", "nan", "NaN", "-inf", "Infinity", "1e", "e1", "--1", "+-1", "0x1",
    "1.2.3", "1e500", "-1e-400", "1_0", "1__0", " 4", "4\t", "\x0b5", "\u00a05", "\u0661",
    '"1"', "'1'", "9007199254740993", "0.30000000000000004", "-0", "+.5", "5.", ".e1",
]


def _number(rng):
    kind = rng.randrange(6)
    value = rng.uniform(-1000, 1000)
    if kind == 0:
        return repr(value)
    if kind == 1:
        return "%.1f" % value
    if kind == 2:
        return "%d" % value
    if kind == 3:
        return "%g" % (value * 10 ** rng.randrange(-30, 30))
    if kind == 4:
        return "%.3e" % value
    return rng.choice(["0", "1", "-1", "5.1", ".5", "5.", "+3", "-0.0", "007", "1E-3"])


def _csv_text(rng):
    width, rows = rng.randrange(1, 7), rng.randrange(1, 70)
    lines = [[_number(rng) for _ in range(width)] for _ in range(rows)]
    for _ in range(rng.choice([0, 0, 0, 1, 2])):  # a few odd fields
        row = rng.choice(lines)
        row[rng.randrange(len(row))] = rng.choice(_ODD_FIELDS)
    roll = rng.random()
    if roll < 0.05:
        rng.choice(lines).append("1")  # ragged rows
    elif roll < 0.1 and width > 1:
        rng.choice(lines).pop()
    elif roll < 0.12 and width > 1 and rows > 2:  # ragged, as many fields in all
        lines[rng.randrange(1, rows)].append("1")
        lines[rng.randrange(1, rows)].pop()
    elif roll < 0.15:
        lines.insert(0, ["f%d" % i for i in range(width)])  # a header row
    elif roll < 0.2:
        lines.insert(rng.randrange(len(lines) + 1), [])  # an empty line
    text = rng.choice(["\n"] * 9 + ["\r\n"]).join(",".join(row) for row in lines)
    text += rng.choice(["", "", "\n", "\n", "\n\n", "\r\n"])
    if rng.random() < 0.03:
        text = "\ufeff" + text  # a BOM
    return text


def check_csv_decoder_matches_the_image():
    import random

    rng = random.Random(20261126)
    fast = 0
    for _ in range(3000):
        text = _csv_text(rng)
        assert _outcome(W.codecs.csv_to_numpy, text) == _outcome(_image_csv, text), repr(text)
        fast += len(text) >= W.codecs._FAST_MIN and W.codecs._numeric_csv(text) is not None
    assert fast > 600, fast  # many generated bodies took the fast path


def check_csv_one_row_matches_the_image():
    """One-line bodies (the one-row request's short road) decode as the image's do."""
    import random

    rng = random.Random(20261202)
    short = 0
    for _ in range(3000):
        fields = [_number(rng) for _ in range(rng.randrange(1, 7))]
        if rng.random() < 0.3:
            fields[rng.randrange(len(fields))] = rng.choice(_ODD_FIELDS)
        text = ",".join(fields) + rng.choice(["", "", "\n", "\n\n", "\r\n"])
        if rng.random() < 0.03:
            text = "\ufeff" + text
        assert _outcome(W.codecs.csv_to_numpy, text) == _outcome(_image_csv, text), repr(text)
        short += W.codecs._one_row(text) is not None
    assert short > 1000, short  # most took the short road


def check_csv_decoder_long_fields():
    limit = W.codecs._CSV_FIELD_LIMIT
    for text in (
        "1," + "0" * (limit - 2) + "1\n" + "2,3\n" * 10,  # the longest field the fast path takes
        "1," + "0" * limit + "1\n" + "2,3\n" * 10,  # above csv's limit: refused as before
        ("1.5,2.5\n" * 20000),
    ):
        assert _outcome(W.codecs.csv_to_numpy, text) == _outcome(_image_csv, text), len(text)


def _json_row(rng, width):
    row = []
    for _ in range(width):
        roll = rng.random()
        if roll < 0.995:
            row.append(rng.choice([rng.uniform(-1e3, 1e3), rng.randrange(-100, 100)]))
        else:
            row.append(rng.choice([True, None, "1.5", [1], [], {"a": 1}, 2**70, -(2**64)]))
    return row


def _json_text(rng):
    width, rows = rng.randrange(0, 6), rng.randrange(0, 70)
    value = [_json_row(rng, width) if rng.random() < 0.97 else 1.5 for _ in range(rows)]
    row = rng.choice(value) if value else None
    if isinstance(row, list) and rng.random() < 0.05:
        row.append(1)  # ragged
    if rng.random() < 0.05:
        value = [value, value]  # 3-D
    if rng.random() < 0.05:
        value = [x for row in value if isinstance(row, list) for x in row]  # 1-D
    text = json.dumps(value, separators=rng.choice([(", ", ": "), (",", ":")]))
    if rng.random() < 0.05:
        text = text.replace("1", "NaN", 1)
    return text


def check_json_decoder_matches_the_image():
    import random
    import warnings

    rng = random.Random(20261127)
    fast = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 1.19 warns about ragged object arrays
        for _ in range(2000):
            text = _json_text(rng)
            expected = _outcome(lambda t: np.array(json.loads(t)), text)
            assert _outcome(W.codecs.json_to_numpy, text) == expected, text
            fast += expected[0] == "array" and len(expected[2]) == 2 and len(text) >= 256
    assert fast > 250, fast
    if not W.codecs._FLATTEN_JSON:  # numpy 2: the flat road is checked all the same
        W.codecs._FLATTEN_JSON = True
        try:
            rng = random.Random(20261127)
            for _ in range(500):
                text = _json_text(rng)
                expected = _outcome(lambda t: np.array(json.loads(t)), text)
                assert _outcome(W.codecs.json_to_numpy, text) == expected, text
        finally:
            W.codecs._FLATTEN_JSON = False


_JSON_EDGES = [
    "[[18446744073709551616, 1.5]]", "[[-9223372036854775809, 2]]", "[9223372036854775807]",
    "[[1e400, 1]]", "[-1e400]", "[4.9e-324, 1e-400]", "[1.7976931348623159e308]",
    "\ufeff[[1, 2]]", "[[NaN, 1]]", "[Infinity]", "[[1, 2],]", "[01]", "[-0, -0.0]",
    '["\\ud800"]', '[{"a": 1, "a": 2}]', " [[1, 2]] \n", "[[1, 2]] x", "[[true, false]]",
    "[[1, null]]", '[["1.5", 2]]', "[[1, 2], [3]]", "[[[1], [2]], [[3], [4]]]", "[]", "[[]]",
    "123456789012345678901234567890", "[0.30000000000000004, 9007199254740993]",
    "[" * 3000 + "]" * 3000, "[1\u00a0]", "[1, 2,\r\n3]", "{}", '"text"', "",
]


def check_json_decoder_edge_literals():
    """Literals where orjson (used when installed) and json.loads differ or refuse."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 1.19 warns about ragged object arrays
        for text in _JSON_EDGES:
            expected = _outcome(lambda t: np.array(json.loads(t)), text)
            assert _outcome(W.codecs.json_to_numpy, text) == expected, text


def check_bad_csv_bodies_answer_as_before():
    """Large bodies with the problems docs/serving.md lists get the answers they always got."""
    good = "\n".join("%d.5,%d.25" % (i, i) for i in range(200))
    bodies = {
        "ragged": good + "\n1,2,3",
        "nan": good + "\nnan,1",
        "quoted": good + '\n"1",2',
        "header": "a,b\n" + good,
        "bom": "\ufeff" + good,
        "crlf": good.replace("\n", "\r\n"),
        "empty line": good.replace("\n", "\n\n", 1),
        "field": good + "\n1,x",
        "ragged, same count": good + "\n1,2,3\n4",
    }
    limit = W.codecs._FAST_MIN
    try:
        fast = dict((k, service().invoke(v.encode(), "text/csv", None)) for k, v in bodies.items())
        W.codecs._FAST_MIN = 1 << 62  # the general path only
        slow = dict((k, service().invoke(v.encode(), "text/csv", None)) for k, v in bodies.items())
    finally:
        W.codecs._FAST_MIN = limit
    for name in bodies:
        got = (fast[name].status_code, body_of(fast[name]))
        assert got == (slow[name].status_code, body_of(slow[name])), (name, got)
    assert fast["crlf"].status_code == 200 and fast["ragged"].status_code == 400, fast


CHECKS = [v for k, v in sorted(globals().items()) if k.startswith("check_")]


if __name__ == "__main__":
    load(sys.argv[1])
    for check in CHECKS:
        check()
        print("ok", check.__name__)
    print("all %d checks passed under Python %s" % (len(CHECKS), sys.version.split()[0]))
