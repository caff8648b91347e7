"""Reads CIFAR-10 binary records and turns them into batches, with queues.

The pipeline, all of it on the CPU so that GPUs only ever see finished
batches:

    file names -> filename queue -> fixed-length record reader -> decode
      -> distort (training) or central crop (eval) -> example queue -> batch

Background threads (queue runners) fill the queues; the trainer and the eval
loop dequeue batches from the example queue. Records are streamed from the
files: the data set is never held in memory.
"""
import collections

import tensorflow.compat.v1 as tf

from cifar10_tutorial import defaults
from cifar10_tutorial import records
from cifar10_tutorial import summaries

Record = collections.namedtuple('Record', ['key', 'label', 'uint8image'])
DataError = records.DataError


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


def distort(image):
  """The tutorial's training distortions, in its order, on a float image."""
  size = defaults.IMAGE_SIZE
  image = tf.random_crop(image, [size, size, defaults.DEPTH])
  image = tf.image.random_flip_left_right(image)
  image = tf.image.random_brightness(image,
                                     max_delta=defaults.MAX_BRIGHTNESS_DELTA)
  image = tf.image.random_contrast(image, lower=defaults.CONTRAST_LOWER,
                                   upper=defaults.CONTRAST_UPPER)
  # Standardize each image (zero mean, unit variance) last, so the brightness
  # and contrast changes above do not shift what the network sees on average.
  return tf.image.per_image_standardization(image)


def central_crop(image):
  """Eval preprocessing: the central 24x24 crop, standardized."""
  size = defaults.IMAGE_SIZE
  image = tf.image.resize_image_with_crop_or_pad(image, size, size)
  return tf.image.per_image_standardization(image)


class ExampleQueue(object):
  """A queue of preprocessed (image, label) examples, filled by threads.

  Training uses a shuffling queue that starts serving only once it holds
  `min_after_dequeue` examples, so batches mix records from across the data;
  eval uses a first-in first-out queue and a partial final batch.
  `num_records` is how many records the files hold (one epoch).
  """

  def __init__(self, queue, capacity, min_after_dequeue, num_records,
               partial_batches):
    self.queue = queue
    self.capacity = capacity
    self.min_after_dequeue = min_after_dequeue
    self.num_records = num_records
    self._partial_batches = partial_batches

  def dequeue(self, batch_size):
    """Returns (images [batch, 24, 24, 3] float32, labels [batch] int32)."""
    with tf.device('/cpu:0'):
      if self._partial_batches:
        return tuple(self.queue.dequeue_up_to(batch_size))
      return tuple(self.queue.dequeue_many(batch_size))

  def fill_summary(self):
    """A scalar summary: how full the queue is (0 = starving the trainer)."""
    with tf.device('/cpu:0'):
      fill = tf.cast(self.queue.size(), tf.float32) / self.capacity
    return summaries.scalar(self.queue.name + '/fraction_full', fill)


def min_queue_examples(num_records):
  """The warm-up: 40% of an epoch (20,000 of the 50,000 training records)."""
  return max(1, int(num_records * defaults.MIN_FRACTION_OF_EXAMPLES_IN_QUEUE))


def _example_queue(files, preprocess, batch_size, num_threads, shuffle,
                   num_epochs, name):
  num_records = records.check_record_files(files)
  warmup = min_queue_examples(num_records)
  capacity = warmup + 3 * batch_size
  size, depth = defaults.IMAGE_SIZE, defaults.DEPTH
  shapes = [[size, size, depth], []]
  with tf.device('/cpu:0'), tf.name_scope(name):
    filename_queue = tf.train.string_input_producer(
        files, num_epochs=num_epochs, shuffle=shuffle,
        capacity=defaults.FILENAME_QUEUE_CAPACITY)
    record = read_cifar10(filename_queue)
    image = preprocess(tf.cast(record.uint8image, tf.float32))
    if shuffle:
      queue = tf.RandomShuffleQueue(capacity, warmup, [tf.float32, tf.int32],
                                    shapes=shapes, name='examples')
    else:
      queue = tf.FIFOQueue(capacity, [tf.float32, tf.int32], shapes=shapes,
                           name='examples')
    enqueue = queue.enqueue([image, record.label])
    # Each thread runs the whole read-and-preprocess subgraph on its own
    # record. MonitoredSession starts the runners found in this collection.
    tf.train.add_queue_runner(tf.train.QueueRunner(queue,
                                                   [enqueue] * num_threads))
  return ExampleQueue(queue, capacity, warmup, num_records,
                      partial_batches=not shuffle)


def train_queue(data_dir, batch_size, num_threads=None):
  """The shuffled queue of distorted training examples, read forever."""
  return _example_queue(records.data_files(data_dir), distort, batch_size,
                        num_threads or defaults.INPUT_THREADS, shuffle=True,
                        num_epochs=None, name='train_input')


def eval_queue(data_dir, batch_size, eval_data=True, num_threads=1):
  """The unshuffled queue of centrally cropped examples: exactly one pass.

  `eval_data` picks the test file (True) or the training files (False).
  One thread by default, so records come out in file order and a partial
  evaluation (`--num_examples`) always sees the same images.
  """
  return _example_queue(records.data_files(data_dir, eval_data), central_crop,
                        batch_size, num_threads, shuffle=False, num_epochs=1,
                        name='eval_input')


def distorted_inputs(data_dir, batch_size, num_threads=None):
  """Training batches: (images [batch, 24, 24, 3], labels [batch])."""
  return train_queue(data_dir, batch_size, num_threads).dequeue(batch_size)


def inputs(eval_data, data_dir, batch_size):
  """Eval batches in file order, one pass; the last batch may be smaller."""
  return eval_queue(data_dir, batch_size, eval_data).dequeue(batch_size)
