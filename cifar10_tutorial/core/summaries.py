"""Summaries whose TensorBoard tag is exactly the name given, made cheaply
on any device, and reading scalars back from event files.

tf.compat.v1.summary.scalar uses the op's name as the tag: inside a name
scope it gets the scope twice ('tower_0/tower_0/cross_entropy') and, when an
op of that name exists, a suffix ('cross_entropy_1'). Here the tag is an
argument, so the tags read like the tutorial's names.
"""
import collections
import contextlib
import glob
import os
import sys
import weakref

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import gpus

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


# A summary item is what one step fetches for one tag: a Scalar's value, a
# Histogram's bucket counts and statistics, or a serialized tf.Summary (the
# image summaries, and any TensorFlow summary op). to_summary() turns the
# fetched values into one tf.Summary on the host.
Scalar = collections.namedtuple('Scalar', ['tag', 'value'])
Histogram = collections.namedtuple('Histogram', ['tag', 'counts', 'stats'])


def scalar(tag, value):
  return Scalar(tag, tf.convert_to_tensor(value))


def _bucket_limits():
  """TensorFlow's default histogram buckets (tensorflow/core/lib/histogram):
  edges growing by 10% from 1e-12 to 1e20, mirrored below zero, then 0 and
  +-DBL_MAX, as float64."""
  positive, v = [], 1.0e-12
  while v < 1.0e20:
    positive.append(v)
    v *= 1.1
  positive.append(sys.float_info.max)
  return np.array([-x for x in reversed(positive)] + [0.0] + positive)


BUCKET_LIMITS = _bucket_limits()
SPREAD = 64   # copies of the buckets a histogram counts into (_histogram)


def histogram(tag, values):
  """The histogram TensorBoard's HistogramSummary op makes, with the work
  done where `values` are.

  HistogramSummary has only a CPU kernel: on a GPU tower, every summary step
  copied each activation, weight and gradient to the host and bucketed it
  there on one thread, which stalled training for a quarter of a second.
  Here the buckets are counted on the values' own device (each value goes in
  the first bucket whose limit is above it, as the C++ histogram does) and
  only the counts and five numbers travel; to_summary() encodes them exactly
  as HistogramSummary does.
  """
  # Kept out of XLA's clusters: XLA cannot compile searchsorted for this
  # many values, and a summary step runs once every 100 steps.
  with tf.xla.experimental.jit_scope(compile_ops=False):
    return _histogram(tag, values)


def _on_gpu(values):
  """Whether `values` are on a GPU: placed on one, or placed nowhere in a
  process that has one (where TensorFlow puts what it can)."""
  device = (values.device or '').upper()
  return 'GPU' in device or ('CPU' not in device and gpus.count() > 0)


# Each graph's bucket limits, one constant a device (_limits), by name: a
# tensor would hold its graph, and so the key, alive for good.
_LIMITS = weakref.WeakKeyDictionary()


def _limits(device):
  """The bucket limits as one constant of the graph on `device`, shared by
  its histograms: a copy in each (12.6 KB, 25 of them) was a third of the
  graph and of every file that holds it (graph.pbtxt, the event file, each
  checkpoint's .meta)."""
  graph = tf.get_default_graph()
  made = _LIMITS.setdefault(graph, {})
  if device not in made:
    # Outside whatever context the first histogram is built in (a control
    # dependency or loop there would hold the others), on its device only.
    with graph.control_dependencies(None), graph.device(None), \
         graph.device(device), graph.name_scope('summaries/'):
      made[device] = tf.constant(BUCKET_LIMITS[None],
                                 name='bucket_limits').name
  return graph.get_tensor_by_name(made[device])


def _histogram(tag, values):
  x = tf.cast(tf.reshape(values, [-1]), tf.float64)
  limits = _limits(x.device)
  buckets = len(BUCKET_LIMITS)
  # On a GPU, two things the CPU does not need. Bucket numbers in int64:
  # TensorFlow keeps a GPU's int32 arithmetic in host memory (its int32
  # Minimum, FloorMod, AddV2 and Range are host kernels), which copied
  # every value's bucket to the host and back. And each value is added in
  # one of SPREAD copies of the buckets, by its place, the copies summed
  # after: a GPU's adds to one bucket are atomic and wait for each other,
  # and half of a ReLU's outputs are zero, one bucket (the summary step
  # spent 15 of its 16 ms on an H200 counting into one copy). The same
  # counts, exactly; on a CPU both cost time (a third more).
  index, spread = (tf.int64, SPREAD) if _on_gpu(values) else (tf.int32, 1)
  bucket = tf.searchsorted(limits, x[None], side='right', out_type=index)
  # A sum over a constant number of buckets (not bincount, whose size is
  # computed at run time and which XLA cannot compile).
  # NaN sorts past the last bucket: clipped here, reported by to_summary.
  bucket = tf.minimum(bucket[0], buckets - 1)
  if spread > 1:
    bucket += tf.range(tf.size(bucket, out_type=index)) % spread * buckets
  counts = tf.math.unsorted_segment_sum(tf.ones_like(x), bucket,
                                        spread * buckets)
  if spread > 1:
    counts = tf.reduce_sum(tf.reshape(counts, [spread, buckets]), 0)
  stats = tf.stack([
      tf.reduce_min(x), tf.reduce_max(x), tf.reduce_sum(x),
      tf.reduce_sum(tf.square(x)), tf.cast(tf.size(x), tf.float64),
      tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)),
                            tf.float64))])
  return Histogram(tag, counts, stats)


def image(tag, images, max_images=3):
  return tf.raw_ops.ImageSummary(tag=tag, tensor=images,
                                 max_images=max_images)


def fetches(items):
  """What a step fetches for `items`: a list, in their order."""
  return [(i.counts, i.stats) if isinstance(i, Histogram) else
          i.value if isinstance(i, Scalar) else i for i in items]


class NonFiniteError(ValueError):
  """A histogram's values were NaN or infinite."""


def _histogram_proto(counts, stats):
  """HistogramProto as TensorFlow's Histogram::EncodeToProto writes it:
  every non-empty bucket, and each run of empty buckets as one entry with
  the run's last limit."""
  low, high, total, squares, size, _ = stats
  full = counts > 0
  keep = full | (~full & np.append(full[1:], True))
  return tf.HistogramProto(min=low, max=high, num=size, sum=total,
                           sum_squares=squares,
                           bucket_limit=BUCKET_LIMITS[keep].tolist(),
                           bucket=counts[keep].astype(np.float64).tolist())


def to_summary(items, values):
  """One tf.Summary from `items` and the values fetched for them. Raises
  NonFiniteError, naming the tag, where a histogram saw NaN or infinity (as
  HistogramSummary did)."""
  out = tf.Summary()
  for item, value in zip(items, values):
    if isinstance(item, Scalar):
      out.value.add(tag=item.tag, simple_value=float(value))
    elif isinstance(item, Histogram):
      counts, stats = value
      if stats[5]:
        raise NonFiniteError('%s: expected finite values, found %d NaN or '
                             'infinite' % (item.tag, stats[5]))
      out.value.add(tag=item.tag, histo=_histogram_proto(counts, stats))
    else:
      out.MergeFromString(value)
  return out


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
