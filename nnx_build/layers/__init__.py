"""The built-in catalogue: importing this package registers every entry."""

from . import activations as activations
from . import attention as attention
from . import bridge as bridge
from . import graph as graph
from . import linear as linear
from . import lora as lora
from . import masks as masks
from . import normalization as normalization
from . import pooling as pooling
from . import recurrent as recurrent
from . import stochastic as stochastic
from . import tensor as tensor
