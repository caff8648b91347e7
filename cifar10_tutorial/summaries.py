"""Summary ops whose TensorBoard tag is exactly the name given, and reading
scalars back from event files.

tf.compat.v1.summary.scalar uses the op's name as the tag: inside a name
scope it gets the scope twice ('tower_0/tower_0/cross_entropy') and, when an
op of that name exists, a suffix ('cross_entropy_1'). The raw summary ops
take the tag as an argument, so the tags read like the tutorial's names.
"""
import contextlib
import glob
import os

import tensorflow.compat.v1 as tf

# Tags that are read back: eval's accuracy (the tutorial's name for top-1
# accuracy) and the averaged training loss.
PRECISION_TAG = 'Precision @ 1'
LOSS_TAG = 'total_loss'


@contextlib.contextmanager
def scope():
  """The name scope `summaries` under the current one, re-entered on every
  use, so TensorBoard's graph shows one `summaries` box per tower instead of
  dozens of loose summary ops."""
  current = tf.get_default_graph().get_name_scope()
  with tf.name_scope((current + '/' if current else '') + 'summaries/'):
    yield


def scalar(tag, value):
  return tf.raw_ops.ScalarSummary(tags=tag, values=value)


def histogram(tag, values):
  return tf.raw_ops.HistogramSummary(tag=tag, values=values)


def image(tag, images, max_images=3):
  return tf.raw_ops.ImageSummary(tag=tag, tensor=images,
                                 max_images=max_images)


def read_scalars(directory, tag):
  """[(wall_time, step, value)] of a scalar tag in a folder's event files,
  by step (the last value written for a step wins)."""
  found = {}
  for path in sorted(glob.glob(os.path.join(directory, 'events.out.*'))):
    try:
      for event in tf.train.summary_iterator(path):
        for value in event.summary.value:
          if value.tag == tag:
            found[event.step] = (event.wall_time, event.step,
                                 value.simple_value)
    except tf.errors.DataLossError:
      pass   # the end of a file cut short by a crash: keep what was read
  return [found[step] for step in sorted(found)]
