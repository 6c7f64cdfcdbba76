"""Training objectives (supervised and label-free pretext tasks) as a registry.

One file with one `@register_objective` class adds an objective (this package imports every file in it),
plus its conf/objective/<name>.yaml; the facts the analysis needs (label use, training-free, chance level,
score dtype) are attributes of the class; `create_objective(name, data, ...)`
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
from study.registry import import_members

import_members(__name__, __path__)  # every objective file registers itself

__all__ = ["Objective", "ObjectiveError", "create_objective", "list_objectives", "register_objective"]
