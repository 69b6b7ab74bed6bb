"""The built-in catalogue: importing this package registers every entry."""

from . import activations as activations
from . import graph as graph
from . import nn as nn
from . import tensor as tensor
