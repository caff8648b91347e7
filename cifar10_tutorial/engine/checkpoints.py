"""A run's files in its train dir: the checkpoints, the graph, the events.

    writer, checkpoint_bytes, text = start_files(graph, cfg)   # first
    snapshot = Snapshot(variables, max_to_keep=...)      # before finalize
    saves = Saves(saver, sess, train_dir, secs, steps,
                              checkpoint_bytes, snapshot)
    if saves.due(step): saves.save(step)     # then train on
    saves.check()   # between runs: says a save done, or its error
    saves.wait()    # at the end

Every file is checked for room before it is started, and a save that fails
(a full disk, a folder gone) leaves the last complete checkpoint listed
and nothing half-written: the error says which one a restart resumes from.
Which checkpoint is the newest, and what a damaged list means, is
rundir's.
"""
import glob
import logging
import os
import shutil
import threading
import time

from google.protobuf import text_format
import tensorflow.compat.v1 as tf
from tensorflow.python.training.saving import saveable_object_util

from cifar10_tutorial.core import errors
from cifar10_tutorial.engine import rundir

log = logging.getLogger('cifar10_tutorial')


def start_files(graph, cfg):
  """Opens the run's event file (with the graph, for TensorBoard) and
  starts writing graph.pbtxt in a thread (its text takes a few tenths of
  a second to make, which the first steps need not wait for), after
  checking there is room for them and a checkpoint. Returns the summary
  writer, the bytes one checkpoint takes and the thread (join it before
  the end)."""
  graph_def = tf.get_default_graph().as_graph_def()
  # A checkpoint: the saved variables, its graph (.meta), some slack.
  checkpoint_bytes = int(1.05 * sum(
      v.shape.num_elements() * v.dtype.size
      for v in graph.saved or tf.global_variables()) +
                         graph_def.ByteSize() + 1e6)
  # Before the first file: room for the graph (graph.pbtxt, the events) and
  # one checkpoint, or one line now.
  need = 3 * graph_def.ByteSize() + checkpoint_bytes
  free = shutil.disk_usage(cfg.train_dir).free
  if free < need:
    raise rundir.RunDirError(
        '%s: expected room to start a run (%.1f MB), found %.1f MB free' % (
            cfg.train_dir, need / 1e6, free / 1e6))
  text = threading.Thread(target=_write_graph_text,
                          args=(graph_def, cfg.train_dir), name='graph.pbtxt',
                          daemon=True)
  text.start()
  return (tf.summary.FileWriter(cfg.train_dir, tf.get_default_graph()),
          checkpoint_bytes, text)


def _write_graph_text(graph_def, train_dir):
  """graph.pbtxt, whole or not at all; a failure is one line (the run
  goes on: its checkpoints and events have the graph too)."""
  path = os.path.join(train_dir, 'graph.pbtxt')
  try:
    with open(path + '.tmp', 'w') as f:
      f.write(text_format.MessageToString(graph_def))
    os.replace(path + '.tmp', path)
  except OSError as e:
    log.warning('%s: not written (%s)', path,
                rundir.disk_problem(train_dir, e) or errors.reason(e))
  finally:
    if os.path.exists(path + '.tmp'):
      try:
        os.remove(path + '.tmp')
      except OSError:
        pass


def _moved(train_dir, folder, step):
  """A RunDirError if `train_dir` is no longer the run's `folder` (an
  _identity): gone, or another folder in its place; else None."""
  now = _identity(train_dir)
  if now == folder:
    return None
  if now is None:
    return _not_written(rundir.gone(train_dir), step)
  return _not_written('%s: expected the run\'s folder, found another folder '
                      'in its place (deleted or moved while the program ran)'
                      % train_dir, step)


def _not_written(problem, step):
  """`problem` (a RunDirError or its text), said of the save of `step`."""
  return rundir.RunDirError('%s; the checkpoint of step %d was not written' %
                            (problem, step))


def _identity(folder):
  """(device, inode) of `folder`, or None if it is gone."""
  try:
    info = os.stat(folder)
  except OSError:
    return None
  return info.st_dev, info.st_ino


class Snapshot(object):
  """A copy of the saved variables beside each of them, and a Saver that
  writes the copies under the variables' names: the checkpoint of a step,
  written while training goes on. Taking the copy is one short run between
  two of training (device memory to device memory); writing it, the rest
  of a save, no longer stops training (the multi-GPU trainer saves every
  1,000 steps: 2% faster with one H200, two rounds of an A/B)."""

  def __init__(self, variables, **saver_args):
    names = saveable_object_util.op_list_to_dict(
        variables, convert_variable_to_tensor=False)
    copies, takes = {}, []
    with tf.name_scope('checkpoint_copy'):
      for name, variable in sorted(names.items()):
        with tf.colocate_with(variable):
          copy = tf.Variable(
              tf.zeros(variable.shape, variable.dtype.base_dtype),
              trainable=False, collections=[tf.GraphKeys.LOCAL_VARIABLES],
              name=name)
          takes.append(copy.assign(variable).op)
        copies[name] = copy
    self.take = tf.group(*takes)
    self.saver = tf.train.Saver(copies, **saver_args)


class Saves(object):
  """Saves every `secs` seconds or every `steps` steps, and on demand; one
  line per checkpoint, so the user knows where a restart resumes.

  A save takes the `snapshot`'s copy (a Snapshot) and writes it in a
  thread while training goes on; the next save, check() and wait() say
  when it is written, or raise what stopped it. `saver`, the variables'
  own, is the one each checkpoint's .meta restores with."""

  def __init__(self, saver, sess, train_dir, secs, steps, size, snapshot):
    self._saver, self._sess = saver, sess
    self._snapshot = snapshot
    self._train_dir = train_dir
    self._prefix = os.path.join(train_dir, 'model.ckpt')
    self._secs, self.steps = secs, steps
    self._size = size   # bytes one checkpoint takes
    self._saved_step, self._saved_time = None, time.time()
    self._meta_graph = None   # the .meta's bytes, the same for every save
    self._writing = None   # a save in a thread: (thread, step, its error)
    self._folder = _identity(train_dir)   # the run's folder, not its name

  def due(self, step):
    """Whether a checkpoint is due at `step`: a multiple of `steps` was
    reached or passed (a cluster's global step can jump over one), or
    `secs` went by."""
    if self.steps:
      return step // self.steps > (self._saved_step or 0) // self.steps
    return time.time() - self._saved_time >= self._secs

  def save(self, step):
    """Saves the variables as they are at `step`: copied now, written
    while training goes on."""
    if step == self._saved_step:
      return
    self.wait()
    train_dir = self._train_dir
    moved = _moved(train_dir, self._folder, step)
    if moved:
      # Gone, or moved away and another made at its name: never write into
      # that one (another trainer may hold it).
      raise moved
    try:
      free = shutil.disk_usage(train_dir).free
    except OSError as e:   # the train dir deleted or moved under the run
      problem = rundir.disk_problem(train_dir, e)
      if problem:
        raise _not_written(problem, step)
      raise
    if free < self._size:
      # Said before TensorFlow starts a save that cannot finish.
      path, last = rundir.latest(train_dir)
      raise rundir.RunDirError(
          '%s: expected room for the checkpoint of step %d (%.1f MB), found '
          '%.1f MB free; the last complete one is %s (step %d)' % (
              train_dir, step, self._size / 1e6, free / 1e6, path, last))
    if self._meta_graph is None:
      with self._sess.graph.as_default():
        self._meta_graph = self._saver.export_meta_graph().SerializeToString()
    self._saved_step, self._saved_time = step, time.time()
    self._sess.run(self._snapshot.take)
    error = []

    def write():
      try:
        # A thread starts outside the graph, where TensorFlow 2 is eager.
        with self._sess.graph.as_default():
          self._write(step)
      except Exception as e:   # raised by the next save, check() or wait()
        error.append(e)

    thread = threading.Thread(target=write, name='checkpoint', daemon=True)
    thread.start()
    self._writing = thread, step, error

  def check(self):
    """Says a save that was written in a thread, or raises what stopped
    it; nothing while it is still being written."""
    if self._writing and not self._writing[0].is_alive():
      self.wait()

  def wait(self):
    """Waits for a save being written in a thread; says it, or raises what
    stopped it."""
    if not self._writing:
      return
    thread, step, error = self._writing
    thread.join()
    self._writing = None
    if error:
      raise error[0]
    log.info('saved checkpoint at step %d', step)

  def _write(self, step):
    """Writes the checkpoint of `step` from the snapshot, its .meta after
    it; a failure leaves the last complete checkpoint listed, and nothing
    of this one."""
    train_dir = self._train_dir
    moved = _moved(train_dir, self._folder, step)
    if moved:   # since save() was called
      raise moved
    try:
      self._snapshot.saver.save(self._sess, self._prefix, global_step=step,
                                write_meta_graph=False)
      self._write_meta_graph('%s-%d.meta' % (self._prefix, step))
    except (tf.errors.OpError, OSError, ValueError) as e:
      if isinstance(e, ValueError) and os.path.isdir(train_dir):
        raise   # not the folder gone under the save: not ours to explain
      # What a failed save leaves: its temporary folder and the unlisted
      # files of this step. Never a listed, complete checkpoint.
      name = '%s-%d' % (self._prefix, step)
      shutil.rmtree(name + '_temp', ignore_errors=True)
      if os.path.basename(name) not in [
          os.path.basename(n) for n in rundir.listed(train_dir)[0]]:
        for leftover in glob.glob(glob.escape(name) + '.*'):
          try:
            os.remove(leftover)
          except OSError:
            pass   # an immutable folder, say: the next trainer removes it
      if _identity(train_dir) != self._folder:
        # Gone under the save (TensorFlow makes the folders of the files it
        # writes: an empty one it made again is removed).
        try:
          os.rmdir(train_dir)
        except OSError:
          pass
        raise _not_written(rundir.gone(train_dir), step)
      problem = rundir.disk_problem(train_dir, e)
      if problem:
        path, last = rundir.latest(train_dir)
        raise rundir.RunDirError('%s; the checkpoint of step %d was not '
                                 'written, the last complete one is %s (step '
                                 '%d)' % (problem, step, path, last))
      raise

  def _write_meta_graph(self, path):
    """Each checkpoint's .meta, the graph that import_meta_graph rebuilds,
    as the Saver writes it. The graph is final, so it is serialized once:
    the Saver serializes it at every save (the compiled loop's graph is
    1.2 MB: about 0.1 s a save on a CPU; a whole save took about 0.23 s on
    an H200 host, a quarter of the time between two of the multi-GPU
    trainer's checkpoints, every 1,000 steps). Written after the
    checkpoint and whole or not at all, as the Saver does; the Saver
    removes it with its checkpoint."""
    try:
      with open(path + '.tmp', 'wb') as f:
        f.write(self._meta_graph)
      os.replace(path + '.tmp', path)
    finally:
      if os.path.exists(path + '.tmp'):
        os.remove(path + '.tmp')
