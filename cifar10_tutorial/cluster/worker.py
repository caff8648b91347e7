"""Training across machines on TensorFlow's own distributed runtime.

    role = worker.role(cfg)        # from --job_name/--ps_hosts/... or TF_CONFIG
    worker.run(cfg)                # a parameter server, or a worker

Two ways, by whether the cluster has parameter servers:

- All-reduce (no --ps_hosts; one worker per GPU): each worker keeps its own
  copy of the variables and trains the whole graph of `train_graph` on its
  own data, and every step one all-reduce (placement.Collective: NCCL
  between GPUs, rings over gRPC otherwise) sums the workers' gradients, so
  N workers train like one batch of N x --batch_size. Worker 0 hands its
  variables to the others at the start (a resumed run resumes everywhere);
  all of them stop at the same step. This is also how
  cifar10_multi_gpu_train runs one process per GPU.
- Parameter servers (--ps_hosts): the servers hold the variables
  (replica_device_setter spreads them); each worker trains against them.
  Asynchronous by default (each worker applies its own steps; a lost
  worker does not stop the others); --sync_replicas averages one batch from
  every worker per step.

Either way worker 0 is the chief: it alone holds the train dir's lock and
writes checkpoints and summaries, with the tutorial's names, so `make eval`
reads them and `make train` can resume them. A peer that does not answer
within --peer_timeout_secs is an error in one line, never a hang.
"""
import collections
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time

import tensorflow.compat.v1 as tf

from cifar10_tutorial.cluster import private_net
from cifar10_tutorial.cluster import sync_steps
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors
from cifar10_tutorial.core import gpus
from cifar10_tutorial.core import stopping
from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import steps
from cifar10_tutorial.engine import train_graph

log = logging.getLogger('cifar10_tutorial')


class ClusterError(RuntimeError):
  """A peer of a cluster is missing or stopped answering; the message says
  which, and what to do."""


# This process's place in a cluster: the hosts of each job, its job, its
# index in it.
Role = collections.namedtuple('Role', ['ps', 'workers', 'job', 'index'])


def _hosts(text, what, required=True):
  hosts = [h.strip() for h in (text or '').split(',') if h.strip()]
  _check_hosts(hosts, what, text, required)
  return hosts


def _check_hosts(hosts, what, found, required=True):
  bad = [h for h in hosts if not isinstance(h, str) or ':' not in h]
  if (required and not hosts) or bad:
    raise ClusterError('%s: expected host:port addresses, found %r' % (
        what, found))


def _from_tf_config(text):
  """A Role from TF_CONFIG: {"cluster": {"ps": [...], "worker": [...]},
  "task": {"type": "worker", "index": 0}}. A "chief" job, as TensorFlow's
  newer strategies write it, is worker 0 here."""
  try:
    config = json.loads(text)
    jobs, task = config['cluster'], config['task']
    lists = {name: jobs.get(name, []) for name in ('chief', 'worker', 'ps')}
    for name, hosts in lists.items():
      if not isinstance(hosts, list):   # "ps": "h:1" is not a list of one
        raise TypeError('"%s" is not a list' % name)
      _check_hosts(hosts, 'TF_CONFIG "%s"' % name, hosts, required=False)
    workers, ps = lists['chief'] + lists['worker'], lists['ps']
    job, index = task['type'], int(task.get('index', 0))
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ClusterError('TF_CONFIG: expected {"cluster": {"worker": [...], '
                       '"ps": [...] (optional)}, "task": {"type": ..., '
                       '"index": ...}}, found %r (%s)' % (text, e))
  chief = lists['chief']
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
    found = Role(_hosts(cfg.ps_hosts, '--ps_hosts', required=False),
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
  if not found.workers:
    raise ClusterError('expected at least one worker, found none')
  if not 0 <= found.index < len(tasks):
    raise ClusterError('--task_index: expected 0 to %d for %s, found %d' % (
        len(tasks) - 1, found.job, found.index))
  return found


# The workers' names where the launcher gives them (the multi-GPU trainer's
# processes are 'tower 0', 'tower 1', ...): the same as in its prefixes.
NAMES_VARIABLE = 'CIFAR10_WORKER_NAMES'


def _worker_names(r, environ=os.environ):
  given = environ.get(NAMES_VARIABLE, '').split(',')
  if len(given) == len(r.workers) and all(given):
    return given
  return ['worker %d' % i for i in range(len(r.workers))]


def name(r):
  if r.job == 'worker':
    return _worker_names(r)[r.index]
  return '%s %d' % (r.job, r.index)


def _mine(r):
  return (r.ps if r.job == 'ps' else r.workers)[r.index]


def is_private(address):
  """Whether an IP address (text) is one the internet does not route to
  (loopback, private, link-local, the shared 100.64/10 of carrier NAT and
  VPNs, ...); False for a public one or not an address."""
  try:
    ip = ipaddress.ip_address(address.strip('[]').split('%')[0])
  except ValueError:
    return False
  return not ip.is_global


def check_addresses(r, allow_public=False, resolve=socket.getaddrinfo):
  """ClusterError, before any server starts, for a host of the cluster
  whose address is public, unless `allow_public`. A host name counts by
  the addresses it resolves to (one that does not resolve is left to the
  connection, which says so)."""
  if allow_public:
    return
  jobs = [('worker %d' % i, h) for i, h in enumerate(r.workers)]
  jobs += [('ps %d' % i, h) for i, h in enumerate(r.ps)]
  for task, host in jobs:
    address = host.rsplit(':', 1)[0]
    try:
      found = [address] if _is_ip(address) else sorted(
          {a[4][0] for a in resolve(address, None)})
    except (OSError, UnicodeError):
      continue
    public = [a for a in found if not is_private(a)]
    if public:
      raise ClusterError(
          '%s at %s: expected a loopback, private or link-local address, '
          'found a public one (%s): TensorFlow\'s runtime authenticates '
          'nobody, so whoever reaches the port can run code on that machine; '
          'use a private network, or add %s if a firewall keeps others out'
          % (task, host, ', '.join(public),
             errors.option('allow_public_addresses')))


def _is_ip(text):
  try:
    ipaddress.ip_address(text.strip('[]').split('%')[0])
    return True
  except ValueError:
    return False


LEADER = '/job:worker/replica:0/task:0'   # an all-reduce cluster's


def _config(r):
  """The server's and session's settings: an all-reduce cluster's
  collectives are set up through worker 0."""
  config = tf.ConfigProto()
  if not r.ps:
    config.experimental.collective_group_leader = LEADER
  return config


def start_server(r):
  """This process's TensorFlow server; one line if its port is taken."""
  jobs = {'worker': r.workers}
  if r.ps:
    jobs['ps'] = r.ps
  spec = tf.train.ClusterSpec(jobs)
  address = (r.ps if r.job == 'ps' else r.workers)[r.index]
  try:
    return spec, tf.train.Server(spec, job_name=r.job, task_index=r.index,
                                 config=_config(r))
  except (tf.errors.OpError, ValueError) as e:
    raise ClusterError('%s: expected a free port for %s, found it taken or '
                       'not this machine\'s (%s)' % (address, name(r),
                                                     errors.reason(e)))


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


# How long a parameter server asked to stop waits for the chief, which may
# be saving a checkpoint of the variables it holds (all of them stopped at
# once: a closed terminal, a killed launcher). Under stopping's deadline.
CHIEF_GRACE_SECS = 20


def _answers(host):
  address, port = host.rsplit(':', 1)
  try:
    with socket.create_connection((address, int(port)), timeout=1):
      return True
  except OSError:
    return False


def _done_queue(index):
  """The queue on parameter server `index` by which the chief says the run
  is done (TensorFlow's way to end a server: it has no stop of its own)."""
  with tf.device('/job:ps/task:%d' % index):
    return tf.FIFOQueue(1, tf.int32, shared_name='cifar10_run_done_%d' % index,
                        name='run_done_%d' % index)


def serve(r):
  """A parameter server: serves the variables until the chief says the run
  is done or this process is asked to stop; then until the workers (the
  chief at least) are gone, at most CHIEF_GRACE_SECS."""
  _, server = start_server(r)
  log.info('%s: serving at %s', name(r), r.ps[r.index])
  with tf.Graph().as_default():
    done = _done_queue(r.index).dequeue()
  sess = tf.Session(server.target, graph=done.graph, config=tf.ConfigProto(
      device_filters=['/job:ps/task:%d' % r.index]))
  told = threading.Event()

  def wait_for_the_chief():   # blocks; the process may end before it does
    try:
      sess.run(done)
      told.set()
    except tf.errors.OpError:
      pass

  threading.Thread(target=wait_for_the_chief, name='run-done',
                   daemon=True).start()
  while not (told.is_set() or stopping.requested()):
    told.wait(0.2)
  finished = told.is_set()
  deadline = time.time() + CHIEF_GRACE_SECS
  left = r.workers if finished else r.workers[:1]
  while time.time() < deadline and any(_answers(h) for h in left):
    time.sleep(0.2)
  if finished:
    log.info('%s: the run is done: stopping', name(r))
    return 0
  raise stopping.Interrupted(stopping.requested(),
                             'parameter server stopped')


def train(cfg, r):
  """A worker: the trainers' graph, with its own copy of the variables in
  an all-reduce cluster, else with them on the parameter servers."""
  spec, server = start_server(r)
  worker = '/job:worker/replica:0/task:%d' % r.index
  cadence = dict(checkpoint_secs=defaults.SAVE_CHECKPOINT_SECS)
  with tf.Graph().as_default():
    if r.ps:
      wait_for(r.ps, 'ps', cfg.peer_timeout_secs)
      cfg, placement = settings.for_trainer(cfg, parameter_servers=True,
                                            **cadence)
      sync = (sync_steps.SyncSteps(len(r.workers), r.index, worker)
              if cfg.sync_replicas else None)
      with tf.device(tf.train.replica_device_setter(worker_device=worker,
                                                    cluster=spec)):
        graph = train_graph.build_graph(cfg, placement, sync=sync,
                                        parameter_servers=True)
      done = [_done_queue(i).enqueue(1) for i in range(len(r.ps))]
      config = machine.session_config(cfg)
      # Only the parameter servers and itself: a dead worker stops no other.
      config.device_filters.extend(['/job:ps', worker])
    else:
      device = 'GPU' if gpus.count() else 'CPU'
      place = settings.Place(r.index, len(r.workers),
                             '%s/device:%s:0' % (worker, device),
                             worker + '/device:CPU:0', cfg.peer_timeout_secs)
      try:
        cfg, placement = settings.for_trainer(cfg, place=place, **cadence)
      except ValueError as e:   # NCCL_COMM_ID not host:port
        raise ClusterError(str(e))
      with tf.device(worker):
        graph = train_graph.build_graph(cfg, placement)
      config = machine.session_config(cfg)
      config.device_filters.append(worker)
    config.MergeFrom(_config(r))
    cluster = loop.Cluster(server.target, r.index == 0,
                           cfg.peer_timeout_secs, name(r))
    step = _train(graph, cfg, config, cluster, peers(r))
    if r.ps and cluster.is_chief:
      _say_done(done, server.target, config)
    return step


def _say_done(done, target, config):
  """The chief, at the end of the run: tells each parameter server, which
  then stops once the workers are gone (one that is gone already is fine)."""
  with tf.Session(target, config=config) as sess:
    try:
      sess.run(done, options=tf.RunOptions(timeout_in_ms=5000))
    except tf.errors.OpError as e:
      log.debug('the parameter servers were not told the run is done: %s',
                errors.reason(e))


def peers(r):
  """The other tasks of `r`'s cluster, by name, for messages."""
  mine = name(r)
  return [n for n in (_worker_names(r) +
                      ['ps %d' % i for i in range(len(r.ps))]) if n != mine]


def _suspects(others):
  if len(others) == 1:
    return '%s is dead or hung' % others[0]
  return 'one of %s is dead or hung' % ', '.join(others)


def _train(graph, cfg, config, cluster, others=()):
  """The loop (loop.train) for the chief and an all-reduce run's others,
  _work for a parameter-server cluster's others; a peer that is gone or
  does not answer (one of `others`, by name) is a ClusterError that says
  which and what to do."""
  gone = ('%s: expected the cluster to answer, found it gone (%s): %s' % (
      cluster.name, '%s', 'another worker stopped? Start them all again: '
      'the chief resumes from its last checkpoint' if graph.agreement else
      'a parameter server stopped? Start the cluster again: the chief '
      'resumes from its last checkpoint'))
  try:
    if graph.agreement is None and not cluster.is_chief:
      return _work(graph, cfg, config, cluster)
    return loop.train(graph, cfg, config, cluster=cluster)
  except tf.errors.DeadlineExceededError as e:
    raise ClusterError(
        '%s: expected a step to finish within %d s, found none did (%s): %s%s'
        % (cluster.name, cluster.timeout_secs, errors.reason(e),
           _suspects(others) if others else 'a peer is dead or hung',
           '; a synchronous step waits for every worker' if graph.sync or
           graph.agreement else ''))
  except (tf.errors.UnavailableError, tf.errors.AbortedError,
          tf.errors.CancelledError) as e:
    raise ClusterError(gone % _peer_reason(e))
  except tf.errors.InternalError as e:
    # An all-reduce aborted because a peer went away mid-step.
    if 'ollective' not in getattr(e, 'message', ''):
      raise
    raise ClusterError(gone % _peer_reason(e))


def _peer_reason(error):
  """Which peer, and what its connection said, from a cluster's error
  (TensorFlow's message is a page of op names and logs)."""
  message = getattr(error, 'message', '')
  target = re.search(r'remote target (\S+) while calling', message)
  said = re.search(r'grpc_message:"([^"]*)"', message)
  if target and said:
    return '%s: %s' % (target.group(1), said.group(1))
  # A request the peer's runtime refused comes with the request itself.
  said = errors.reason(error).split(' goo.gle/')[0]
  return said if len(said) <= 200 else said[:197] + '...'


def _work(graph, cfg, config, cluster):
  """A worker of a cluster other than the chief: waits for the chief's
  variables, then trains until the global step reaches --max_steps. It
  writes nothing: the chief keeps the checkpoints and summaries."""
  ready = tf.report_uninitialized_variables(tf.global_variables())
  local_init = tf.local_variables_initializer()
  tf.get_default_graph().finalize()
  coord = tf.train.Coordinator()
  with steps.session(cluster, config) as (sess, fetch):
    started = time.time()
    # Every half second, not TensorFlow's 30 s readiness poll: a worker
    # starts within a second of the chief's session.
    while len(fetch(ready)):
      if time.time() - started > cluster.timeout_secs:
        raise ClusterError(
            '%s: expected the chief (worker 0) to initialize the variables, '
            'found them not ready after %d s: is it running?' % (
                cluster.name, cluster.timeout_secs))
      time.sleep(0.5)
    fetch(local_init)
    if graph.sync:
      fetch(graph.sync.worker_init)
    threads = tf.train.start_queue_runners(sess, coord)
    stopping.work_underway()
    try:
      fetch(graph.prime)
      step = fetch(graph.global_step)
      if step < cfg.max_steps:
        log.info('%s: training from global step %d', cluster.name, step)
      shown = steps.StepLog(None, step, graph.examples_per_step,
                            cfg.log_frequency, cfg.max_steps)
      while step < cfg.max_steps and not stopping.requested():
        first = step
        losses = steps.run(graph, fetch, steps.next_run(step, cfg, None),
                           step)
        loop.check_losses(first, losses)
        step = fetch(graph.global_step)
        shown.ran(first, losses, step)
    finally:
      steps.join_threads(coord, threads, cluster)
  if stopping.requested():
    raise stopping.Interrupted(stopping.requested(), '%s: interrupted at '
                               'step %d (the chief keeps the checkpoints)' %
                               (cluster.name, step))
  log.info('%s: stopped at step %d', cluster.name, step)
  return step


def run(cfg):
  """This process's part of the cluster."""
  r = role(cfg)
  check_addresses(r, cfg.allow_public_addresses)
  if not private_net.joined():
    log.warning('note: %s listens on port %s of every interface of this '
                'machine (TensorFlow\'s runtime, unauthenticated: whoever '
                'reaches it can run code here); keep the cluster on a private '
                'network', name(r), _mine(r).rsplit(':', 1)[1])
  if r.job == 'ps':
    serve(r)
  else:
    train(cfg, r)
