"""Turns folders of labelled images into the binary batches (`make convert`).

    python -m cifar10_tutorial.own_images.convert --src my_images --out data_mine
    make train DATA_DIR=data_mine

--src holds train/<class>/* and test/<class>/* (a folder, or a .zip or
.tar.gz of one, with or without one top folder). Each image (JPEG, PNG,
GIF, BMP) is resized to 32x32 and becomes a record of the official layout;
the records are shuffled with a fixed seed and written as
OUT/cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin and
batches.meta.txt (the class names, sorted), so the whole pipeline trains,
evaluates and predicts on them unchanged. Everything is written into a
temporary folder renamed into place at the end: an interrupted conversion
leaves nothing half-written, and what a killed one left (its temporary
folders name its process) is removed by the next. A file that is not an
image is skipped, with a line naming it, and counted. A class folder whose
name cannot be one line of batches.meta.txt (a newline or another control
character in it) is refused, named.
"""
if __name__ == '__main__':
  from cifar10_tutorial.shell import quiet
  quiet.install(program='convert', doc=__doc__)   # --help before TensorFlow

import contextlib
import errno
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.own_images import images
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')
DataError = records.DataError
SPLITS = ('train', 'test')


SCRATCH = 'cifar10-convert-'   # in the system's temporary folder
CONVERTING = '.converting-'    # in OUT


def _remove_stale(folder, prefix):
  """Removes the temporary folders `prefix`<pid>-* in `folder` whose
  process is no longer running (a conversion killed with `kill -9`)."""
  pattern = re.compile(r'^%s(\d+)-' % re.escape(prefix))
  try:
    names = os.listdir(folder)
  except OSError:
    return
  for name in names:
    match = pattern.match(name)
    if not match or int(match.group(1)) == os.getpid():
      continue
    try:
      os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
      shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    except OSError:
      pass   # running, as another user


def _scratch(folder, prefix):
  """A new temporary folder in `folder` whose name holds this process's id
  (so that a later conversion can tell it was left behind)."""
  return tempfile.mkdtemp(prefix='%s%d-' % (prefix, os.getpid()), dir=folder)


@contextlib.contextmanager
def _opened(src):
  """The folder holding train/ and test/: `src` itself, or where a .zip or
  .tar.gz of it was extracted (removed afterwards)."""
  if os.path.isdir(src):
    yield _root(src, src)
    return
  if not os.path.isfile(src):
    raise DataError('%s: expected a folder, .zip or .tar.gz of images, '
                    'found no such file or folder' % src)
  temp = tempfile.gettempdir()
  try:
    scratch = _scratch(temp, SCRATCH)
  except OSError as e:
    raise DataError('%s: expected a folder to unpack %s into (TMPDIR), found '
                    '%s' % (temp, src, _os_reason(e)))
  try:
    try:
      if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as z:
          z.extractall(scratch)
      else:
        with tarfile.open(src, 'r:*') as tar:
          tar.extractall(scratch, filter='data')
    except OSError as e:
      where = str(e.filename or '')
      if e.errno in (errno.ENOSPC, errno.EDQUOT) or where.startswith(scratch):
        # The disk, not the archive: say which folder and what to do.
        raise DataError('%s: expected room to unpack %s (TMPDIR), found %s; '
                        'set TMPDIR to a folder with room' % (
                            temp, src, _os_reason(e)))
      if where == src:
        raise DataError('%s: expected an archive this program can read, '
                        'found %s' % (src, _os_reason(e)))
      raise _not_an_archive(src, e)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
      raise _not_an_archive(src, e)
    yield _root(scratch, src)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def _os_reason(error):
  return {errno.ENOSPC: 'the disk full', errno.EDQUOT: 'the quota used up',
          errno.EROFS: 'a read-only file system'}.get(
              error.errno, (error.strerror or str(error)).lower())


def _not_an_archive(src, error):
  # tarfile's reason lists every compression it tried, a line each.
  why = str(error).splitlines()[0].rstrip(':') if str(error) else type(
      error).__name__
  return DataError('%s: expected a folder, .zip or .tar.gz of images, found '
                   'a file that is none of them (%s)' % (src, why))


def _root(folder, src):
  """`folder`, or its one subfolder, if that is what holds train/."""
  for candidate in [folder] + [os.path.join(folder, n)
                               for n in sorted(os.listdir(folder))]:
    if os.path.isdir(os.path.join(candidate, 'train')):
      return candidate
  raise DataError('%s: expected train/<class>/ and test/<class>/ folders of '
                  'images, found no train/ folder' % src)


def _classes(root, src):
  """The class names: train/'s subfolders, sorted. Every class needs
  training images; test/ may not name other classes."""
  found = {}
  for split in SPLITS:
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
      raise DataError('%s: expected a %s/ folder beside train/, found none' %
                      (src, split))
    found[split] = sorted(n for n in os.listdir(folder)
                          if os.path.isdir(os.path.join(folder, n)))
  for split in SPLITS:
    for name in found[split]:
      if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DataError('%s: expected class folder names that fit on one '
                        'line of %s, found %s/%r (a control character in '
                        'it); rename the folder' % (src, defaults.META_FILE,
                                                    split, name))
  names = found['train']
  if not names:
    raise DataError('%s: expected one folder of images per class in train/, '
                    'found none' % src)
  if len(names) > defaults.MAX_CLASSES:
    raise DataError('%s: expected at most %d classes (a record\'s label is '
                    'one byte), found %d' % (src, defaults.MAX_CLASSES,
                                             len(names)))
  strangers = sorted(set(found['test']) - set(names))
  if strangers:
    raise DataError('%s: expected test/ to use the classes of train/, found '
                    'also %s' % (src, ', '.join(strangers)))
  return names


def _read(root, split, names, src, decode):
  """(pixels [n, 32, 32, 3], labels [n]) of a split; the bad files."""
  pixels, labels, bad = [], [], []
  for label, name in enumerate(names):
    folder = os.path.join(root, split, name)
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                   if os.path.isfile(os.path.join(folder, n))) \
        if os.path.isdir(folder) else []
    if split == 'train' and not files:
      raise DataError('%s: expected images in train/%s/, found an empty '
                      'class' % (src, name))
    got, good, failed = images.decode_all(files, decode)
    for error in failed:
      # Named as they are in --src, not in the scratch folder.
      text = str(error).replace(root + os.sep, src.rstrip(os.sep) + ': ', 1)
      log.info('skipped %s', text)
    if split == 'train' and not good:
      raise DataError('%s: expected images in train/%s/, found none that '
                      'decode' % (src, name))
    pixels.append(got)
    labels += [label] * len(good)
    bad += failed
  return np.concatenate(pixels), np.array(labels, np.uint8), bad


def convert(src, out, seed=0):
  """Writes OUT/cifar-10-batches-bin from `src`; returns (training records,
  test records, class names, skipped files)."""
  target = os.path.join(out, defaults.BATCHES_DIR)
  if os.path.exists(target):
    raise DataError('%s: expected a place for new batches, found batches '
                    'there already (move them, or choose another OUT)' %
                    target)
  _remove_stale(tempfile.gettempdir(), SCRATCH)
  _remove_stale(out, CONVERTING)
  decode = images.Decoder()
  with _opened(src) as root:
    names = _classes(root, src)
    data = {split: _read(root, split, names, src, decode) for split in SPLITS}
  train, test = data['train'], data['test']
  if len(train[1]) < len(defaults.TRAIN_FILES):
    raise DataError('%s: expected at least %d training images (one per '
                    'training file), found %d' % (
                        src, len(defaults.TRAIN_FILES), len(train[1])))
  if not len(test[1]):
    raise DataError('%s: expected test images in test/<class>/, found none' %
                    src)
  os.makedirs(out, exist_ok=True)
  tmp = _scratch(out, CONVERTING)
  try:
    folder = os.path.join(tmp, defaults.BATCHES_DIR)
    os.makedirs(folder)
    rng = np.random.RandomState(seed)
    for split, files in (('train', defaults.TRAIN_FILES),
                         ('test', defaults.TEST_FILES)):
      pixels, labels, _ = data[split]
      order = rng.permutation(len(labels))
      for name, part in zip(files, np.array_split(order, len(files))):
        with open(os.path.join(folder, name), 'wb') as f:
          f.write(records.encode(pixels[part], labels[part]))
    with open(os.path.join(folder, defaults.META_FILE), 'w') as f:
      f.write(''.join(name + '\n' for name in names))
    os.rename(folder, target)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return len(train[1]), len(test[1]), names, train[2] + test[2]


def _convert(cfg):
  train, test, names, skipped = convert(cfg.src, cfg.out, cfg.seed)
  log.info('wrote %s: %d training and %d test images of %d classes (%s); '
           'skipped %d file%s that did not decode', os.path.join(
               cfg.out, defaults.BATCHES_DIR), train, test, len(names),
           ', '.join(names), len(skipped), '' if len(skipped) == 1 else 's')


def main(argv=None):
  return program.main('convert', __doc__, _convert, argv,
                      on_signal='make convert stopped; nothing half-written '
                      'was kept', timestamps=False)


if __name__ == '__main__':
  sys.exit(main())
