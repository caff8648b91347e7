"""Trains the tutorial's network on several GPUs at once (data parallel).

    python -m cifar10_tutorial.cifar10_multi_gpu_train --num_gpus 2
    python -m cifar10_tutorial.cifar10_multi_gpu_train --num_gpus 2 \\
        --tower_device cpu      # no GPU: towers on virtual CPU devices

One input pipeline on the CPU fills one shared example queue; each of the N
towers (`tower_0` ... `tower_{N-1}`, on `/gpu:i`) dequeues its own batch,
computes its loss and gradients with the shared variables, which live on the
CPU; the gradients are averaged and applied once, then the moving averages
are updated. One step trains on N x --batch_size examples. The graph, the
loop, summaries, checkpoints and resuming are `training`'s, shared with the
single-device trainer, so checkpoints have the same variable names and
`make eval` reads them as they are. Checkpoints every 1,000 steps and at
the last step.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial import quiet
  quiet.install()

import logging
import sys

from cifar10_tutorial import cifar10
from cifar10_tutorial import defaults
from cifar10_tutorial import machine
from cifar10_tutorial import program
from cifar10_tutorial import rundir
from cifar10_tutorial import training

log = logging.getLogger('cifar10_tutorial')


def train(cfg):
  """Builds the towers and trains them to --max_steps."""
  devices, cpu_devices = machine.tower_devices(cfg.num_gpus, cfg.tower_device)
  log.info('%d towers on %s, %d examples per step', len(devices),
           ', '.join(devices), cfg.batch_size * len(devices))
  training.run(cfg, devices, cpu_devices,
               checkpoint_steps=defaults.MULTI_GPU_CHECKPOINT_STEPS)


def main(argv=None):
  return program.main('cifar10_multi_gpu_train', __doc__, train, argv,
                      errors=[training.LossDivergedError,
                              cifar10.ClassCountError,
                              machine.OutOfMemoryError, rundir.RunDirError,
                              machine.DeviceError],
                      on_signal=program.FINISH_STEP)


if __name__ == '__main__':
  sys.exit(main())
