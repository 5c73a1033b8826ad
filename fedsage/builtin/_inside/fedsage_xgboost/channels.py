"""Channel validation and content types of SageMaker's XGBoost algorithm mode.

``train`` is required, ``validation`` optional (``code`` is accepted as the image
accepts it); a channel without ``ContentType`` is ``text/libsvm``; and the triple
(ContentType, TrainingInputMode, S3DistributionType) must be one the image supports.
Messages are the image's.  Deliberate differences: a missing ``train`` channel or a
channel entry without ``TrainingInputMode``/``S3DistributionType`` is a ``UserError``
naming the problem (the image fails with a bare ``KeyError``), and ``Pipe`` input is
refused because fedsage always delivers channels as files.
"""

from .errors import UserError

CSV = "csv"
LIBSVM = "libsvm"
PARQUET = "parquet"
RECORDIO_PROTOBUF = "recordio-protobuf"

VALID_CONTENT_TYPES = [
    CSV,
    LIBSVM,
    PARQUET,
    RECORDIO_PROTOBUF,
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-parquet",
    "application/x-recordio-protobuf",
]
VALID_PIPED_CONTENT_TYPES = [
    CSV,
    PARQUET,
    RECORDIO_PROTOBUF,
    "text/csv",
    "application/x-parquet",
    "application/x-recordio-protobuf",
]
DEFAULT_CONTENT_TYPE = "text/libsvm"
FILE_MODE, PIPE_MODE = "File", "Pipe"
SHARDED, REPLICATED = "ShardedByS3Key", "FullyReplicated"
_KEYS = ("ContentType", "TrainingInputMode", "S3DistributionType")


def _supported(name):
    if name == "code":
        return {("text/python", FILE_MODE, REPLICATED)}
    triples = set()
    for content_type in VALID_CONTENT_TYPES:
        triples.add((content_type, FILE_MODE, SHARDED))
        triples.add((content_type, FILE_MODE, REPLICATED))
    for content_type in VALID_PIPED_CONTENT_TYPES:
        triples.add((content_type, PIPE_MODE, SHARDED))
        triples.add((content_type, PIPE_MODE, REPLICATED))
    return triples


CHANNELS = (("train", True), ("validation", False), ("code", False))


def validate(data_config):
    """Check ``inputdataconfig.json`` content as the image does; return it completed.

    Parameters
    ----------
    data_config : dict
        Channel name -> its configuration.

    Returns
    -------
    dict
        The same channels, each with a ``ContentType`` (``text/libsvm`` when absent).

    Raises
    ------
    UserError
        For a missing ``train`` channel, an unknown channel, or an unsupported triple.
    """
    for name, required in CHANNELS:
        if required and name not in data_config:
            raise UserError(
                "Missing required channel: {} (algorithm mode reads its training data from "
                "the 'train' channel; channels given: {})".format(
                    name, ", ".join(sorted(data_config)) or "none"
                )
            )
    known = dict(CHANNELS)
    validated = {}
    for name, value in data_config.items():
        if name not in known:
            raise UserError(f"Extraneous channel found: {name}")
        value = dict(value)
        if "ContentType" not in value:
            value["ContentType"] = DEFAULT_CONTENT_TYPE
        missing = [key for key in _KEYS if key not in value]
        if missing:
            raise UserError(
                "Channel configuration for '{}' channel is not supported: {} (it has no {})".format(
                    name, value, " and no ".join(missing)
                )
            )
        triple = tuple(value[key] for key in _KEYS)
        if triple not in _supported(name):
            raise UserError(
                f"Channel configuration for '{name}' channel is not supported: {value}"
            )
        if value["TrainingInputMode"] == PIPE_MODE:
            raise UserError(
                f"Channel '{name}' asks for Pipe mode; fedsage delivers every channel as files, so "
                "use TrainingInputMode File (input_mode='File')"
            )
        validated[name] = value
    return validated


def parse_header(value):
    """``'text/csv; label_size=1'`` -> ``('text/csv', {'label_size': '1'})`` (as ``cgi``)."""
    parts = value.split(";")
    key = parts[0].strip()
    params = {}
    for part in parts[1:]:
        if "=" in part:
            name, _, val = part.partition("=")
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            params[name.strip().lower()] = val
    return key, params


def invalid_content_type_message(content_type):
    return "{} is not an accepted ContentType: {}.".format(
        content_type, ", ".join(VALID_CONTENT_TYPES)
    )


def get_content_type(value):
    """The data format of a content type: ``csv``, ``libsvm``, ``parquet``, ``recordio-protobuf``.

    ``None`` is libsvm.  Parameters are ignored, except that CSV's ``label_size`` must
    be 1.

    Raises
    ------
    UserError
        With the image's message for anything else.
    """
    if value is None:
        return LIBSVM
    content_type, params = parse_header(value.lower())
    if content_type in (CSV, "text/csv"):
        if params.get("label_size", "1") != "1":
            raise UserError(
                f"{value} is not an accepted csv ContentType. "
                "Optional parameter label_size must be equal to 1"
            )
        return CSV
    if content_type in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if content_type in (PARQUET, "application/x-parquet"):
        return PARQUET
    if content_type in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise UserError(invalid_content_type_message(value))
