"""The built-in catalogue: importing this package registers every entry.

Grouped as ``flax.nnx.nn`` groups layers and ``jax.numpy`` groups functions: layers in
:mod:`.linear`, :mod:`.normalization`, :mod:`.stochastic`, :mod:`.attention`,
:mod:`.recurrent`, :mod:`.lora`, :mod:`.bridge`; ops in :mod:`.activations`,
:mod:`.elementwise`, :mod:`.reductions`, :mod:`.shapes`, :mod:`.indexing`,
:mod:`.contractions`, :mod:`.pooling`, :mod:`.masks`, :mod:`.graph`.
"""

from . import activations as activations
from . import attention as attention
from . import bridge as bridge
from . import contractions as contractions
from . import elementwise as elementwise
from . import graph as graph
from . import indexing as indexing
from . import linear as linear
from . import lora as lora
from . import masks as masks
from . import normalization as normalization
from . import pooling as pooling
from . import recurrent as recurrent
from . import reductions as reductions
from . import shapes as shapes
from . import stochastic as stochastic
