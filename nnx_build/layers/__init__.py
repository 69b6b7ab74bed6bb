"""The built-in catalogue: importing this package registers every entry."""

from . import activations as activations
from . import attention as attention
from . import bridge as bridge
from . import graph as graph
from . import masks as masks
from . import nn as nn
from . import pooling as pooling
from . import recurrent as recurrent
from . import tensor as tensor
