"""Moved: the registry is :mod:`crossmedia.data.registry`, the preparers live next to their formats.

This module only re-exports them for the users that have not moved yet; it will be deleted.
"""
from __future__ import annotations

from crossmedia.data.cifar10 import prepare_cifar10, read_cifar10_binary
from crossmedia.data.deephash_releases import prepare_deephash_release
from crossmedia.data.karpathy import karpathy_ready, prepare_karpathy_release
from crossmedia.data.registry import (DatasetInfo, DatasetNotPreparedError, UnknownDatasetError, ensure,
                                      list_datasets, prepare, register_dataset)

__all__ = ["DatasetInfo", "UnknownDatasetError", "DatasetNotPreparedError", "register_dataset", "list_datasets",
           "prepare", "ensure", "read_cifar10_binary", "prepare_cifar10", "prepare_deephash_release",
           "prepare_karpathy_release", "karpathy_ready"]
