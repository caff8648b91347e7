"""Classifies image files with a trained run (what `make predict` runs).

    python -m cifar10_tutorial.own_images.predict cat.jpg photos/ --checkpoint_dir train_dirs/cifar10_train
    python -m cifar10_tutorial.own_images.predict cat.jpg --json

Restores the latest checkpoint's moving-average weights, as eval does,
reads each image (JPEG, PNG, GIF, BMP; a folder is its image files, sorted),
resizes it to 32x32, takes the central 24x24 and standardizes it, as eval
does, and prints each file's top classes with their probabilities, in
columns, or as JSON with --json. The class names are those of --data_dir
(its batches.meta.txt; CIFAR-10's ten where there is none). A file that
cannot be read gets one line naming it and why; the others are still
classified; the exit status is 1 if any failed.
"""
if __name__ == '__main__':
  from cifar10_tutorial.shell import quiet
  quiet.install(program='predict', doc=__doc__)   # --help before TensorFlow

import json
import logging
import os
import sys

import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import records
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.own_images import images
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')


class NoCheckpoint(RuntimeError):
  """Nothing to classify with."""


class Classifier(object):
  """A checkpoint's moving-average network, taking uint8 32x32x3 batches."""

  def __init__(self, checkpoint_path, class_names, lrn='matmul',
               precision='fp32', top=3):
    self.class_names = class_names
    self.graph = tf.Graph()
    with self.graph.as_default():
      self._pixels = tf.placeholder(tf.uint8, [None, 32, 32, 3])
      crops = cifar10_input.central_crop_batch(self._pixels)
      model = cifar10.inference(crops, lrn=lrn, precision=precision,
                                num_classes=len(class_names))
      probabilities = tf.nn.softmax(model.logits)
      self._top = tf.nn.top_k(probabilities, k=min(top, len(class_names)))
      saver = tf.train.Saver(cifar10.restore_map(model.variables))
    self.graph.finalize()
    self._sess = tf.Session(graph=self.graph, config=tf.ConfigProto(
        device_count={'GPU': 0}))
    with self.graph.as_default():   # not eager: the session's graph
      saver.restore(self._sess, checkpoint_path)

  def __call__(self, pixels):
    """[[(class name, probability), ...] best first] for each image."""
    if not len(pixels):
      return []
    values, indices = self._sess.run(self._top, {self._pixels: pixels})
    return [[(self.class_names[i], float(p)) for p, i in zip(ps, ids)]
            for ps, ids in zip(values, indices)]


def _table(found, top):
  """Columns: the file, then 'class probability' for each of the top."""
  width = max([len(path) for path, _ in found] + [4])
  heads = ['1st', '2nd', '3rd'] + ['%dth' % n for n in range(4, top + 1)]
  # 'name 0.123' and two spaces.
  cell = max([len(name) for _, best in found for name, _ in best] + [5]) + 8
  lines = ['%-*s  %s' % (width, 'file', ''.join(h.ljust(cell)
                                                for h in heads[:top]).rstrip())]
  for path, best in found:
    lines.append('%-*s  %s' % (width, path, ''.join(
        ('%s %.3f' % (name, p)).ljust(cell) for name, p in best).rstrip()))
  return '\n'.join(lines)


def predict(cfg):
  """Prints the classes of cfg.images; 1 if any file failed, else 0."""
  slow = machine.precision_warning_for(cfg)
  if slow:
    log.warning('warning: %s', slow)
  path, step = rundir.latest(cfg.checkpoint_dir)
  if not path:
    raise NoCheckpoint('%s: expected a checkpoint of a trained run, found '
                       'none' % cfg.checkpoint_dir)
  class_names = records.class_names(cfg.data_dir)
  cifar10.check_classes(path, class_names, cfg.data_dir)
  pixels, good, bad = images.decode_all(images.expand(cfg.images))
  if not cfg.json:   # with --json they are in the document: stdout is JSON
    for error in bad:
      log.error('error: %s', error)
  classify = Classifier(path, class_names, cfg.lrn, cfg.precision, cfg.top)
  found = list(zip(good, classify(pixels)))
  if cfg.json:
    print(json.dumps({
        'checkpoint': path, 'step': step,
        'images': [{'file': p, 'top': [{'class': c, 'probability': round(
            q, 6)} for c, q in best]} for p, best in found],
        'errors': [str(e) for e in bad]}, indent=2))
  elif found:
    log.info('%s (step %d), classes of %s:', os.path.basename(path), step,
             cfg.data_dir)
    print(_table(found, min(cfg.top, len(class_names))), flush=True)
  return 1 if bad else 0


def main(argv=None):
  return program.main('predict', __doc__, predict, argv,
                      errors=[NoCheckpoint, cifar10.ClassCountError,
                              images.ImageError], timestamps=False)


if __name__ == '__main__':
  sys.exit(main())
