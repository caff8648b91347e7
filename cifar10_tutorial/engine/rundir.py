"""A train dir: one trainer at a time, checkpoints that stay inside it, and
how the run was made.

    with rundir.locked(train_dir) as lock:   # RunDirError if another has it
      path, step = rundir.resume_point(train_dir)   # newest readable checkpoint
      start = rundir.check_start(train_dir, settings, step, allow_changed)
      lock.keep()                                   # checked: now write
      ...
      rundir.record_start(train_dir, start)         # once it has trained

The checkpoints of a dir are the `model.ckpt-N.index` files in it.
TensorFlow's `checkpoint` file, which lists them, is only a hint: it may be
missing, damaged or stale (a copy, a crash, a hand edit), and it may hold
absolute paths (older runs, runs made with an absolute --train_dir), which
in a copied or moved dir name another folder's files. Here every listed
checkpoint is resolved against the dir the list is in, files outside it
are never used, what is on disk counts whether listed or not, and the
trainer rewrites the list with relative names. Eval and TensorBoard read a
locked dir as usual; an eval dir has a lock of its own (one eval each).
"""
import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import re
import shutil
import socket
import tempfile

from google.protobuf import text_format
import tensorflow.compat.v1 as tf
from tensorflow.python.training import checkpoint_state_pb2

from cifar10_tutorial.core import errors

log = logging.getLogger('cifar10_tutorial')
LOCK_NAME = '.lock'
CONFIG_NAME = 'config.json'
RESULTS_NAME = 'evaluated.json'   # an eval dir's results
STATE_NAME = 'checkpoint'   # TensorFlow's list of the checkpoints
PREFIX = 'model.ckpt'
_INDEX = re.compile(r'^%s-(\d+)\.index$' % re.escape(PREFIX))
KEEP = 5   # checkpoints the trainer keeps (TensorFlow's rotation)


class RunDirError(RuntimeError):
  """The train dir cannot be used as asked; the message says why."""


def disk_problem(path, error):
  """A one-line RunDirError for an OSError or TensorFlow error that says
  the folder `path` is gone, the disk full or read-only, or a name too
  long, else None. As true of a fault in the middle of a run as at its
  start."""
  text = str(error)
  number = getattr(error, 'errno', None)
  if number == errno.ENOSPC or 'No space left on device' in text:
    return RunDirError('%s: expected room to write, found the disk full' %
                       path)
  if number == errno.EROFS or 'Read-only file system' in text:
    return RunDirError('%s: expected a folder this program can write to, '
                       'found a read-only file system' % path)
  # "Operation not permitted": an immutable folder (chattr +i), say.
  if (number in (errno.EACCES, errno.EPERM) or 'Permission denied' in text
      or 'Operation not permitted' in text):
    return RunDirError('%s: expected a folder this program can write to, '
                       'found no permission to write there' % path)
  if number == errno.ENAMETOOLONG or 'File name too long' in text:
    return RunDirError('%s: expected a path the file system takes, found a '
                       'name in it too long (at most 255 bytes a name)' %
                       _shown(path))
  # (The Saver says "Parent directory of ... doesn't exist" itself.)
  if ((number == errno.ENOENT or isinstance(error, tf.errors.NotFoundError)
       or 'No such file or directory' in text or "doesn't exist" in text)
      and path and not os.path.isdir(path)):
    return gone(path)
  return None


def gone(path):
  """The RunDirError for the folder `path` deleted or moved while the
  program ran."""
  return RunDirError('%s: expected the folder to stay where it was, found it '
                     'gone (deleted or moved while the program ran)' % path)


def _shown(path, most=120):
  """`path`, cut in the middle if longer than `most` characters."""
  return path if len(path) <= most else '%s...%s' % (path[:most // 2],
                                                      path[-most // 2:])


def make(train_dir):
  """Creates `train_dir` (and its parents); one line if it cannot be."""
  if os.path.exists(train_dir) and not os.path.isdir(train_dir):
    raise RunDirError('%s: expected a folder for the run, found a file' %
                      train_dir)
  try:
    os.makedirs(train_dir, exist_ok=True)
  except OSError as e:
    problem = disk_problem(train_dir, e)
    if problem:
      raise problem
    if isinstance(e, (FileExistsError, NotADirectoryError)):
      raise RunDirError('%s: expected a folder for the run, found a file in '
                        'its path' % train_dir)
    raise


class Lock(object):
  """What `locked` yields: `keep()` once the folder is used (see there)."""

  def __init__(self, made):
    self.made, self.kept = made, False

  def keep(self):
    self.kept = True


@contextlib.contextmanager
def locked(train_dir, role='trainer'):
  """Holds `train_dir` for this process's `role` (a trainer; an eval, for
  an eval dir) until the block ends; yields a Lock.

  The lock is an flock on `<train_dir>/.lock`, which the kernel releases
  when the process ends however it ends, so a crash never leaves a lock
  that blocks the next run; the file names the holder's process, and a
  trainer that finds the name of one that stopped without clearing it says
  so in one line. A block that raises before `keep()` (a start refused
  after its checks) leaves nothing there: the lock file and the folder
  are removed if this process made them.
  """
  made_dir = not os.path.isdir(train_dir)
  make(train_dir)
  path = os.path.join(train_dir, LOCK_NAME)
  lock = Lock(made=not os.path.exists(path))
  try:
    handle = open(path, 'a+')
  except OSError as e:
    raise disk_problem(train_dir, e) or e
  try:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or 'another process'
      raise RunDirError(
          '%s: expected no other %s using it, found one running (%s); '
          'wait for it to finish, or use another %s' %
          (train_dir, role, holder, errors.option(
              'train_dir' if role == 'trainer' else 'eval_dir')))
    handle.seek(0)
    previous = handle.read().strip()
    if previous:
      log.info('%s: taking over the lock of %s, which stopped without '
               'releasing it (crashed or killed)', train_dir, previous)
    handle.seek(0)
    handle.truncate()
    handle.write('process %d on %s' % (os.getpid(), socket.gethostname()))
    handle.flush()
    try:
      yield lock
    except BaseException:
      if lock.made and not lock.kept:
        _unmake(path, train_dir if made_dir else None)
      raise
    finally:
      # Any stop this process lives through: nothing for the next to report.
      handle.seek(0)
      handle.truncate()
  finally:
    handle.close()


def _unmake(lock_path, folder):
  """Removes the lock file (still held) and `folder` if now empty."""
  try:
    os.remove(lock_path)
    if folder:
      os.rmdir(folder)
  except OSError:
    pass


def train_dir_signs(folder):
  """What marks `folder` as a train dir (its checkpoints, config.json),
  as a list of names; [] for none."""
  signs = ['checkpoints'] if saved(folder) else []
  if os.path.isfile(os.path.join(folder, CONFIG_NAME)):
    signs.append(CONFIG_NAME)
  return signs


def check_eval_dir(eval_dir, checkpoint_dir):
  """RunDirError, before anything is written, unless `eval_dir` is a
  folder of its own: not the train dir it evaluates, nor any train dir
  (eval's events and lock would mix with a trainer's)."""
  same = os.path.realpath(eval_dir) == os.path.realpath(checkpoint_dir)
  signs = train_dir_signs(eval_dir) if os.path.isdir(eval_dir) else []
  if same or signs:
    raise RunDirError(
        '%s: expected an eval dir of its own, found %s; use another folder '
        '(%s)' % (eval_dir, 'the train dir it evaluates' if same else
                  'a train dir (%s)' % ', '.join(signs),
                  errors.option('eval_dir')))


def check_train_dir(train_dir):
  """RunDirError, before anything is written, if `train_dir` is an eval
  dir (eval's results, and no checkpoint)."""
  if (os.path.isfile(os.path.join(train_dir, RESULTS_NAME)) and
      not saved(train_dir)):
    raise RunDirError('%s: expected a train dir, found an eval dir (%s); '
                      'use another folder (%s)' % (
                          train_dir, RESULTS_NAME, errors.option('train_dir')))


def _step(path):
  return int(path.rsplit('-', 1)[1])


def listed(train_dir):
  """(the names train_dir's `checkpoint` file lists, None if it lists them
  readably, else what is wrong with it: missing, not text, not a list)."""
  path = os.path.join(train_dir, STATE_NAME)
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except FileNotFoundError:
    return [], 'no such file'
  except OSError as e:
    return [], e.strerror or str(e)
  try:
    state = text_format.Parse(raw.decode('utf-8'),
                              checkpoint_state_pb2.CheckpointState())
  except (UnicodeDecodeError, text_format.ParseError) as e:
    return [], 'not a list of checkpoints (%s)' % (
        'binary data' if isinstance(e, UnicodeDecodeError) else
        str(e).splitlines()[0])
  names = list(state.all_model_checkpoint_paths)
  if state.model_checkpoint_path and state.model_checkpoint_path not in names:
    names.append(state.model_checkpoint_path)
  if not names:
    return [], 'an empty list'
  return names, None


def saved(train_dir):
  """[(step, path)] of the checkpoints in train_dir, oldest first: every
  `model.ckpt-N.index` there, listed in its `checkpoint` file or not, and
  the listed ones with other names that are there. A listed path elsewhere
  (a copied or moved run's) is taken from train_dir by its file name, or
  left out if train_dir has no such checkpoint."""
  found = {}
  names, _ = listed(train_dir)
  for path in names:
    path = os.path.join(train_dir, os.path.basename(path))
    try:
      step = _step(path)
    except ValueError:
      continue
    if tf.io.gfile.exists(path + '.index'):
      found[step] = path
  try:
    files = os.listdir(train_dir)
  except OSError:
    files = []
  for name in files:
    match = _INDEX.match(name)
    if match:
      found.setdefault(int(match.group(1)),
                       os.path.join(train_dir, name[:-len('.index')]))
  return sorted(found.items())


def latest(train_dir):
  """(path, step) of the newest checkpoint in train_dir, or (None, 0)."""
  found = saved(train_dir)
  return tuple(reversed(found[-1])) if found else (None, 0)


def check_list(train_dir):
  """One line, if train_dir's `checkpoint` file does not list what is
  there (missing, damaged, naming files that are gone): the checkpoints on
  disk are used instead. Returns whether the list needs rewriting."""
  found = saved(train_dir)
  if not found:
    return False
  names, problem = listed(train_dir)
  here = {os.path.basename(p) for _, p in found}
  gone = sorted({os.path.basename(n) for n in names} - here)
  if problem is None and not gone:
    return False
  log.warning('%s: expected the list of its checkpoints, found %s; using '
              'the %d checkpoint%s there (the newest: step %d)', os.path.join(
                  train_dir, STATE_NAME), problem or 'it names %s, which %s '
              'not there' % (', '.join(gone), 'is' if len(gone) == 1 else
                             'are'), len(found), '' if len(found) == 1
              else 's', found[-1][0])
  return True


def remove_leftovers(train_dir):
  """Removes what saves cut short left in train_dir (the trainer holds
  its lock): `model.ckpt-N_temp` folders, a graph's `.meta.tmp` or a
  `graph.pbtxt.tmp` (see checkpoints.py), and data files of a step with no index (never a
  checkpoint that can be read). One line if any."""
  steps = {s for s, _ in saved(train_dir)}
  gone = []
  for path in glob.glob(os.path.join(glob.escape(train_dir),
                                     PREFIX + '-*_temp*')):
    shutil.rmtree(path, ignore_errors=True)
    gone.append(os.path.basename(path))
  for path in glob.glob(os.path.join(glob.escape(train_dir),
                                     'graph.pbtxt.tmp')):
    os.remove(path)
    gone.append(os.path.basename(path))
  for path in glob.glob(os.path.join(glob.escape(train_dir),
                                     PREFIX + '-*.meta.tmp')):
    os.remove(path)
    gone.append(os.path.basename(path))
  for path in glob.glob(os.path.join(glob.escape(train_dir),
                                     PREFIX + '-*.data-*')):
    match = re.match(r'^%s-(\d+)\.data-' % re.escape(PREFIX),
                     os.path.basename(path))
    if match and int(match.group(1)) not in steps:
      os.remove(path)
      gone.append(os.path.basename(path))
  if gone:
    log.info('%s: removed what a save cut short left: %s', train_dir,
             ', '.join(sorted(gone)))


def unreadable(path):
  """Why the checkpoint at `path` cannot be restored, or None. Reads every
  tensor, so a file's checksums are checked, not just its index."""
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:   # pylint: disable=broad-except
    # Whatever the reader raises is the answer: a truncated file gives an
    # IndexError ('Read less bytes than requested'), a bad checksum a
    # DataLossError, a missing file a NotFoundError.
    return errors.reason(e)
  return None


def resume_point(train_dir):
  """(path, step) of the newest readable checkpoint (None, 0 for none),
  saying in one line each newer one that cannot be read. RunDirError if
  there are checkpoints but none can be read: a dir with checkpoints is
  never started over."""
  found = saved(train_dir)
  for step, path in reversed(found):
    reason = unreadable(path)
    if reason is None:
      return path, step
    log.warning('%s: expected a readable checkpoint, found %s; trying the '
                'one before it', path, reason)
  if found:
    raise RunDirError('%s: expected a readable checkpoint, found none of the '
                      '%d there readable (see above); move them away to '
                      'start a new run' % (train_dir, len(found)))
  return None, 0


def relist(train_dir, up_to_step):
  """Rewrites train_dir's checkpoint list with names relative to it (so a
  copy or a move of the dir keeps working): the newest KEEP up to
  `up_to_step`, the ones TensorFlow's rotation may remove. Newer ones that
  could not be read, and older ones, are not listed (their files stay).
  Returns the listed paths."""
  kept = [p for s, p in saved(train_dir) if s <= up_to_step][-KEEP:]
  if kept:
    tf.train.update_checkpoint_state(
        train_dir, os.path.basename(kept[-1]),
        [os.path.basename(p) for p in kept])
  return kept


# Settings that change the math of a run: resuming with others is refused
# unless asked for.
MATH = ('examples_per_step', 'lr_decay_steps', 'precision',
        'training_records', 'data')


_LABELS = {'examples_per_step': 'examples per step',
           'lr_decay_steps': 'steps between learning-rate decays',
           'precision': '--precision', 'training_records': 'training records',
           'data': 'data (by fingerprint)'}


def _show(value):
  return format(value, ',') if isinstance(value, int) else str(value)


def check_start(train_dir, settings, step, allow_changed=False):
  """Checks `settings` against the run's earlier starts; returns what
  config.json will hold once this start has trained (record_start).

  config.json holds the latest start's settings at the top (with
  start_step) and every earlier start under `earlier_starts`. RunDirError
  if a setting in MATH differs from the last start's, unless
  `allow_changed` (then one line says what changed). Writes nothing.
  """
  path = os.path.join(train_dir, CONFIG_NAME)
  earlier = []
  what = 'the settings of each start of the run'
  missing = object()
  try:
    stored = read_json(path, what, missing) if step else missing
    if stored is not missing:
      _check_starts(path, what, stored)
  except RunDirError as e:
    raise RunDirError('%s; move it away to resume without checking the '
                      'settings' % e)
  if stored is not missing:
    earlier = stored.pop('earlier_starts') + [stored]
    last = earlier[-1]
    changed = ['%s %s (the run has %s)' % (_LABELS[k], _show(settings.get(k)),
                                           _show(last[k]))
               for k in MATH if k in last and last[k] != settings.get(k)]
    if changed and not allow_changed:
      raise RunDirError(
          '%s: expected the settings the run was made with, found %s; run '
          'with the same settings, or add %s to go on '
          'with the new ones' % (train_dir, ', '.join(changed),
                                  errors.option('allow_changed_settings')))
    if changed:
      log.warning('%s: going on with changed settings: %s', train_dir,
                  ', '.join(changed))
  return dict(settings, start_step=step, earlier_starts=earlier)


def _check_starts(path, what, stored):
  """RunDirError unless `stored` is what record_start writes: an object of
  settings whose `earlier_starts` is a list of such objects."""
  starts = stored.get('earlier_starts') if isinstance(stored, dict) else None
  if not (isinstance(starts, list) and
          all(isinstance(s, dict) for s in starts)):
    raise RunDirError('%s: expected %s (an object with its earlier_starts), '
                      'found %s' % (path, what, _kind(stored)))


def _kind(value):
  if isinstance(value, dict):
    return 'an object without a list of earlier starts'
  return {list: 'a list', str: 'a string', type(None): 'null', bool:
          'true or false'}.get(type(value), 'a number')


def record_start(train_dir, start):
  """Writes a start that check_start accepted into config.json: once it
  has trained, so a start refused or stopped before its first step is
  never taken for the run's settings."""
  write_json(os.path.join(train_dir, CONFIG_NAME), start)


def write_json(path, value):
  """Writes `value` as JSON, atomically: a temporary file of its own (two
  writers never share one), then a rename; the temporary file is removed
  if the write fails."""
  folder = os.path.dirname(path) or '.'
  tmp = None
  try:
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path)
                                   + '.', suffix='.tmp')
    with os.fdopen(handle, 'w') as f:
      json.dump(value, f, indent=2, sort_keys=True)
      f.write('\n')
    os.replace(tmp, path)
  except OSError as e:
    if tmp and os.path.exists(tmp):
      os.remove(tmp)
    raise disk_problem(folder, e) or e
  return path


def read_json(path, what, default):
  """The JSON value in `path` (`default` if there is no such file);
  RunDirError in one line if it is not JSON."""
  try:
    with open(path, 'rb') as f:
      return json.loads(f.read().decode('utf-8'))
  except FileNotFoundError:
    return default
  except OSError as e:   # a folder of that name, no permission to read ...
    raise RunDirError('%s: expected %s in a file, found %s' % (
        path, what, 'a folder' if os.path.isdir(path) else
        (e.strerror or str(e)).lower()))
  except (ValueError, UnicodeDecodeError, RecursionError) as e:
    raise RunDirError('%s: expected %s as JSON, found %s' % (
        path, what, 'binary data' if isinstance(e, UnicodeDecodeError)
        else 'a damaged file (%s)' % errors.reason(e)))
