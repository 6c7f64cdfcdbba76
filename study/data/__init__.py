"""Datasets by name: `build_dataset(name, **options)`, `preflight(name, options, n_classes)`.

Each dataset is one module here that registers itself; importing this package imports them all, so
every process that builds datasets by name (spawned workers included) sees every one.
"""

from study.data.base import (
    DATASETS,
    DataError,
    ImageData,
    build_dataset,
    channel_stats,
    fingerprint,
    list_datasets,
    preflight,
    register_dataset,
    stratified_split,
)
from study.registry import import_members

import_members(__name__, __path__)  # every dataset file registers itself

__all__ = ["DATASETS", "DataError", "ImageData", "build_dataset", "channel_stats", "fingerprint", "list_datasets",
           "preflight", "register_dataset", "stratified_split"]
