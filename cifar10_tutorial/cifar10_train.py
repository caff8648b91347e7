"""Trains the tutorial's network on one device.

    python -m cifar10_tutorial.cifar10_train --train_dir train_dirs/cifar10_train

Reads the training batches through the queue pipeline, trains with plain SGD,
logs step, loss, examples/sec and sec/batch every --log_frequency steps,
writes summaries every 100 steps and a checkpoint every 10 minutes and at the
last step. A run in --train_dir is resumed from its latest checkpoint, never
deleted. The graph, the loop and resuming are the engine's (engine/train_graph.py,
engine/loop.py), shared with the multi-GPU trainer.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial.shell import quiet
  quiet.install(program='cifar10_train', doc=__doc__)   # --help before TensorFlow

import sys

from cifar10_tutorial import cifar10
from cifar10_tutorial.core import defaults
from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.engine import settings
from cifar10_tutorial.shell import program


def train(cfg):
  """Builds the single-device graph and trains it to --max_steps."""
  cfg, placement = settings.for_trainer(
      cfg, checkpoint_secs=defaults.SAVE_CHECKPOINT_SECS)
  loop.build_and_train(cfg, placement)


def main(argv=None):
  return program.main('cifar10_train', __doc__, train, argv,
                      errors=[loop.LossDivergedError,
                              cifar10.ClassCountError,
                              machine.OutOfMemoryError, rundir.RunDirError],
                      on_signal=program.FINISH_STEP)


if __name__ == '__main__':
  sys.exit(main())
