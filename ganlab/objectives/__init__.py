"""Objectives declare training phases and compute each phase's loss; the loop runs them."""

from ganlab.objectives.base import Objective, Phase

__all__ = ["Objective", "Phase"]
