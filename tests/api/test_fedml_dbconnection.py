"""fedsage's DbConnection has fedml-aws 2.0.2's signatures, read from fedml-aws's own source."""

from __future__ import annotations

from fedsage.data import DbConnection

from .fedml_reference import Param, differences, public_signatures


def test_dbconnection_signatures_match_fedml_aws() -> None:
    reference = public_signatures("dbconnection", "DbConnection")
    methods = [name for name in reference if name != "__init__"]
    # The parser found what fedml-aws's documentation lists: the constructor and 14 methods.
    assert len(methods) == 14 and "__init__" in reference
    assert reference["get_data_with_headers"] == (
        Param("table_name", "POSITIONAL_OR_KEYWORD"),
        Param("size", "POSITIONAL_OR_KEYWORD", "1"))
    problems = differences(reference, DbConnection)
    assert not problems, "\n".join(problems)


def test_reference_reader_reads_other_classes_too() -> None:
    """The helper serves the DwcSagemaker comparison as well (defaults as literal values)."""
    reference = public_signatures("dwcsagemaker", "DwcSagemaker")
    train = {p.name: p.default for p in reference["train_sklearn_model"]}
    assert train["logs"] == "'All'" and train["wait"] == "False"
    assert train["train_data"] == "None" and "instance_count" in train
    assert not any(name.startswith("_") for name in reference if name != "__init__")
