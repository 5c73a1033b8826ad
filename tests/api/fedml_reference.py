"""fedml-aws 2.0.2's public signatures, read from its wheel's source (never imported).

``scripts/setup.sh dev`` downloads the wheel once into ``.fedsage-ci/fedml-aws/``
(``pip download --no-deps fedml-aws==2.0.2``); nothing of fedml-aws is committed.  The
modules are parsed with :mod:`ast`, so neither fedml-aws nor its dependencies (hdbcli,
boto3, sagemaker 2.x) need to be importable.

Use :func:`public_signatures` for a class of the wheel and :func:`signature_of` for the
fedsage method it is compared with; both give a tuple of :class:`Param`, so ``==`` tells
whether names, order, kinds and defaults agree, and :func:`differences` says how not.
"""

from __future__ import annotations

import ast
import inspect
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["VERSION", "WHEEL_DIR", "Param", "differences", "module_source", "public_signatures",
           "signature_of", "wheel_path"]

VERSION = "2.0.2"
WHEEL_DIR = Path(__file__).resolve().parents[2] / ".fedsage-ci" / "fedml-aws"
_NO_DEFAULT = "<required>"


@dataclass(frozen=True)
class Param:
    """One parameter: its name, kind and default.

    ``default`` is ``repr()`` of the default's literal value (``'All'``, ``None``, ``1``),
    its source text when it is not a literal, and ``'<required>'`` when there is none.
    ``kind`` is one of :class:`inspect.Parameter`'s kind names
    (``POSITIONAL_OR_KEYWORD``, ``KEYWORD_ONLY``, ...).
    """

    name: str
    kind: str
    default: str = _NO_DEFAULT

    @property
    def required(self) -> bool:
        """Whether the parameter has no default."""
        return self.default == _NO_DEFAULT

    def __str__(self) -> str:
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(self.kind, "")
        return prefix + self.name + ("" if self.required else f"={self.default}")


def wheel_path(version: str = VERSION) -> Path:
    """Return the downloaded wheel of fedml-aws ``version``.

    Raises
    ------
    FileNotFoundError
        If it is missing; the message gives the command that downloads it.
    """
    found = sorted(WHEEL_DIR.glob(f"fedml_aws-{version}-*.whl"))
    if not found:
        raise FileNotFoundError(
            f"the fedml-aws {version} wheel is not in {WHEEL_DIR}; run `bash scripts/setup.sh "
            f"dev`, or: .venv/bin/python -m pip download --no-deps fedml-aws=={version} "
            f"-d {WHEEL_DIR}")
    return found[-1]


def module_source(module: str, version: str = VERSION) -> str:
    """Return the source of ``fedml_aws/<module>.py`` from the wheel."""
    with zipfile.ZipFile(wheel_path(version)) as wheel:
        return wheel.read(f"fedml_aws/{module}.py").decode("utf-8")


def _default(node: ast.expr) -> str:
    text = ast.unparse(node)
    try:
        return repr(ast.literal_eval(node))
    except ValueError:
        return text


def _params(function: ast.FunctionDef) -> tuple[Param, ...]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    params = [Param(a.arg, "POSITIONAL_ONLY" if a in args.posonlyargs
                    else "POSITIONAL_OR_KEYWORD", _NO_DEFAULT if d is None else _default(d))
              for a, d in zip(positional, defaults, strict=True)]
    if args.vararg is not None:
        params.append(Param(args.vararg.arg, "VAR_POSITIONAL"))
    params += [Param(a.arg, "KEYWORD_ONLY", _NO_DEFAULT if d is None else _default(d))
               for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg is not None:
        params.append(Param(args.kwarg.arg, "VAR_KEYWORD"))
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                    for d in function.decorator_list)
    return tuple(params if is_static else params[1:])  # without self / cls


def public_signatures(module: str, class_name: str,
                      version: str = VERSION) -> dict[str, tuple[Param, ...]]:
    """Public methods of ``class_name`` in ``fedml_aws/<module>.py``, with their parameters.

    Parameters
    ----------
    module : str
        The module inside the wheel, e.g. ``'dbconnection'`` or ``'dwcsagemaker'``.
    class_name : str
        The class, e.g. ``'DbConnection'`` or ``'DwcSagemaker'``.
    version : str, default='2.0.2'
        The fedml-aws version whose wheel is read.

    Returns
    -------
    dict of str to tuple of Param
        Every method not starting with ``_``, plus ``__init__``, in source order;
        parameters without ``self``.

    Raises
    ------
    FileNotFoundError
        If the wheel is missing.
    LookupError
        If the module has no such class.
    """
    tree = ast.parse(module_source(module, version))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {f.name: _params(f) for f in node.body
                    if isinstance(f, ast.FunctionDef)
                    and (not f.name.startswith("_") or f.name == "__init__")}
    raise LookupError(f"fedml_aws/{module}.py of fedml-aws {version} has no class {class_name}")


def signature_of(function: Callable[..., Any]) -> tuple[Param, ...]:
    """The parameters of a (fedsage) function or unbound method, as :class:`Param`."""
    params = list(inspect.signature(function).parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return tuple(Param(p.name, p.kind.name,
                       _NO_DEFAULT if p.default is inspect.Parameter.empty else repr(p.default))
                 for p in params)


def differences(expected: dict[str, tuple[Param, ...]], cls: type) -> list[str]:
    """Every way ``cls``'s methods differ from ``expected``; empty when they agree.

    Parameters
    ----------
    expected : dict of str to tuple of Param
        From :func:`public_signatures`.
    cls : type
        The fedsage class; it may have more methods than ``expected``.

    Returns
    -------
    list of str
        One line per missing method or differing signature.
    """
    problems = []
    for name, params in expected.items():
        method = getattr(cls, name, None)
        if method is None:
            problems.append(f"{cls.__name__}.{name} is missing; fedml-aws {VERSION} has "
                            f"{name}({', '.join(map(str, params))})")
            continue
        actual = signature_of(method)
        if actual != params:
            problems.append(f"{cls.__name__}.{name}({', '.join(map(str, actual))}) != "
                            f"fedml-aws {VERSION} {name}({', '.join(map(str, params))})")
    return problems
