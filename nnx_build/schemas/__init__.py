"""Pydantic models of the spec; the JSON Schema is generated from them."""

from .spec import BlockSpec as BlockSpec
from .spec import InputSpec as InputSpec
from .spec import MethodSpec as MethodSpec
from .spec import Spec as Spec
from .spec import Step as Step
from .spec import VariableSpec as VariableSpec
