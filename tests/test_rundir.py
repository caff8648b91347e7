"""A run is never lost or corrupted: copied and moved train dirs, two
trainers, bad checkpoints, full and read-only disks, odd paths, changed
settings. Each as a user meets it: the CLI, one line, nothing lost."""
import collections
import glob
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time

import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.engine import checkpoints as checkpoints_lib
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.tools import board
from cifar10_tutorial.tools import cifar10_data
from conftest import NO_GPU, ROOT, Running, run_module, small_filesystem, \
    write_data


def _train(data_dir, train_dir, steps, *extra):
  return run_module('cifar10_train', '--data_dir', data_dir, '--train_dir',
                    train_dir, '--max_steps', str(steps), '--batch_size', '8',
                    '--log_frequency', '1', '--save_checkpoint_steps', '1',
                    *extra)


def _files(folder):
  """{name: (size, mtime)} of a folder's files."""
  return {n: (os.path.getsize(os.path.join(folder, n)),
              os.path.getmtime(os.path.join(folder, n)))
          for n in os.listdir(folder)}


def _last_line(result):
  return result.stdout.strip().splitlines()[-1]


def _absolute_state(train_dir):
  """The `checkpoint` list as older runs with an absolute --train_dir wrote
  it: absolute paths into train_dir."""
  listed = [p for _, p in rundir.saved(train_dir)]
  tf.train.update_checkpoint_state(train_dir, os.path.abspath(listed[-1]),
                                   [os.path.abspath(p) for p in listed])


@pytest.mark.parametrize('absolute', [False, True])
def test_a_copied_run_trains_on_its_own_and_never_touches_the_original(
    tiny_data, tmp_path, absolute):
  data_dir = tiny_data[0]
  original, copy = str(tmp_path / 'original'), str(tmp_path / 'copy')
  assert _train(data_dir, original, 4).returncode == 0
  if absolute:
    _absolute_state(original)
  before = _files(original)
  shutil.copytree(original, copy)
  # Nine more checkpoints in the copy: rotation (5 kept) deletes old ones.
  result = _train(data_dir, copy, 13)
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'resuming from %s/model.ckpt-4 (step 4)' % copy in result.stdout
  assert _files(original) == before   # not a file touched
  kept = sorted(rundir.saved(copy))
  assert [s for s, _ in kept] == [9, 10, 11, 12, 13]
  assert all(p.startswith(copy + '/') for _, p in kept)
  with open(os.path.join(copy, 'checkpoint')) as f:
    assert tmp_path.name not in f.read()   # relative names only


def test_a_moved_run_resumes_and_is_evaluated(tiny_data, tmp_path):
  data_dir = tiny_data[0]
  first, moved = str(tmp_path / 'first'), str(tmp_path / 'moved')
  assert _train(data_dir, first, 3).returncode == 0
  _absolute_state(first)   # the worst case: the list names the old place
  os.rename(first, moved)
  evaluated = run_module('cifar10_eval', '--data_dir', data_dir,
                         '--checkpoint_dir', moved, '--eval_dir',
                         str(tmp_path / 'eval'), '--run_once')
  assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  assert 'step 3: precision @ 1' in evaluated.stdout
  result = _train(data_dir, moved, 5)
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'resuming from %s/model.ckpt-3 (step 3)' % moved in result.stdout
  assert 'Traceback' not in result.stderr


def test_a_second_trainer_on_a_dir_in_use_is_refused_in_one_line(tiny_data,
                                                                 tmp_path):
  data_dir, train_dir = tiny_data[0], str(tmp_path / 'train')
  first = Running('cifar10_train', '--data_dir', data_dir, '--train_dir',
                  train_dir, '--max_steps', '100000', '--batch_size', '4',
                  '--log_frequency', '1')
  try:
    first.wait_for('step 2, loss')
    for module, extra in (('cifar10_train', []), ('cifar10_multi_gpu_train',
                                                  ['--num_gpus', '2',
                                                   '--tower_device', 'cpu'])):
      second = run_module(module, '--data_dir', data_dir, '--train_dir',
                          train_dir, '--batch_size', '4', *extra)
      assert second.returncode == 1
      assert _last_line(second).endswith(
          '%s: expected no other trainer using it, found one running '
          '(process %d on %s); wait for it to finish, or use another '
          '--train_dir' % (train_dir, first.proc.pid, os.uname().nodename))
    # Eval still reads the dir in use.
    evaluated = run_module('cifar10_eval', '--data_dir', data_dir,
                           '--checkpoint_dir', train_dir, '--eval_dir',
                           str(tmp_path / 'eval'), '--run_once')
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  finally:
    first.proc.send_signal(signal.SIGINT)
    first.proc.wait(timeout=30)
    first.stop()
  assert 'interrupted at step' in first.output
  assert len(glob.glob(os.path.join(train_dir, 'events.out.*'))) == 1


def test_a_lock_left_by_a_killed_trainer_is_taken_over(tiny_data, tmp_path):
  data_dir, train_dir = tiny_data[0], str(tmp_path / 'train')
  run = Running('cifar10_train', '--data_dir', data_dir, '--train_dir',
                train_dir, '--max_steps', '100000', '--batch_size', '4',
                '--log_frequency', '1')
  run.wait_for('step 2, loss')
  pid = run.proc.pid
  run.proc.kill()
  run.stop()
  result = _train(data_dir, train_dir, 3)
  assert result.returncode == 0, result.stdout + result.stderr
  assert ('%s: taking over the lock of process %d on %s, which stopped '
          'without releasing it (crashed or killed)' % (
              train_dir, pid, os.uname().nodename)) in result.stdout
  with open(os.path.join(train_dir, rundir.LOCK_NAME)) as f:
    assert f.read() == ''   # released cleanly this time


def _corrupt(path):
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    f.write(b'\xff' * 64)


def test_a_corrupt_latest_checkpoint_resumes_from_the_one_before(
    trained_run, tmp_path):
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  latest = os.path.join(train_dir, 'model.ckpt-6')
  _corrupt(latest + '.data-00000-of-00001')
  result = _train(trained_run['data_dir'], train_dir, 7)
  assert result.returncode == 0, result.stdout + result.stderr
  assert re.search(r'%s: expected a readable checkpoint, found .+; trying '
                   r'the one before it' % re.escape(latest), result.stdout)
  assert 'resuming from %s/model.ckpt-0 (step 0)' % train_dir in result.stdout
  assert 'Traceback' not in result.stderr
  # Eval names the file and the real reason, not "Graph execution error".
  # (It reads only the moving averages: a cut file, not a flipped byte
  # it may never read.)
  data = os.path.join(train_dir, 'model.ckpt-7.data-00000-of-00001')
  os.truncate(data, os.path.getsize(data) // 2)
  evaluated = run_module('cifar10_eval', '--data_dir',
                         trained_run['data_dir'], '--checkpoint_dir',
                         train_dir, '--eval_dir', str(tmp_path / 'eval'),
                         '--run_once')
  # It says why it cannot read the newest, then evaluates the one before
  # that it can read, as the trainer resumes.
  assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  line = [l for l in evaluated.stdout.splitlines() if 'model.ckpt-7' in l][-1]
  assert 'Graph execution error' not in line and re.search(
      r'could not read .*model\.ckpt-7 in 3 tries \(\w.+\)', line), line
  assert 'step 7: trying the checkpoint before it' in evaluated.stdout
  assert re.search(r'step (6|0): precision @ 1 = ', evaluated.stdout)
  assert not re.search(r'^[IWEF]\d{4} ', evaluated.stderr, re.M), \
      evaluated.stderr


def _md5(path):
  with open(path, 'rb') as f:
    return hashlib.md5(f.read()).hexdigest()


def _damage_list(train_dir, damage):
  state = os.path.join(train_dir, rundir.STATE_NAME)
  if damage == 'missing':
    os.remove(state)
  elif damage == 'text':
    with open(state, 'w') as f:
      f.write('not a list {{{\n')
  elif damage == 'binary':
    with open(state, 'wb') as f:
      f.write(bytes(range(256)))
  else:   # names a checkpoint that is gone, and not the newest there
    tf.train.update_checkpoint_state(train_dir, 'model.ckpt-9',
                                     ['model.ckpt-0', 'model.ckpt-9'])
  return state


def test_the_checkpoints_are_the_files_there_whatever_the_list_says(
    trained_run, tmp_path):
  for damage in ('missing', 'text', 'binary', 'stale'):
    train_dir = str(tmp_path / damage)
    shutil.copytree(trained_run['train_dir'], train_dir)
    _damage_list(train_dir, damage)
    assert [s for s, _ in rundir.saved(train_dir)] == [0, 6], damage
    assert rundir.latest(train_dir) == (
        os.path.join(train_dir, 'model.ckpt-6'), 6)
    assert rundir.listed(train_dir)[1] is not None or damage == 'stale'


def test_each_checkpoint_has_the_graph_that_restores_it(trained_run):
  # The .meta beside each checkpoint (written once, copied at every save)
  # is the training graph: import_meta_graph rebuilds it and its saver
  # restores that checkpoint's values.
  train_dir = trained_run['train_dir']
  for step, path in rundir.saved(train_dir):
    with tf.Graph().as_default():
      saver = tf.train.import_meta_graph(path + '.meta')
      global_step = tf.train.get_global_step()
      weights, = [v for v in tf.global_variables()
                  if v.op.name == 'conv1/weights']
      with tf.Session() as sess:
        saver.restore(sess, path)
        assert sess.run(global_step) == step
        restored = sess.run(weights)
    assert (restored ==
            tf.train.load_checkpoint(path).get_tensor('conv1/weights')).all()


def test_a_damaged_checkpoint_list_resumes_from_the_files_there(
    trained_run, tmp_path):
  # The list only a hint: a run that has checkpoints is never started over,
  # and none of them is rewritten. (Binary garbage once was a traceback in
  # train and eval; a missing list, a new run over the old checkpoints.)
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  newest = os.path.join(train_dir, 'model.ckpt-6.data-00000-of-00001')
  before = _md5(newest)
  state = _damage_list(train_dir, 'binary')
  evaluated = run_module('cifar10_eval', '--data_dir',
                         trained_run['data_dir'], '--checkpoint_dir',
                         train_dir, '--eval_dir', str(tmp_path / 'eval'),
                         '--run_once')
  assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  assert 'step 6: precision @ 1 = ' in evaluated.stdout
  result = _train(trained_run['data_dir'], train_dir, 8)
  assert result.returncode == 0, result.stdout + result.stderr
  assert ('%s: expected the list of its checkpoints, found not a list of '
          'checkpoints (binary data); using the 2 checkpoints there (the '
          'newest: step 6)' % state) in result.stdout, result.stdout
  assert 'resuming from %s/model.ckpt-6 (step 6)' % train_dir in result.stdout
  assert 'starting a new run' not in result.stdout
  assert _md5(newest) == before
  assert os.path.exists(os.path.join(train_dir, 'model.ckpt-0.index'))
  names, problem = rundir.listed(train_dir)   # rewritten
  assert problem is None and names[-1] == 'model.ckpt-8'
  with open(os.path.join(train_dir, rundir.CONFIG_NAME)) as f:
    assert len(json.load(f)['earlier_starts']) == 1   # the history stays
  for out in (result, evaluated):
    assert 'Traceback' not in out.stderr
    assert not re.search(r'^[IWEF]\d{4} |^WARNING:tensorflow', out.stderr,
                         re.M), out.stderr


def test_a_damaged_settings_file_is_one_line(trained_run, tmp_path):
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  config = os.path.join(train_dir, rundir.CONFIG_NAME)
  with open(config, 'w') as f:
    f.write('{"half": ')
  result = _train(trained_run['data_dir'], train_dir, 8)
  assert result.returncode == 1
  assert re.search(r'error: %s: expected the settings of each start of the '
                   r'run as JSON, found a damaged file \(.+\); move it away '
                   r'to resume without checking the settings$' %
                   re.escape(config), _last_line(result)), result.stdout
  assert rundir.latest(train_dir)[1] == 6 and 'Traceback' not in result.stderr


def test_a_damaged_results_file_is_set_aside_and_evaluated_again(
    trained_run, tmp_path):
  eval_dir = tmp_path / 'eval'
  eval_dir.mkdir()
  (eval_dir / 'evaluated.json').write_bytes(b'\x00\xffnot json')
  result = run_module('cifar10_eval', '--data_dir', trained_run['data_dir'],
                      '--checkpoint_dir', trained_run['train_dir'],
                      '--eval_dir', str(eval_dir), '--run_once')
  assert result.returncode == 0, result.stdout + result.stderr
  assert ('evaluated.json: expected eval results as JSON, found binary data; '
          'kept it as evaluated.json.damaged and evaluating again'
          in result.stdout)
  assert 'step 6: precision @ 1 = ' in result.stdout
  assert (eval_dir / 'evaluated.json.damaged').read_bytes() == \
      b'\x00\xffnot json'
  assert json.loads((eval_dir / 'evaluated.json').read_text())[0]['step'] == 6
  assert not [n for n in os.listdir(eval_dir) if n.endswith('.tmp')]


def test_no_readable_checkpoint_is_one_line_and_exit_1(trained_run,
                                                       tmp_path):
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  for data in glob.glob(os.path.join(train_dir, '*.data-*')):
    _corrupt(data)
  result = _train(trained_run['data_dir'], train_dir, 8)
  assert result.returncode == 1
  assert _last_line(result).endswith(
      '%s: expected a readable checkpoint, found none of the 2 there '
      'readable (see above); move them away to start a new run' % train_dir)
  assert 'Traceback' not in result.stderr


def _no_temp_files(folder):
  left = [n for n in os.listdir(folder) if n.endswith(('_temp', '.tmp'))]
  assert not left, left


def _fill(folder, leave):
  """Fills `folder`'s file system up to `leave` bytes free."""
  with open(os.path.join(folder, 'ballast'), 'wb') as f:
    f.write(bytes(max(0, shutil.disk_usage(folder).free - leave)))


@pytest.mark.parametrize('size, step', [('4m', None), ('64m', 1)])
def test_a_full_disk_is_one_line_and_leaves_no_temp_files(tiny_data,
                                                          tmp_path, size,
                                                          step):
  # 4 MB: no room to start. Then room for the run's first files and one
  # checkpoint and a half, not a second: sized from a run of this machine's
  # own graph (a GPU's, with its compiled loop, is larger than a CPU's).
  with small_filesystem(str(tmp_path / 'small'), size) as small:
    if small is None:
      pytest.skip('cannot mount a small file system here; '
                  'test_a_failed_save_leaves_no_temp_files stubs the write')
    train_dir = os.path.join(small, 'train')
    if step is not None:
      assert _train(tiny_data[0], train_dir, 1).returncode == 0
      sizes = {n: os.path.getsize(os.path.join(train_dir, n))
               for n in os.listdir(train_dir)}
      one = sum(v for n, v in sizes.items() if n.startswith('model.ckpt-0.'))
      first = sum(v for n, v in sizes.items()
                  if not n.startswith('model.ckpt-'))
      shutil.rmtree(train_dir)
      _fill(small, first + one * 3 // 2)
    result = _train(tiny_data[0], train_dir, 5)
    assert result.returncode == 1
    if step is None:
      expected = (r'%s: expected room to start a run \([\d.]+ MB\), found '
                  r'[\d.]+ MB free$' % re.escape(train_dir))
    else:
      expected = (r'%s: expected room for the checkpoint of step 1 \([\d.]+ '
                  r'MB\), found [\d.]+ MB free; the last complete one is '
                  r'%s/model.ckpt-0 \(step 0\)$' % (re.escape(train_dir),
                                                    re.escape(train_dir)))
      assert rundir.unreadable(os.path.join(train_dir, 'model.ckpt-0')) is None
    assert re.search(expected, _last_line(result)), result.stdout
    assert 'Traceback' not in result.stderr and 'OOM' not in result.stderr
    _no_temp_files(train_dir)


def test_a_failed_save_leaves_no_temp_files(tmp_path):
  # The same path as a full disk, with the write stubbed to fail midway;
  # written in a thread (from a snapshot), the error is raised at the next
  # save, check or wait.
  train_dir = str(tmp_path / 'train')
  os.makedirs(train_dir)

  class FullSaver(object):
    def export_meta_graph(self):
      return tf.MetaGraphDef()

    def save(self, sess, prefix, global_step, write_meta_graph):
      os.makedirs('%s-%d_temp' % (prefix, global_step))
      with open('%s-%d.index' % (prefix, global_step), 'w') as f:
        f.write('half')
      raise tf.errors.ResourceExhaustedError(
          None, None, 'model.ckpt-3_temp/part-00000; No space left on device')

  session = collections.namedtuple('Session', 'graph run')(
      tf.Graph(), lambda fetches: None)
  snapshot = collections.namedtuple('Snapshot', 'take saver')(
      None, FullSaver())
  checkpoints = checkpoints_lib.Saves(FullSaver(), session, train_dir,
                                            None, 1, 0, snapshot)
  with pytest.raises(rundir.RunDirError) as e:
    checkpoints.save(3)
    checkpoints.wait()
  assert str(e.value) == ('%s: expected room to write, found the disk full; '
                          'the checkpoint of step 3 was not written, the last '
                          'complete one is None (step 0)' % train_dir)
  assert os.listdir(train_dir) == []


def test_a_checkpoint_written_while_training_goes_on_holds_its_step(
    tmp_path, caplog, monkeypatch):
  # A save copies the variables and writes the copy in a thread: held
  # until two more steps have trained, the checkpoint of step 1 still
  # holds step 1's variables, and is said to be saved once it is written.
  train_dir = str(tmp_path)
  with tf.Graph().as_default():
    weights = tf.Variable([1., 2.], name='conv1/weights')
    global_step = tf.train.get_or_create_global_step()
    train_op = tf.group(weights.assign_add([10., 10.]),
                        global_step.assign_add(1))
    snapshot = checkpoints_lib.Snapshot([weights, global_step],
                                        sharded=True, max_to_keep=5)
    saver = tf.train.Saver([weights, global_step])
    written = threading.Event()
    write = snapshot.saver.save

    def held_write(*args, **kwargs):
      assert written.wait(60)
      return write(*args, **kwargs)

    monkeypatch.setattr(snapshot.saver, 'save', held_write)
    with tf.Session() as sess:
      sess.run([tf.global_variables_initializer(),
                tf.local_variables_initializer()])
      saves = checkpoints_lib.Saves(saver, sess, train_dir, None, 1, 0,
                                          snapshot)
      caplog.set_level('INFO', 'cifar10_tutorial')
      sess.run(train_op)
      saves.save(1)
      sess.run(train_op)
      sess.run(train_op)
      saves.check()
      assert rundir.latest(train_dir) == (None, 0)
      assert 'saved checkpoint' not in caplog.text
      written.set()
      saves.wait()
      assert sess.run(weights).tolist() == [31., 32.]
  path = os.path.join(train_dir, 'model.ckpt-1')
  assert rundir.latest(train_dir) == (path, 1)
  reader = tf.train.load_checkpoint(path)
  assert reader.get_tensor('conv1/weights').tolist() == [11., 12.]
  assert reader.get_tensor('global_step') == 1
  assert sorted(reader.get_variable_to_shape_map()) == ['conv1/weights',
                                                        'global_step']
  assert caplog.text.count('saved checkpoint at step 1') == 1


def test_a_read_only_dir_is_one_line(tiny_data, tmp_path):
  with small_filesystem(str(tmp_path / 'ro'), '1m', read_only=True) as ro:
    if ro is None:
      pytest.skip('cannot mount a read-only file system here (as root, '
                  'permissions alone do not stop a write)')
    result = _train(tiny_data[0], os.path.join(ro, 'train'), 2)
  assert result.returncode == 1
  assert _last_line(result).endswith(
      'train: expected a folder this program can write to, found a '
      'read-only file system')
  assert 'Traceback' not in result.stderr


def test_a_train_dir_that_is_a_file_is_one_line(tiny_data, tmp_path):
  path = tmp_path / 'notes.txt'
  path.write_text('mine')
  result = _train(tiny_data[0], str(path), 2)
  assert result.returncode == 1
  assert _last_line(result).endswith(
      '%s: expected a folder for the run, found a file' % path)
  assert path.read_text() == 'mine'


def test_changed_settings_are_refused_or_recorded(tiny_data, tmp_path):
  data_dir, train_dir = tiny_data[0], str(tmp_path / 'train')
  assert _train(data_dir, train_dir, 2).returncode == 0
  refused = _train(data_dir, train_dir, 4, '--precision', 'bf16_emulated')
  assert refused.returncode == 1
  assert _last_line(refused).endswith(
      'found --precision bf16_emulated (the run has fp32); run with the same '
      'settings, or add --allow_changed_settings to go on with the new ones')
  assert rundir.latest(train_dir)[1] == 2   # nothing trained, nothing lost
  allowed = _train(data_dir, train_dir, 4, '--precision', 'bf16_emulated',
                   '--allow_changed_settings')
  assert allowed.returncode == 0, allowed.stdout + allowed.stderr
  assert 'going on with changed settings: --precision bf16_emulated' in (
      allowed.stdout)
  with open(os.path.join(train_dir, 'config.json')) as f:
    config = json.load(f)
  assert (config['precision'], config['start_step']) == ('bf16_emulated', 2)
  assert [(s['precision'], s['start_step']) for s in
          config['earlier_starts']] == [('fp32', 0)]


def test_eval_reuses_a_stored_result_only_for_the_same_settings(trained_run,
                                                               tmp_path):
  eval_dir = str(tmp_path / 'eval')
  args = ['--data_dir', trained_run['data_dir'], '--checkpoint_dir',
          trained_run['train_dir'], '--eval_dir', eval_dir, '--run_once']
  partial = run_module('cifar10_eval', '--num_examples', '13', *args)
  assert 'step 6: precision @ 1 = ' in partial.stdout
  assert '(13 examples' in partial.stdout
  whole = run_module('cifar10_eval', *args)
  assert '(30 examples' in whole.stdout   # evaluated, not the 13's result
  again = run_module('cifar10_eval', *args)
  assert 'already in %s' % eval_dir in again.stdout


def test_a_batch_that_cannot_fit_is_refused_before_the_session(tiny_data,
                                                               tmp_path):
  # The CPU's check (on a GPU, a step that does not fit fails when it runs,
  # in one line too).
  train_dir = str(tmp_path / 'train')
  result = run_module('cifar10_train', '--data_dir', tiny_data[0],
                      '--train_dir', train_dir, '--max_steps', '2',
                      '--batch_size', '100000000', env=NO_GPU)
  assert result.returncode == 1
  assert re.search(r'error: --batch_size 100000000: expected a batch that '
                   r'fits in memory, found a training step needs about \d+ '
                   r'GB \(1\.55 MB an example\) and \d+ GB is available; try '
                   r'--batch_size \d+ or less$', _last_line(result))
  assert not os.path.exists(train_dir)
  with pytest.raises(machine.OutOfMemoryError):
    machine.check_fits(4096, 2, available=8e9)
  machine.check_fits(4096, 2, available=16e9)   # 13.5 GB: fits


def _user_env():
  """Our environment as a user's shell has it: without what an outer
  `make test` passes to the makes a test starts (they would say
  `make[1]:`, and take its variables)."""
  return {k: v for k, v in os.environ.items()
          if k not in ('MAKEFLAGS', 'MAKELEVEL', 'MFLAGS', 'MAKEOVERRIDES')}


def _make(*args):
  venv = os.path.dirname(os.path.dirname(sys.executable))
  stamp = os.path.join(venv, '.installed-stamp')
  # -o: never (re)install here; the suite already runs in the venv.
  return subprocess.run(['make', '-C', ROOT, '-o', stamp, 'VENV=' + venv] +
                        list(args), capture_output=True, text=True,
                        timeout=240, env=_user_env())


def test_make_targets_take_paths_with_spaces(tmp_path):
  source = tmp_path / 'source data'
  write_data(str(source))
  archive = str(tmp_path / 'my archive.tar.gz')
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(str(source / defaults.BATCHES_DIR), defaults.BATCHES_DIR)
  data, run = str(tmp_path / 'my data'), str(tmp_path / 'my runs' / 'a b')
  evals, plot = str(tmp_path / 'my evals'), str(tmp_path / 'my plot.png')
  common = ['DATA_DIR=' + data, 'TRAIN_DIR=' + run, 'EVAL_DIR=' + evals]
  for target in (['data', 'CIFAR10_ARCHIVE=' + archive],
                 ['train', 'MAX_STEPS=2', 'BATCH_SIZE=4'],
                 ['eval', 'RUN_ONCE=1'], ['plot', 'PLOT=' + plot]):
    result = _make(*(target + common))
    assert result.returncode == 0, result.stdout + result.stderr
    if target[0] == 'train':   # make shows the command, quoted as typed
      assert re.search(r'^\S+/python -m cifar10_tutorial\.cifar10_train '
                       r'--data_dir .*/my\\ data --train_dir .*/my\\ runs/'
                       r'a\\ b --max_steps 2 --batch_size 4$', result.stdout,
                       re.M), result.stdout
  assert rundir.latest(run)[1] == 2 and os.path.getsize(plot) > 0
  # A hint in the form the user typed: make's.
  refused = _make('train', 'MAX_STEPS=3', 'ARGS=--precision bf16_emulated',
                  *common)
  assert refused.returncode != 0
  assert 'or add ARGS="--allow_changed_settings" to go on with the new ones' \
      in refused.stdout, refused.stdout


def test_make_variables_are_data_never_shell_code(tmp_path):
  marker = tmp_path / 'PWNED'
  touch = 'touch %s' % marker
  # ($$ is make's own escape for one $: the shell's $(...) reaches the
  # recipe as typed; make's own $(...) would be expanded by make.)
  hostile = {
      'TRAIN_DIR': str(tmp_path / ('a"; %s; echo "' % touch)),
      'EVAL_DIR': str(tmp_path / ('$$(%s)`%s`' % (touch, touch))),
      'PLOT': str(tmp_path / ("p'; %s; echo '.png" % touch)),
  }
  plot = _make('plot', *['%s=%s' % item for item in hostile.items()])
  assert plot.returncode != 0
  # The values arrived as they were typed, as paths.
  assert '%s, %s: expected event files' % (
      hostile['TRAIN_DIR'], hostile['EVAL_DIR'].replace('$$', '$')) in \
      plot.stdout, plot.stdout
  # ARGS and IMAGES: split into words, nothing more.
  predict = _make('predict', 'IMAGES=x.png; %s' % touch, 'ARGS=; %s' % touch,
                  'TRAIN_DIR=' + hostile['TRAIN_DIR'])
  assert predict.returncode != 0
  assert not marker.exists()


def test_make_waits_for_the_trainer_it_was_stopping(tiny_data, tmp_path):
  # SIGTERM to make's whole group (a terminal's, a job system's): the
  # trainer saves its checkpoint and says so before make is done.
  venv = os.path.dirname(os.path.dirname(sys.executable))
  make = subprocess.Popen(
      ['make', '-C', ROOT, '-o', os.path.join(venv, '.installed-stamp'),
       'VENV=' + venv, 'train', 'DATA_DIR=' + tiny_data[0],
       'TRAIN_DIR=' + str(tmp_path / 'train'), 'BATCH_SIZE=4',
       'ARGS=--log_frequency 2'], stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, start_new_session=True,
      env=_user_env())
  lines = []
  for line in make.stdout:
    lines.append(line)
    if 'step 4, loss' in line:
      os.killpg(make.pid, signal.SIGTERM)
      break
  lines += make.stdout.readlines()
  make.wait(timeout=60)
  out = ''.join(lines)
  assert 'interrupted at step' in out, out
  assert out.index('interrupted at step') < out.index('make: ***'), out


def test_ctrl_c_during_a_download_leaves_nothing_and_no_traceback(tmp_path):
  class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
      self.send_response(200)
      self.send_header('Content-Length', str(10 ** 8))
      self.end_headers()
      for _ in range(1000):
        self.wfile.write(b'\0' * 65536)
        time.sleep(0.05)

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Slow)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  data_dir = str(tmp_path / 'data')
  try:
    run = Running('tools.cifar10_data', '--data_dir', data_dir, '--url',
                  'http://127.0.0.1:%d/x.tar.gz' % server.server_address[1])
    run.wait_for('downloading')
    time.sleep(0.5)
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(timeout=30) == 130
    run.stop()
  finally:
    server.shutdown()
  assert run.output.strip().splitlines()[-1] == (
      'make data stopped; nothing half-written was kept')
  assert 'Traceback' not in run.output
  assert sorted(os.listdir(data_dir)) == ['.prepare.lock']


def test_make_data_cleans_up_after_a_killed_extraction(tmp_path):
  source = tmp_path / 'source'
  write_data(str(source), train_per_file=2, test_records=2)
  archive = str(tmp_path / 'c.tar.gz')
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(str(source / defaults.BATCHES_DIR), defaults.BATCHES_DIR)
  data_dir = tmp_path / 'data'
  (data_dir / '.extracting-abc123' / defaults.BATCHES_DIR).mkdir(parents=True)
  result = run_module('tools.cifar10_data', '--data_dir', str(data_dir),
                      '--archive', archive)
  assert result.returncode == 0, result.stdout + result.stderr
  assert ('removed %s, left by an extraction that was cut short' %
          (data_dir / '.extracting-abc123')) in result.stdout
  assert not glob.glob(str(data_dir / '.extracting-*'))


def test_an_archive_member_that_is_not_records_is_named_in_the_archive(
    tmp_path):
  source = tmp_path / 'source'
  write_data(str(source), train_per_file=2, test_records=2)
  page = source / defaults.BATCHES_DIR / 'data_batch_2.bin'
  page.write_bytes(b'<html><body>Not Found</body></html>\n')
  archive = str(tmp_path / 'c.tar.gz')
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(str(source / defaults.BATCHES_DIR), defaults.BATCHES_DIR)
  with pytest.raises(records.DataError) as e:
    cifar10_data.prepare(str(tmp_path / 'data'), archive=archive)
  assert str(e.value).startswith(
      '%s: cifar-10-batches-bin/data_batch_2.bin: expected a non-empty '
      'multiple of 3073 bytes' % archive)


def test_a_folder_given_as_the_archive_is_called_a_folder(tmp_path):
  with pytest.raises(records.DataError) as e:
    cifar10_data.prepare(str(tmp_path / 'data'), archive=str(tmp_path))
  assert str(e.value) == (
      '%s: expected a cifar-10-binary.tar.gz archive, found a folder (for an '
      'extracted copy, give its parent folder as DATA_DIR)' % tmp_path)


def test_tensorboard_on_a_busy_port_says_so_in_one_line():
  import socket
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    port = taken.getsockname()[1]
    result = run_module('tools.board', '--logdir', ROOT, '--port', str(port))
    from_make = run_module('tools.board', '--logdir', ROOT, '--port',
                           str(port), env={'CIFAR10_VIA_MAKE': '1'})
  assert result.returncode == 1
  assert result.stdout.strip() == (
      'error: port %d: expected a free port for TensorBoard, found it in use '
      '(another TensorBoard?); try --port %d' % (port, port + 1))
  assert from_make.stdout.strip().endswith('try PORT=%d' % (port + 1))
  bad = run_module('tools.board', '--host', '192.0.2.99')   # not ours
  assert bad.returncode == 1
  assert bad.stdout.strip().startswith(
      'error: 192.0.2.99: expected an address of this machine to serve on, '
      'found '), bad.stdout
  with pytest.raises(board.PortBusy):
    with socket.socket() as again:
      again.bind(('127.0.0.1', 0))
      again.listen()
      board.check_port(again.getsockname()[1])


def _digests(folder):
  """{name: md5} of every file in folder (what a refused start must leave
  as it was)."""
  found = {}
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), 'rb') as f:
      found[name] = hashlib.md5(f.read()).hexdigest()
  return found


@pytest.mark.parametrize('stored, found', [
    ('null', 'found null'), ('[]', 'found a list'),
    ('{"earlier_starts": 5}', 'found an object without a list of earlier '
     'starts'),
    ('{"earlier_starts": [3]}', 'found an object without a list'),
    ('folder', 'in a file, found a folder')])
def test_settings_that_are_not_the_runs_are_one_line(tmp_path, stored,
                                                     found):
  path = tmp_path / rundir.CONFIG_NAME
  if stored == 'folder':
    path.mkdir()
  else:
    path.write_text(stored)
  with pytest.raises(rundir.RunDirError) as e:
    rundir.check_start(str(tmp_path), {}, 5)
  assert found in str(e.value) and str(e.value).endswith(
      'move it away to resume without checking the settings')


def test_a_refused_start_writes_nothing_and_is_not_taken_for_the_run(
    tiny_data, tmp_path):
  data_dir, train_dir = tiny_data[0], str(tmp_path / 'train')
  assert _train(data_dir, train_dir, 2).returncode == 0
  before = _digests(train_dir)
  # Other data: 11 classes. Refused even as "changed settings allowed":
  # the network cannot take them. config.json keeps the run's settings.
  other = str(tmp_path / 'other')
  shutil.copytree(data_dir, other)
  with open(os.path.join(other, defaults.BATCHES_DIR,
                         defaults.META_FILE), 'w') as f:
    f.write('\n'.join('class%d' % i for i in range(11)) + '\n')
  refused = _train(other, train_dir, 4, '--allow_changed_settings')
  assert refused.returncode == 1
  assert re.search(r'expected a network for 11 classes .*found one for 10: ',
                   _last_line(refused)), refused.stdout
  assert _digests(train_dir) == before
  again = _train(data_dir, train_dir, 3)
  assert again.returncode == 0, again.stdout + again.stderr


def test_another_programs_checkpoint_is_named_and_its_folder_left_alone(
    tiny_data, tmp_path):
  folder = str(tmp_path / 'theirs')
  with tf.Graph().as_default():
    tf.Variable(tf.zeros([3]), name='dense/kernel')
    saver = tf.train.Saver()
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      saver.save(sess, os.path.join(folder, 'model.ckpt'), global_step=5)
  before = _digests(folder)
  result = _train(tiny_data[0], folder, 10)
  assert result.returncode == 1
  assert _last_line(result).endswith(
      '%s/model.ckpt-5: expected a checkpoint of this tutorial\'s network, '
      'found one without conv1/weights, conv1/biases, conv2/weights and 7 '
      'more (another program\'s?); use another folder' % folder)
  assert _digests(folder) == before   # not even a lock file


@pytest.mark.parametrize('fault', ['unwritable', 'deleted', 'moved',
                                   'replaced'])
def test_a_train_dir_lost_mid_run_is_one_line(tiny_data, tmp_path, fault):
  train_dir = str(tmp_path / 'train')
  if fault == 'unwritable':
    probe = tmp_path / 'probe'
    probe.mkdir()
    if subprocess.run(['chattr', '+i', str(probe)],
                      capture_output=True).returncode:
      pytest.skip('chattr +i is not allowed here')
    subprocess.run(['chattr', '-i', str(probe)])
  # A save every 20 steps, the fault made just after one is written: a
  # save under way as a folder is swapped would land in the new one.
  run = Running('cifar10_train', '--data_dir', tiny_data[0], '--train_dir',
                train_dir, '--batch_size', '4', '--log_frequency', '5',
                '--save_checkpoint_steps', '20')
  try:
    run.wait_for('saved checkpoint at step 20')
    if fault == 'unwritable':
      subprocess.run(['chattr', '+i', train_dir], check=True)
    elif fault == 'deleted':
      while os.path.exists(train_dir):   # the trainer may add files meanwhile
        shutil.rmtree(train_dir, ignore_errors=True)
    else:
      os.rename(train_dir, train_dir + '.moved')
      if fault == 'replaced':   # another folder made where it was
        os.mkdir(train_dir)
    assert run.proc.wait(timeout=60) == 1, run.output
  finally:
    run.stop()
    if fault == 'unwritable':
      subprocess.run(['chattr', '-i', train_dir])
  last = run.output.strip().splitlines()[-1]
  if fault == 'unwritable':
    assert re.search(r'error: %s: expected a folder this program can write '
                     r'to, found no permission to write there; the checkpoint '
                     r'of step \d+ was not written, the last complete one is '
                     r'\S+ \(step \d+\)$' % re.escape(train_dir), last), last
    assert rundir.resume_point(train_dir)[1] >= 20
  elif fault == 'replaced':
    assert re.search(r'error: %s: expected the run\'s folder, found another '
                     r'folder in its place \(deleted or moved while the '
                     r'program ran\); the checkpoint of step \d+ was not '
                     r'written$' % re.escape(train_dir), last), last
    assert os.listdir(train_dir) == []   # nothing written into the new one
  else:
    assert re.search(r'error: %s: expected the folder to stay where it was, '
                     r'found it gone \(deleted or moved while the program '
                     r'ran\); the checkpoint of step \d+ was not written$' %
                     re.escape(train_dir), last), last
  assert not re.search(r'Traceback|^[IWEF]\d{4} ', run.output, re.M), (
      run.output)


def test_an_eval_dir_must_be_its_own_and_a_train_dir_not_an_eval_dir(
    trained_run, tmp_path):
  train_dir = trained_run['train_dir']
  before = _digests(train_dir)
  for eval_dir in (train_dir, train_dir + '/'):
    result = run_module('cifar10_eval', '--data_dir', trained_run['data_dir'],
                        '--checkpoint_dir', train_dir, '--eval_dir', eval_dir,
                        '--run_once')
    assert result.returncode == 1
    assert _last_line(result).endswith(
        '%s: expected an eval dir of its own, found the train dir it '
        'evaluates; use another folder (--eval_dir)' % eval_dir)
  assert _digests(train_dir) == before
  other = str(tmp_path / 'other')
  shutil.copytree(train_dir, other)
  with pytest.raises(rundir.RunDirError) as e:
    rundir.check_eval_dir(other, train_dir)
  assert str(e.value).endswith('found a train dir (checkpoints, config.json);'
                               ' use another folder (--eval_dir)')
  eval_dir = tmp_path / 'eval'
  eval_dir.mkdir()
  (eval_dir / rundir.RESULTS_NAME).write_text('[]')
  with pytest.raises(rundir.RunDirError) as e:
    rundir.check_train_dir(str(eval_dir))
  assert str(e.value) == ('%s: expected a train dir, found an eval dir '
                          '(evaluated.json); use another folder (--train_dir)'
                          % eval_dir)


def test_a_name_too_long_for_the_file_system_is_one_line(tiny_data,
                                                         tmp_path):
  long = str(tmp_path / ('a' * 300) / 'train')
  result = _train(tiny_data[0], long, 2)
  assert result.returncode == 1
  assert re.search(r'error: .{60}\.\.\..{60}: expected a path the file system '
                   r'takes, found a name in it too long \(at most 255 bytes '
                   r'a name\)$', _last_line(result)), result.stdout
  assert 'Traceback' not in result.stderr
  with pytest.raises(rundir.RunDirError) as e:
    with rundir.locked(str(tmp_path / ('e' * 256)), role='eval'):
      pass
  assert 'found a name in it too long' in str(e.value)
