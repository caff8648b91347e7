"""Measures the input pipeline, training, eval and memory, side by side.

    python -m cifar10_tutorial.bench                 # what `make bench` runs
    python -m cifar10_tutorial.bench --parts train --steps 300 --rounds 3
    python -m cifar10_tutorial.bench --parts eval --evals default,bf16

Every measurement runs in a process of its own (measure.py: TensorFlow
fixes its kernel choice when it loads), and the configurations of a part
alternate round after round, so a noisy machine slows them alike. Compare ratios within
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
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from cifar10_tutorial import defaults
from cifar10_tutorial import flags
from cifar10_tutorial import records

# The configurations: environment and flag overrides for the child process.
_TUTORIAL_ENV = {'TF_ENABLE_ONEDNN_OPTS': '0'}
_PER_EXAMPLE = {'input_pipeline': 'per_example'}
TRAIN = {
    'tutorial': {'env': _TUTORIAL_ENV, 'flags': dict(lrn='tf', **_PER_EXAMPLE)},
    'onednn': {'flags': dict(lrn='tf', **_PER_EXAMPLE)},
    'lrn': {'flags': _PER_EXAMPLE},
    'default': {'flags': {}},
    'towers2': {'flags': {}, 'towers': 2},
    'split2': {'flags': {'batch_size': defaults.BATCH_SIZE // 2},
               'towers': 2},
    'bf16': {'flags': {'precision': 'bf16'}, 'slow': True},
}
INPUT = {name: {} for name in flags.INPUT_PIPELINES}
EVAL = {
    'tutorial': {'env': _TUTORIAL_ENV,
                 'flags': dict(batch_size=128, lrn='tf', **_PER_EXAMPLE)},
    'default': {'flags': {}},
    'bf16': {'flags': {'precision': 'bf16'}, 'slow': True},
}
PARTS = ('peak', 'input', 'train', 'eval', 'memory')
SLOW_STEPS, SLOW_WARMUP, SLOW_EVAL_EXAMPLES = 20, 3, 1000

# The tables: (heading, result key, format) per column; the first column is
# the configuration's name, the last the ratio to the first row's `ratio`
# key (inverted where less is better).
INPUT_COLUMNS = [('variant', 'config', '%-12s'),
                 ('examples/s', 'examples_per_sec', '%12.0f'),
                 ('CPU-ms/example', 'cpu_ms_per_example', '%15.4f')]
TRAIN_COLUMNS = [('config', 'config', '%-10s'),
                 ('examples/s', 'examples_per_sec', '%11.1f'),
                 ('s/step', 'sec_per_step', '%7.3f'),
                 ('CPU-s/step', 'cpu_sec_per_step', '%11.3f'),
                 ('GFLOP/s', 'gflops', '%8.1f'),
                 ('first batch', 'time_to_first_batch', '%11.1fs'),
                 ('peak RSS', 'peak_rss_mb', '%7.0fMB')]
EVAL_COLUMNS = [('config', 'config', '%-10s'),
                ('images/s', 'images_per_sec', '%10.0f'),
                ('GFLOP/s', 'gflops', '%8.1f'),
                ('peak RSS', 'peak_rss_mb', '%7.0fMB')]


class Runner(object):
  """Starts the measurements, each in a process, and keeps every result."""

  def __init__(self, args):
    self.args = args
    self.results = []

  def run(self, kind, name, data_dir, env=None, round_=1):
    a = self.args
    cmd = [sys.executable, '-m', 'cifar10_tutorial.measure', '--worker',
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

  def table(self, kind, names, columns, ratio, ratio_heading='ratio',
            inverse=False):
    """Prints the medians of `kind` by configuration; returns them."""
    keys = [key for _, key, _ in columns[1:]] + (
        [ratio] if ratio not in [k for _, k, _ in columns] else [])
    rows = {name: {k: self.median(kind, name, k) for k in keys}
            for name in names}
    widths = [len(fmt % 0) for _, _, fmt in columns]
    print(' '.join(h.rjust(w) if i else h.ljust(w) for i, ((h, _, _), w)
                   in enumerate(zip(columns, widths))) + ' %9s' % ratio_heading)
    base = rows[names[0]][ratio]
    for name in names:
      row = rows[name]
      cells = [columns[0][2] % name] + [fmt % row[key]
                                        for _, key, fmt in columns[1:]]
      factor = ''
      if base and row[ratio]:
        factor = '%.2fx' % (base / row[ratio] if inverse else row[ratio] / base)
      print(' '.join(cells) + ' %9s' % factor)
    return rows


def _names(given, known, what):
  if given == ['all']:
    return list(known)
  unknown = [n for n in given if n not in known]
  if unknown:
    sys.exit('bench: unknown %s %s (known: %s)' % (what, ', '.join(unknown),
                                                  ', '.join(known)))
  return given


def main(argv=None):
  args = flags.parse('bench', sys.argv[1:] if argv is None else argv,
                     __doc__)
  args.parts = _names(args.parts, PARTS, 'part')
  args.configs = _names(args.configs, TRAIN, 'configuration')
  args.inputs = _names(args.inputs, INPUT, 'input variant')
  args.evals = _names(args.evals, EVAL, 'eval configuration')
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
    data_dir = os.path.join(scratch, 'data')
    records.write_random(data_dir, train_records,
                         defaults.EXAMPLES_PER_EPOCH_EVAL)
    kind = 'synthetic'
    source = 'SYNTHETIC records (no data in %s)' % args.data_dir
  print('bench: %s; %d CPUs; %d round(s); training: batch %d, %d timed steps '
        'after %d warm-up' % (source, os.cpu_count(), args.rounds,
                              args.batch_size, args.steps, args.warmup),
        flush=True)
  runner = Runner(args)
  summary = {'source': source, 'cpus': os.cpu_count()}

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
    summary['input'] = runner.table('input', args.inputs, INPUT_COLUMNS,
                                    'cpu_ms_per_example', 'CPU-ms vs first',
                                    inverse=True)

  if 'train' in args.parts:
    print('\ntraining:')
    runner.rounds('train', TRAIN, args.configs, data_dir, 'examples_per_sec',
                  'examples/s')
    summary['train'] = runner.table('train', args.configs, TRAIN_COLUMNS,
                                    'examples_per_sec')

  if 'eval' in args.parts:
    print('\neval (one pass; bf16 over %d images):' % SLOW_EVAL_EXAMPLES)
    runner.run('checkpoint', 'fresh', data_dir)
    runner.rounds('eval', EVAL, args.evals, data_dir, 'images_per_sec',
                  'images/s')
    summary['eval'] = runner.table('eval', args.evals, EVAL_COLUMNS,
                                   'images_per_sec')

  if 'memory' in args.parts:
    many = 10 * train_records
    print('\nmemory: training (default) on %d synthetic records ...' % many,
          flush=True)
    big = os.path.join(scratch, 'data_x10')
    records.write_random(big, many, defaults.EXAMPLES_PER_EPOCH_EVAL, seed=1)
    if not any(r['kind'] == 'train' and r['config'] == 'default'
               for r in runner.results):
      runner.run('train', 'default', data_dir)
    runner.run('memory', 'default', big)
    shutil.rmtree(big, ignore_errors=True)
    small = runner.median('train', 'default', 'peak_rss_mb')
    large = runner.median('memory', 'default', 'peak_rss_mb')
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
