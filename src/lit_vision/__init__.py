"""lit_vision: configurable, reproducible vision (and small tabular) experiments on Lightning + Hydra."""

from lit_vision.config.resolvers import register_resolvers
from lit_vision.config.schema import register_configs

__version__ = "0.1.0"

register_resolvers()
register_configs()
