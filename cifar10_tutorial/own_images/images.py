"""Image files in, CIFAR-10-sized pixels out, for `make predict` and `make
convert`: JPEG, PNG, GIF (its first frame) and BMP, through TensorFlow's own
decoders; grayscale becomes three equal channels and alpha is dropped; the
image is resized to 32x32 (squeezed, not cropped: the whole picture stays).
"""
import os
import stat

import numpy as np
import tensorflow as tf2   # its image.resize antialiases when shrinking
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors

EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp')
# Larger files are refused before they are read: a photo is a few MB, and a
# device such as /dev/zero has no end.
MAX_BYTES = 64 * 2**20


class ImageError(ValueError):
  """A file that is not an image this can read; the message says which."""


def expand(paths):
  """The files to read: each path as given, each folder as its image files
  (by extension), sorted. A folder with none is an ImageError."""
  files = []
  for path in paths:
    if os.path.isdir(path):
      found = sorted(os.path.join(path, n) for n in os.listdir(path)
                     if n.lower().endswith(EXTENSIONS) and
                     os.path.isfile(os.path.join(path, n)))
      if not found:
        raise ImageError('%s: expected image files (%s), found none' % (
            path, ', '.join(EXTENSIONS)))
      files += found
    else:
      files.append(path)
  return files


class Decoder(object):
  """Turns an image file into uint8 [32, 32, 3], in a graph of its own."""

  def __init__(self):
    self.graph = tf.Graph()
    with self.graph.as_default(), tf.device('/cpu:0'):
      self._data = tf.placeholder(tf.string, [])
      # JPEGs with libjpeg's accurate inverse transform (what PIL and the
      # JPEG standard's reference use), not TensorFlow's fast default,
      # which is off by up to 4 levels: the same pixels as other tools.
      image = tf.cond(
          tf.io.is_jpeg(self._data),
          lambda: tf.io.decode_jpeg(self._data, channels=defaults.DEPTH,
                                    dct_method='INTEGER_ACCURATE'),
          lambda: tf.io.decode_image(self._data, channels=defaults.DEPTH,
                                     expand_animations=False))
      size = [defaults.SOURCE_HEIGHT, defaults.SOURCE_WIDTH]
      resized = tf2.image.resize(image, size, antialias=True)
      self._pixels = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255),
                             tf.uint8)
    self.graph.finalize()
    self._sess = tf.Session(graph=self.graph, config=tf.ConfigProto(
        device_count={'GPU': 0}))

  def __call__(self, path):
    """The 32x32x3 uint8 pixels of the image file at `path`."""
    try:
      # Opened without waiting (a FIFO would block until a writer came),
      # then checked to be a plain file of a sane size before reading.
      handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
      with os.fdopen(handle, 'rb') as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
          raise ImageError('%s: expected an image file, found %s' % (
              path, 'a folder' if stat.S_ISDIR(info.st_mode) else
              'a device, pipe or socket, not a file'))
        if info.st_size > MAX_BYTES:
          raise ImageError('%s: expected an image file of at most %d MB, '
                           'found %.0f MB' % (path, MAX_BYTES // 2**20,
                                              info.st_size / 2**20))
        data = f.read(MAX_BYTES + 1)
    except OSError as e:
      raise ImageError('%s: expected an image file, found %s' % (
          path, e.strerror.lower() if e.strerror else e))
    if not data:
      raise ImageError('%s: expected an image file, found an empty file' %
                       path)
    try:
      return self._sess.run(self._pixels, {self._data: data})
    except tf.errors.OpError as e:
      raise ImageError('%s: expected a JPEG, PNG, GIF or BMP image, found '
                       'data that is not one (%s)' % (
                           path, errors.reason(e).rstrip('.')))

  def close(self):
    self._sess.close()


def decode_all(paths, decoder=None):
  """(pixels uint8 [n, 32, 32, 3] of the files that decode, their paths,
  the ImageErrors of those that do not)."""
  decoder = decoder or Decoder()
  pixels, good, bad = [], [], []
  for path in paths:
    try:
      pixels.append(decoder(path))
      good.append(path)
    except ImageError as e:
      bad.append(e)
  shape = [0, defaults.SOURCE_HEIGHT, defaults.SOURCE_WIDTH, defaults.DEPTH]
  return (np.stack(pixels) if pixels else np.zeros(shape, np.uint8), good,
          bad)
