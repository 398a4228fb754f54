"""edgeopt: a declarative model optimization compiler for edge hardware."""

__version__ = "0.1.0"
