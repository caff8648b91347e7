"""Evaluates the trainer's checkpoints: top-1 accuracy on the test set.

    python -m cifar10_tutorial.cifar10_eval --checkpoint_dir train_dirs/cifar10_train

Restores the moving-average (shadow) weights of each checkpoint into the
network, runs exactly one pass over the test images (exactly --num_examples
of them, whatever the batch size), prints `step N: precision @ 1 = 0.xxx`
and writes it as a summary to --eval_dir for TensorBoard. Without
--run_once it keeps watching --checkpoint_dir, evaluating each new
checkpoint once. It runs on the CPU by default, so it can run beside a
trainer that holds the GPU.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial import quiet
  quiet.install()

import collections
import io
import logging
import os
import struct
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial import defaults
from cifar10_tutorial import flags
from cifar10_tutorial import progress
from cifar10_tutorial import stopping
from cifar10_tutorial import summaries

log = logging.getLogger('cifar10_tutorial')


PRECISION_TAG = 'Precision @ 1'
Result = collections.namedtuple('Result', ['precision', 'confusion'])
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
      if self.num_examples > queue.num_records:
        raise cifar10_input.DataError(
            '%s: --num_examples %d is more than the %d records there' %
            (cfg.data_dir, self.num_examples, queue.num_records))
      images, labels = queue.dequeue(cfg.batch_size)
      model = cifar10.inference(images, lrn=cfg.lrn, precision=cfg.precision)
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

  def precision(self, checkpoint_path):
    """Top-1 accuracy of the checkpoint's shadow weights on num_examples."""
    return self.run(checkpoint_path).precision

  def run(self, checkpoint_path):
    """Precision @ 1 and the confusion matrix [true class, predicted class]
    of the checkpoint's shadow weights on exactly num_examples."""
    with tf.Session(graph=self.graph, config=self.config) as sess:
      sess.run(self.init)
      try:
        self.saver.restore(sess, checkpoint_path)
      except (ValueError, tf.errors.OpError) as e:
        raise CheckpointError(str(e).strip().splitlines()[0])
      coord = tf.train.Coordinator()
      threads = tf.train.start_queue_runners(sess, coord)
      true_count = counted = 0
      confusion = np.zeros([defaults.NUM_CLASSES] * 2, np.int64)
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
      raise cifar10_input.DataError('expected %d eval examples, read %d' %
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
  values = [tf.Summary.Value(tag=PRECISION_TAG,
                             simple_value=result.precision)]
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


def checkpoints(checkpoint_dir):
  """[(step, path)] of the checkpoints listed there, oldest first."""
  state = tf.train.get_checkpoint_state(checkpoint_dir)
  if not state:
    return []
  # get_checkpoint_state has already made relative paths relative to us.
  return sorted((int(path.rsplit('-', 1)[1]), path)
                for path in state.all_model_checkpoint_paths)


def written_results(eval_dir):
  """{step: precision} that earlier runs already wrote to eval_dir."""
  return {step: value for _, step, value in
          summaries.read_scalars(eval_dir, PRECISION_TAG)}


def _report(step, precision, note):
  log.info('step %d: precision @ 1 = %.3f (%s)', step, precision, note)


def evaluate(cfg):
  """Evaluates checkpoints: the latest once with --run_once, else each new one.

  Each step is evaluated once, also across restarts: steps already in
  --eval_dir are not evaluated again. A checkpoint that disappears before
  it is read (the trainer keeps only the latest five) is skipped; one that
  cannot be read yet is retried, MAX_TRIES times. Returns {step: precision}.
  """
  graph = EvalGraph(cfg)
  results = written_results(cfg.eval_dir)
  if results and not cfg.run_once:
    log.info('%s already has steps %s: not evaluating them again',
             cfg.eval_dir, ', '.join(str(s) for s in sorted(results)))
  tries, skipped, waiting = collections.Counter(), set(), False
  if cfg.run_once:
    listed = checkpoints(cfg.checkpoint_dir)
    if not listed:
      log.error('error: no checkpoint in %s', cfg.checkpoint_dir)
      return {}
    latest = listed[-1][0]
    if latest in results:
      _report(latest, results[latest], 'already in %s' % cfg.eval_dir)
      return results
  with graph.graph.as_default():   # the v1 writer refuses eager mode
    writer = tf.summary.FileWriter(cfg.eval_dir)
  try:
    while True:
      listed = checkpoints(cfg.checkpoint_dir)
      if cfg.run_once:
        listed = [c for c in listed if c[0] == latest]
        if latest in results or latest in skipped or not listed:
          return {latest: results[latest]} if latest in results else {}
      todo = [c for c in listed if c[0] not in results and c[0] not in skipped]
      if not todo and not waiting:
        log.info('waiting for a new checkpoint in %s (every %d s)',
                 cfg.checkpoint_dir, cfg.eval_interval_secs)
      waiting = not todo
      for step, path in todo:
        started = time.time()
        try:
          result = graph.run(path)
        except CheckpointError as e:
          tries[step] += 1
          if not tf.io.gfile.exists(path + '.index'):
            log.info('step %d: %s is gone (rotated away by the trainer?); '
                     'skipping it', step, path)
            skipped.add(step)
          elif tries[step] >= MAX_TRIES:
            log.error('step %d: could not read %s in %d tries (%s); skipping '
                      'it', step, path, tries[step], e)
            skipped.add(step)
          else:
            log.info('step %d: could not read %s yet (%s); will retry', step,
                     path, e)
          continue
        results[step] = result.precision
        _report(step, result.precision, '%d examples, %.1f s' % (
            graph.num_examples, time.time() - started))
        writer.add_summary(result_summary(result), step)
        writer.flush()
      if cfg.run_once and latest not in results and latest not in skipped:
        time.sleep(1)   # retry the unreadable checkpoint soon
      elif not cfg.run_once:
        time.sleep(cfg.eval_interval_secs)
  finally:
    writer.close()


def parse_args(argv):
  p = flags.parser(__doc__)
  flags.add_data_dir(p)
  p.add_argument('--checkpoint_dir', default='train_dirs/cifar10_train',
                 help='the trainer\'s --train_dir, where checkpoints appear')
  p.add_argument('--eval_dir', default='train_dirs/cifar10_eval',
                 help='where the precision summaries go')
  p.add_argument('--eval_data', choices=['test', 'train_eval'], default='test',
                 help='evaluate on the test set or the training set')
  p.add_argument('--num_examples', type=flags.positive_int, default=None,
                 help='examples to evaluate (default: all of them, 10,000 '
                      'for the test set)')
  p.add_argument('--batch_size', type=flags.positive_int,
                 default=defaults.EVAL_BATCH_SIZE,
                 help='eval batch size, independent of training\'s (the '
                      'tutorial used 128; the result does not depend on it)')
  flags.add_input_pipeline_flag(p)
  p.add_argument('--eval_interval_secs', type=flags.positive_int,
                 default=defaults.EVAL_INTERVAL_SECS,
                 help='seconds between looks for new checkpoints')
  flags.add_bool(p, 'run_once', False,
                 'evaluate the latest checkpoint once and exit')
  p.add_argument('--eval_device', choices=['cpu', 'gpu'], default='cpu',
                 help='cpu keeps eval off the GPU a trainer is using')
  flags.add_model_flags(p)
  flags.add_common_flags(p)
  return p.parse_args(argv)


def main(argv=None):
  cfg = parse_args(sys.argv[1:] if argv is None else argv)
  flags.setup_logging(cfg)
  gpus = 0 if cfg.eval_device == 'cpu' else cifar10.gpu_count()
  warning = cifar10.precision_warning(cfg.precision, gpus)
  if warning:
    log.warning('warning: %s', warning)

  def first(signum):
    raise stopping.Interrupted(signum, 'eval stopped')
  try:
    with stopping.on_signals(first):
      results = evaluate(cfg)
  except stopping.Interrupted as e:
    log.info('%s', e)
    return e.exit_code
  except cifar10_input.DataError as e:
    log.error('error: %s', e)
    return 1
  return 0 if results else 1


if __name__ == '__main__':
  sys.exit(main())
