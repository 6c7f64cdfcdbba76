"""Training objectives (supervised and label-free pretext tasks) as a registry.

One file with one `@register_objective` class adds an objective; `create_objective(name, data, ...)`
builds it. Every objective owns its batch transform, its head and (if special) its forward pass; loss and
accuracy are plain cross-entropy and top-1 over whatever target shape it produces.
"""

from study.objectives.base import (
    Objective,
    ObjectiveError,
    create_objective,
    list_objectives,
    register_objective,
)
from study.objectives import colorization, contrastive, jigsaw, rotation, supervised, zero_cost  # noqa: F401  (registration side effect)

__all__ = ["Objective", "ObjectiveError", "create_objective", "list_objectives", "register_objective"]
