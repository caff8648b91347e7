"""Interrupts, crashes, eval beside training, bad data: what the user sees."""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import stopping
from cifar10_tutorial.engine import rundir
from conftest import ROOT, Running, run_module, write_data

NOISE = ('Traceback', 'Enqueue operation was cancelled', 'local_rendezvous')


def _train_args(data_dir, train_dir, *extra):
  return ['--data_dir', data_dir, '--train_dir', train_dir, '--batch_size',
          '4', '--log_frequency', '2'] + list(extra)


def _stop_with(run, signum, after):
  # A GPU's first run also compiles the loop: tens of seconds on a busy
  # machine.
  run.wait_for(after, timeout=180)
  run.proc.send_signal(signum)
  try:
    code = run.proc.wait(timeout=30)
  finally:
    run.stop()
  return code


@pytest.mark.parametrize('module, signum, extra', [
    ('cifar10_train', signal.SIGINT, []),
    ('cifar10_multi_gpu_train', signal.SIGTERM,
     ['--num_gpus', '2', '--tower_device', 'cpu']),
    ('cifar10_multi_gpu_train', signal.SIGINT,
     ['--num_gpus', '2', '--tower_device', 'cpu', '--variable_update',
      'collective']),
])
def test_a_signal_saves_a_checkpoint_and_the_next_run_resumes(
    tiny_data, tmp_path, module, signum, extra):
  train_dir = str(tmp_path / 'train')
  args = _train_args(tiny_data[0], train_dir, *extra)
  run = Running(module, *args)
  code = _stop_with(run, signum, 'step 4, loss')
  assert code == 128 + signum, run.output
  assert 'stopping (%s): finishing this step and saving a checkpoint' % (
      'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM') in run.output
  stopped = re.search(r'interrupted at step (\d+); checkpoint saved in %s' %
                      re.escape(train_dir), run.output)
  assert stopped, run.output
  step = int(stopped.group(1))
  assert 'saved checkpoint at step %d' % step in run.output
  assert tf.train.latest_checkpoint(train_dir).endswith('-%d' % step)
  for noise in NOISE:
    assert noise not in run.output
  again = run_module(module, '--max_steps', str(step + 2), *args)
  assert again.returncode == 0, again.stdout + again.stderr
  assert 'resuming from %s/model.ckpt-%d (step %d)' % (train_dir, step,
                                                        step) in again.stdout


def _child(tmp_path, source, *args):
  """A child running `source` (which uses the real stopping module and
  prints "ready" once it handles signals), returned at that point."""
  script = tmp_path / 'child.py'
  script.write_text('import logging, sys\n'
                    'from cifar10_tutorial.core import stopping\n'
                    'logging.basicConfig(level=logging.INFO, '
                    'stream=sys.stdout)\n' + source)
  child = subprocess.Popen([sys.executable, str(script)] + list(args),
                           cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
  child.ready = _wait_line(child, 'ready')
  return child


def _slow_stopper(tmp_path, grace):
  """A child whose clean stop would take a minute (as with a stuck queue);
  returned once it handles signals."""
  return _child(tmp_path,
                'import time\n'
                'stopping.GRACE_SECS = float(sys.argv[1])\n'
                'def first(signum):\n'
                '  print("first signal", flush=True)\n'
                '  time.sleep(60)\n'
                'with stopping.on_signals(first):\n'
                '  print("ready", flush=True)\n'
                '  time.sleep(60)\n', str(grace))


def _signalled(child, signum, timeout):
  """Sends `signum`; (exit status, seconds until the child ended, what it
  printed after that)."""
  started = time.time()
  child.send_signal(signum)
  rest, _ = child.communicate(timeout=timeout)
  return child.returncode, time.time() - started, rest


def _wait_line(proc, text):
  for line in proc.stdout:
    if text in line:
      return line
  raise AssertionError('no %r' % text)


def test_a_second_ctrl_c_quits_at_once(tmp_path):
  child = _slow_stopper(tmp_path, grace=30)
  child.send_signal(signal.SIGINT)
  _wait_line(child, 'first signal')
  time.sleep(stopping.SAME_REQUEST_SECS + 0.5)   # a person's second one
  code, seconds, rest = _signalled(child, signal.SIGINT, 10)
  assert code == 130 and seconds < 5
  assert 'second signal: quitting at once' in rest


def test_a_stop_that_hangs_is_cut_short_by_the_watchdog(tmp_path):
  child = _slow_stopper(tmp_path, grace=1)
  code, seconds, rest = _signalled(child, signal.SIGTERM, 15)
  assert code == 143 and seconds < 10
  assert 'did not stop within 1 s: quitting' in rest


def test_eval_stops_on_a_signal(trained_run, tmp_path):
  run = Running('cifar10_eval', '--data_dir', trained_run['data_dir'],
                '--checkpoint_dir', str(tmp_path / 'none'), '--eval_dir',
                str(tmp_path / 'eval'))
  code = _stop_with(run, signal.SIGTERM, 'waiting for a new checkpoint')
  assert code == 143 and 'eval stopped' in run.output
  assert 'Traceback' not in run.output


def test_one_eval_per_eval_dir_and_a_missing_train_dir_is_said(trained_run,
                                                                tmp_path):
  eval_dir, missing = str(tmp_path / 'eval'), str(tmp_path / 'none')
  data = ['--data_dir', trained_run['data_dir']]
  run = Running('cifar10_eval', *data, '--checkpoint_dir', missing,
                '--eval_dir', eval_dir)
  try:
    run.wait_for('waiting for a new checkpoint in %s (every %d s): the '
                 'folder does not exist yet' % (missing,
                                                defaults.EVAL_INTERVAL_SECS))
    second = run_module('cifar10_eval', *data, '--checkpoint_dir',
                        trained_run['train_dir'], '--eval_dir', eval_dir,
                        '--run_once')
  finally:
    run.stop()
  assert second.returncode == 1
  assert second.stdout.strip().splitlines()[-1].endswith(
      '%s: expected no other eval using it, found one running (process %d on '
      '%s); wait for it to finish, or use another --eval_dir' % (
          eval_dir, run.proc.pid, socket.gethostname()))
  once = run_module('cifar10_eval', *data, '--checkpoint_dir', missing,
                    '--eval_dir', eval_dir, '--run_once')
  assert once.returncode == 1
  assert once.stdout.strip().splitlines()[-1].endswith(
      'error: %s: expected a train dir with checkpoints, found no such '
      'folder' % missing)


def test_kill_9_at_any_moment_leaves_a_run_that_resumes(tiny_data, tmp_path):
  train_dir = str(tmp_path / 'train')
  # A checkpoint every step, so the kills land in and around saves.
  args = _train_args(tiny_data[0], train_dir, '--save_checkpoint_steps', '1',
                     '--log_frequency', '1')
  rng = random.Random(0)
  for kill in range(3):
    run = Running('cifar10_train', *args)
    run.wait_for('saved checkpoint at step %d' %
                 (rundir.latest(train_dir)[1] + 3))
    time.sleep(rng.uniform(0, 0.1))
    run.proc.kill()
    run.stop()
  step = rundir.latest(train_dir)[1]
  result = run_module('cifar10_train', '--max_steps', str(step + 2), *args)
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'resuming from %s/model.ckpt-%d' % (train_dir, step) in result.stdout


def test_leftovers_of_a_save_cut_short_are_ignored(trained_run, tmp_path):
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  # What a kill during a save can leave: a temp folder and unlisted files.
  os.makedirs(os.path.join(train_dir, 'model.ckpt-99_temp'))
  for name in ('model.ckpt-99_temp/part-00000-of-00001.data-00000-of-00001',
               'model.ckpt-99.index', 'model.ckpt-99.data-00000-of-00001'):
    with open(os.path.join(train_dir, name), 'wb') as f:
      f.write(b'\x00' * 100)
  # And what a kill -9 between a save's data and its index leaves, or
  # while its graph is written.
  for name in ('model.ckpt-5.data-00000-of-00001', 'model.ckpt-6.meta.tmp'):
    with open(os.path.join(train_dir, name), 'wb') as f:
      f.write(b'\x00' * 100)
  result = run_module('cifar10_train', '--max_steps', '8',
                      *_train_args(trained_run['data_dir'], train_dir),
                      '--batch_size', '8')   # the run's own
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'model.ckpt-6 (step 6)' in result.stdout
  # The trainer holds the dir: it removes them, saying so, and never a
  # checkpoint with an index (model.ckpt-99 is only reported unreadable).
  assert re.search(r'removed what a save cut short left: '
                   r'model\.ckpt-5\.data-00000-of-00001, '
                   r'model\.ckpt-6\.meta\.tmp, model\.ckpt-99_temp',
                   result.stdout), result.stdout
  left = os.listdir(train_dir)
  assert 'model.ckpt-99_temp' not in left and 'model.ckpt-99.index' in left
  assert 'model.ckpt-5.data-00000-of-00001' not in left
  assert 'model.ckpt-6.meta.tmp' not in left


@pytest.mark.parametrize('how', ['truncated', 'deleted'])
def test_record_files_changed_under_a_trainer_stop_it_in_one_line(
    tiny_data, tmp_path, how):
  # Truncated, the readers find no whole record and a step would wait for
  # a batch forever; deleted, they fail. Either way: one line, the file
  # named, a checkpoint, exit 1, within seconds.
  data_dir = tiny_data[0]
  train_dir = str(tmp_path / 'train')
  run = Running('cifar10_train', *_train_args(data_dir, train_dir))
  run.wait_for('step 4, loss')
  folder = os.path.join(data_dir, defaults.BATCHES_DIR)
  for name in defaults.TRAIN_FILES:
    if how == 'truncated':
      _truncate(os.path.join(folder, name), 1000)
    else:
      os.remove(os.path.join(folder, name))
  started = time.time()
  try:
    code = run.proc.wait(timeout=40)
  finally:
    run.stop()
  assert code == 1, run.output
  assert time.time() - started < 30
  last = run.output.strip().splitlines()[-1]
  found = ('found 1,000 (truncated while training)' if how == 'truncated'
           else 'found it gone (deleted or moved while training)')
  stopped = re.search(r'error: .*data_batch_\d\.bin: expected .*%s; stopped '
                      r'at step (\d+), checkpoint saved$' % re.escape(found),
                      last)
  assert stopped, run.output
  assert tf.train.latest_checkpoint(train_dir).endswith('-' + stopped.group(1))
  for noise in NOISE:
    assert noise not in run.output


def test_a_signal_ends_a_program_blocked_inside_tensorflow(tmp_path):
  # A main thread waiting inside session.run never runs Python's signal
  # handlers; the stop's deadline still holds.
  child = _child(tmp_path,
                 'import tensorflow.compat.v1 as tf\n'
                 'stopping.GRACE_SECS = 2\n'
                 'tf.disable_eager_execution()\n'
                 'empty = tf.FIFOQueue(1, [tf.float32]).dequeue()\n'
                 'with tf.Session() as sess, '
                 'stopping.on_signals(lambda s: None):\n'
                 '  print("ready", flush=True)\n'
                 '  sess.run(empty)\n')
  time.sleep(0.5)   # in session.run
  code, seconds, rest = _signalled(child, signal.SIGTERM, 20)
  assert code == 143 and seconds < 10
  assert 'did not stop within 2 s: quitting' in rest


def test_eval_skips_rotated_checkpoints_and_retries_unreadable_ones(
    trained_run, tmp_path):
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  data = os.path.join(train_dir, 'model.ckpt-6.data-00000-of-00001')
  shutil.move(data, data + '.whole')
  with open(data + '.whole', 'rb') as whole, open(data, 'wb') as half:
    half.write(whole.read()[:1000])   # being written
  # Listed, but not there (rotated away): never read, never waited for.
  tf.train.update_checkpoint_state(train_dir, 'model.ckpt-6', [
      'model.ckpt-0', 'model.ckpt-3', 'model.ckpt-6'])
  eval_dir = str(tmp_path / 'eval')
  args = ['--data_dir', trained_run['data_dir'], '--checkpoint_dir',
          train_dir, '--eval_dir', eval_dir, '--eval_interval_secs', '1']
  run = Running('cifar10_eval', *args)
  try:
    run.wait_for('step 6: could not read')
    shutil.move(data + '.whole', data)   # the save completes
    run.wait_for('step 6: precision @ 1')
    run.wait_for('waiting for a new checkpoint', timeout=30)
  finally:
    run.stop()
  assert 'model.ckpt-3' not in run.output
  assert 'will retry' in run.output
  assert re.findall(r'step (\d+): precision', run.output) == ['0', '6']
  assert 'Traceback' not in run.output
  # Restarted, it knows what it already wrote and evaluates nothing again.
  run = Running('cifar10_eval', *args)
  try:
    run.wait_for('already has steps 0, 6: not evaluating them again')
    run.wait_for('waiting for a new checkpoint')
  finally:
    run.stop()
  assert 'precision @ 1' not in run.output
  once = run_module('cifar10_eval', '--run_once', *args)
  assert once.returncode == 0
  assert re.search(r'step 6: precision @ 1 = [\d.]+ \(already in %s\)' %
                   re.escape(eval_dir), once.stdout)


def _truncate(path, size):
  with open(path, 'r+b') as f:
    f.truncate(size)


def _set_label(path, record, label):
  with open(path, 'r+b') as f:
    f.seek(record * defaults.RECORD_BYTES)
    f.write(bytes([label]))


@pytest.mark.parametrize('module, breakage, expected', [
    ('cifar10_train', 'truncate',
     'data_batch_3.bin: expected a non-empty multiple of 3073 bytes (a label '
     'byte and 3072 image bytes per record), found 5000 bytes (truncated?)'),
    ('cifar10_train', 'empty', 'data_batch_3.bin: expected a non-empty '
     'multiple of 3073 bytes'),
    ('cifar10_multi_gpu_train', 'missing',
     'data_batch_3.bin: expected a CIFAR-10 record file, found no such file'),
    ('cifar10_eval', 'label',
     'test_batch.bin: expected label bytes 0-9, found 12 in record 5'),
    ('cifar10_train', 'wrong_dir',
     'expected a CIFAR-10 record file, found no folder'),
    ('cifar10_eval', 'too_many', '--num_examples 31 is more than the 30 '
     'records there'),
])
def test_bad_data_fails_before_any_session_with_one_line(tmp_path, module,
                                                         breakage, expected):
  data_dir = str(tmp_path / 'data')
  write_data(data_dir)
  folder = os.path.join(data_dir, defaults.BATCHES_DIR)
  if breakage == 'truncate':
    _truncate(os.path.join(folder, 'data_batch_3.bin'), 5000)
  elif breakage == 'empty':
    _truncate(os.path.join(folder, 'data_batch_3.bin'), 0)
  elif breakage == 'missing':
    os.remove(os.path.join(folder, 'data_batch_3.bin'))
  elif breakage == 'label':
    _set_label(os.path.join(folder, 'test_batch.bin'), 5, 12)
  elif breakage == 'wrong_dir':
    data_dir = str(tmp_path / 'not_there')
  run_dir = str(tmp_path / 'run')
  if module == 'cifar10_eval':
    args = ['--checkpoint_dir', run_dir, '--eval_dir', run_dir + '_eval']
    if breakage == 'too_many':
      args += ['--num_examples', '31']
  else:
    args = ['--train_dir', run_dir]
  if module == 'cifar10_multi_gpu_train':
    args += ['--num_gpus', '2', '--tower_device', 'cpu']
  result = run_module(module, '--data_dir', data_dir, *args)
  assert result.returncode == 1
  last = result.stdout.strip().splitlines()[-1]
  assert re.match(r'\d\d:\d\d:\d\d error: ', last) and expected in last, last
  assert 'Traceback' not in result.stderr
  # Nothing started, nothing written.
  assert not os.path.exists(run_dir) and not os.path.exists(run_dir + '_eval')


def test_tensorflow_logs_are_hidden_unless_asked_for(trained_run, tmp_path):
  args = ['--data_dir', trained_run['data_dir'], '--checkpoint_dir',
          trained_run['train_dir'], '--run_once']
  quiet = run_module('cifar10_eval', '--eval_dir', str(tmp_path / 'a'), *args)
  loud = run_module('cifar10_eval', '--eval_dir', str(tmp_path / 'b'),
                    '--tf_logs', *args)
  assert quiet.returncode == loud.returncode == 0
  cpp_line = re.compile(r'^[IWE]\d{4} ', re.M)
  assert not cpp_line.search(quiet.stderr), quiet.stderr
  assert 'deprecated' not in quiet.stderr
  assert cpp_line.search(loud.stderr) and 'deprecated' in loud.stderr


def test_a_program_starts_without_keras_or_matplotlib():
  # TensorFlow imports Keras (and Keras matplotlib) as it loads: a second
  # and a half of every program's start here, for nothing any program uses.
  # What every program runs first leaves them out.
  code = ('import sys\n'
          'from cifar10_tutorial.shell import quiet\n'
          'quiet.install([])\n'
          'import tensorflow.compat.v1 as tf\n'
          'tf.constant(1)\n'
          'print(sorted(m for m in ("keras", "matplotlib") if m in '
          'sys.modules))\n')
  env = {k: v for k, v in os.environ.items() if k != 'TF_USE_LEGACY_KERAS'}
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == '[]', result.stdout + result.stderr


def test_what_a_program_started_is_killed_when_its_deadline_quits(tmp_path):
  # A launcher that cannot stop in time (its deadline's exit skips every
  # finally) still leaves no child behind: before_quitting's function runs.
  child = _child(tmp_path,
                 'import subprocess, time\n'
                 'stopping.GRACE_SECS = 1\n'
                 'kid = subprocess.Popen(["sleep", "300"])\n'
                 'def first(signum):\n'
                 '  time.sleep(60)\n'
                 'with stopping.before_quitting(lambda: (kid.kill(), '
                 'kid.wait())):\n'
                 '  with stopping.on_signals(first):\n'
                 '    print("ready", kid.pid, flush=True)\n'
                 '    time.sleep(60)\n')
  kid = int(child.ready.split()[1])
  assert os.path.exists('/proc/%d' % kid)
  code, seconds, rest = _signalled(child, signal.SIGTERM, 15)
  assert code == 143 and seconds < 10, rest
  assert not os.path.exists('/proc/%d' % kid)


@pytest.mark.parametrize('after', [0.3, 1.5, 'starting a new run'])
def test_ctrl_c_while_a_program_starts_is_one_line_and_130(tiny_data,
                                                          tmp_path, after):
  # While TensorFlow is imported, while the graph is built, and just after
  # it says it starts: nothing trained, nothing to save, no traceback, and
  # nothing left in the train dir (not even its lock file).
  train_dir = str(tmp_path / 'train')
  run = Running('cifar10_train', *_train_args(tiny_data[0], train_dir))
  if isinstance(after, str):
    run.wait_for(after)
  else:
    time.sleep(after)
  if isinstance(after, str) or 'starting a new run' not in run.output:
    run.proc.send_signal(signal.SIGINT)
  code = run.proc.wait(timeout=30)
  run.stop()
  lines = run.output.strip().splitlines()
  if lines[0].endswith('starting a new run in %s' % train_dir):
    lines = lines[1:]
  if 'saved checkpoint at step 0' in run.output:
    pytest.skip('this machine started training before the signal')
  assert code == 130, run.output
  assert len(lines) == 1 and re.search(
      r'stopped \(Ctrl-C\)( before training started)?$', lines[0]), lines
  assert not os.path.exists(train_dir)


def test_a_path_the_locale_cannot_read_is_one_line(tiny_data, tmp_path):
  # LANG=C with Python's UTF-8 mode off: a non-ASCII --train_dir arrives as
  # undecodable bytes, which TensorFlow cannot take.
  env = dict(os.environ, LANG='C', LC_ALL='C', PYTHONCOERCECLOCALE='0',
             PYTHONUTF8='0', PYTHONPATH=ROOT)
  result = subprocess.run(
      [sys.executable, '-m', 'cifar10_tutorial.cifar10_train',
       '--data_dir', tiny_data[0], '--train_dir',
       os.fsencode(str(tmp_path / 'caf\u00e9'))],
      cwd=ROOT, env=env, capture_output=True, timeout=120)
  out = result.stdout.decode('ascii')
  assert result.returncode == 2, out + result.stderr.decode()
  assert re.search(r"error: --train_dir: expected text this program can "
                   r"read, found bytes that are not text in this locale "
                   r"\(ascii\): b'.*caf\\xc3\\xa9'; run with LANG=C\.UTF-8",
                   out), out
  assert b'Traceback' not in result.stderr


def test_gpus_hidden_on_purpose_are_not_reported_as_a_cuinit_error():
  # CUDA_VISIBLE_DEVICES='' on a machine with GPUs (the launcher's parameter
  # servers, a CPU run): TensorFlow's "no CUDA-capable device" line is what
  # was asked for, and dropped; any other cuInit error still shows.
  from cifar10_tutorial.shell import quiet
  assert quiet._gpus_hidden({'CUDA_VISIBLE_DEVICES': ''})
  assert quiet._gpus_hidden({'CUDA_VISIBLE_DEVICES': '-1'})
  assert not quiet._gpus_hidden({'CUDA_VISIBLE_DEVICES': '0'})
  assert not quiet._gpus_hidden({})
  line = (b'E0000 00:00:1796210253.615793   24248 cuda_platform.cc:52] failed '
          b'call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: '
          b'CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected')
  assert quiet._HIDDEN_GPU_NOISE.match(line)
  assert not quiet._HIDDEN_GPU_NOISE.match(line.replace(
      b'CUDA_ERROR_NO_DEVICE', b'CUDA_ERROR_SYSTEM_DRIVER_MISMATCH'))
