"""Trains the tutorial's network on one device.

    python -m cifar10_tutorial.cifar10_train --train_dir train_dirs/cifar10_train

Reads the training batches through the queue pipeline, trains with plain SGD,
logs step, loss, examples/sec and sec/batch every --log_frequency steps,
writes summaries every 100 steps and a checkpoint every 10 minutes and at the
last step. A run in --train_dir is resumed from its latest checkpoint, never
deleted. Precision @ 1 of the run's moving-average weights (cifar10_eval):
0.806 after 15,216 steps, 0.837 after 100,000 on one H200 (the original
tutorial: 0.800 and 0.826 at 51,700; docs/measurements.md).

`train` below is the whole of it, in three parts: the settings, the graph,
and the session with its loop. The graph and the loop are the engine's
(engine/train_graph.py, engine/loop.py), which the multi-GPU trainer and a
cluster's workers build and run too, so their checkpoints are the same.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial.shell import quiet
  quiet.install(program='cifar10_train', doc=__doc__)   # --help before TensorFlow

import sys

import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial.core import defaults
from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import train_graph
from cifar10_tutorial.shell import program


def train(cfg):
  """Trains to --max_steps (or until stopped: stopping.Interrupted)."""
  # The settings: the flags with every "auto" decided for this machine (on
  # a GPU, runs of up to 99 steps as one XLA program over batches already
  # on the GPU; on a CPU, the tutorial's one step at a time), and the
  # tutorial's checkpoint every 10 minutes.
  cfg, placement = settings.for_trainer(
      cfg, checkpoint_secs=defaults.SAVE_CHECKPOINT_SECS)
  with tf.Graph().as_default():
    # The graph: the training queue (cifar10_input.train_queue) feeds
    # distorted batches; a step is cifar10.train_step (inference, loss,
    # gradients) and cifar10.apply_and_average (SGD at the decaying
    # learning rate, then the weights' moving averages). Built once with
    # the summaries (every 100th step) and once as runs of several steps.
    graph = train_graph.build_graph(cfg, placement)
    # The session and its loop: holds --train_dir, resumes from its newest
    # checkpoint or starts; then runs the steps, logs, writes summaries and
    # checkpoints, and stops cleanly on Ctrl-C (loop.train).
    loop.train(graph, cfg, machine.session_config(cfg))


def main(argv=None):
  return program.main('cifar10_train', __doc__, train, argv,
                      errors=[loop.LossDivergedError,
                              cifar10.ClassCountError,
                              machine.OutOfMemoryError, rundir.RunDirError],
                      on_signal=program.FINISH_STEP)


if __name__ == '__main__':
  sys.exit(main())
