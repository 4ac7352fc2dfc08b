"""Datasets held as uint8 tensors, CIFAR-10 loading, and seeded device-side minibatches with augmentation."""

from ednas_core.data.augment import augment_batch
from ednas_core.data.cifar10 import load_cifar10
from ednas_core.data.dataset import DataError, ImageDataset, split_indices
from ednas_core.data.loader import DeviceLoader

__all__ = ["DataError", "DeviceLoader", "ImageDataset", "augment_batch", "load_cifar10", "split_indices"]
