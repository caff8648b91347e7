"""Training on TensorFlow's distributed runtime, on loopback: the launcher,
asynchronous and synchronous steps, and each fault as a user meets it.
Every process a test starts is gone when it ends."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import tensorflow.compat.v1 as tf

from cifar10_tutorial.cluster import processes
from cifar10_tutorial.cluster import worker
from cifar10_tutorial.core import gpus
from cifar10_tutorial.engine import checkpoints
from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import steps
from cifar10_tutorial.shell import flags
from conftest import NO_GPU, Running, run_module

TIMEOUT = 8   # --peer_timeout_secs: short, for the fault tests


def _launch(tiny_data, train_dir, *extra, env=None):
  """The launcher on the tiny data, logging every 5 steps of 4 images."""
  return Running('cluster.launch', '--data_dir', tiny_data[0],
                 '--train_dir', train_dir, '--batch_size', '4',
                 '--log_frequency', '5', *extra, env=env)


def _exit_status(run, timeout):
  """run's exit status, or a failure that shows what it printed."""
  try:
    code = run.proc.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    raise AssertionError('still running after %d s:\n%s' % (timeout,
                                                             run.output))
  run._reader.join(timeout=10)   # its last lines, read
  return code


def _quiet(output):
  """Whether output is free of tracebacks and TensorFlow's C++ log lines."""
  return 'Traceback' not in output and not re.search(r'^[IWEF]\d{4} ',
                                                      output, re.M)


def _alive(train_dir):
  """Processes of ours still running for this train dir."""
  found = subprocess.run(['pgrep', '-f', 'train_dir %s' % train_dir],
                         capture_output=True, text=True).stdout.split()
  return [pid for pid in found if int(pid) != os.getpid()]


class Cluster(object):
  """1 parameter server and `workers` workers, started one by one, so a
  test can kill and restart any of them."""

  def __init__(self, data_dir, train_dir, workers=2, *extra):
    ports = processes.free_ports(1 + workers)
    self.hosts = ['--ps_hosts', '127.0.0.1:%d' % ports[0], '--worker_hosts',
                  ','.join('127.0.0.1:%d' % p for p in ports[1:])]
    self.args = ['--data_dir', data_dir, '--train_dir', train_dir,
                 '--batch_size', '4', '--log_frequency', '5',
                 '--peer_timeout_secs', str(TIMEOUT)] + list(extra)
    self.train_dir = train_dir
    self.tasks = {}

  def start(self, job, index, *extra):
    run = Running('cluster.cifar10_dist_train', '--job_name', job,
                  '--task_index', str(index),
                  *(self.hosts + self.args + list(extra)))
    self.tasks[job, index] = run
    return run

  def stop(self):
    for run in self.tasks.values():
      if run.proc.poll() is None:
        run.proc.kill()
      run.stop()
    assert not _alive(self.train_dir)


@pytest.fixture
def new_cluster(tiny_data, tmp_path):
  made = []

  def make(workers=2, *extra):
    made.append(Cluster(tiny_data[0], str(tmp_path / 'train'), workers,
                        *extra))
    return made[-1]
  yield make
  for c in made:
    c.stop()


def test_the_launcher_trains_a_cluster_that_eval_reads_and_make_train_resumes(
    tiny_data, tmp_path):
  data_dir, train_dir = tiny_data[0], str(tmp_path / 'train')
  result = run_module('cluster.launch', '--workers', '2', '--ps', '1',
                      '--data_dir', data_dir, '--train_dir', train_dir,
                      '--max_steps', '30', '--batch_size', '4',
                      '--log_frequency', '10', '--steps_per_run', '10',
                      timeout=240)
  assert result.returncode == 0, result.stdout + result.stderr
  out = result.stdout
  assert re.search(r'^worker 0 \| \d\d:\d\d:\d\d starting a new run in ', out,
                   re.M)
  assert re.search(r'^worker 1 \| .*worker 1: training from global step \d+$',
                   out, re.M)
  assert re.search(r'^ps 0 \| .*ps 0: serving at 127\.0\.0\.1:\d+$', out,
                   re.M)
  assert out.strip().splitlines()[-1].endswith(
      'cluster done: the chief ended with exit status 0')
  path, step = rundir.latest(train_dir)
  # Runs of 10 steps each: they stop at the global step, not 10 past it
  # (only steps already under way when the other worker reached 30 land).
  assert 30 <= step <= 32, out
  # One copy of each variable, the tutorial's names: eval reads it.
  names = [n for n, _ in tf.train.list_variables(path)]
  assert 'conv1/weights/ExponentialMovingAverage' in names
  evaluated = run_module('cifar10_eval', '--data_dir', data_dir,
                         '--checkpoint_dir', train_dir, '--eval_dir',
                         str(tmp_path / 'eval'), '--run_once')
  assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  assert 'step %d: precision @ 1' % step in evaluated.stdout
  # Asynchronous: one batch a step, as make train: it resumes the run.
  resumed = run_module('cifar10_train', '--data_dir', data_dir, '--train_dir',
                       train_dir, '--max_steps', str(step + 2),
                       '--batch_size', '4')
  assert resumed.returncode == 0, resumed.stdout + resumed.stderr
  assert 'resuming from %s' % path in resumed.stdout
  assert not _alive(train_dir)
  for noise in ('Traceback', 'local_rendezvous', 'Enqueue operation'):
    assert noise not in out + result.stderr


def test_synchronous_steps_average_a_batch_from_every_worker(tiny_data,
                                                             tmp_path):
  data_dir, train_dir = tiny_data[0], str(tmp_path / 'train')
  result = run_module('cluster.launch', '--workers', '2', '--data_dir',
                      data_dir, '--train_dir', train_dir, '--max_steps', '12',
                      '--batch_size', '4', '--log_frequency', '4',
                      '--sync_replicas', timeout=240)
  assert result.returncode == 0, result.stdout + result.stderr
  assert rundir.latest(train_dir)[1] == 12   # exactly: one step at a time
  with open(os.path.join(train_dir, 'config.json')) as f:
    assert json.load(f)['examples_per_step'] == 8   # 2 workers x 4
  for name in ('worker 0', 'worker 1'):
    assert re.search(r'^%s \| .*step 12, loss' % name, result.stdout,
                     re.M), result.stdout
  assert not _alive(train_dir)


def test_ctrl_c_stops_the_cluster_after_a_checkpoint(tiny_data, tmp_path):
  train_dir = str(tmp_path / 'train')
  launcher = _launch(tiny_data, train_dir)
  try:
    launcher.wait_for('worker 1 | ', timeout=90)
    launcher.wait_for('step 10, loss', timeout=90)
    launcher.proc.send_signal(signal.SIGINT)
    assert _exit_status(launcher, 90) == 130
  finally:
    launcher.stop()
  stopped = re.search(r'worker 0 \| .*interrupted at step (\d+); checkpoint '
                      r'saved', launcher.output)
  assert stopped, launcher.output
  assert rundir.latest(train_dir)[1] == int(stopped.group(1))
  assert not _alive(train_dir)


@pytest.mark.parametrize('signum, extra', [
    (signal.SIGKILL, []),                  # parameter servers
    (signal.SIGHUP, ['--ps', '0']),        # all-reduce; a closed terminal
])
def test_a_killed_or_hung_up_launcher_leaves_nothing_running(
    tiny_data, tmp_path, signum, extra):
  train_dir = str(tmp_path / 'train')
  # An all-reduce cluster takes a GPU per worker: with fewer than two, its
  # workers run on the CPU (what is tested is the launcher's signals).
  env = NO_GPU if extra and gpus.count() < 2 else None
  launcher = _launch(tiny_data, train_dir, *extra, env=env)
  try:
    launcher.wait_for('worker 1 | ', timeout=90)
    launcher.wait_for('step 10, loss', timeout=90)
    launcher.proc.send_signal(signum)
    deadline = time.time() + 40   # each task notices within seconds
    while _alive(train_dir) and time.time() < deadline:
      time.sleep(0.5)
  finally:
    launcher.stop()
  assert not _alive(train_dir), launcher.output
  # The chief saved where it stopped (the next checkpoint was 10 min off).
  assert rundir.latest(train_dir)[1] >= 10, launcher.output
  if signum == signal.SIGHUP:
    assert re.search(r'worker 0 \| .*interrupted at step \d+; checkpoint '
                     r'saved', launcher.output), launcher.output
    assert launcher.proc.returncode == 129   # the signal it got, not SIGTERM


def test_an_async_cluster_finishes_without_a_killed_worker(new_cluster):
  c = new_cluster(2, '--max_steps', '60')
  c.start('ps', 0)
  chief = c.start('worker', 0)
  other = c.start('worker', 1)
  other.wait_for('step 10, loss', timeout=90)
  other.proc.kill()
  assert _exit_status(chief, 120) == 0, chief.output
  # The chief's steps to 60, and on top of them at most the one step the
  # other worker had under way (a GPU may have run all 60 before the kill).
  stopped = re.search(r'stopped at step (\d+); checkpoint in', chief.output)
  assert stopped and 60 <= int(stopped.group(1)) <= 61, chief.output


def test_a_sync_cluster_stops_within_the_timeout_when_a_worker_dies(
    new_cluster):
  c = new_cluster(2, '--sync_replicas')
  c.start('ps', 0)
  chief = c.start('worker', 0)
  other = c.start('worker', 1)
  chief.wait_for('step 5, loss', timeout=90)
  other.proc.kill()
  killed = time.time()
  assert _exit_status(chief, 60) == 1
  assert time.time() - killed < 3 * TIMEOUT
  assert re.search(r'error: worker 0: expected a step to finish within 8 s, '
                   r'found none did \(.+\): one of worker 1, ps 0 is dead or '
                   r'hung; a synchronous step waits for every worker$',
                   chief.output.strip().splitlines()[-1]), chief.output
  assert _quiet(chief.output), chief.output


def test_a_restarted_chief_resumes_from_its_last_checkpoint(new_cluster):
  c = new_cluster(1, '--save_checkpoint_steps', '5')
  c.start('ps', 0)
  first = c.start('worker', 0)
  first.wait_for('saved checkpoint at step 10', timeout=90)
  first.proc.kill()
  first.stop()
  path, step = rundir.latest(c.train_dir)
  again = c.start('worker', 0, '--max_steps', str(step + 5))
  assert _exit_status(again, 120) == 0, again.output
  assert 'taking over the lock of process %d' % first.proc.pid in again.output
  assert 'resuming from %s (step %d)' % (path, step) in again.output


def test_a_lost_parameter_server_is_a_clear_error_and_the_chief_restores(
    new_cluster):
  c = new_cluster(2, '--save_checkpoint_steps', '5')
  ps = c.start('ps', 0)
  chief = c.start('worker', 0)
  other = c.start('worker', 1)
  chief.wait_for('saved checkpoint at step 10', timeout=90)
  ps.proc.kill()
  killed = time.time()
  for proc, name in ((chief, 'worker 0'), (other, 'worker 1')):
    assert _exit_status(proc, 60) == 1
    assert re.search(r'error: %s: expected the cluster to answer, found it '
                     r'gone \(/job:ps/replica:0/task:0: .+\): a parameter '
                     r'server stopped\? Start the cluster again: the chief '
                     r'resumes from its last checkpoint$' % name,
                     proc.output.strip().splitlines()[-1]), proc.output
    assert _quiet(proc.output), proc.output
  assert time.time() - killed < TIMEOUT
  path, step = rundir.latest(c.train_dir)
  c.start('ps', 0)
  again = c.start('worker', 0, '--max_steps', str(step + 5))
  assert _exit_status(again, 120) == 0, again.output
  assert 'resuming from %s (step %d)' % (path, step) in again.output


def test_a_worker_started_before_the_chief_joins_within_seconds(
    new_cluster):
  c = new_cluster(2, '--max_steps', '20')
  c.start('ps', 0)
  other = c.start('worker', 1)
  time.sleep(3)
  chief = c.start('worker', 0)
  assert _exit_status(chief, 120) == 0, chief.output
  assert _exit_status(other, 30) == 0, other.output
  started = re.search(r'^(\d\d):(\d\d):(\d\d) saved checkpoint at step 0$',
                      chief.output, re.M)
  joined = re.search(r'^(\d\d):(\d\d):(\d\d) worker 1: training from',
                     other.output, re.M)
  assert started and joined, chief.output + other.output
  seconds = [int(h) * 3600 + int(m) * 60 + int(s)
             for h, m, s in (started.groups(), joined.groups())]
  # TensorFlow's own readiness poll would take 30 s.
  assert seconds[1] - seconds[0] < 20, chief.output + other.output


def test_a_worker_without_a_chief_says_so(new_cluster):
  c = new_cluster(2)
  c.start('ps', 0)
  other = c.start('worker', 1)
  assert _exit_status(other, 60) == 1
  assert other.output.strip().splitlines()[-1].endswith(
      'error: worker 1: expected the chief (worker 0) to initialize the '
      'variables, found them not ready after %d s: is it running?' % TIMEOUT)


def test_a_taken_port_or_a_silent_host_is_one_line(tiny_data, tmp_path):
  taken = socket.socket()
  taken.bind(('127.0.0.1', 0))
  taken.listen()
  port = taken.getsockname()[1]
  silent = processes.free_ports(1)[0]   # nothing listens there
  common = ['--data_dir', tiny_data[0], '--train_dir', str(tmp_path / 't'),
            '--peer_timeout_secs', '2', '--job_name', 'worker']
  try:
    result = run_module('cluster.cifar10_dist_train', '--ps_hosts',
                        '127.0.0.1:%d' % silent, '--worker_hosts',
                        '127.0.0.1:%d' % port, *common)
  finally:
    taken.close()
  assert result.returncode == 1
  assert re.search(r'error: 127\.0\.0\.1:%d: expected a free port for worker '
                   r'0, found it taken' % port,
                   result.stdout.strip().splitlines()[-1]), result.stdout
  result = run_module('cluster.cifar10_dist_train', '--ps_hosts',
                      '127.0.0.1:%d' % silent, '--worker_hosts',
                      '127.0.0.1:%d' % processes.free_ports(1)[0],
                      *common)
  assert result.returncode == 1
  assert result.stdout.strip().splitlines()[-1].endswith(
      'ps 0 at 127.0.0.1:%d: expected it to answer, found no answer in 2 s '
      '([Errno 111] Connection refused)' % silent)
  assert 'Traceback' not in result.stderr


def test_an_all_reduce_cluster_has_at_most_one_worker_per_gpu(tiny_data,
                                                              tmp_path):
  # NCCL refuses two workers of one all-reduce on the same GPU: said before
  # anything starts (CUDA_VISIBLE_DEVICES names the GPUs the launcher has).
  result = run_module('cluster.launch', '--workers', '3', '--ps', '0',
                      '--data_dir', tiny_data[0], '--train_dir',
                      str(tmp_path / 'train'), env={
                          'CUDA_VISIBLE_DEVICES': '0,1'})
  assert result.returncode == 1
  assert result.stdout.strip().splitlines()[-1].endswith(
      'error: --workers 3 --ps 0: expected at most one worker per GPU, found '
      '2 GPUs (0, 1)')
  assert not (tmp_path / 'train').exists()


def test_roles_come_from_the_flags_or_tf_config():
  cfg = flags.config('cifar10_dist_train', job_name='worker', task_index=1,
                     ps_hosts='a:1', worker_hosts='b:2,c:3')
  assert worker.role(cfg, {}) == worker.Role(['a:1'], ['b:2', 'c:3'],
                                               'worker', 1)
  empty = flags.config('cifar10_dist_train')
  config = {'cluster': {'chief': ['c:1'], 'worker': ['w:2'], 'ps': ['p:3']},
            'task': {'type': 'worker', 'index': 0}}
  assert worker.role(empty, {'TF_CONFIG': json.dumps(config)}) == \
      worker.Role(['p:3'], ['c:1', 'w:2'], 'worker', 1)
  config['task'] = {'type': 'chief'}
  assert worker.role(empty, {'TF_CONFIG': json.dumps(config)}).index == 0
  # Only workers: an all-reduce cluster, as TensorFlow's own strategies
  # write TF_CONFIG.
  config = {'cluster': {'worker': ['a:1', 'b:2']},
            'task': {'type': 'worker', 'index': 1}}
  assert worker.role(empty, {'TF_CONFIG': json.dumps(config)}) == \
      worker.Role([], ['a:1', 'b:2'], 'worker', 1)
  config['cluster']['ps'] = 'p:3'   # a string, not a list of one
  with pytest.raises(worker.ClusterError) as e:
    worker.role(empty, {'TF_CONFIG': json.dumps(config)})
  assert str(e.value).startswith('TF_CONFIG: expected {"cluster": ')
  assert str(e.value).endswith('("ps" is not a list)')
  with pytest.raises(worker.ClusterError) as e:
    worker.role(empty, {})
  assert str(e.value) == ('expected --job_name, --ps_hosts and '
                          '--worker_hosts, or TF_CONFIG, found neither')
  with pytest.raises(worker.ClusterError):
    worker.role(flags.config('cifar10_dist_train', job_name='worker',
                              task_index=2, ps_hosts='a:1',
                              worker_hosts='b:2'), {})


def test_the_first_runs_may_take_longer_than_the_peer_timeout(monkeypatch):
  # A run's first time also compiles it (XLA on a GPU: seconds to tens of
  # seconds), and a synchronous peer's next run waits for that: not a dead
  # peer. Every run of a kind after its first FIRST_RUNS (2 here) is held
  # to --peer_timeout_secs. Here a run that takes 2 s against a 1 s timeout.
  monkeypatch.setattr(steps, 'FIRST_RUN_SECS', 10)
  monkeypatch.setattr(steps, 'FIRST_RUNS', 2)
  port = processes.free_ports(1)[0]
  spec = tf.train.ClusterSpec({'worker': ['127.0.0.1:%d' % port]})
  server = tf.train.Server(spec, 'worker', 0)
  with tf.Graph().as_default():
    slow = tf.py_func(lambda: time.sleep(2) or 1.0, [], tf.float64)
    cluster = loop.Cluster(server.target, True, 1, 'worker 0')
    with steps.session(cluster, tf.ConfigProto()) as (_, fetch):
      assert fetch(slow) == fetch(slow) == 1.0
      assert fetch(tf.constant(2.0) * 3) == 6.0   # another kind: its own
      # A compiled loop is compiled again for each step count (its shape).
      assert fetch(slow, shape=99) == 1.0
      with pytest.raises(tf.errors.DeadlineExceededError):
        fetch(slow)


def test_a_clusters_checkpoints_are_held_to_its_deadline(tmp_path,
                                                        monkeypatch):
  # A save, taken in one run and written in a thread, goes through the
  # session's fetch, which holds a cluster's runs to --peer_timeout_secs:
  # a save that waits on a dead or hung parameter server is an error, not
  # a hang. Here a run that takes 2 s against a 1 s deadline.
  monkeypatch.setattr(steps, 'FIRST_RUNS', 0)
  port = processes.free_ports(1)[0]
  spec = tf.train.ClusterSpec({'worker': ['127.0.0.1:%d' % port]})
  server = tf.train.Server(spec, 'worker', 0)
  with tf.Graph().as_default():
    weights = tf.Variable([1., 2.], name='conv1/weights')
    snapshot = checkpoints.Snapshot([weights], sharded=False)
    slow = tf.py_func(lambda: time.sleep(2) or 1.0, [], tf.float64)
    cluster = loop.Cluster(server.target, True, 1, 'worker 0')
    with steps.session(cluster, tf.ConfigProto()) as (sess, fetch):
      held = steps.FetchSession(sess, fetch)
      held.run([tf.global_variables_initializer(),
                tf.local_variables_initializer()])
      saves = checkpoints.Saves(snapshot.saver, held, str(tmp_path),
                                      None, 1, 0, snapshot)
      saves.save(1)
      saves.wait()
      assert rundir.latest(str(tmp_path))[1] == 1
      with pytest.raises(tf.errors.DeadlineExceededError):
        held.run(slow)


def test_gpu_workers_of_an_all_reduce_compile_it_where_their_nccl_can_meet():
  # XLA's NCCL meets at NCCL_COMM_ID: the launcher picks a free port for an
  # all-reduce's GPU workers (a parameter-server cluster, CPU workers or a
  # user's own setting get none), and a worker compiles its all-reduce only
  # on a GPU, with XLA, where it is set; CIFAR10_ALL_REDUCE=kernel opts out.
  met = processes.nccl_meeting_point(0, ['0', '1'], {})
  assert re.fullmatch(r'127\.0\.0\.1:\d+', met['NCCL_COMM_ID'])
  assert met['NCCL_SOCKET_IFNAME'] == 'lo'   # all of NCCL on loopback
  assert processes.nccl_meeting_point(1, ['0', '1'], {}) == {}
  assert processes.nccl_meeting_point(0, [None, None], {}) == {}
  assert processes.nccl_meeting_point(0, ['0'], {'NCCL_COMM_ID': 'h:1'}) == {}
  cfg = flags.config('cifar10_dist_train')
  assert settings.compiled_all_reduce(cfg, True, met)
  assert not settings.compiled_all_reduce(cfg, False, met)
  assert not settings.compiled_all_reduce(cfg, True, {})
  assert not settings.compiled_all_reduce(
      cfg, True, dict(met, CIFAR10_ALL_REDUCE='kernel'))
  with pytest.raises(ValueError) as e:   # the worker says it in one line
    settings.compiled_all_reduce(cfg, True, {'NCCL_COMM_ID': 'h0'})
  assert str(e.value).endswith("found 'h0'")
  cfg.xla = False
  assert not settings.compiled_all_reduce(cfg, True, met)


def _cmdline(pid):
  try:
    with open('/proc/%s/cmdline' % pid, 'rb') as f:
      return f.read().replace(b'\0', b' ').decode(errors='replace')
  except OSError:
    return ''


def _children(pid, module):
  """Running processes whose parent is `pid` and that run `module`."""
  found = subprocess.run(['pgrep', '-P', str(pid)], capture_output=True,
                         text=True).stdout.split()
  return [int(p) for p in found if module in _cmdline(p)]


def _task(launcher, which):
  """The pid of the launcher's training task whose command has `which`."""
  tasks = [p for p in _children(launcher.proc.pid, 'cifar10_dist_train')
           if which in _cmdline(p)]
  assert tasks, launcher.output
  return tasks[0]


def _this_hosts_addresses():
  """This machine's own addresses, as another machine would reach it."""
  found = subprocess.run(['hostname', '-I'], capture_output=True,
                         text=True).stdout.split()
  return ['127.0.0.1'] + found


def _assert_private(launcher):
  """The launcher's tasks are in a network of their own with loopback only,
  and none of the ports it gave them takes a connection from here (this
  machine's loopback or its other addresses). Returns the holder's pid."""
  tasks = _children(launcher.proc.pid, 'cifar10_dist_train')
  holders = _children(launcher.proc.pid, 'private_net')
  assert tasks and len(holders) == 1, launcher.output
  ours = os.readlink('/proc/self/ns/net')
  for pid in tasks:
    assert os.readlink('/proc/%d/ns/net' % pid) != ours
    with open('/proc/%d/net/dev' % pid) as f:
      assert [l.split(':')[0].strip() for l in f.readlines()[2:]] == ['lo']
  ports = {int(p) for p in re.findall(r'127\.0\.0\.1:(\d+)',
                                      launcher.output)}
  assert ports, launcher.output
  for port in ports:
    for address in _this_hosts_addresses():
      family = socket.AF_INET6 if ':' in address else socket.AF_INET
      with socket.socket(family) as s:
        s.settimeout(2)
        assert s.connect_ex((address, port)) != 0, (address, port)
  return holders[0]


def _gone(pid):
  return not os.path.exists('/proc/%d' % pid) or processes.state(pid) == 'Z'


def test_ctrl_c_wakes_a_stopped_worker_and_the_run_ends_with_a_checkpoint(
    tiny_data, tmp_path):
  # An all-reduce cluster, its tasks reachable from nowhere else; one of
  # them stopped with SIGSTOP, then Ctrl-C: the launcher wakes it, every
  # task finishes the same step, the chief checkpoints, nothing is left.
  train_dir = str(tmp_path / 'train')
  launcher = _launch(tiny_data, train_dir, '--ps', '0', env=NO_GPU)
  try:
    launcher.wait_for('step 10, loss', timeout=90)
    holder = _assert_private(launcher)
    os.kill(_task(launcher, 'task_index 1'), signal.SIGSTOP)
    time.sleep(1)
    launcher.proc.send_signal(signal.SIGINT)
    assert _exit_status(launcher, 30) == 130
  finally:
    launcher.stop()
  done = re.search(r'worker 0 \| .*interrupted at step (\d+); checkpoint '
                   r'saved', launcher.output)
  assert done, launcher.output
  assert rundir.latest(train_dir)[1] == int(done.group(1))
  assert not _alive(train_dir) and _gone(holder)
  assert _quiet(launcher.output), launcher.output


def test_a_stopped_chief_is_named_and_the_run_stopped_with_a_checkpoint(
    tiny_data, tmp_path):
  # The chief stopped (SIGSTOP) under a parameter-server cluster with
  # synchronous steps: every step waits for it. The launcher names it (not
  # the workers whose steps time out), wakes it to stop the run, and ends.
  train_dir = str(tmp_path / 'train')
  launcher = _launch(tiny_data, train_dir, '--sync_replicas',
                     '--peer_timeout_secs', '60')
  try:
    launcher.wait_for('step 10, loss', timeout=90)
    _assert_private(launcher)
    os.kill(_task(launcher, 'job_name worker --task_index 0'),
            signal.SIGSTOP)
    assert _exit_status(launcher, processes.STALLED_SECS + 30) == 1
  finally:
    launcher.stop()
  assert re.search(r'^\S+ worker 0 is stopped \(SIGSTOP\) and has answered '
                   r'no peer for 1\d s: every step needs it; waking it to '
                   r'stop the run', launcher.output, re.M), launcher.output
  assert 'worker 1 exited' not in launcher.output
  assert re.search(r'worker 0 \| .*interrupted at step \d+; checkpoint saved',
                   launcher.output), launcher.output
  assert not _alive(train_dir)
  assert _quiet(launcher.output), launcher.output


def test_a_lost_peer_of_an_all_reduce_ends_the_run_quietly_leaving_nothing(
    tiny_data, tmp_path):
  # A worker of an all-reduce killed: the chief's step waits on it until
  # the launcher, which stops the run, kills what did not stop in time.
  # Whatever ends the launcher, nothing it started is left; none of
  # TensorFlow's lines about the aborted collectives reach the user.
  train_dir = str(tmp_path / 'train')
  launcher = _launch(tiny_data, train_dir, '--ps', '0', env=NO_GPU)
  try:
    launcher.wait_for('step 10, loss', timeout=90)
    holder = _children(launcher.proc.pid, 'private_net')[0]
    os.kill(_task(launcher, 'task_index 1'), signal.SIGKILL)
    assert _exit_status(launcher, processes.STOP_SECS + 20) == 1
  finally:
    launcher.stop()
  # Said by the launcher, or first by the chief, whose step saw the peer go.
  assert re.search(r'worker 1 exited \(killed by signal 9\): every step '
                   r'needs it|error: worker 0: expected the cluster to answer, '
                   r'found it gone \(/job:worker/replica:0/task:1',
                   launcher.output), launcher.output
  assert not _alive(train_dir) and _gone(holder)
  assert _quiet(launcher.output), launcher.output
  assert 'RingReduce' not in launcher.output


def test_a_cluster_asked_for_fewer_steps_than_it_has_ends_at_once(
    tiny_data, tmp_path):
  train_dir = str(tmp_path / 'train')
  args = ['--data_dir', tiny_data[0], '--train_dir', train_dir,
          '--batch_size', '4', '--log_frequency', '5']
  first = run_module('cluster.launch', *args, '--max_steps', '10',
                     timeout=240)
  assert first.returncode == 0, first.stdout + first.stderr
  started = time.time()
  again = run_module('cluster.launch', *args, '--max_steps', '5',
                     timeout=240)
  assert again.returncode == 0, again.stdout + again.stderr
  # The chief hands the variables over; the other worker sees the run is
  # done (it waited --peer_timeout_secs, 30 s, for variables before).
  assert time.time() - started < 45   # was 62 s: two peer timeouts
  assert re.search(r'worker 1 \| .*worker 1: stopped at step 1\d$',
                   again.stdout, re.M), again.stdout
  assert 'is it running?' not in again.stdout


def test_where_no_private_network_can_be_made_it_is_said_and_nothing_opens(
    tiny_data, tmp_path):
  # A user namespace that allows no further namespaces: the launcher refuses
  # in one line (unless --allow_open_ports); the multi-GPU trainer trains
  # its towers in one process instead, which opens no port.
  limits = ('echo 0 > /proc/sys/user/max_net_namespaces && '
            'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"')
  probe = subprocess.run(['unshare', '--user', '--map-root-user', 'sh', '-c',
                          limits, 'sh', 'true'], capture_output=True)
  if probe.returncode:
    pytest.skip('cannot make a user namespace here to deny namespaces in: '
                '%s' % probe.stderr.decode().strip())

  def run(module, *args):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), **NO_GPU)
    return subprocess.run(
        ['unshare', '--user', '--map-root-user', 'sh', '-c', limits, 'sh',
         sys.executable, '-m', 'cifar10_tutorial.' + module] + list(args),
        env=env, capture_output=True, text=True, timeout=180)

  common = ['--data_dir', tiny_data[0], '--batch_size', '4',
            '--max_steps', '4', '--log_frequency', '2']
  refused = run('cluster.launch', '--ps', '0', '--train_dir',
                str(tmp_path / 'a'), *common)
  assert refused.returncode == 1, refused.stdout + refused.stderr
  assert re.search(r'error: expected to keep the cluster\'s processes in a '
                   r'network of their own \(reachable from nowhere else\), '
                   r'found this machine allows none \(.+\); add '
                   r'--allow_open_ports', refused.stdout), refused.stdout
  assert not os.path.exists(str(tmp_path / 'a'))
  one = run('cifar10_multi_gpu_train', '--num_gpus', '2', '--tower_device',
            'cpu', '--variable_update', 'collective', '--train_dir',
            str(tmp_path / 'b'), *common)
  assert one.returncode == 0, one.stdout + one.stderr
  assert re.search(r'warning: this machine allows no private network for a '
                   r'process per tower \(.+\): training the 2 towers in one '
                   r'process instead \(--variable_update replicated\)',
                   one.stdout), one.stdout
  assert 'tower 1 |' not in one.stdout
  assert rundir.latest(str(tmp_path / 'b'))[1] == 4
  opened = run('cluster.launch', '--ps', '0', '--allow_open_ports',
               '--train_dir', str(tmp_path / 'c'), *common)
  assert opened.returncode == 0, opened.stdout + opened.stderr
  assert 'as --allow_open_ports asks' in opened.stdout
  assert re.search(r'worker 1 \| .*note: worker 1 listens on port \d+ of '
                   r'every interface', opened.stdout), opened.stdout


def test_public_cluster_addresses_are_refused_unless_allowed():
  # Sends nothing anywhere: literal addresses, and a resolver given here.
  def role(*hosts):
    return worker.Role([], list(hosts), 'worker', 0)

  for private in ['127.0.0.1:2222', '10.1.2.3:2222', '172.16.0.9:1',
                  '192.168.1.20:2222', '169.254.3.4:2222', '100.100.1.1:2222',
                  '[::1]:2222', '[fd12::5]:2222', '[fe80::1%eth0]:2222']:
    worker.check_addresses(role('127.0.0.1:1', private))
  with pytest.raises(worker.ClusterError) as e:
    worker.check_addresses(role('10.0.0.1:2222', '8.8.4.4:2222'))
  assert str(e.value).startswith(
      'worker 1 at 8.8.4.4:2222: expected a loopback, private or '
      'link-local address, found a public one (8.8.4.4)')
  assert '--allow_public_addresses' in str(e.value)
  with pytest.raises(worker.ClusterError):
    worker.check_addresses(role('[2606:4700::1111]:2222'))
  worker.check_addresses(role('8.8.4.4:2222'), allow_public=True)

  def resolve(name, port):
    return {'gpu-a': [(0, 0, 0, '', ('10.0.0.5', 0))],
            'gpu-b': [(0, 0, 0, '', ('10.0.0.6', 0)),
                      (0, 0, 0, '', ('1.1.1.1', 0))]}[name]

  worker.check_addresses(role('gpu-a:2222'), resolve=resolve)
  with pytest.raises(worker.ClusterError) as e:
    worker.check_addresses(role('gpu-a:2222', 'gpu-b:2222'), resolve=resolve)
  assert 'found a public one (1.1.1.1)' in str(e.value)


def test_a_stopped_task_of_a_killed_launcher_is_woken_and_ends(tiny_data,
                                                               tmp_path):
  # A stopped process cannot act on the kernel's parent-gone signal: the
  # launcher's guard (the private network's holder) wakes it, lets it stop
  # as on SIGTERM, and kills what is left; the chief checkpoints.
  train_dir = str(tmp_path / 'train')
  launcher = _launch(tiny_data, train_dir, '--ps', '0', env=NO_GPU)
  try:
    launcher.wait_for('step 10, loss', timeout=90)
    holder = _children(launcher.proc.pid, 'private_net')[0]
    os.kill(_task(launcher, 'task_index 1'), signal.SIGSTOP)
    time.sleep(1)
    launcher.proc.kill()
    deadline = time.time() + 40
    while (_alive(train_dir) or not _gone(holder)) and time.time() < deadline:
      time.sleep(0.5)
  finally:
    launcher.stop()
  assert not _alive(train_dir) and _gone(holder), launcher.output
  assert rundir.latest(train_dir)[1] >= 10
