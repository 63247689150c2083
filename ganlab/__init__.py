"""ganlab: a configuration-driven experiment runner for GANs and VAEs."""

__version__ = "0.1.0"
