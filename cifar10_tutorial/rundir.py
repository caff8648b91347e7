"""A train dir: one trainer at a time, checkpoints that stay inside it, and
how the run was made.

    with rundir.locked(train_dir):    # RunDirError if another trainer has it
      path, step = rundir.resume_point(train_dir)   # newest readable checkpoint
      rundir.record_start(train_dir, settings, step, allow_changed)

TensorFlow's `checkpoint` file may hold absolute paths (older runs, runs
made with an absolute --train_dir): a copied or moved dir would then resume
from, and rotate away, another folder's checkpoints. Here every listed
checkpoint is resolved against the dir the list is in, files outside it are
never used, and the trainer rewrites the list with relative names. Eval and
TensorBoard read a locked dir as usual.
"""
import contextlib
import errno
import fcntl
import json
import logging
import os
import socket

import tensorflow.compat.v1 as tf

from cifar10_tutorial import program

log = logging.getLogger('cifar10_tutorial')
LOCK_NAME = '.lock'
CONFIG_NAME = 'config.json'


class RunDirError(RuntimeError):
  """The train dir cannot be used as asked; the message says why."""


def disk_problem(path, error):
  """A one-line RunDirError for an OSError or TensorFlow error that says
  the disk is full or read-only, else None."""
  text = str(error)
  number = getattr(error, 'errno', None)
  if number == errno.ENOSPC or 'No space left on device' in text:
    return RunDirError('%s: expected room to write, found the disk full' %
                       path)
  if number == errno.EROFS or 'Read-only file system' in text:
    return RunDirError('%s: expected a folder this program can write to, '
                       'found a read-only file system' % path)
  if number in (errno.EACCES, errno.EPERM) or 'Permission denied' in text:
    return RunDirError('%s: expected a folder this program can write to, '
                       'found no permission to write there' % path)
  return None


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


@contextlib.contextmanager
def locked(train_dir):
  """Holds `train_dir` for this process's trainer until the block ends.

  The lock is an flock on `<train_dir>/.lock`, which the kernel releases
  when the process ends however it ends, so a crash never leaves a lock
  that blocks the next run; the file names the holder's process, and a
  trainer that finds the name of one that stopped without clearing it says
  so in one line.
  """
  make(train_dir)
  path = os.path.join(train_dir, LOCK_NAME)
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
          '%s: expected no other trainer using it, found one running (%s); '
          'wait for it to finish, or use another --train_dir' %
          (train_dir, holder))
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
      yield
    finally:
      # Any stop this process lives through: nothing for the next to report.
      handle.seek(0)
      handle.truncate()
  finally:
    handle.close()


def _step(path):
  return int(path.rsplit('-', 1)[1])


def checkpoints(train_dir):
  """[(step, path)] of the checkpoints listed in train_dir, oldest first,
  every path inside train_dir: a listed path elsewhere (a copied or moved
  run's) is taken from train_dir by its file name, or left out if train_dir
  has no such checkpoint."""
  state = tf.train.get_checkpoint_state(train_dir)
  if not state:
    return []
  here = os.path.realpath(train_dir)
  found = {}
  for path in state.all_model_checkpoint_paths:
    if os.path.dirname(os.path.realpath(path)) != here:
      path = os.path.join(train_dir, os.path.basename(path))
      if not tf.io.gfile.exists(path + '.index'):
        continue
    found[_step(path)] = path
  return sorted(found.items())


def latest(train_dir):
  """(path, step) of the newest listed checkpoint in train_dir, or (None, 0)."""
  listed = checkpoints(train_dir)
  return tuple(reversed(listed[-1])) if listed else (None, 0)


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
    return program.reason(e)
  return None


def resume_point(train_dir):
  """(path, step) of the newest readable checkpoint (None, 0 for none),
  saying in one line each newer one that cannot be read. RunDirError if
  checkpoints are listed but none can be read."""
  listed = checkpoints(train_dir)
  for step, path in reversed(listed):
    reason = unreadable(path)
    if reason is None:
      return path, step
    log.warning('%s: expected a readable checkpoint, found %s; trying the '
                'one before it', path, reason)
  if listed:
    raise RunDirError('%s: expected a readable checkpoint, found none of the '
                      '%d listed readable (see above); move them away to '
                      'start a new run' % (train_dir, len(listed)))
  return None, 0


def relist(train_dir, up_to_step):
  """Rewrites train_dir's checkpoint list with names relative to it (so a
  copy or a move of the dir keeps working), ending at `up_to_step`: newer
  ones that could not be read are no longer listed (their files stay)."""
  kept = [p for s, p in checkpoints(train_dir) if s <= up_to_step]
  if kept:
    tf.train.update_checkpoint_state(
        train_dir, os.path.basename(kept[-1]),
        [os.path.basename(p) for p in kept])


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


def record_start(train_dir, settings, step, allow_changed=False):
  """Checks `settings` against the run's earlier starts and records this one.

  config.json holds the latest start's settings at the top (with
  start_step) and every earlier start under `earlier_starts`. RunDirError,
  before anything is written, if a setting in MATH differs from the last
  start's, unless `allow_changed` (then one line says what changed).
  """
  path = os.path.join(train_dir, CONFIG_NAME)
  earlier = []
  if step and os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    earlier = stored.pop('earlier_starts', []) + [stored]
    last = earlier[-1]
    changed = ['%s %s (the run has %s)' % (_LABELS[k], _show(settings.get(k)),
                                           _show(last[k]))
               for k in MATH if k in last and last[k] != settings.get(k)]
    if changed and not allow_changed:
      raise RunDirError(
          '%s: expected the settings the run was made with, found %s; run '
          'with the same settings, or add --allow_changed_settings to go on '
          'with the new ones' % (train_dir, ', '.join(changed)))
    if changed:
      log.warning('%s: going on with changed settings: %s', train_dir,
                  ', '.join(changed))
  write_json(path, dict(settings, start_step=step, earlier_starts=earlier))


def write_json(path, value):
  """Writes `value` as JSON, atomically: a temporary file, then a rename;
  the temporary file is removed if the write fails."""
  tmp = path + '.tmp'
  try:
    with open(tmp, 'w') as f:
      json.dump(value, f, indent=2, sort_keys=True)
      f.write('\n')
    os.replace(tmp, path)
  except OSError as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise disk_problem(os.path.dirname(path) or '.', e) or e
  return path
