"""Summary ops whose TensorBoard tag is exactly the name given.

tf.compat.v1.summary.scalar uses the op's name as the tag: inside a name
scope it gets the scope twice ('tower_0/tower_0/cross_entropy') and, when an
op of that name exists, a suffix ('cross_entropy_1'). The raw summary ops
take the tag as an argument, so the tags read like the tutorial's names.
"""
import tensorflow.compat.v1 as tf


def scalar(tag, value):
  return tf.raw_ops.ScalarSummary(tags=tag, values=value)


def histogram(tag, values):
  return tf.raw_ops.HistogramSummary(tag=tag, values=values)


def image(tag, images, max_images=3):
  return tf.raw_ops.ImageSummary(tag=tag, tensor=images,
                                 max_images=max_images)
