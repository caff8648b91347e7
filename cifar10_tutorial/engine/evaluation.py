"""Evaluation: top-1 accuracy of checkpoints' moving-average weights.

    graph = EvalGraph(cfg)                  # the network over one pass of data
    result = graph.run(checkpoint_path)     # precision @ 1, confusion matrix
    evaluate_once(cfg)                      # the latest checkpoint, once
    watch(cfg)                              # each new checkpoint, forever

Each step is evaluated once, also across restarts: the results already in
--eval_dir are read back first. A checkpoint that disappears before it is
read (the trainer keeps only the latest five) is skipped; one that cannot
be read yet is retried, MAX_TRIES times. "Precision @ 1" is the tutorial's
name for top-1 accuracy, and stays the TensorBoard tag.
"""
import collections
import contextlib
import io
import logging
import os
import struct
import time

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors
from cifar10_tutorial.core import progress
from cifar10_tutorial.core import records
from cifar10_tutorial.core import summaries
from cifar10_tutorial.engine import rundir

log = logging.getLogger('cifar10_tutorial')

Result = collections.namedtuple('Result', ['precision_at_1', 'confusion'])
MAX_TRIES = 3


class CheckpointError(RuntimeError):
  """A checkpoint that could not be restored (gone, or not readable yet)."""


class EvalGraph(object):
  """The eval network over one pass of the eval data, and its restorer."""

  def __init__(self, cfg):
    self.graph = tf.Graph()
    with self.graph.as_default():
      queue = cifar10_input.eval_queue(cfg.data_dir, cfg.batch_size,
                                       eval_data=cfg.eval_data == 'test',
                                       pipeline=cfg.input_pipeline)
      self.num_examples = cfg.num_examples or queue.num_records
      # What a result depends on besides the checkpoint.
      files = records.data_files(cfg.data_dir, cfg.eval_data == 'test')
      self.settings = {'eval_data': cfg.eval_data,
                       'examples': self.num_examples,
                       'data': records.fingerprint(files)}
      if self.num_examples > queue.num_records:
        raise records.DataError(
            '%s: --num_examples %d is more than the %d records there' %
            (cfg.data_dir, self.num_examples, queue.num_records))
      images, labels = queue.dequeue(cfg.batch_size)
      self.class_names = queue.class_names
      self._data_dir = cfg.data_dir
      model = cifar10.inference(images, lrn=cfg.lrn, precision=cfg.precision,
                                num_classes=len(self.class_names))
      # Precision @ 1 as the tutorial computes it; argmax for the confusion
      # matrix (they differ only on exact ties of the top logits).
      self.fetches = [tf.nn.in_top_k(model.logits, labels, 1),
                      tf.argmax(model.logits, 1), labels]
      self.saver = tf.train.Saver(cifar10.restore_map(model.variables))
      self.init = tf.local_variables_initializer()   # the one-pass counter
    self.graph.finalize()
    if cfg.eval_device == 'cpu':
      # No GPU at all: eval must not take memory from a trainer beside it.
      self.config = tf.ConfigProto(device_count={'GPU': 0})
    else:
      self.config = tf.ConfigProto(allow_soft_placement=True)

  def run(self, checkpoint_path):
    """Precision @ 1 and the confusion matrix [true class, predicted class]
    of the checkpoint's shadow weights on exactly num_examples."""
    with tf.Session(graph=self.graph, config=self.config) as sess:
      sess.run(self.init)
      try:
        cifar10.check_classes(checkpoint_path, self.class_names,
                              self._data_dir)
        self.saver.restore(sess, checkpoint_path)
      except cifar10.ClassCountError:
        raise   # not a checkpoint that is not readable yet: never will be
      except (ValueError, tf.errors.OpError) as e:
        raise CheckpointError(rundir.unreadable(checkpoint_path) or
                              errors.reason(e))
      coord = tf.train.Coordinator()
      threads = tf.train.start_queue_runners(sess, coord)
      true_count = counted = 0
      confusion = np.zeros([len(self.class_names)] * 2, np.int64)
      live = progress.live_line()
      try:
        while counted < self.num_examples:
          correct, predicted, labels = sess.run(self.fetches)
          # The last batch may overshoot --num_examples: count only up to it.
          keep = self.num_examples - counted
          correct, predicted, labels = (correct[:keep], predicted[:keep],
                                        labels[:keep])
          true_count += int(np.sum(correct))
          np.add.at(confusion, (labels, predicted), 1)
          counted += len(correct)
          live.show('evaluating %s: %d/%d examples' % (
              os.path.basename(checkpoint_path), counted, self.num_examples))
      except tf.errors.OutOfRangeError:
        pass
      finally:
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=10)
    if counted != self.num_examples:
      raise records.DataError('expected %d eval examples, read %d' %
                                    (self.num_examples, counted))
    return Result(true_count / float(counted), confusion)


def confusion_png(confusion, class_names=defaults.CLASS_NAMES):
  """The confusion matrix as a PNG: true class down, predicted across."""
  import matplotlib   # only eval draws; training never imports it
  matplotlib.use('Agg')
  from matplotlib import pyplot
  figure, axes = pyplot.subplots(figsize=(6.5, 6), dpi=80)
  axes.imshow(confusion, cmap='Blues')
  ticks = np.arange(len(class_names))
  axes.set_xticks(ticks, class_names, rotation=45, ha='right')
  axes.set_yticks(ticks, class_names)
  axes.set_xlabel('predicted')
  axes.set_ylabel('true')
  for (true, predicted), count in np.ndenumerate(confusion):
    axes.text(predicted, true, str(count), ha='center', va='center',
              fontsize=7, color='white' if count > confusion.max() / 2
              else 'black')
  figure.tight_layout()
  out = io.BytesIO()
  figure.savefig(out, format='png')
  pyplot.close(figure)
  return out.getvalue()


def result_summary(result, class_names=defaults.CLASS_NAMES):
  """Precision @ 1, precision @ 1 of each class, the confusion image."""
  per_class = (np.diag(result.confusion) /
               np.maximum(result.confusion.sum(axis=1), 1))
  values = [tf.Summary.Value(tag=summaries.PRECISION_TAG,
                             simple_value=result.precision_at_1)]
  values += [tf.Summary.Value(tag='per_class_precision/' + name,
                              simple_value=p)
             for name, p in zip(class_names, per_class)]
  png = confusion_png(result.confusion, class_names)
  height, width = _png_size(png)
  values.append(tf.Summary.Value(tag='confusion_matrix', image=tf.Summary.Image(
      encoded_image_string=png, height=height, width=width, colorspace=4)))
  return tf.Summary(value=values)


def _png_size(png):
  """(height, width) from a PNG's header."""
  width, height = struct.unpack('>II', png[16:24])
  return height, width


RESULTS_NAME = rundir.RESULTS_NAME


def _stored(eval_dir):
  """Every result in eval_dir's results file ([] if there is none). A
  damaged one is set aside (kept as <name>.damaged), in one line: its
  results are evaluated again."""
  path = os.path.join(eval_dir, RESULTS_NAME)
  try:
    stored = rundir.read_json(path, 'eval results', [])
    if not isinstance(stored, list):
      raise rundir.RunDirError('%s: expected a list of eval results, found '
                               '%s' % (path, type(stored).__name__))
    return stored
  except rundir.RunDirError as e:
    os.replace(path, path + '.damaged')
    log.warning('%s; kept it as %s and evaluating again', e,
                RESULTS_NAME + '.damaged')
    return []


def written_results(eval_dir, settings):
  """{step: precision @ 1} that earlier evals wrote to eval_dir with these
  `settings` (which data, how many examples): a result of 300 examples, or
  of the training set, is not the 10,000-image test result of its step."""
  return {r['step']: r['precision_at_1'] for r in _stored(eval_dir)
          if isinstance(r, dict) and r.get('settings') == settings}


def _remember(eval_dir, settings, step, precision_at_1):
  """Adds one result, with the settings that produced it, to eval_dir's
  results file (rewritten atomically)."""
  stored = _stored(eval_dir) + [{'step': step,
                                 'precision_at_1': precision_at_1,
                                 'settings': settings}]
  rundir.write_json(os.path.join(eval_dir, RESULTS_NAME), stored)


def _report(step, precision_at_1, note):
  log.info('step %d: precision @ 1 = %.3f (%s)', step, precision_at_1, note)


@contextlib.contextmanager
def _summary_writer(graph, eval_dir):
  with graph.graph.as_default():   # the v1 writer refuses eager mode
    writer = tf.summary.FileWriter(eval_dir)
  try:
    yield writer
  finally:
    writer.close()


def _evaluate(graph, writer, results, step, path, tries):
  """Evaluates one checkpoint into `results` and the summaries.

  Returns True when done with it (evaluated, gone, or given up on after
  MAX_TRIES), False when it could not be read yet and is worth a retry.
  """
  started = time.time()
  try:
    result = graph.run(path)
  except CheckpointError as e:
    tries[step] += 1
    if not tf.io.gfile.exists(path + '.index'):
      log.info('step %d: %s is gone (rotated away by the trainer?); '
               'skipping it', step, path)
      return True
    if tries[step] >= MAX_TRIES:
      log.error('step %d: could not read %s in %d tries (%s); skipping it',
                step, path, tries[step], e)
      return True
    log.info('step %d: could not read %s yet (%s); will retry', step, path,
             e)
    return False
  results[step] = result.precision_at_1
  _remember(writer.get_logdir(), graph.settings, step, result.precision_at_1)
  _report(step, result.precision_at_1, '%d examples, %.1f s' % (
      graph.num_examples, time.time() - started))
  writer.add_summary(result_summary(result, graph.class_names), step)
  writer.flush()
  return True


def evaluate_once(cfg):
  """Evaluates the newest checkpoint, unless --eval_dir already has its
  step; one that cannot be read is said in one line and the one before it
  is tried, as the trainer does.

  Returns {step: precision @ 1}, or {} when there was nothing to evaluate
  or none could be read.
  """
  if not os.path.isdir(cfg.checkpoint_dir):
    log.error('error: %s: expected a train dir with checkpoints, found no '
              'such folder', cfg.checkpoint_dir)
    return {}
  found = rundir.saved(cfg.checkpoint_dir)
  if not found:
    log.error('error: no checkpoint in %s', cfg.checkpoint_dir)
    return {}
  rundir.check_eval_dir(cfg.eval_dir, cfg.checkpoint_dir)
  graph = EvalGraph(cfg)   # checks the data first
  with rundir.locked(cfg.eval_dir, role='eval'):
    results = written_results(cfg.eval_dir, graph.settings)
    tries = collections.Counter()
    with _summary_writer(graph, cfg.eval_dir) as writer:
      for step, path in reversed(found):
        if step in results:
          _report(step, results[step], 'already in %s' % cfg.eval_dir)
          return {step: results[step]}
        # Retried (soon) while it is there and not yet readable.
        while (step, path) in rundir.saved(cfg.checkpoint_dir):
          if _evaluate(graph, writer, results, step, path, tries):
            break
          time.sleep(1)
        if step in results:
          return {step: results[step]}
        log.info('step %d: trying the checkpoint before it', step)
  return {}


def watch(cfg):
  """Evaluates each new checkpoint in --checkpoint_dir, until stopped.

  Looks every --eval_interval_secs; says once when it starts waiting (and
  whether the folder is there at all).
  """
  rundir.check_eval_dir(cfg.eval_dir, cfg.checkpoint_dir)
  graph = EvalGraph(cfg)   # checks the data first
  with rundir.locked(cfg.eval_dir, role='eval'):
    results = written_results(cfg.eval_dir, graph.settings)
    if results:
      log.info('%s already has steps %s: not evaluating them again',
               cfg.eval_dir, ', '.join(str(s) for s in sorted(results)))
    done, tries, waiting = set(results), collections.Counter(), False
    with _summary_writer(graph, cfg.eval_dir) as writer:
      while True:
        todo = [(step, path) for step, path in
                rundir.saved(cfg.checkpoint_dir) if step not in done]
        if not todo and not waiting:
          log.info('waiting for a new checkpoint in %s (every %d s)%s',
                   cfg.checkpoint_dir, cfg.eval_interval_secs,
                   '' if os.path.isdir(cfg.checkpoint_dir) else
                   ': the folder does not exist yet')
        waiting = not todo
        for step, path in todo:
          if _evaluate(graph, writer, results, step, path, tries):
            done.add(step)
        time.sleep(cfg.eval_interval_secs)
