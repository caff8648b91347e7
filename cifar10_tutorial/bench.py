"""Measures the input pipeline, training, eval and memory, side by side.

    python -m cifar10_tutorial.bench                 # what `make bench` runs
    python -m cifar10_tutorial.bench --parts train --steps 300 --rounds 3
    python -m cifar10_tutorial.bench --parts eval --evals default,bf16

Every measurement runs in a process of its own (TensorFlow fixes its kernel
choice when it loads), and the configurations of a part alternate round
after round, so a noisy machine slows them alike. Compare ratios within
one run: absolute figures drift on shared machines.

Parts (--parts):
  peak    the machine's matrix-product speed (2048 x 2048, float32 and
          bfloat16): the ceiling for a network that is almost all products
  input   the input pipeline alone, per variant: examples/sec and CPU-ms per
          example, dequeuing training batches as fast as they come
  train   training steady state per configuration: examples/sec, sec/step,
          CPU-s/step, the network's GFLOP/s, time to first batch, peak RSS
  eval    one pass over the test set per configuration (a fresh model's
          checkpoint: speed does not depend on the weights): images/sec
  memory  peak RSS of training on ten times as many records (synthetic),
          next to the same configuration on the data used for the rest

Training configurations (each adds one change to the one before it):
  tutorial  the tutorial's settings: TensorFlow's default kernels, tf.nn.lrn,
            per-example input, one preprocessing thread per CPU
  onednn    + oneDNN kernels
  lrn       + the matrix-product LRN
  default   + the batched input path: this project's defaults
  towers2   default in the multi-GPU trainer's graph with 2 towers (virtual
            CPU devices where there is no GPU); examples/sec counts both
  split2    towers2 with half the batch per tower: 2 x 64 examples a step,
            the same math as one device's 128 (the averaged gradients)
  bf16      default with --precision bf16 (timed over fewer steps)

Uses the real data in --data_dir when it is there, else synthetic records
(said in the output). Results also go to a JSON file. A benchmark, not a
test: nothing here passes or fails.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from cifar10_tutorial import defaults
from cifar10_tutorial import flags
from cifar10_tutorial import records

_TUTORIAL_ENV = {'TF_ENABLE_ONEDNN_OPTS': '0'}
_PER_EXAMPLE = ['--input_pipeline', 'per_example']
TRAIN = {
    'tutorial': {'env': _TUTORIAL_ENV, 'flags': ['--lrn', 'tf'] + _PER_EXAMPLE},
    'onednn': {'flags': ['--lrn', 'tf'] + _PER_EXAMPLE},
    'lrn': {'flags': _PER_EXAMPLE},
    'default': {'flags': []},
    'towers2': {'flags': [], 'towers': 2},
    'split2': {'flags': ['--batch_size', str(defaults.BATCH_SIZE // 2)],
               'towers': 2},
    'bf16': {'flags': ['--precision', 'bf16'], 'slow': True},
}
INPUT = {'per_example': {}, 'batched': {}}
EVAL = {
    'tutorial': {'env': _TUTORIAL_ENV, 'flags': ['--batch_size', '128',
                                                 '--lrn', 'tf'] + _PER_EXAMPLE},
    'default': {'flags': []},
    'bf16': {'flags': ['--precision', 'bf16'], 'slow': True},
}
PARTS = ('peak', 'input', 'train', 'eval', 'memory')
SLOW_STEPS, SLOW_WARMUP, SLOW_EVAL_EXAMPLES = 20, 3, 1000


def network_flops(training):
  """Multiply-adds x 2 of the network's convolutions and matrix products,
  per example: 36.9 MFLOP forward; 105.3 MFLOP for a training step, whose
  backward pass computes every weight gradient and every input gradient
  except conv1's (its input is the data)."""
  size, mid = defaults.IMAGE_SIZE, defaults.IMAGE_SIZE // 2
  conv1 = size * size * 64 * (5 * 5 * defaults.DEPTH)
  forward = (conv1 + mid * mid * 64 * (5 * 5 * 64) +
             (6 * 6 * 64) * 384 + 384 * 192 + 192 * defaults.NUM_CLASSES)
  return 2 * (3 * forward - conv1 if training else forward)


def _peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds():
  t = os.times()
  return t.user + t.system


def _start(tf, sess):
  sess.run([tf.global_variables_initializer(),
            tf.local_variables_initializer()])
  coord = tf.train.Coordinator()
  return coord, tf.train.start_queue_runners(sess, coord)


def _stop(coord, threads):
  coord.request_stop()
  coord.join(threads, stop_grace_period_secs=5, ignore_live_threads=True)


def _timed(sess, op, steps):
  started, cpu = time.time(), _cpu_seconds()
  for _ in range(steps):
    sess.run(op)
  return time.time() - started, _cpu_seconds() - cpu


def _work_peak(tf, args):
  out = {}
  n, repeats = 2048, 20
  for name, dtype in (('fp32', tf.float32), ('bf16', tf.bfloat16)):
    with tf.Graph().as_default():
      # Operands in variables, made once: the timed runs only multiply.
      a = tf.Variable(tf.cast(tf.random.normal([n, n]), dtype))
      b = tf.Variable(tf.cast(tf.random.normal([n, n]), dtype))
      product = tf.matmul(a, b).op
      with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _timed(sess, product, 2)
        elapsed, _ = _timed(sess, product, repeats)
    out[name + '_matmul_gflops'] = 2.0 * n ** 3 * repeats / elapsed / 1e9
  return out


def _work_input(tf, name, args):
  from cifar10_tutorial import cifar10_input
  batch = args.batch_size
  queue = cifar10_input.train_queue(args.data_dir, batch, pipeline=name)
  # Run the dequeue without fetching its output: copying the batch into
  # numpy is Python's cost, not the pipeline's (training never does it).
  dequeue = queue.dequeue(batch)[0].op
  with tf.Session() as sess:
    coord, threads = _start(tf, sess)
    started = time.time()
    sess.run(dequeue)
    first = time.time() - started
    sess.run(dequeue)
    steps = max(1, args.input_examples // batch)
    elapsed, cpu = _timed(sess, dequeue, steps)
    _stop(coord, threads)
  return {'examples_per_sec': steps * batch / elapsed,
          'cpu_ms_per_example': 1000.0 * cpu / (steps * batch),
          'threads': defaults.INPUT_THREADS, 'time_to_first_batch': first}


def _work_train(tf, name, args):
  from cifar10_tutorial import cifar10_multi_gpu_train as multi
  from cifar10_tutorial import cifar10_train
  config = TRAIN[name]
  towers = config.get('towers', 1)
  steps, warmup = args.steps, args.warmup
  if config.get('slow'):
    steps, warmup = min(steps, SLOW_STEPS), min(warmup, SLOW_WARMUP)
  cfg = multi.parse_args(['--data_dir', args.data_dir, '--batch_size',
                          str(args.batch_size), '--num_gpus', str(towers)] +
                         config['flags'])
  devices, cpus = multi.tower_devices(towers, 'auto')
  if towers == 1:
    graph = cifar10_train.build_graph(cfg)
  else:
    graph = multi.build_graph(cfg, devices)
  session_config = cifar10_train.session_config(cfg,
                                                device_count={'CPU': cpus})
  with tf.Session(config=session_config) as sess:
    coord, threads = _start(tf, sess)
    started = time.time()
    sess.run(graph.train_op)
    first = time.time() - started
    _timed(sess, graph.train_op, warmup)
    elapsed, cpu = _timed(sess, graph.train_op, steps)
    _stop(coord, threads)
  examples_per_sec = steps * graph.examples_per_step / elapsed
  return {'examples_per_sec': examples_per_sec, 'sec_per_step': elapsed / steps,
          'cpu_sec_per_step': cpu / steps, 'steps': steps,
          'gflops': examples_per_sec * network_flops(True) / 1e9,
          'time_to_first_batch': first}


def _work_checkpoint(tf, args):
  """Saves a freshly initialised model (and its averages) for eval."""
  from cifar10_tutorial import cifar10_train
  cfg = cifar10_train.parse_args(['--data_dir', args.data_dir])
  cifar10_train.build_graph(cfg)
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    return {'path': tf.train.Saver().save(sess, os.path.join(
        args.checkpoint_dir, 'model.ckpt'), global_step=0)}


def _work_eval(tf, name, args):
  from cifar10_tutorial import cifar10_eval
  config = EVAL[name]
  argv = ['--data_dir', args.data_dir] + config['flags']
  if config.get('slow'):
    argv += ['--num_examples', str(SLOW_EVAL_EXAMPLES)]
  graph = cifar10_eval.EvalGraph(cifar10_eval.parse_args(argv))
  path = tf.train.latest_checkpoint(args.checkpoint_dir)
  graph.run(path)    # the first pass also loads kernels: not timed
  started = time.time()
  graph.run(path)
  elapsed = time.time() - started
  return {'images_per_sec': graph.num_examples / elapsed,
          'images': graph.num_examples, 'seconds': elapsed,
          'gflops': graph.num_examples * network_flops(False) / elapsed / 1e9}


def _worker(kind, name, args):
  """Runs in a child process: measures one thing, prints one JSON line."""
  from cifar10_tutorial import quiet
  quiet.install([])
  import tensorflow.compat.v1 as tf
  tf.disable_eager_execution()
  with tf.Graph().as_default():
    if kind == 'peak':
      result = _work_peak(tf, args)
    elif kind == 'input':
      result = _work_input(tf, name, args)
    elif kind in ('train', 'memory'):
      result = _work_train(tf, name, args)
    elif kind == 'checkpoint':
      result = _work_checkpoint(tf, args)
    else:
      result = _work_eval(tf, name, args)
  result.update(kind=kind, config=name, peak_rss_mb=_peak_rss_mb())
  print(json.dumps(result))


def synthetic_data(folder, train_records, test_records, seed=0):
  """Random records in the official layout, written a file at a time."""
  rng = np.random.default_rng(seed)
  out = os.path.join(folder, defaults.BATCHES_DIR)
  os.makedirs(out)
  per_file = train_records // len(defaults.TRAIN_FILES)
  for name, n in ([(f, per_file) for f in defaults.TRAIN_FILES] +
                  [(defaults.TEST_FILES[0], test_records)]):
    recs = rng.integers(0, 256, (n, defaults.RECORD_BYTES), dtype=np.uint8)
    recs[:, 0] %= defaults.NUM_CLASSES
    recs.tofile(os.path.join(out, name))
  return folder


class Runner(object):
  """Starts the workers and keeps every result."""

  def __init__(self, args):
    self.args = args
    self.results = []

  def run(self, kind, name, data_dir, env=None, round_=1):
    a = self.args
    cmd = [sys.executable, '-m', 'cifar10_tutorial.bench', '--worker',
           '%s:%s' % (kind, name), '--data_dir', data_dir,
           '--steps', str(a.steps), '--warmup', str(a.warmup),
           '--batch_size', str(a.batch_size),
           '--input_examples', str(a.input_examples),
           '--checkpoint_dir', a.checkpoint_dir]
    out = subprocess.run(cmd, env=dict(os.environ, **(env or {})),
                         capture_output=True, text=True)
    if out.returncode:
      sys.exit('bench: %s %s failed:\n%s' % (kind, name, out.stderr[-3000:]))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result['round'] = round_
    self.results.append(result)
    return result

  def rounds(self, kind, table, names, data_dir, key, unit):
    for round_ in range(1, self.args.rounds + 1):
      for name in names:
        r = self.run(kind, name, data_dir, table[name].get('env'), round_)
        print('  round %d  %-6s %-12s %9.1f %s' % (round_, kind, name, r[key],
                                                  unit), flush=True)

  def median(self, kind, name, key):
    return float(np.median([r[key] for r in self.results
                            if r['kind'] == kind and r['config'] == name]))


def _names(text, table, what, p):
  names = [n for n in text.split(',') if n]
  unknown = [n for n in names if n not in table]
  if unknown:
    p.error('unknown %s %s (known: %s)' % (what, ', '.join(unknown),
                                           ', '.join(table)))
  return names


def parse_args(argv):
  p = flags.parser(__doc__)
  p.add_argument('--data_dir', default='data',
                 help='real data here if present, else synthetic records')
  p.add_argument('--parts', default=','.join(PARTS),
                 help='comma-separated, from: ' + ', '.join(PARTS))
  p.add_argument('--configs', default=','.join(TRAIN),
                 help='training configurations, from: ' + ', '.join(TRAIN))
  p.add_argument('--inputs', default=','.join(INPUT),
                 help='input pipeline variants, from: ' + ', '.join(INPUT))
  p.add_argument('--evals', default=','.join(EVAL),
                 help='eval configurations, from: ' + ', '.join(EVAL))
  p.add_argument('--steps', type=flags.positive_int, default=200,
                 help='timed training steps (bf16: at most %d)' % SLOW_STEPS)
  p.add_argument('--warmup', type=int, default=30,
                 help='untimed training steps first')
  p.add_argument('--input_examples', type=flags.positive_int, default=40000,
                 help='examples dequeued in the input-alone measurement')
  p.add_argument('--rounds', type=flags.positive_int, default=2,
                 help='times each configuration runs, alternating')
  p.add_argument('--batch_size', type=flags.positive_int,
                 default=defaults.BATCH_SIZE,
                 help='training examples per step (per tower)')
  p.add_argument('--json', default='train_dirs/bench.json',
                 help='where the results go')
  p.add_argument('--worker', help=argparse.SUPPRESS)
  p.add_argument('--checkpoint_dir', help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if not args.worker:
    args.parts = _names(args.parts, dict.fromkeys(PARTS), 'part', p)
    args.configs = _names(args.configs, TRAIN, 'configuration', p)
    args.inputs = _names(args.inputs, INPUT, 'input variant', p)
    args.evals = _names(args.evals, EVAL, 'eval configuration', p)
  return args


def _ratio(value, base):
  return '%.2fx' % (value / base) if base else ''


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  if args.worker:
    kind, name = args.worker.split(':')
    return _worker(kind, name, args)

  scratch = tempfile.mkdtemp(prefix='cifar10-bench-')
  args.checkpoint_dir = os.path.join(scratch, 'checkpoint')
  try:
    return _bench(args, scratch)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def _bench(args, scratch):
  try:
    train_records, _ = records.check_data_dir(args.data_dir)
    data_dir, kind = args.data_dir, 'real data'
    source = 'real data in %s' % args.data_dir
  except records.DataError:
    train_records = defaults.EXAMPLES_PER_EPOCH_TRAIN
    data_dir = synthetic_data(os.path.join(scratch, 'data'), train_records,
                              defaults.EXAMPLES_PER_EPOCH_EVAL)
    kind = 'synthetic'
    source = 'SYNTHETIC records (no data in %s)' % args.data_dir
  print('bench: %s; %d CPUs; %d round(s); training: batch %d, %d timed steps '
        'after %d warm-up' % (source, os.cpu_count(), args.rounds,
                              args.batch_size, args.steps, args.warmup),
        flush=True)
  runner = Runner(args)
  summary = {'source': source, 'cpus': os.cpu_count()}
  med = runner.median

  if 'peak' in args.parts:
    peak = runner.run('peak', 'matmul', data_dir)
    summary['peak'] = peak
    print('\nmachine: float32 matrix product %.0f GFLOP/s, bfloat16 %.0f '
          'GFLOP/s (2048 x 2048)' % (peak['fp32_matmul_gflops'],
                                     peak['bf16_matmul_gflops']), flush=True)

  if 'input' in args.parts:
    print('\ninput pipeline alone (%d threads, batches of %d):' % (
        defaults.INPUT_THREADS, args.batch_size))
    runner.rounds('input', INPUT, args.inputs, data_dir, 'examples_per_sec',
                  'examples/s')
    base = med('input', args.inputs[0], 'cpu_ms_per_example')
    print('%-12s %12s %15s %18s' % ('variant', 'examples/s', 'CPU-ms/example',
                                    'CPU-ms vs first'))
    summary['input'] = {}
    for name in args.inputs:
      row = {k: med('input', name, k) for k in ('examples_per_sec',
                                                'cpu_ms_per_example')}
      summary['input'][name] = row
      print('%-12s %12.0f %15.4f %18s' % (
          name, row['examples_per_sec'], row['cpu_ms_per_example'],
          _ratio(base, row['cpu_ms_per_example'])))

  if 'train' in args.parts:
    print('\ntraining:')
    runner.rounds('train', TRAIN, args.configs, data_dir, 'examples_per_sec',
                  'examples/s')
    base = med('train', args.configs[0], 'examples_per_sec')
    print('%-10s %11s %7s %11s %8s %12s %9s %7s' % (
        'config', 'examples/s', 's/step', 'CPU-s/step', 'GFLOP/s',
        'first batch', 'peak RSS', 'ratio'))
    summary['train'] = {}
    for name in args.configs:
      row = {k: med('train', name, k) for k in (
          'examples_per_sec', 'sec_per_step', 'cpu_sec_per_step', 'gflops',
          'time_to_first_batch', 'peak_rss_mb')}
      summary['train'][name] = row
      print('%-10s %11.1f %7.3f %11.3f %8.1f %11.1fs %7.0fMB %7s' % (
          name, row['examples_per_sec'], row['sec_per_step'],
          row['cpu_sec_per_step'], row['gflops'], row['time_to_first_batch'],
          row['peak_rss_mb'], _ratio(row['examples_per_sec'], base)))

  if 'eval' in args.parts:
    print('\neval (one pass; bf16 over %d images):' % SLOW_EVAL_EXAMPLES)
    runner.run('checkpoint', 'fresh', data_dir)
    runner.rounds('eval', EVAL, args.evals, data_dir, 'images_per_sec',
                  'images/s')
    base = med('eval', args.evals[0], 'images_per_sec')
    print('%-10s %10s %8s %9s %7s' % ('config', 'images/s', 'GFLOP/s',
                                      'peak RSS', 'ratio'))
    summary['eval'] = {}
    for name in args.evals:
      row = {k: med('eval', name, k) for k in ('images_per_sec', 'gflops',
                                               'peak_rss_mb')}
      summary['eval'][name] = row
      print('%-10s %10.0f %8.1f %7.0fMB %7s' % (
          name, row['images_per_sec'], row['gflops'], row['peak_rss_mb'],
          _ratio(row['images_per_sec'], base)))

  if 'memory' in args.parts:
    many = 10 * train_records
    print('\nmemory: training (default) on %d synthetic records ...' % many,
          flush=True)
    big = synthetic_data(os.path.join(scratch, 'data_x10'), many,
                         defaults.EXAMPLES_PER_EPOCH_EVAL, seed=1)
    if not any(r['kind'] == 'train' and r['config'] == 'default'
               for r in runner.results):
      runner.run('train', 'default', data_dir)
    runner.run('memory', 'default', big)
    shutil.rmtree(big, ignore_errors=True)
    small = med('train', 'default', 'peak_rss_mb')
    large = med('memory', 'default', 'peak_rss_mb')
    summary['memory'] = {'records': train_records, 'peak_rss_mb': small,
                         'records_x10': many, 'peak_rss_mb_x10': large}
    print('peak RSS: %.0f MB on %d records (%s), %.0f MB on %d (%+.1f%%)' % (
        small, train_records, kind, large,
        many, 100.0 * (large - small) / small))

  os.makedirs(os.path.dirname(args.json) or '.', exist_ok=True)
  with open(args.json, 'w') as f:
    json.dump({'summary': summary, 'runs': runner.results,
               'args': {k: v for k, v in vars(args).items()
                        if k not in ('worker', 'checkpoint_dir')}},
              f, indent=2)
  print('\nwrote %s' % args.json)
  return 0


if __name__ == '__main__':
  sys.exit(main())
