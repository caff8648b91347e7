"""Where the CIFAR-10 record files are, and whether they can be used.

No TensorFlow here: `make data` and the checks that run before any session
use it without paying for a TensorFlow import.
"""
import hashlib
import os

import numpy as np

from cifar10_tutorial.core import defaults


class DataError(ValueError):
  """Data that cannot be used; the message names the file and the problem."""


def batches_dir(data_dir):
  """The folder holding the record files.

  As in the tutorial, --data_dir is the folder that contains
  `cifar-10-batches-bin`; a --data_dir that points at that folder itself
  works too.
  """
  inside = os.path.join(data_dir, defaults.BATCHES_DIR)
  if os.path.isdir(inside) or not os.path.isfile(
      os.path.join(data_dir, defaults.TEST_FILES[0])):
    return inside
  return data_dir


def data_files(data_dir, eval_data=False):
  """Paths of the training files, or of the test file if `eval_data`."""
  names = defaults.TEST_FILES if eval_data else defaults.TRAIN_FILES
  folder = batches_dir(data_dir)
  return [os.path.join(folder, name) for name in names]


def class_names(data_dir):
  """The data's class names: batches.meta.txt's lines where the record files
  have one beside them, else CIFAR-10's ten."""
  path = os.path.join(batches_dir(data_dir), defaults.META_FILE)
  if not os.path.isfile(path):
    return defaults.CLASS_NAMES
  with open(path, encoding='utf-8', errors='replace') as f:
    names = tuple(line.strip() for line in f if line.strip())
  if not 1 <= len(names) <= defaults.MAX_CLASSES:
    raise DataError('%s: expected 1 to %d class names, one a line, found %d' %
                    (path, defaults.MAX_CLASSES, len(names)))
  return names


def sizes(files):
  """{path: bytes} of record files, to check them against later."""
  return {path: os.path.getsize(path) for path in files}


def changed(known):
  """One line naming the first record file of `known` ({path: bytes}, as
  sizes() gave them) that is no longer there, readable and the same size,
  or None. For a trainer whose files change under it."""
  for path, size in sorted(known.items()):
    try:
      now = os.path.getsize(path)
    except OSError:
      return ('%s: expected the record file training started with, found '
              'it gone (deleted or moved while training)' % path)
    if not os.access(path, os.R_OK):
      return ('%s: expected a record file this program can read, found no '
              'permission to read it (changed while training)' % path)
    if now != size:
      return ('%s: expected the %s bytes it had when training started, found '
              '%s (%s while training)' % (path, format(size, ','),
                                          format(now, ','), 'truncated' if
                                          now < size else 'changed'))
  return None


def check_record_files(files, num_classes=defaults.NUM_CLASSES,
                       chunk_records=4096):
  """Checks record files before any session starts; returns the record count.

  Each file must exist, be non-empty, hold a whole number of 3,073-byte
  records, and have every label byte below `num_classes` (0-9 for CIFAR-10).
  A bad file raises DataError
  naming the file, what was expected and what was found, so a truncated
  download fails here, at once, and not as a reader error hours later.
  Files are read in chunks, so memory stays flat whatever their size.
  """
  total = 0
  for path in files:
    if not os.path.isfile(path):
      folder = os.path.dirname(path) or '.'
      found = ('no such file in %s' % folder if os.path.isdir(folder)
               else 'no folder %s' % folder)
      raise DataError('%s: expected a CIFAR-10 record file, found %s '
                      '(check --data_dir, or run `make data`)' % (path, found))
    size = os.path.getsize(path)
    if size == 0 or size % defaults.RECORD_BYTES:
      raise DataError(
          '%s: expected a non-empty multiple of %d bytes (a label byte and '
          '%d image bytes per record), found %d bytes%s' %
          (path, defaults.RECORD_BYTES, defaults.IMAGE_BYTES, size,
           ' (truncated?)' if size else ''))
    with open(path, 'rb') as f:
      first = 0
      while True:
        chunk = f.read(chunk_records * defaults.RECORD_BYTES)
        if not chunk:
          break
        labels = np.frombuffer(chunk, np.uint8)[::defaults.RECORD_BYTES]
        bad = np.flatnonzero(labels >= num_classes)
        if bad.size:
          raise DataError('%s: expected label bytes 0-%d, found %d in record '
                          '%d' % (path, num_classes - 1,
                                  labels[bad[0]], first + bad[0]))
        first += labels.size
    total += size // defaults.RECORD_BYTES
  return total


def fingerprint(files, head=1 << 20):
  """A short digest of the files' names, sizes and first MiB: the same for
  the same data wherever it is, different for other data."""
  digest = hashlib.sha1()
  for path in files:
    digest.update(os.path.basename(path).encode())
    digest.update(str(os.path.getsize(path)).encode())
    with open(path, 'rb') as f:
      digest.update(f.read(head))
  return digest.hexdigest()[:12]


def check_data_dir(data_dir):
  """Checks all six files; returns (training records, test records)."""
  classes = len(class_names(data_dir))
  return (check_record_files(data_files(data_dir), classes),
          check_record_files(data_files(data_dir, eval_data=True), classes))


def encode(images, labels):
  """Records in the official layout, as bytes: for each example a label
  byte, then the red, green and blue planes, each row-major.
  `images` uint8 [n, 32, 32, 3], `labels` [n] in 0-9."""
  images = np.asarray(images, np.uint8)
  planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
  return np.concatenate([np.asarray(labels, np.uint8)[:, None], planes],
                        axis=1).tobytes()


def read_records(path):
  """(images uint8 [n, 32, 32, 3], labels uint8 [n]) of a record file."""
  recs = np.fromfile(path, np.uint8).reshape(-1, defaults.RECORD_BYTES)
  planes = recs[:, defaults.LABEL_BYTES:].reshape(
      -1, defaults.DEPTH, defaults.SOURCE_HEIGHT, defaults.SOURCE_WIDTH)
  return planes.transpose(0, 2, 3, 1), recs[:, 0]


def write_random(data_dir, train_records, test_records, seed=0,
                 num_classes=defaults.NUM_CLASSES):
  """Random records in the official layout: <data_dir>/cifar-10-batches-bin
  with `train_records` spread evenly over the five training files and
  `test_records` in the test file. Written a file at a time (the bench's
  ten-fold data set is 1.5 GB). Returns the folder."""
  rng = np.random.default_rng(seed)
  folder = os.path.join(data_dir, defaults.BATCHES_DIR)
  os.makedirs(folder, exist_ok=True)
  per_file = train_records // len(defaults.TRAIN_FILES)
  for name, n in ([(f, per_file) for f in defaults.TRAIN_FILES] +
                  [(defaults.TEST_FILES[0], test_records)]):
    images = rng.integers(0, 256, (n, defaults.SOURCE_HEIGHT,
                                   defaults.SOURCE_WIDTH, defaults.DEPTH),
                          dtype=np.uint8)
    labels = rng.integers(0, num_classes, n, dtype=np.uint8)
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(encode(images, labels))
  return folder
