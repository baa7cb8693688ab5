"""Generators of small datasets in the exact on-disk formats lit_vision reads, for tests and benchmarks.

Every writer produces the real format (IDX files in ``MNIST/raw``, CIFAR pickled batches, class folders of
PNG/JPEG, index txt files) with learnable, class-dependent content, plus damaged files for error tests.
"""

from tests.fakes.datasets import (
    class_images,
    make_cat_to_name,
    make_cifar10,
    make_cifar100,
    make_fashion_mnist,
    make_image_folder,
    make_index_dataset,
    make_mnist,
    save_image,
    write_exif_rotated_jpeg,
    write_garbage_image,
    write_text_file,
    write_truncated_copy,
)

__all__ = [
    "class_images",
    "make_cat_to_name",
    "make_cifar10",
    "make_cifar100",
    "make_fashion_mnist",
    "make_image_folder",
    "make_index_dataset",
    "make_mnist",
    "save_image",
    "write_exif_rotated_jpeg",
    "write_garbage_image",
    "write_text_file",
    "write_truncated_copy",
]
