"""Gets the CIFAR-10 binary batches into --data_dir (what `make data` runs).

    python -m cifar10_tutorial.tools.cifar10_data --data_dir data
    python -m cifar10_tutorial.tools.cifar10_data --archive ~/cifar-10-binary.tar.gz

An existing `<data_dir>/cifar-10-batches-bin` is checked and used as it is.
Otherwise the official `cifar-10-binary.tar.gz` is downloaded (with a
progress display) and its md5 checked, or --archive names a local copy,
which may legitimately have another md5 and is checked for structure
instead: the six record files, each a whole number of 3,073-byte records
with labels 0-9. Extraction goes to a temporary folder that is renamed into
place only once it checks out, so an interrupted or bad extraction never
leaves a half-written data set. A download that fails its md5 is removed.
"""
if __name__ == '__main__':
  from cifar10_tutorial.core import stopping
  stopping.quiet_until_handled()   # a Ctrl-C while starting: no traceback

import contextlib
import fcntl
import glob
import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')
DataError = records.DataError
_ALL_FILES = defaults.TRAIN_FILES + defaults.TEST_FILES


def md5sum(path):
  digest = hashlib.md5()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


class _Progress(object):
  """"downloading 45.2 / 170.1 MB (27%)": in place on a terminal, else a
  plain line at each 10% (and at the end)."""

  def __init__(self, total, stream=None):
    self._total, self._stream = total, stream or sys.stderr
    self._tty = self._stream.isatty()
    self._last_shown, self._last_decile = 0.0, -1

  def update(self, done, final=False):
    pct = int(100 * done / self._total) if self._total else 0
    text = 'downloading %.1f / %s MB (%s)' % (
        done / 1e6, '%.1f' % (self._total / 1e6) if self._total else '?',
        '%d%%' % pct if self._total else '...')
    if self._tty:
      if not final and time.time() - self._last_shown < 0.2:
        return
      self._stream.write('\r' + text + ('\n' if final else ''))
      self._last_shown = time.time()
    else:
      decile = 10 if final else pct // 10
      if decile <= self._last_decile:
        return
      self._stream.write(text + '\n')
      self._last_decile = decile
    self._stream.flush()


def download(url, dest):
  """Downloads url to dest via dest.part, so dest is only ever complete."""
  part = dest + '.part'
  try:
    with urllib.request.urlopen(url, timeout=60) as response, \
        open(part, 'wb') as out:
      total = int(response.headers.get('Content-Length') or 0)
      progress, done = _Progress(total), 0
      for block in iter(lambda: response.read(1 << 16), b''):
        out.write(block)
        done += len(block)
        progress.update(done)
      progress.update(done, final=True)
    os.replace(part, dest)
  except (urllib.error.URLError, OSError) as e:
    reason = getattr(e, 'reason', e)
    raise DataError(
        '%s: download failed (%s). If this machine is offline, fetch %s '
        'elsewhere and run `make data CIFAR10_ARCHIVE=/path/to/%s`' %
        (url, reason, defaults.ARCHIVE_NAME, defaults.ARCHIVE_NAME))
  finally:   # also on Ctrl-C: no half-downloaded file is ever left
    if os.path.exists(part):
      os.remove(part)


def extract(archive, data_dir):
  """Extracts and checks the batches; renames them into place when good."""
  target = os.path.join(data_dir, defaults.BATCHES_DIR)
  tmp = tempfile.mkdtemp(prefix='.extracting-', dir=data_dir)
  try:
    try:
      with tarfile.open(archive, 'r:*') as tar:
        members = [m for m in tar.getmembers() if m.isfile() and
                   os.path.dirname(m.name) == defaults.BATCHES_DIR]
        tar.extractall(tmp, members=members, filter='data')
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
      raise DataError('%s: expected a complete .tar.gz archive, found a '
                      'corrupt or truncated one (%s)' % (archive, e))
    folder = os.path.join(tmp, defaults.BATCHES_DIR)
    missing = [n for n in _ALL_FILES
               if not os.path.isfile(os.path.join(folder, n))]
    if missing:
      raise DataError('%s: expected %s/ with %s, found it without %s' %
                      (archive, defaults.BATCHES_DIR, ', '.join(_ALL_FILES),
                       ', '.join(missing)))
    try:
      train, test = records.check_data_dir(folder)
    except DataError as e:
      # Name the file as it is in the archive: the folder it was checked in
      # is gone once this returns.
      raise DataError(str(e).replace(folder + os.sep, '%s: %s/' % (
          archive, defaults.BATCHES_DIR)))
    os.rename(folder, target)
    return train, test
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _locked(data_dir):
  """One preparer at a time: `make train` and `make eval` may start together."""
  with open(os.path.join(data_dir, '.prepare.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    yield


def prepare(data_dir, archive=None, url=defaults.DATA_URL,
            md5=defaults.ARCHIVE_MD5):
  """Makes sure <data_dir>/cifar-10-batches-bin is there and sound."""
  os.makedirs(data_dir, exist_ok=True)
  with _locked(data_dir):
    return _prepare(data_dir, archive, url, md5)


def _remove_leftovers(data_dir):
  """Extraction folders of a `make data` that was killed (under the lock,
  so none of them is in use)."""
  for leftover in glob.glob(os.path.join(glob.escape(data_dir),
                                         '.extracting-*')):
    shutil.rmtree(leftover, ignore_errors=True)
    log.info('removed %s, left by an extraction that was cut short',
             leftover)


def _prepare(data_dir, archive, url, md5):
  _remove_leftovers(data_dir)
  target = os.path.join(data_dir, defaults.BATCHES_DIR)
  existing = records.batches_dir(data_dir)   # or data_dir itself
  if os.path.isdir(existing):
    train, test = records.check_data_dir(data_dir)
    log.info('using %s (%d training, %d test records)', existing, train, test)
    return existing
  if archive:
    if os.path.isdir(archive):
      raise DataError('%s: expected a cifar-10-binary.tar.gz archive, found '
                      'a folder (for an extracted copy, give its parent '
                      'folder as DATA_DIR)' % archive)
    if not os.path.isfile(archive):
      raise DataError('%s: expected a cifar-10-binary.tar.gz archive, found '
                      'no such file' % archive)
    log.info('using the local archive %s (checking its structure, since a '
             'local copy may differ from the official md5)', archive)
  else:
    archive = os.path.join(data_dir, defaults.ARCHIVE_NAME)
    downloaded = not os.path.isfile(archive)
    if downloaded:
      log.info('downloading %s', url)
      download(url, archive)
    found = md5sum(archive)
    if found != md5:
      if downloaded:
        os.remove(archive)
      raise DataError(
          '%s: expected md5 %s, found %s (%s)' %
          (archive, md5, found, 'removed it; run `make data` again' if
           downloaded else 'for a local copy, use CIFAR10_ARCHIVE=%s' %
           archive))
  train, test = extract(archive, data_dir)
  log.info('extracted %s (%d training, %d test records)', target, train, test)
  return target


def _prepare_from_flags(cfg):
  prepare(cfg.data_dir, cfg.archive or os.environ.get('CIFAR10_ARCHIVE'),
          cfg.url, cfg.md5)


def main(argv=None):
  return program.main('cifar10_data', __doc__, _prepare_from_flags, argv,
                      on_signal='make data stopped; nothing half-written '
                      'was kept', timestamps=False)


if __name__ == '__main__':
  sys.exit(main())
