"""Whether this process has GPUs: the one place that asks TensorFlow.

    gpus.count()     # the GPUs TensorFlow sees here (CUDA_VISIBLE_DEVICES)
"""
import functools


@functools.lru_cache(maxsize=None)
def count():
  """How many GPUs TensorFlow sees in this process (asked once)."""
  import tensorflow as tf   # only where a program asks
  return len(tf.config.list_physical_devices('GPU'))
