"""Where the CIFAR-10 record files are, and whether they can be used.

No TensorFlow here: `make data` and the checks that run before any session
use it without paying for a TensorFlow import.
"""
import os

import numpy as np

from cifar10_tutorial import defaults


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


def check_record_files(files, chunk_records=4096):
  """Checks record files before any session starts; returns the record count.

  Each file must exist, be non-empty, hold a whole number of 3,073-byte
  records, and have every label byte in 0-9. A bad file raises DataError
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
        bad = np.flatnonzero(labels >= defaults.NUM_CLASSES)
        if bad.size:
          raise DataError('%s: expected label bytes 0-%d, found %d in record '
                          '%d' % (path, defaults.NUM_CLASSES - 1,
                                  labels[bad[0]], first + bad[0]))
        first += labels.size
    total += size // defaults.RECORD_BYTES
  return total


def check_data_dir(data_dir):
  """Checks all six files; returns (training records, test records)."""
  return (check_record_files(data_files(data_dir)),
          check_record_files(data_files(data_dir, eval_data=True)))
