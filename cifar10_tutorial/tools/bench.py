"""Measures the input pipeline, training, eval and memory, side by side.

    python -m cifar10_tutorial.tools.bench                 # what `make bench` runs
    python -m cifar10_tutorial.tools.bench --parts train --steps 300 --rounds 3
    python -m cifar10_tutorial.tools.bench --parts eval --evals default,bf16

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

Parts that run whole training programs, as a user starts them (not in
`--parts all`; for a GPU machine):
  sustained  examples/sec over --run_steps steps after --run_warmup, every
             step counted (summary and checkpoint steps too), timed by the
             wall clock from the trainer's own event files; the median of
             its logged examples/sec; the GPU's utilization, peak memory
             and name, sampled with nvidia-smi during the timed steps
  accuracy   trains --accuracy_steps steps, then `cifar10_eval --run_once`:
             precision @ 1 on the 10,000 test images, and the wall time
  ready      what a user waits for: a new run of --ready_steps steps (the
             tutorial's 0.80 at 15,216), from the command to its last
             checkpoint, in phases (to `starting a new run`: the imports;
             to the step-0 checkpoint: graph, session, device set-up; to
             the first logged step: the first runs, XLA's compiles; to the
             end: training), then `cifar10_eval --run_once` of it (seconds
             and precision @ 1); beside each round, a bare import of
             TensorFlow. The run `original` is the original tutorial's
             cifar10_train.py in --original (its total and first step)

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

Whole runs (--runs), for the sustained and accuracy parts:
  baseline        the --baseline checkout's cifar10_train, its defaults
  baseline_multi1 the --baseline checkout's cifar10_multi_gpu_train
                  --num_gpus 1
  default         cifar10_train, this checkout's defaults
  steps1, steps10 default with --steps_per_run 1 or 10
  no_xla          default with --xla false
  no_prefetch     default with --prefetch_to_device false
  cpu_preprocess  default with --preprocess_on cpu
  bf16            default with --precision bf16
  graph_loop      default with --compiled_loop false: the in-graph loop in
                  TensorFlow's executor, XLA compiling each step's parts
  multi1, multi2  cifar10_multi_gpu_train --num_gpus 1 or 2 (on GPUs: a
                  process per GPU, NCCL all-reduce compiled by XLA)
  multi2_kernel   multi2 with the all-reduce as TensorFlow's kernel, outside
                  XLA (CIFAR10_ALL_REDUCE=kernel; no compiled loop then)
  multi2_graph_loop
                  multi2 with --compiled_loop false
  multi2_replicated
                  multi2 with --variable_update replicated (one process, a
                  copy per GPU, NCCL in the graph)
  cmdbuf_off, cmdbuf_all
                  default with XLA's CUDA-graph command buffers off, or on
                  for every kind of kernel (XLA_FLAGS)
  cmdbuf_loop, multi2_cmdbuf
                  default or multi2 with command buffers also for the
                  compiled loop's while loop, its conditionals and NCCL's
                  collectives, so a whole run can be one CUDA graph
  multi2_lhs      multi2 with XLA's latency-hiding scheduler, which may
                  overlap the all-reduce with other work
  cluster1, cluster2
                  cluster.launch (make train-cluster) with 1 or 2 workers
                  and 1 parameter server on this machine, asynchronous
  allreduce2      cluster.launch with 2 workers and no parameter server:
                  they all-reduce (a GPU each)

The accuracy part trains every run on the same number of examples:
--accuracy_steps steps of one --batch_size, fewer for runs of several
towers.

Uses the real data in --data_dir when it is there, else synthetic records
(said in the output). Results also go to a JSON file. A benchmark, not a
test: nothing here passes or fails.
"""
if __name__ == '__main__':
  # The sustained and accuracy parts read event files with TensorFlow.
  from cifar10_tutorial.shell import quiet
  quiet.install(program='bench', doc=__doc__)   # --help before TensorFlow

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from cifar10_tutorial.core import children
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.shell import flags
from cifar10_tutorial.shell import quiet
from cifar10_tutorial.tools import bench_configs

# The configurations and whole runs: bench_configs.py, which measure.py
# reads too.
TRAIN, INPUT, EVAL, RUNS = (bench_configs.TRAIN, bench_configs.INPUT,
                            bench_configs.EVAL, bench_configs.RUNS)
SLOW_EVAL_EXAMPLES = bench_configs.SLOW_EVAL_EXAMPLES
PARTS = ('peak', 'input', 'train', 'eval', 'memory')
RUN_PARTS = ('sustained', 'accuracy', 'ready')   # only when named
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))   # the checkout

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
SUSTAINED_COLUMNS = [('run', 'config', '%-14s'),
                     ('sustained ex/s', 'examples_per_sec', '%14.0f'),
                     ('median ex/s', 'median_examples_per_sec', '%11.0f'),
                     ('GPU busy', 'gpu_utilization', '%7.0f%%'),
                     ('GPU peak MiB', 'gpu_peak_mib', '%12.0f')]
READY_COLUMNS = [('run', 'config', '%-14s'),
                 ('import s', 'import_seconds', '%8.1f'),
                 ('to start', 'to_start', '%8.1f'),
                 ('to ckpt 0', 'to_first_checkpoint', '%9.1f'),
                 ('to 1st log', 'to_first_log', '%10.1f'),
                 ('to last ckpt', 'train_seconds', '%12.1f'),
                 ('eval s', 'eval_seconds', '%6.1f'),
                 ('precision@1', 'precision_at_1', '%11.3f')]
ACCURACY_COLUMNS = [('run', 'config', '%-14s'),
                    ('steps', 'steps', '%6d'),
                    ('precision@1', 'precision_at_1', '%11.3f'),
                    ('train s', 'train_seconds', '%8.0f')]


class GpuMonitor(object):
  """Samples each GPU's utilization and memory with nvidia-smi, 5 times a
  second, in the background; nothing where there is no nvidia-smi."""

  QUERY = 'index,name,utilization.gpu,memory.used'

  def __init__(self):
    self.samples = []   # (time, index, name, utilization %, memory MiB)
    self._proc = None

  def __enter__(self):
    if shutil.which('nvidia-smi'):
      self._proc = subprocess.Popen(
          ['nvidia-smi', '--query-gpu=' + self.QUERY,
           '--format=csv,noheader,nounits', '-lms', '200'],
          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
      self._reader = threading.Thread(target=self._read, daemon=True)
      self._reader.start()
    return self

  def _read(self):
    for line in self._proc.stdout:
      parts = [p.strip() for p in line.split(',')]
      try:
        self.samples.append((time.time(), int(parts[0]), parts[1],
                             float(parts[2]), float(parts[3])))
      except (IndexError, ValueError):
        pass   # a line nvidia-smi could not fill ("[N/A]")

  def __exit__(self, *exc):
    if self._proc:
      self._proc.terminate()
      self._proc.wait()
      self._reader.join(timeout=5)

  def summary(self, start, end, gpus):
    """Mean utilization of GPUs 0..gpus-1 from `start` to `end`, their peak
    memory over the whole run, and their names."""
    used = [s for s in self.samples if s[1] < gpus]
    timed = [s[3] for s in used if start <= s[0] <= end]
    return {'gpu_utilization': float(np.mean(timed)) if timed else
                               float('nan'),
            'gpu_peak_mib': max([s[4] for s in used] or [float('nan')]),
            'gpu': ', '.join(sorted({'%d: %s' % (s[1], s[2])
                                     for s in used})) or 'none'}


class Runner(object):
  """Starts the measurements, each in a process, and keeps every result."""

  def __init__(self, args):
    self.args = args
    self.results = []

  def run(self, kind, name, data_dir, env=None, round_=1):
    a = self.args
    cmd = [sys.executable, '-m', 'cifar10_tutorial.tools.measure', '--worker',
           '%s:%s' % (kind, name), '--data_dir', data_dir,
           '--steps', str(a.steps), '--warmup', str(a.warmup),
           '--batch_size', str(a.batch_size),
           '--input_examples', str(a.input_examples),
           '--checkpoint_dir', a.checkpoint_dir]
    out = children.run(cmd, env=dict(os.environ, **(env or {})),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if out.returncode:
      sys.exit('bench: %s %s failed:\n%s' % (kind, name, out.stderr[-3000:]))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result['round'] = round_
    self.results.append(result)
    return result

  def _command(self, name, data_dir, train_dir, steps):
    """(argv, the folder it runs in) of run `name` as a user starts it."""
    a, run = self.args, RUNS[name]
    where = run.get('checkout')
    if where and not getattr(a, where):
      sys.exit('bench: the %s run needs --%s DIR' % (name, where))
    if where == 'original':   # its own flags: no --batch_size default change
      checkout = os.path.abspath(a.original)
      return [sys.executable, os.path.join(checkout, 'cifar10_train.py'),
              '--data_dir', os.path.abspath(data_dir), '--train_dir',
              train_dir, '--max_steps', str(steps)], checkout
    checkout = os.path.abspath(a.baseline) if where else ROOT
    return [sys.executable, '-m', 'cifar10_tutorial.' + run['program'],
            '--data_dir', os.path.abspath(data_dir), '--train_dir', train_dir,
            '--max_steps', str(steps), '--batch_size', str(a.batch_size),
            '--log_frequency', '10'] + run['flags'], checkout

  def ready(self, name, data_dir, round_=1):
    """A new run of --ready_steps from the command to its last
    checkpoint, in phases stamped as its lines arrive; then eval of it."""
    a, run = self.args, RUNS[name]
    train_dir = tempfile.mkdtemp(prefix=name + '-', dir=a.checkpoint_dir)
    shutil.rmtree(train_dir)   # a new run, as `make train` makes it
    cmd, checkout = self._command(name, data_dir, train_dir, a.ready_steps)
    result = {'kind': 'ready', 'config': name, 'round': round_,
              'steps': a.ready_steps, 'checkout': checkout,
              'import_seconds': _import_seconds()}
    marks = (('to_start', 'starting a new run'),
             ('to_first_checkpoint', 'saved checkpoint at step 0'),
             ('to_first_log', re.compile(r'step \d+, loss = ')))
    started = time.time()
    proc = children.start(cmd, cwd=checkout, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env=dict(quiet.USER_ENV or os.environ,
                                   **run.get('env', {})))
    lines = []
    try:
      for line in proc.stdout:
        lines.append(line)
        for key, mark in marks:
          if key not in result and (mark.search(line) if hasattr(
              mark, 'search') else mark in line):
            result[key] = time.time() - started
      proc.wait()
    except BaseException:
      children.kill(proc)
      raise
    result['train_seconds'] = time.time() - started
    if proc.returncode:
      print('bench: ready %s failed (exit %d):\n%s' % (
          name, proc.returncode, ''.join(lines)[-3000:]))
      result['failed'] = True
    else:
      started = time.time()
      result.update(_evaluate(train_dir, data_dir))
      result['eval_seconds'] = time.time() - started
    shutil.rmtree(train_dir, ignore_errors=True)
    self.results.append(result)
    return result

  def program(self, kind, name, data_dir, round_=1):
    """One whole training run (and, for accuracy, an eval of it)."""
    a, run = self.args, RUNS[name]
    train_dir = tempfile.mkdtemp(prefix=name + '-', dir=a.checkpoint_dir)
    towers = run.get('towers', 1)
    steps = (a.accuracy_steps // towers if kind == 'accuracy' else
             a.run_warmup + a.run_steps)
    cmd, checkout = self._command(name, data_dir, train_dir, steps)
    with GpuMonitor() as gpu:
      started = time.time()
      # The user's environment, not ours: our defaults (such as GPU memory
      # growth) must not reach another checkout's run.
      out = children.run(cmd, cwd=checkout, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env=dict(quiet.USER_ENV or os.environ,
                                  **run.get('env', {})))
      seconds = time.time() - started
    result = {'kind': kind, 'config': name, 'round': round_, 'steps': steps,
              'train_seconds': seconds, 'checkout': checkout}
    if out.returncode:
      # Said, and the other runs still measured: a GPU call is dear.
      print('bench: %s %s failed (exit %d):\n%s' % (
          kind, name, out.returncode, (out.stdout + out.stderr)[-3000:]))
      result.update(failed=True, examples_per_sec=float('nan'),
                    precision_at_1=float('nan'))
    elif kind == 'accuracy':
      result.update(_evaluate(train_dir, data_dir))
    else:
      result.update(_sustained(train_dir, a.run_warmup, steps,
                               a.batch_size * towers, gpu, towers))
    shutil.rmtree(train_dir, ignore_errors=True)
    self.results.append(result)
    return result

  def rounds(self, kind, table, names, data_dir, key, unit):
    for round_ in range(1, self.args.rounds + 1):
      for name in names:
        if kind == 'ready':
          r = self.ready(name, data_dir, round_)
        elif kind in RUN_PARTS:
          r = self.program(kind, name, data_dir, round_)
        else:
          r = self.run(kind, name, data_dir, table[name].get('env'), round_)
        print('  round %d  %-6s %-14s %9s %s' % (
            round_, kind, name, '%.3f' % r[key] if r[key] < 10 else
            '%.1f' % r[key], unit), flush=True)

  def median(self, kind, name, key):
    return float(np.median([r.get(key, np.nan) for r in self.results
                            if r['kind'] == kind and r['config'] == name]))

  def table(self, kind, names, columns, ratio, ratio_heading='ratio',
            inverse=False):
    """Prints the medians of `kind` by configuration; returns them."""
    keys = [key for _, key, _ in columns[1:]] + (
        [ratio] if ratio and ratio not in [k for _, k, _ in columns] else [])
    rows = {name: {k: self.median(kind, name, k) for k in keys}
            for name in names}
    widths = [len(fmt % 0) for _, _, fmt in columns]
    print(' '.join(h.rjust(w) if i else h.ljust(w) for i, ((h, _, _), w)
                   in enumerate(zip(columns, widths))) +
          (' %9s' % ratio_heading if ratio else ''))
    base = rows[names[0]][ratio] if ratio else None
    for name in names:
      row = rows[name]
      cells = [columns[0][2] % name] + [fmt % row[key]
                                        for _, key, fmt in columns[1:]]
      factor = ''
      if np.isfinite(base or np.nan) and np.isfinite(row[ratio]):
        factor = '%.2fx' % (base / row[ratio] if inverse else row[ratio] / base)
      print(' '.join(cells) + (' %9s' % factor if ratio else ''))
    return rows


def _sustained(train_dir, warmup, steps, examples_per_step, gpu, gpus):
  """Rates from the trainer's own logged examples/sec events: their wall
  times time every step from --run_warmup to the end."""
  from cifar10_tutorial.core import summaries   # TensorFlow: only for these parts
  points = [p for p in summaries.read_scalars(train_dir, 'examples_per_sec')
            if p[1] >= warmup]
  (start, first, _), (end, last, _) = points[0], points[-1]
  rate = (last - first) * examples_per_step / (end - start)
  result = {'examples_per_sec': rate, 'timed_steps': last - first,
            'median_examples_per_sec': float(np.median(
                [p[2] for p in points[1:]]))}
  result.update(gpu.summary(start, end, gpus))
  return result


def _import_seconds():
  """Seconds a bare `import tensorflow.compat.v1` takes here now (as the
  programs import it: without Keras)."""
  started = time.time()
  children.run([sys.executable, '-c', 'import tensorflow.compat.v1'],
               env=dict(quiet.USER_ENV or os.environ, TF_USE_LEGACY_KERAS='1',
                        TF_CPP_MIN_LOG_LEVEL='3'),
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  return time.time() - started


def _evaluate(train_dir, data_dir):
  out = children.run(
      [sys.executable, '-m', 'cifar10_tutorial.cifar10_eval', '--data_dir',
       os.path.abspath(data_dir), '--checkpoint_dir', train_dir, '--eval_dir',
       os.path.join(train_dir, 'eval'), '--run_once'], cwd=ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  found = [l for l in out.stdout.splitlines() if 'precision @ 1 = ' in l]
  if out.returncode or not found:
    sys.exit('bench: eval of %s failed:\n%s' % (train_dir, (
        out.stdout + out.stderr)[-3000:]))
  return {'precision_at_1': float(found[-1].split(' = ')[1].split()[0])}


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
  args.parts = (list(PARTS) if args.parts == ['all'] else
                _names(args.parts, PARTS + RUN_PARTS, 'part'))
  args.runs = _names(args.runs, RUNS, 'run')
  args.configs = _names(args.configs, TRAIN, 'configuration')
  args.inputs = _names(args.inputs, INPUT, 'input variant')
  args.evals = _names(args.evals, EVAL, 'eval configuration')
  scratch = tempfile.mkdtemp(prefix='cifar10-bench-')
  args.checkpoint_dir = os.path.join(scratch, 'checkpoint')
  try:
    return _bench(args, scratch)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def _data(args, scratch):
  """(data folder, train records, kind, what to say): the real data in
  --data_dir, else synthetic records written to `scratch`."""
  try:
    train_records, _ = records.check_data_dir(args.data_dir)
    return (args.data_dir, train_records, 'real data',
            'real data in %s' % args.data_dir)
  except records.DataError:
    data_dir = os.path.join(scratch, 'data')
    records.write_random(data_dir, defaults.EXAMPLES_PER_EPOCH_TRAIN,
                         defaults.EXAMPLES_PER_EPOCH_EVAL)
    return (data_dir, defaults.EXAMPLES_PER_EPOCH_TRAIN, 'synthetic',
            'SYNTHETIC records (no data in %s)' % args.data_dir)


def _bench(args, scratch):
  data_dir, train_records, kind, source = _data(args, scratch)
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
  _configurations(args, runner, data_dir, summary)
  if 'memory' in args.parts:
    summary['memory'] = _memory(runner, data_dir, train_records, kind,
                                scratch)
  for part in RUN_PARTS:
    if part in args.parts:
      summary[part] = _whole_runs(args, runner, part, data_dir)
  os.makedirs(os.path.dirname(args.json) or '.', exist_ok=True)
  with open(args.json, 'w') as f:
    json.dump({'summary': summary, 'runs': runner.results,
               'args': {k: v for k, v in vars(args).items()
                        if k not in ('worker', 'checkpoint_dir')}},
              f, indent=2)
  print('\nwrote %s' % args.json)
  return 0


def _configurations(args, runner, data_dir, summary):
  """The input, train and eval parts: each configuration's rounds, then
  its table (into `summary`)."""
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


def _memory(runner, data_dir, train_records, kind, scratch):
  """Peak RSS of training on ten times as many records, beside the data's."""
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
  print('peak RSS: %.0f MB on %d records (%s), %.0f MB on %d (%+.1f%%)' % (
      small, train_records, kind, large, many,
      100.0 * (large - small) / small))
  return {'records': train_records, 'peak_rss_mb': small,
          'records_x10': many, 'peak_rss_mb_x10': large}


def _whole_runs(args, runner, part, data_dir):
  """A part of whole runs (sustained, accuracy, ready): each run's rounds,
  its table and the GPUs it ran on."""
  print('\n%s (whole runs: %s):' % (part, ', '.join(args.runs)), flush=True)
  os.makedirs(args.checkpoint_dir, exist_ok=True)
  key, unit, columns = {
      'sustained': ('examples_per_sec', 'examples/s', SUSTAINED_COLUMNS),
      'accuracy': ('precision_at_1', 'precision @ 1', ACCURACY_COLUMNS),
      'ready': ('train_seconds', 's to the last checkpoint',
                READY_COLUMNS)}[part]
  runner.rounds(part, RUNS, args.runs, data_dir, key, unit)
  table = runner.table(part, args.runs, columns,
                       {'sustained': 'examples_per_sec',
                        'ready': 'train_seconds'}.get(part),
                       inverse=part == 'ready')
  for name in args.runs:
    gpus = {r.get('gpu') for r in runner.results
            if r['kind'] == part and r['config'] == name}
    if gpus - {None}:
      print('  %s ran on %s' % (name, ', '.join(sorted(gpus - {None}))))
  return table


if __name__ == '__main__':
  sys.exit(main())
