"""Measures training speed of configurations side by side, in one run.

    python -m cifar10_tutorial.bench                 # what `make bench` runs
    python -m cifar10_tutorial.bench --steps 300 --rounds 3

Each configuration trains the trainer's own graph (`cifar10_train.build_graph`)
in a process of its own, since TensorFlow's kernel choice is fixed when it
loads; configurations alternate, round after round, so a noisy machine
slows them alike. Reported per configuration: steady-state examples/sec and
sec/step (warm-up steps excluded, summaries not run), time to the first
batch (the queue warm-up) and peak RSS. The ratios are to `tutorial`.

Configurations:
  tutorial  the tutorial's settings: TensorFlow's default kernels, tf.nn.lrn,
            per-example input, one preprocessing thread per CPU
  onednn    tutorial + oneDNN kernels
  default   this project's defaults: onednn + the matrix-product LRN
  towers2   the multi-GPU trainer's graph, 2 towers (on virtual CPU devices
            where there is no GPU); examples/sec counts both towers

Uses the real data in --data_dir when it is there, else synthetic records
(said in the output). A benchmark, not a test: nothing here passes or fails.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from cifar10_tutorial import defaults
from cifar10_tutorial import flags
from cifar10_tutorial import records

CONFIGS = {
    'tutorial': {'env': {'TF_ENABLE_ONEDNN_OPTS': '0'}, 'towers': 1,
                 'flags': ['--lrn', 'tf']},
    'onednn': {'env': {}, 'towers': 1, 'flags': ['--lrn', 'tf']},
    'default': {'env': {}, 'towers': 1, 'flags': []},
    'towers2': {'env': {}, 'towers': 2, 'flags': []},
}


def _worker(cfg_name, data_dir, steps, warmup, batch_size):
  """Runs in the child process: trains and prints one JSON line."""
  from cifar10_tutorial import quiet
  quiet.install([])
  import tensorflow.compat.v1 as tf
  from cifar10_tutorial import cifar10_multi_gpu_train as multi
  from cifar10_tutorial import cifar10_train

  towers = CONFIGS[cfg_name]['towers']
  cfg = multi.parse_args(['--data_dir', data_dir, '--batch_size',
                          str(batch_size), '--num_gpus', str(towers)] +
                         CONFIGS[cfg_name]['flags'])
  devices, cpus = multi.tower_devices(towers, 'auto')
  with tf.Graph().as_default():
    if towers == 1:
      graph = cifar10_train.build_graph(cfg)
    else:
      graph = multi.build_graph(cfg, devices)
    config = cifar10_train.session_config(cfg, device_count={'CPU': cpus})
    with tf.Session(config=config) as sess:
      sess.run([tf.global_variables_initializer(),
                tf.local_variables_initializer()])
      coord = tf.train.Coordinator()
      threads = tf.train.start_queue_runners(sess, coord)
      started = time.time()
      sess.run(graph.train_op)
      first_batch = time.time() - started
      for _ in range(warmup):
        sess.run(graph.train_op)
      started, cpu = time.time(), os.times()
      for _ in range(steps):
        sess.run(graph.train_op)
      elapsed, cpu_end = time.time() - started, os.times()
      coord.request_stop()
      coord.join(threads, stop_grace_period_secs=5,
                 ignore_live_threads=True)
  print(json.dumps({
      'config': cfg_name,
      'examples_per_sec': steps * graph.examples_per_step / elapsed,
      'sec_per_step': elapsed / steps,
      'cpu_sec_per_step': (cpu_end.user + cpu_end.system - cpu.user -
                           cpu.system) / steps,
      'time_to_first_batch': first_batch,
      'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }))


def _synthetic_data(folder, train_records, test_records):
  rng = np.random.RandomState(0)
  out = os.path.join(folder, defaults.BATCHES_DIR)
  os.makedirs(out)
  per_file = train_records // len(defaults.TRAIN_FILES)
  for name, n in ([(f, per_file) for f in defaults.TRAIN_FILES] +
                  [(defaults.TEST_FILES[0], test_records)]):
    recs = rng.randint(0, 256, size=(n, defaults.RECORD_BYTES)).astype(np.uint8)
    recs[:, 0] %= defaults.NUM_CLASSES
    recs.tofile(os.path.join(out, name))
  return folder


def _run(name, args, data_dir):
  env = dict(os.environ, **CONFIGS[name]['env'])
  cmd = [sys.executable, '-m', 'cifar10_tutorial.bench', '--worker', name,
         '--data_dir', data_dir, '--steps', str(args.steps), '--warmup',
         str(args.warmup), '--batch_size', str(args.batch_size)]
  out = subprocess.run(cmd, env=env, capture_output=True, text=True)
  if out.returncode:
    sys.exit('bench: %s failed:\n%s' % (name, out.stderr[-3000:]))
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
  p = flags.parser(__doc__)
  p.add_argument('--data_dir', default='data',
                 help='real data here if present, else synthetic records')
  p.add_argument('--configs', default='tutorial,onednn,default,towers2',
                 help='comma-separated, from: ' + ', '.join(CONFIGS))
  p.add_argument('--steps', type=int, default=200, help='timed steps')
  p.add_argument('--warmup', type=int, default=30, help='untimed steps first')
  p.add_argument('--rounds', type=int, default=2,
                 help='times each configuration runs, alternating')
  p.add_argument('--batch_size', type=int, default=defaults.BATCH_SIZE,
                 help='examples per step (per tower)')
  p.add_argument('--json', default='train_dirs/bench.json',
                 help='where the results go')
  p.add_argument('--worker', help=argparse.SUPPRESS)
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  if args.worker:
    return _worker(args.worker, args.data_dir, args.steps, args.warmup,
                   args.batch_size)

  names = args.configs.split(',')
  unknown = [n for n in names if n not in CONFIGS]
  if unknown:
    p.error('unknown configuration %s (known: %s)' % (
        ', '.join(unknown), ', '.join(CONFIGS)))
  try:
    records.check_data_dir(args.data_dir)
    data_dir, source = args.data_dir, 'real data in %s' % args.data_dir
  except records.DataError:
    data_dir = _synthetic_data(tempfile.mkdtemp(prefix='cifar10-bench-'),
                               defaults.EXAMPLES_PER_EPOCH_TRAIN,
                               defaults.EXAMPLES_PER_EPOCH_EVAL)
    source = 'SYNTHETIC records (no data in %s)' % args.data_dir
  print('bench: %s; %d timed steps after %d warm-up, batch %d, %d round(s), '
        '%d CPUs' % (source, args.steps, args.warmup, args.batch_size,
                     args.rounds, os.cpu_count()))
  runs = []
  for round_ in range(args.rounds):
    for name in names:
      result = _run(name, args, data_dir)
      result['round'] = round_ + 1
      runs.append(result)
      print('  round %d %-10s %7.1f examples/sec  %.3f s/step' % (
          round_ + 1, name, result['examples_per_sec'],
          result['sec_per_step']), flush=True)

  def median(name, key):
    return float(np.median([r[key] for r in runs if r['config'] == name]))

  base = names[0]
  print('\n%-10s %12s %9s %13s %12s %9s %8s' % (
      'config', 'examples/s', 's/step', 'CPU-s/step', 'first batch',
      'peak RSS', 'ratio'))
  summary = {}
  for name in names:
    row = {k: median(name, k) for k in ('examples_per_sec', 'sec_per_step',
                                        'cpu_sec_per_step',
                                        'time_to_first_batch', 'peak_rss_mb')}
    row['ratio_to_%s' % base] = (row['examples_per_sec'] /
                                 median(base, 'examples_per_sec'))
    summary[name] = row
    print('%-10s %12.1f %9.3f %13.3f %11.1fs %7.0fMB %7.2fx' % (
        name, row['examples_per_sec'], row['sec_per_step'],
        row['cpu_sec_per_step'], row['time_to_first_batch'],
        row['peak_rss_mb'], row['ratio_to_%s' % base]))
  os.makedirs(os.path.dirname(args.json) or '.', exist_ok=True)
  with open(args.json, 'w') as f:
    json.dump({'source': source, 'args': vars(args), 'runs': runs,
               'median': summary}, f, indent=2)
  print('\nwrote %s' % args.json)
  return 0


if __name__ == '__main__':
  sys.exit(main())
