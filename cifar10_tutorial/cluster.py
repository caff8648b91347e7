"""Training across machines on TensorFlow's own distributed runtime.

    role = cluster.role(cfg)       # from --job_name/--ps_hosts/... or TF_CONFIG
    cluster.run(cfg)               # a parameter server, or a worker

Between-graph replication: the parameter servers hold the variables
(replica_device_setter spreads them over the servers); each worker builds
the whole training graph of `train_graph` (the same network, schedule, moving
averages and summaries as the other trainers), with its own queue input
pipeline on its own CPU, and trains against the shared variables. Worker 0
is the chief: it alone holds the train dir's lock and writes checkpoints
and summaries, with the tutorial's names, so `make eval` reads them and
`make train` can resume them. Asynchronous by default (each worker applies
its own steps); --sync_replicas averages one batch from every worker per
step. A peer that does not answer within --peer_timeout_secs is an error in
one line, never a hang.
"""
import collections
import json
import logging
import os
import socket
import time

import tensorflow.compat.v1 as tf

from cifar10_tutorial import defaults
from cifar10_tutorial import machine
from cifar10_tutorial import program
from cifar10_tutorial import stopping
from cifar10_tutorial import sync_steps
from cifar10_tutorial import train_graph
from cifar10_tutorial import training

log = logging.getLogger('cifar10_tutorial')
ClusterError = training.ClusterError

# This process's place in a cluster: the hosts of each job, its job, its
# index in it.
Role = collections.namedtuple('Role', ['ps', 'workers', 'job', 'index'])


def _hosts(text, what):
  hosts = [h.strip() for h in (text or '').split(',') if h.strip()]
  bad = [h for h in hosts if ':' not in h]
  if not hosts or bad:
    raise ClusterError('%s: expected comma-separated host:port, found %r' % (
        what, text))
  return hosts


def _from_tf_config(text):
  """A Role from TF_CONFIG: {"cluster": {"ps": [...], "worker": [...]},
  "task": {"type": "worker", "index": 0}}. A "chief" job, as TensorFlow's
  newer strategies write it, is worker 0 here."""
  try:
    config = json.loads(text)
    jobs, task = config['cluster'], config['task']
    chief = list(jobs.get('chief', []))
    workers, ps = chief + list(jobs.get('worker', [])), list(jobs['ps'])
    job, index = task['type'], int(task.get('index', 0))
  except (ValueError, KeyError, TypeError) as e:
    raise ClusterError('TF_CONFIG: expected {"cluster": {"ps": [...], '
                       '"worker": [...]}, "task": {"type": ..., "index": '
                       '...}}, found %r (%s)' % (text, e))
  if job == 'chief':
    job, index = 'worker', 0
  elif job == 'worker':
    index += len(chief)
  return Role(ps, workers, job, index)


def role(cfg, environ=os.environ):
  """This process's Role, from the flags or else $TF_CONFIG."""
  if cfg.job_name or cfg.ps_hosts or cfg.worker_hosts:
    if not cfg.job_name:
      raise ClusterError('--job_name: expected ps or worker, found none')
    found = Role(_hosts(cfg.ps_hosts, '--ps_hosts'),
                 _hosts(cfg.worker_hosts, '--worker_hosts'), cfg.job_name,
                 cfg.task_index)
  elif environ.get('TF_CONFIG'):
    found = _from_tf_config(environ['TF_CONFIG'])
  else:
    raise ClusterError('expected --job_name, --ps_hosts and --worker_hosts, '
                       'or TF_CONFIG, found neither')
  tasks = {'ps': found.ps, 'worker': found.workers}.get(found.job)
  if tasks is None:
    raise ClusterError('job: expected ps or worker, found %r' % found.job)
  if not 0 <= found.index < len(tasks):
    raise ClusterError('--task_index: expected 0 to %d for %s, found %d' % (
        len(tasks) - 1, found.job, found.index))
  return found


def name(r):
  return '%s %d' % (r.job, r.index)


def start_server(r):
  """This process's TensorFlow server; one line if its port is taken."""
  spec = tf.train.ClusterSpec({'ps': r.ps, 'worker': r.workers})
  address = (r.ps if r.job == 'ps' else r.workers)[r.index]
  try:
    return spec, tf.train.Server(spec, job_name=r.job, task_index=r.index)
  except (tf.errors.OpError, ValueError) as e:
    raise ClusterError('%s: expected a free port for %s, found it taken or '
                       'not this machine\'s (%s)' % (address, name(r),
                                                     program.reason(e)))


def wait_for(hosts, what, timeout_secs):
  """Returns once every host:port takes a connection; ClusterError after
  timeout_secs for one that does not."""
  deadline = time.time() + timeout_secs
  for i, host in enumerate(hosts):
    address, port = host.rsplit(':', 1)
    while True:
      try:
        with socket.create_connection((address, int(port)), timeout=2):
          break
      except OSError as e:
        if time.time() > deadline:
          raise ClusterError('%s %d at %s: expected it to answer, found no '
                             'answer in %d s (%s)' % (what, i, host,
                                                      timeout_secs, e))
        time.sleep(0.2)


def serve(r):
  """A parameter server: serves the variables until stopped."""
  start_server(r)
  log.info('%s: serving at %s', name(r), r.ps[r.index])
  while not stopping.requested():
    time.sleep(0.2)
  log.info('%s: stopped', name(r))


def train(cfg, r):
  """A worker: the trainers' graph, its variables on the parameter servers."""
  spec, server = start_server(r)
  wait_for(r.ps, 'ps', cfg.peer_timeout_secs)
  is_chief = r.index == 0
  cfg = machine.training_settings(cfg)
  worker = '/job:worker/task:%d' % r.index
  sync = (sync_steps.SyncSteps(len(r.workers), r.index, worker)
          if cfg.sync_replicas else None)
  with tf.Graph().as_default():
    with tf.device(tf.train.replica_device_setter(worker_device=worker,
                                                  cluster=spec)):
      graph = train_graph.build_graph(cfg, sync=sync, cluster=True)
    config = machine.session_config(cfg)
    # Only the parameter servers and itself: a dead worker stops no other.
    config.device_filters.extend(['/job:ps', worker])
    return training.train(
        graph, cfg, config, checkpoint_secs=defaults.SAVE_CHECKPOINT_SECS,
        cluster=training.Cluster(server.target, is_chief,
                                 cfg.peer_timeout_secs, name(r)))


def run(cfg):
  """This process's part of the cluster."""
  r = role(cfg)
  if r.job == 'ps':
    serve(r)
  else:
    train(cfg, r)


def on_signal(cfg):
  """A parameter server stops at once; a worker finishes its step (the
  chief then saves a checkpoint)."""
  try:
    job = role(cfg).job
  except ClusterError:
    job = 'worker'   # the error is said when the program starts
  return 'parameter server stopped' if job == 'ps' else program.FINISH_STEP
