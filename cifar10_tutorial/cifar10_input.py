"""Reads CIFAR-10 binary records and turns them into batches, with queues.

The pipeline, as the tutorial has it, on the CPU:

    file names -> filename queue -> fixed-length record reader -> decode
      -> distort (training) or central crop (eval) -> example queue -> batch

On a GPU the trainers queue the decoded uint8 pixels instead (a "raw"
queue, --preprocess_on device, the default there), and the batch is
distorted on the GPU, with the same distributions (train_graph.Feed).

Background threads (queue runners) fill the queues; the trainer and the eval
loop dequeue batches from the example queue. Records are streamed from the
files: the data set is never held in memory.

Two ways to fill the example queue, with the same distributions:

  per_example  the tutorial's: each thread reads one record, distorts it with
               tf.image's single-image ops and enqueues it.
  batched      each thread reads a chunk of records in one reader call,
               distorts the whole chunk at once (every example still draws
               its own crop, flip, brightness and contrast) and enqueues the
               chunk in one call. Far fewer, larger ops per example.
"""
import collections

import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.core import summaries

Record = collections.namedtuple('Record', ['key', 'label', 'uint8image'])


def read_cifar10(filename_queue):
  """Reads one record from the files named by `filename_queue`.

  Returns a Record: `key` (file:record), `label` (int32 scalar, 0-9) and
  `uint8image` (32x32x3, height-width-depth).
  """
  reader = tf.FixedLengthRecordReader(record_bytes=defaults.RECORD_BYTES)
  key, value = reader.read(filename_queue)
  record = tf.decode_raw(value, tf.uint8)
  label = tf.cast(record[0], tf.int32)
  # The file stores each image as depth x height x width (all red, then all
  # green, then all blue); the network wants height x width x depth.
  planes = tf.reshape(record[defaults.LABEL_BYTES:],
                      [defaults.DEPTH, defaults.SOURCE_HEIGHT,
                       defaults.SOURCE_WIDTH])
  return Record(key, label, tf.transpose(planes, [1, 2, 0]))


def read_cifar10_many(filename_queue, num_records):
  """Reads up to `num_records` records in one reader call.

  Returns a Record of batches: `key` [n], `label` [n] int32 and `uint8image`
  [n, 32, 32, 3]. A call may return fewer than asked at the end of a file.
  """
  reader = tf.FixedLengthRecordReader(record_bytes=defaults.RECORD_BYTES)
  keys, values = reader.read_up_to(filename_queue, num_records)
  recs = tf.reshape(tf.decode_raw(values, tf.uint8),
                    [-1, defaults.RECORD_BYTES])
  labels = tf.cast(recs[:, 0], tf.int32)
  planes = tf.reshape(recs[:, defaults.LABEL_BYTES:],
                      [-1, defaults.DEPTH, defaults.SOURCE_HEIGHT,
                       defaults.SOURCE_WIDTH])
  return Record(keys, labels, tf.transpose(planes, [0, 2, 3, 1]))


def random_distortions(image):
  """The tutorial's random distortions, in its order, on one float image:
  24x24 crop, left-right flip, brightness, contrast (not yet standardized)."""
  size = defaults.IMAGE_SIZE
  image = tf.random_crop(image, [size, size, defaults.DEPTH])
  image = tf.image.random_flip_left_right(image)
  image = tf.image.random_brightness(image,
                                     max_delta=defaults.MAX_BRIGHTNESS_DELTA)
  return tf.image.random_contrast(image, lower=defaults.CONTRAST_LOWER,
                                  upper=defaults.CONTRAST_UPPER)


def distort(image):
  """The tutorial's training preprocessing of one float image."""
  # Standardize each image (zero mean, unit variance) last, so the brightness
  # and contrast changes above do not shift what the network sees on average.
  return tf.image.per_image_standardization(random_distortions(image))


def _uniform(n, low, high, dtype=tf.float32, seed=None, k=0):
  """One draw per example, shaped to broadcast over [n, h, w, depth]: from
  TensorFlow's stateful generator, or, given `seed` (int64 [2]), the k-th
  stateless stream of that seed (which XLA compiles)."""
  shape = [n, 1, 1, 1]
  if seed is None:
    return tf.random.uniform(shape, low, high, dtype=dtype)
  seed = tf.random.experimental.stateless_fold_in(seed, k, alg='philox')
  if dtype != tf.float32:
    return tf.random.stateless_uniform(shape, seed, low, high, dtype=dtype,
                                       alg='philox')
  # Floats from the generator's bits, as TensorFlow's kernels make them
  # (23 of them under a 1.0 exponent, minus 1): XLA makes the same bits,
  # but its own floats from them differ where the program reads a variable.
  bits = tf.random.stateless_uniform(shape, seed, None, None, tf.uint32,
                                     alg='philox')
  one_to_two = tf.bitcast(tf.bitwise.bitwise_or(
      tf.bitwise.right_shift(bits, 9), tf.constant(0x3F800000, tf.uint32)),
                          tf.float32)
  return low + (one_to_two - 1.0) * (high - low)


def random_distortions_batch(images, seed=None):
  """`random_distortions` on a batch [n, 32, 32, 3] (uint8 or float), every
  example with its own draws, from the same distributions:

    crop offsets  uniform integers 0..8, row and column apart
    flip          with probability 1/2
    brightness    + delta, delta uniform in [-63, 63)
    contrast      (x - mean) * factor + mean, per channel, factor uniform in
                  [0.2, 1.8)

  The crop and the flip are one gather of rows and one of columns (a flip
  reads the crop's columns backwards), done before the cast to float so
  they move a quarter of the bytes. Returns float32 [n, 24, 24, 3]. With
  `seed` (int64 [2]) the draws are stateless: the same seed, the same
  draws.
  """
  size = defaults.IMAGE_SIZE
  n = tf.shape(images)[0]
  span = tf.range(size)
  rows = _uniform(n, 0, defaults.SOURCE_HEIGHT - size + 1, tf.int32, seed, 0)
  cols = _uniform(n, 0, defaults.SOURCE_WIDTH - size + 1, tf.int32, seed, 1)
  flip = _uniform(n, 0.0, 1.0, seed=seed, k=2) < 0.5
  rows = rows[:, 0, 0, :] + span
  cols = cols[:, 0, 0, :] + tf.where_v2(flip[:, 0, 0, :], span[::-1], span)
  images = tf.gather(images, rows, axis=1, batch_dims=1)
  images = tf.cast(tf.gather(images, cols, axis=2, batch_dims=1), tf.float32)
  delta = defaults.MAX_BRIGHTNESS_DELTA
  images += _uniform(n, -delta, delta, seed=seed, k=3)
  mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
  factor = _uniform(n, defaults.CONTRAST_LOWER, defaults.CONTRAST_UPPER,
                    seed=seed, k=4)
  return (images - mean) * factor + mean


def distort_batch(images, seed=None):
  """`distort` on a batch [n, 32, 32, 3]: float32 [n, 24, 24, 3]."""
  return tf.image.per_image_standardization(
      random_distortions_batch(images, seed))


def central_crop(image):
  """Eval preprocessing: the central 24x24 crop, standardized."""
  size = defaults.IMAGE_SIZE
  image = tf.image.resize_image_with_crop_or_pad(image, size, size)
  return tf.image.per_image_standardization(image)


def central_crop_batch(images):
  """`central_crop` on a batch [n, 32, 32, 3]: float32 [n, 24, 24, 3]."""
  top = (defaults.SOURCE_HEIGHT - defaults.IMAGE_SIZE) // 2
  left = (defaults.SOURCE_WIDTH - defaults.IMAGE_SIZE) // 2
  crop = images[:, top:top + defaults.IMAGE_SIZE,
                left:left + defaults.IMAGE_SIZE]
  return tf.image.per_image_standardization(tf.cast(crop, tf.float32))


class ExampleQueue(object):
  """A queue of (image, label) examples, filled by threads.

  Training uses a shuffling queue that starts serving only once it holds
  `min_after_dequeue` examples, so batches mix records from across the data;
  eval uses a first-in first-out queue and a partial final batch.
  `num_records` is how many records the files hold (one epoch).

  The images are preprocessed by the threads, or, in a raw queue, left as
  the records' uint8 32x32x3 pixels for the consumer to preprocess on its
  own device with `finish` (a GPU does a batch's distortions in
  microseconds, and a quarter of the bytes cross to it).
  """

  def __init__(self, queue, capacity, min_after_dequeue, num_records,
               partial_batches, finish=None,
               class_names=defaults.CLASS_NAMES, files=()):
    self.queue = queue
    self.files = list(files)   # the record files it reads (tests': none)
    self.class_names = class_names
    self.capacity = capacity
    self.min_after_dequeue = min_after_dequeue
    self.num_records = num_records
    self._partial_batches = partial_batches
    self._finish = finish

  @property
  def raw(self):
    return self._finish is not None

  def dequeue(self, batch_size):
    """Returns (images, labels [batch] int32): float32 [batch, 24, 24, 3],
    or uint8 [batch, 32, 32, 3] from a raw queue."""
    with tf.device('/cpu:0'):
      if self._partial_batches:
        return tuple(self.queue.dequeue_up_to(batch_size))
      return tuple(self.queue.dequeue_many(batch_size))

  def finish(self, images, seed=None):
    """The preprocessing left to the consumer: float32 [batch, 24, 24, 3]
    (`seed`: distort_batch's)."""
    return self._finish(images, seed) if self._finish else images

  def fill_summary(self):
    """A scalar summary: how full the queue is (0 = starving the trainer)."""
    with tf.device('/cpu:0'), summaries.scope():
      fill = tf.cast(self.queue.size(), tf.float32) / self.capacity
      return summaries.scalar(self.queue.name + '/fraction_full', fill)


def min_queue_examples(num_records):
  """The warm-up: 40% of an epoch (20,000 of the 50,000 training records).

  Fewer on smaller data (tests); never more than the tutorial's 20,000, so
  the memory the queue holds stays the same however many records there are.
  """
  epoch = min(num_records, defaults.EXAMPLES_PER_EPOCH_TRAIN)
  return max(1, int(epoch * defaults.MIN_FRACTION_OF_EXAMPLES_IN_QUEUE))


def _example_queue(data_dir, eval_data, preprocess, batch_size, num_threads,
                   shuffle, num_epochs, pipeline, name, raw=False):
  """`preprocess` is a pair: the per-example function and its batched twin.
  `raw`: queue the uint8 pixels and leave the batched one to the consumer."""
  files = records.data_files(data_dir, eval_data)
  class_names = records.class_names(data_dir)
  num_records = records.check_record_files(files, len(class_names))
  warmup = min_queue_examples(num_records)
  capacity = warmup + 3 * batch_size
  if raw:
    dtype, size = tf.uint8, defaults.SOURCE_HEIGHT
    preprocess = (tf.identity, tf.identity)
  else:
    dtype, size = tf.float32, defaults.IMAGE_SIZE
  shapes = [[size, size, defaults.DEPTH], []]
  with tf.device('/cpu:0'), tf.name_scope(name):
    filename_queue = tf.train.string_input_producer(
        files, num_epochs=num_epochs, shuffle=shuffle,
        capacity=defaults.FILENAME_QUEUE_CAPACITY)
    if shuffle:
      queue = tf.RandomShuffleQueue(capacity, warmup, [dtype, tf.int32],
                                    shapes=shapes, name='examples')
    else:
      queue = tf.FIFOQueue(capacity, [dtype, tf.int32], shapes=shapes,
                           name='examples')
    if pipeline == 'batched':
      chunk = read_cifar10_many(filename_queue, defaults.READ_CHUNK)
      enqueue = queue.enqueue_many([preprocess[1](chunk.uint8image),
                                    chunk.label])
    elif pipeline == 'per_example':
      record = read_cifar10(filename_queue)
      image = record.uint8image if raw else tf.cast(record.uint8image,
                                                    tf.float32)
      enqueue = queue.enqueue([preprocess[0](image), record.label])
    else:
      raise ValueError('pipeline: expected one of %s, found %r' %
                       (', '.join(defaults.INPUT_PIPELINES), pipeline))
    # Each thread runs the whole read-and-preprocess subgraph on its own
    # record or chunk. The trainers and eval start the runners in this
    # collection.
    tf.train.add_queue_runner(tf.train.QueueRunner(queue,
                                                   [enqueue] * num_threads))
  return ExampleQueue(queue, capacity, warmup, num_records,
                      partial_batches=not shuffle,
                      finish=finish_raw if raw else None,
                      class_names=class_names, files=files)


def finish_raw(images, seed=None):
  # Cast first: the gathers then run on float32, which every device has
  # kernels for. The same numbers as distorting the uint8 pixels.
  return distort_batch(tf.cast(images, tf.float32), seed)


def train_queue(data_dir, batch_size, num_threads=None, pipeline='batched',
                raw=False):
  """The shuffled queue of training examples, read forever: distorted by
  the input threads, or `raw`, to be distorted by the consumer (finish)."""
  return _example_queue(data_dir, False, (distort, distort_batch), batch_size,
                        num_threads or defaults.INPUT_THREADS, shuffle=True,
                        num_epochs=None, pipeline=pipeline, name='train_input',
                        raw=raw)


def eval_queue(data_dir, batch_size, eval_data=True, num_threads=1,
               pipeline='batched'):
  """The unshuffled queue of centrally cropped examples: exactly one pass.

  `eval_data` picks the test file (True) or the training files (False).
  One thread by default, so records come out in file order and a partial
  evaluation (`--num_examples`) always sees the same images.
  """
  return _example_queue(data_dir, eval_data,
                        (central_crop, central_crop_batch), batch_size,
                        num_threads, shuffle=False, num_epochs=1,
                        pipeline=pipeline, name='eval_input')

