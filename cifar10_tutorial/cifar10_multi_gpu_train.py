"""Trains the tutorial's network on several GPUs at once (data parallel).

    python -m cifar10_tutorial.cifar10_multi_gpu_train --num_gpus 2
    python -m cifar10_tutorial.cifar10_multi_gpu_train --num_gpus 2 \\
        --tower_device cpu      # no GPU: towers on virtual CPU devices

One input pipeline on the CPU fills one shared example queue; each of the N
towers (`tower_0` ... `tower_{N-1}`, on `/gpu:i`) dequeues its own batch,
computes its loss and gradients with the shared variables, which live on the
CPU; the gradients are averaged and applied once, then the moving averages
are updated. One step trains on N x --batch_size examples. Everything else
(schedule, moving averages, summaries, logging, checkpoints, resume) is the
single-device trainer's, imported from `cifar10` and `cifar10_train`, so
checkpoints have the same variable names and `make eval` reads them as they
are. Checkpoints every 1,000 steps and at the last step.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial import quiet
  quiet.install()

import logging
import sys

import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial import cifar10_train
from cifar10_tutorial import defaults
from cifar10_tutorial import flags

log = logging.getLogger('cifar10_tutorial')

_VARIABLE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


class DeviceError(RuntimeError):
  """Asked for more GPUs than the machine has."""


def tower_devices(num_towers, tower_device):
  """The device of each tower, and the CPU devices the session must create.

  `tower_device` is 'gpu' (towers on /gpu:i; too few GPUs is an error),
  'cpu' (towers on N virtual CPU devices: for testing and for looking at the
  tower graph, no faster than one device on a CPU) or 'auto' (GPUs when
  there are any, else virtual CPU devices).
  """
  found = cifar10.gpu_count()
  if tower_device == 'auto':
    tower_device = 'gpu' if found else 'cpu'
    if not found:
      log.info('no GPU found: running %d towers on %d virtual CPU devices',
               num_towers, num_towers)
  if tower_device == 'gpu':
    if num_towers > found:
      plural = '' if num_towers == 1 else 's'
      raise DeviceError(
          '--num_gpus %d: expected %d GPU%s, found %d (add --tower_device cpu '
          'to run %d tower%s on virtual CPU devices)' %
          (num_towers, num_towers, plural, found, num_towers, plural))
    return ['/gpu:%d' % i for i in range(num_towers)], 1
  return ['/cpu:%d' % i for i in range(num_towers)], num_towers


def _on(device):
  """Places variables on the CPU (shared by all towers), the rest on device."""
  def place(op):
    return '/cpu:0' if op.type in _VARIABLE_OPS else device
  return place


def tower_gradients(batches, devices, opt, lrn='matmul', precision='fp32'):
  """Builds one tower per (images, labels) batch, on its device.

  Variables are created by the first tower and reused by the others, so
  they exist once, under the tutorial's names. Each tower keeps its own
  loss, loss averages and summaries. Returns (grads_and_vars of each tower,
  total loss of each tower, loss-average updates, summaries).
  """
  all_grads, totals, updates, summaries = [], [], [], []
  for i, ((images, labels), device) in enumerate(zip(batches, devices)):
    with tf.device(_on(device)), tf.name_scope('tower_%d' % i):
      with tf.variable_scope(tf.get_variable_scope(), reuse=i > 0):
        model = cifar10.inference(images, lrn=lrn, precision=precision)
      total, losses = cifar10.loss(model, labels)
      update, loss_summaries = cifar10.loss_averages(losses + [total])
      all_grads.append(opt.compute_gradients(total, model.variables))
      totals.append(total)
      updates.append(update)
      summaries += loss_summaries + cifar10.activation_summaries(
          model, images, labels)
  return all_grads, totals, updates, summaries


def average_gradients(tower_grads):
  """The mean over towers of each variable's gradient, computed on the CPU.

  With equal tower batches, this is the gradient of the loss over all
  N x batch examples (weight decay included once, as each tower's loss has
  it whole).
  """
  averaged = []
  with tf.device('/cpu:0'), tf.name_scope('average_gradients'):
    for pairs in zip(*tower_grads):
      grads = [g for g, _ in pairs]
      averaged.append((tf.add_n(grads) / float(len(grads)), pairs[0][1]))
  return averaged


def build_graph(cfg, devices):
  """The multi-tower training graph, in the current default graph."""
  with tf.device('/cpu:0'):
    global_step = tf.train.get_or_create_global_step()
  queue = cifar10_input.train_queue(cfg.data_dir, cfg.batch_size,
                                    cfg.input_threads,
                                    cfg.input_pipeline)
  examples_per_step = cfg.batch_size * len(devices)
  with tf.device('/cpu:0'):
    lr = cifar10.learning_rate(global_step, examples_per_step,
                               queue.num_records)
  opt = cifar10.gradient_descent(lr)
  batches = [queue.dequeue(cfg.batch_size) for _ in devices]
  tower_grads, totals, updates, summaries = tower_gradients(
      batches, devices, opt, lrn=cfg.lrn, precision=cfg.precision)
  grads = average_gradients(tower_grads)
  with tf.device('/cpu:0'):
    train_op, more = cifar10.apply_and_average(grads, global_step, lr,
                                               updates)
    mean_loss = tf.add_n(totals, name='mean_total_loss') / len(totals)
  summaries += more + [queue.fill_summary()]
  return cifar10_train.TrainGraph(train_op, mean_loss, global_step, summaries,
                                  examples_per_step)


def train(cfg):
  """Builds the towers and trains them. Returns the final step."""
  devices, cpu_devices = tower_devices(cfg.num_gpus, cfg.tower_device)
  log.info('%d towers on %s, %d examples per step', len(devices),
           ', '.join(devices), cfg.batch_size * len(devices))
  with tf.Graph().as_default():
    config = cifar10_train.session_config(
        cfg, device_count={'CPU': cpu_devices})
    return cifar10_train.run(
        build_graph(cfg, devices), cfg, config=config,
        checkpoint_steps=defaults.MULTI_GPU_CHECKPOINT_STEPS)


def parse_args(argv):
  p = flags.parser(__doc__)
  flags.add_training_flags(p)
  p.add_argument('--num_gpus', type=flags.positive_int, default=1,
                 help='number of towers')
  p.add_argument('--tower_device', choices=['gpu', 'cpu', 'auto'],
                 default='gpu', help='gpu: towers on /gpu:i; cpu: on virtual '
                 'CPU devices (testing, graph viewing); auto: gpu if any')
  return p.parse_args(argv)


def main(argv=None):
  cfg = parse_args(sys.argv[1:] if argv is None else argv)
  flags.setup_logging(cfg)
  return cifar10_train.guarded(train, cfg, errors=[DeviceError])


if __name__ == '__main__':
  sys.exit(main())
