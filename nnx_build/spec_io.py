"""``load_spec`` and ``dump_spec``: text or file <-> :class:`Spec`."""

from __future__ import annotations

import os
from typing import Any

import yaml

from .errors import Location, SpecError, SpecErrors
from .loader import Document, Limits, parse_document, read_source
from .schemas.spec import Spec
from .validation import locator, validate_document

__all__ = ["dump_spec", "load_spec", "spec_locator"]


def load_spec(source: str | os.PathLike[str] | Spec, *, limits: Limits = Limits()) -> Spec:
    """Loads and validates a spec from a path, or from YAML / JSON text.

    Args:
      source: a path to ``.yaml`` / ``.yml`` / ``.json``, spec text, or a Spec.
      limits: bounds on size, nesting and node count.

    Returns:
      the validated spec; its source positions are kept for later errors.

    Raises:
      SpecErrors: every problem found, each with ``FILE:LINE:COL`` and a code.

    Example:
      >>> spec = load_spec("format: 1\\nname: tiny\\ninputs: {x: [batch, 2]}\\nlayers:\\n  - relu\\n")
      >>> spec.name
      'tiny'
    """
    if isinstance(source, Spec):
        return source
    text, file = read_source(source)
    doc = parse_document(text, file, limits)
    spec = validate_document(doc, more=lambda repaired: _compile_errors(repaired, doc))
    spec._document = doc
    return spec


def _compile_errors(spec: Spec, doc: Document) -> list[SpecError]:
    """The compiler's problems in ``spec`` (the valid rest of a broken document)."""
    from .builder.compiler import compile_spec

    try:
        compile_spec(spec, locator(doc))
    except SpecErrors as e:
        return list(e.errors)
    return []


def spec_locator(spec: Spec) -> Any:
    """A function mapping a spec path to its source location."""
    doc: Document | None = spec._document
    if doc is None:
        return lambda path: Location("<spec>")
    return locator(doc)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dump_spec(spec: Spec) -> str:
    """The spec as normalised YAML: ``load_spec(dump_spec(s)) == s``."""
    data = _plain(spec.model_dump(by_alias=True, exclude_defaults=True, mode="json"))
    data = {"format": spec.format, **data}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
