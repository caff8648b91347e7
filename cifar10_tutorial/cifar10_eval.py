"""Evaluates the trainer's checkpoints: top-1 accuracy on the test set.

    python -m cifar10_tutorial.cifar10_eval --checkpoint_dir train_dirs/cifar10_train

Restores the moving-average (shadow) weights of each checkpoint into the
network, runs exactly one pass over the test images (exactly --num_examples
of them, whatever the batch size), prints `step N: precision @ 1 = 0.xxx`
and writes it as a summary to --eval_dir for TensorBoard. Without
--run_once it keeps watching --checkpoint_dir, evaluating each new
checkpoint once. It runs on the CPU by default, so it can run beside a
trainer that holds the GPU. The work is `evaluation`'s.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial.shell import quiet
  quiet.install(program='cifar10_eval', doc=__doc__)   # --help before TensorFlow

import logging
import sys

from cifar10_tutorial import cifar10
from cifar10_tutorial.engine import evaluation
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')


def evaluate(cfg):
  """The latest checkpoint once (--run_once), else each new one; exit 1 if
  nothing could be evaluated."""
  slow = machine.precision_warning_for(cfg)
  if slow:
    log.warning('warning: %s', slow)
  if cfg.run_once:
    return 0 if evaluation.evaluate_once(cfg) else 1
  evaluation.watch(cfg)


def main(argv=None):
  return program.main('cifar10_eval', __doc__, evaluate, argv,
                      errors=[cifar10.ClassCountError, rundir.RunDirError],
                      on_signal='eval stopped')


if __name__ == '__main__':
  sys.exit(main())
