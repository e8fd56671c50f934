"""The old home of ``mdn.ocean.sensors``, kept so that ``from mdn import sensors`` and
``import mdn.sensors`` work as before."""

from mdn.ocean.sensors import *  # noqa: F403
from mdn.ocean.sensors import __all__  # noqa: F401
