"""One measurement of `make bench`, in a process of its own; prints JSON.

    python -m cifar10_tutorial.tools.measure --worker train:default --data_dir data

bench.py starts this once per measurement (TensorFlow fixes its kernel
choice when it loads, so each configuration gets a fresh process) and reads
the one JSON line it prints. The configurations are bench.py's tables.
"""
if __name__ == '__main__':
  from cifar10_tutorial.shell import quiet
  quiet.install([])

import json
import os
import resource
import sys
import time

import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import children
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import summaries as summaries_lib
from cifar10_tutorial.engine import evaluation
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import train_graph
from cifar10_tutorial.shell import flags
from cifar10_tutorial.tools import bench_configs

# Ops that multiply, and how many multiply-adds each does.
_PRODUCTS = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter',
             'MatMul')


def _multiply_adds(op):
  """Multiply-adds of a convolution (either gradient) or matrix product."""
  if op.type == 'MatMul':
    a = op.inputs[0].shape.as_list()
    k = a[0] if op.get_attr('transpose_a') else a[1]
    return k * op.outputs[0].shape.num_elements()
  # A convolution's gradients do the forward's work: output positions x
  # filter taps x input channels.
  if op.type == 'Conv2D':
    outputs, kernel = op.outputs[0], op.inputs[1]
  elif op.type == 'Conv2DBackpropInput':
    outputs, kernel = op.inputs[2], op.inputs[1]
  else:
    outputs, kernel = op.inputs[2], op.outputs[0]
  height, width, depth = kernel.shape.as_list()[:3]
  return outputs.shape.num_elements() * height * width * depth


def _ancestors(tensors):
  """The ops that computing `tensors` runs."""
  seen, todo = set(), [t.op for t in tensors]
  while todo:
    op = todo.pop()
    if op not in seen:
      seen.add(op)
      todo.extend(t.op for t in op.inputs)
      todo.extend(op.control_inputs)
  return seen


def network_flops(training_step):
  """FLOPs (2 x multiply-adds) of the convolutions and matrix products per
  example, counted from the network's graph: 36.9 MFLOP forward; 105.3
  MFLOP for a training step, whose backward pass computes every weight
  gradient and every input gradient except conv1's (its input is the
  data). With lrn='tf', so the LRN's window sums are not counted."""
  with tf.Graph().as_default():
    images = tf.zeros([1, defaults.IMAGE_SIZE, defaults.IMAGE_SIZE,
                       defaults.DEPTH])
    model = cifar10.inference(images, lrn='tf')
    targets = [model.logits]
    if training_step:
      total, _ = cifar10.loss(model, tf.zeros([1], tf.int32))
      targets = tf.gradients(total, model.variables)
    return 2 * sum(_multiply_adds(op) for op in _ancestors(targets)
                   if op.type in _PRODUCTS)


def _peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds():
  t = os.times()
  return t.user + t.system


class _Session(object):
  """A session with the queue runners going, stopped on the way out."""

  def __init__(self, config=None):
    self.sess = tf.Session(config=config)

  def __enter__(self):
    self.sess.run([tf.global_variables_initializer(),
                   tf.local_variables_initializer()])
    self.coord = tf.train.Coordinator()
    self.threads = tf.train.start_queue_runners(self.sess, self.coord)
    return self

  def __exit__(self, *exc):
    self.coord.request_stop()
    self.coord.join(self.threads, stop_grace_period_secs=5,
                    ignore_live_threads=True)
    self.sess.close()

  def timed(self, op, steps):
    """(wall seconds, CPU seconds) of `steps` runs of `op`."""
    return _timed(lambda: [self.sess.run(op) for _ in range(steps)])


def _timed(work):
  """(wall seconds, CPU seconds) that calling `work` takes."""
  started, cpu = time.time(), _cpu_seconds()
  work()
  return time.time() - started, _cpu_seconds() - cpu


def peak(name, args):
  """The machine's matrix-product speed, float32 and bfloat16."""
  out = {}
  n, repeats = 2048, 20
  for precision, dtype in (('fp32', tf.float32), ('bf16', tf.bfloat16)):
    with tf.Graph().as_default():
      # Operands in variables, made once: the timed runs only multiply.
      a = tf.Variable(tf.cast(tf.random.normal([n, n]), dtype))
      b = tf.Variable(tf.cast(tf.random.normal([n, n]), dtype))
      product = tf.matmul(a, b).op
      with _Session() as s:
        s.timed(product, 2)
        elapsed, _ = s.timed(product, repeats)
    out[precision + '_matmul_gflops'] = 2.0 * n ** 3 * repeats / elapsed / 1e9
  return out


def input_alone(name, args):
  """The input pipeline alone, dequeuing training batches as fast as they
  come."""
  batch = args.batch_size
  queue = cifar10_input.train_queue(args.data_dir, batch, pipeline=name)
  # Run the dequeue without fetching its output: copying the batch into
  # numpy is Python's cost, not the pipeline's (training never does it).
  dequeue = queue.dequeue(batch)[0].op
  with _Session() as s:
    started = time.time()
    s.sess.run(dequeue)
    first = time.time() - started
    s.sess.run(dequeue)
    steps = max(1, args.input_examples // batch)
    elapsed, cpu = s.timed(dequeue, steps)
  return {'examples_per_sec': steps * batch / elapsed,
          'cpu_ms_per_example': 1000.0 * cpu / (steps * batch),
          'threads': defaults.INPUT_THREADS, 'time_to_first_batch': first}


def _in_this_process(cfg, devices):
  """settings.for_trainer, with a process per tower (collective) measured
  as its towers in this one process: a copy of the variables per GPU."""
  cfg, placement = settings.for_trainer(cfg, devices)
  if placement is None:
    cfg, placement = settings.for_trainer(
        settings.replace(cfg, variable_update='replicated'), devices)
  return cfg, placement


def train(name, args):
  """Training steady state: the trainers' graph and in-graph loop (no
  summary steps), timed after a warm-up."""
  config = bench_configs.TRAIN[name]
  towers = config.get('towers', 1)
  steps, warmup = args.steps, args.warmup
  if config.get('slow'):
    steps, warmup = min(steps, bench_configs.SLOW_STEPS), min(warmup,
                                                      bench_configs.SLOW_WARMUP)
  cfg = flags.multi_gpu_config(**dict(
      dict(data_dir=args.data_dir, batch_size=args.batch_size,
           num_gpus=towers), **config['flags']))
  devices, cpus = machine.tower_devices(towers, 'auto')
  cfg, placement = _in_this_process(cfg, devices if towers > 1 else None)
  graph = train_graph.build_graph(cfg, placement)
  config = machine.session_config(cfg, cpus)

  k = train_graph.longest_run(cfg)

  def run(n):
    if graph.loop is None:   # runs of one step: the step itself
      for _ in range(n):
        s.sess.run(graph.summary_step.train_op)
      return
    for _ in range(0, n, k):
      s.sess.run(graph.loop, {graph.run_length: min(k, n - _)})

  with _Session(config) as s:
    started = time.time()
    s.sess.run(graph.prime)
    run(1)
    first = time.time() - started
    run(warmup)
    elapsed, cpu = _timed(lambda: run(steps))
  examples_per_sec = steps * graph.examples_per_step / elapsed
  return {'examples_per_sec': examples_per_sec, 'sec_per_step': elapsed / steps,
          'cpu_sec_per_step': cpu / steps, 'steps': steps,
          'gflops': examples_per_sec * network_flops(True) / 1e9,
          'time_to_first_batch': first}


def checkpoint(name, args):
  """Saves a freshly initialised model (and its averages) for eval."""
  cfg, placement = settings.for_trainer(flags.training_config(
      data_dir=args.data_dir, steps_per_run=1, xla=False,
      prefetch_to_device=False, preprocess_on='cpu', compiled_loop=False))
  train_graph.build_graph(cfg, placement)
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    return {'path': tf.train.Saver().save(sess, os.path.join(
        args.checkpoint_dir, 'model.ckpt'), global_step=0)}


def evaluate(name, args):
  """One pass over the eval data, after an untimed pass that loads kernels."""
  config = bench_configs.EVAL[name]
  overrides = dict(config['flags'])
  if config.get('slow'):
    overrides['num_examples'] = bench_configs.SLOW_EVAL_EXAMPLES
  graph = evaluation.EvalGraph(flags.eval_config(data_dir=args.data_dir,
                                                 **overrides))
  path = tf.train.latest_checkpoint(args.checkpoint_dir)
  graph.run(path)
  started = time.time()
  graph.run(path)
  elapsed = time.time() - started
  return {'images_per_sec': graph.num_examples / elapsed,
          'images': graph.num_examples, 'seconds': elapsed,
          'gflops': graph.num_examples * network_flops(False) / elapsed / 1e9}


def _op_times(run_metadata):
  """Seconds of op time per op type (from the executor's step stats), and
  per device."""
  by_type, by_device = {}, {}
  for device in run_metadata.step_stats.dev_stats:
    for node in device.node_stats:
      seconds = (node.all_end_rel_micros or node.op_end_rel_micros) / 1e6
      kind = node.timeline_label.split('(')[0].split('=')[-1].strip() or \
          node.node_name
      by_type[kind] = by_type.get(kind, 0.0) + seconds
      by_device[device.device] = by_device.get(device.device, 0.0) + seconds
  return by_type, by_device


def trace(name, args):
  """Where a step's time goes, for one whole run's settings (bench_configs.RUNS):
  seconds per step in K-step runs, in one-step runs and in summary steps,
  and a full trace of one of each (op time by type, Chrome traces)."""
  run = bench_configs.RUNS[name]
  cfg = flags.parse(run['program'], ['--data_dir', args.data_dir,
                                     '--batch_size', str(args.batch_size)] +
                    run['flags'])
  devices, cpus = None, 1
  if run['program'] == 'cifar10_multi_gpu_train':
    devices, cpus = machine.tower_devices(cfg.num_gpus, cfg.tower_device)
  cfg, placement = _in_this_process(cfg, devices)
  graph = train_graph.build_graph(cfg, placement)
  config = machine.session_config(cfg, cpus)
  summary_fetches = [graph.summary_step.train_op,
                     summaries_lib.fetches(graph.summary_step.summaries)]
  k = train_graph.longest_run(cfg)
  out = {'steps_per_run': k}
  with _Session(config) as s:
    s.sess.run(graph.prime)
    for _ in range(3):   # compile each kind of run
      s.sess.run(summary_fetches)
      s.sess.run(graph.loop, {graph.run_length: k})
      s.sess.run(graph.loop, {graph.run_length: 1})
    for what, fetch, feed, steps in (
        ('loop', graph.loop, {graph.run_length: k}, k),
        ('one_step', graph.loop, {graph.run_length: 1}, 1),
        ('summary_step', summary_fetches, None, 1)):
      repeats = max(3, args.steps // steps)
      started = time.time()
      for _ in range(repeats):
        s.sess.run(fetch, feed)
      out[what + '_sec_per_step'] = (time.time() - started) / (repeats *
                                                               steps)
      metadata = tf.RunMetadata()
      s.sess.run(fetch, feed, options=tf.RunOptions(
          trace_level=tf.RunOptions.FULL_TRACE), run_metadata=metadata)
      by_type, by_device = _op_times(metadata)
      top = sorted(by_type.items(), key=lambda kv: -kv[1])[:15]
      out[what + '_op_seconds'] = dict(top)
      out[what + '_device_seconds'] = by_device
      if args.json:
        from tensorflow.python.client import timeline
        path = '%s.trace-%s-%s.json' % (args.json, name, what)
        with open(path, 'w') as f:
          f.write(timeline.Timeline(metadata.step_stats)
                  .generate_chrome_trace_format())
        out[what + '_trace'] = path
  out['examples_per_sec_loop'] = (graph.examples_per_step /
                                  out['loop_sec_per_step'])
  return out


KINDS = {'peak': peak, 'trace': trace, 'input': input_alone, 'train': train,
         'memory': train, 'checkpoint': checkpoint, 'eval': evaluate}


def main(argv=None):
  children.follow_parent()   # the bench's: ends (SIGUSR1) when it ends
  args = flags.parse('bench', sys.argv[1:] if argv is None else argv)
  kind, name = args.worker.split(':')
  tf.disable_eager_execution()
  with tf.Graph().as_default():
    result = KINDS[kind](name, args)
  result.update(kind=kind, config=name, peak_rss_mb=_peak_rss_mb())
  print(json.dumps(result))


if __name__ == '__main__':
  sys.exit(main())
