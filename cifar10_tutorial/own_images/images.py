"""Image files in, CIFAR-10-sized pixels out, for `make predict` and `make
convert`: JPEG, PNG, GIF (its first frame) and BMP, through TensorFlow's own
decoders; grayscale becomes three equal channels and alpha is dropped; the
image is resized to 32x32 (squeezed, not cropped: the whole picture stays).
"""
import os
import stat
import struct

import numpy as np
import tensorflow as tf2   # its image.resize antialiases when shrinking
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors

EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp')
# Larger files are refused before they are read: a photo is a few MB, and a
# device such as /dev/zero has no end.
MAX_BYTES = 64 * 2**20
# And larger images before they are decoded: a small file can declare a
# huge image (a "decompression bomb"), which would take gigabytes to decode
# and resize. 100 megapixels is beyond the largest camera photos.
MAX_PIXELS = 100 * 10**6


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


def declared_size(data):
  """(width, height) an image file's header declares, or None where the
  header is not one this knows (the decoder then says what it is)."""
  try:
    if data.startswith(b'\x89PNG\r\n\x1a\n'):
      return struct.unpack('>II', data[16:24])
    if data.startswith(b'GIF'):   # any version: the decoder takes them
      return _gif_size(data)
    if data.startswith(b'BM'):
      if struct.unpack('<I', data[14:18])[0] == 12:   # OS/2's core header
        return struct.unpack('<HH', data[18:22])
      width, height = struct.unpack('<ii', data[18:26])
      return abs(width), abs(height)
    if data.startswith(b'\xff\xd8'):
      return _jpeg_size(data)
  except struct.error:
    pass   # too short for its header: the decoder says so
  return None


def _gif_size(data):
  """The largest (width, height) of a GIF: its screen's, or any frame's
  that reaches further (a frame may be larger than the screen), as the
  decoder allocates them."""
  width, height, packed = struct.unpack('<HHB', data[6:11])
  i = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
  while i < len(data):
    kind = data[i]
    if kind == 0x2C:   # a frame: left, top, width, height
      left, top, w, h, packed = struct.unpack('<HHHHB', data[i + 1:i + 10])
      width, height = max(width, left + w), max(height, top + h)
      i += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0) + 1
    elif kind == 0x21:   # an extension: its label, then sub-blocks
      i += 2
    else:   # the trailer, or what the decoder will refuse
      break
    while i < len(data) and data[i]:   # data sub-blocks, to the empty one
      i += data[i] + 1
    i += 1
  return width, height


def _jpeg_size(data):
  """(width, height) from a JPEG's frame header (SOFn), or None."""
  i = 2
  while i + 9 < len(data):
    if data[i] != 0xFF:   # junk between segments: libjpeg skips it too
      i += 1
      continue
    marker = data[i + 1]
    if marker == 0xFF:   # fill byte
      i += 1
      continue
    if 0xD0 <= marker <= 0xD9 or marker == 0x01:   # no length
      i += 2
      continue
    if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
      height, width = struct.unpack('>HH', data[i + 5:i + 9])
      return width, height
    if marker == 0xDA:   # the image data starts: no frame header before it
      return None
    i += 2 + struct.unpack('>H', data[i + 2:i + 4])[0]
  return None


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
    size = declared_size(data)
    if size and size[0] * size[1] > MAX_PIXELS:
      raise ImageError('%s: expected an image of at most %d megapixels, '
                       'found one of %d x %d pixels' % (
                           path, MAX_PIXELS // 10**6, size[0], size[1]))
    try:
      return self._sess.run(self._pixels, {self._data: data})
    except tf.errors.OpError as e:
      why = errors.reason(e).rstrip('.')
      if 'too large' in why.lower():
        raise ImageError('%s: expected an image small enough to decode, '
                         'found one too large (%s)' % (path, why))
      raise ImageError('%s: expected a JPEG, PNG, GIF or BMP image, found '
                       'data that is not one (%s)' % (path, why))

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
