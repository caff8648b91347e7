"""The training graph both trainers share: one builder for 1..N towers.

    graph = build_graph(cfg)                       # cifar10_train
    graph = build_graph(cfg, ['/gpu:0', '/gpu:1'])   # cifar10_multi_gpu_train
    training.train(graph, cfg, config)             # the loop: training.py

With no devices, the graph is the single-device trainer's: one tower, no
tower scope, TensorFlow places the ops (on the GPU if there is one). With a
list of devices, one tower per device (`tower_0` ... on `/gpu:i`), each
dequeuing its own batch; where the variables live is --variable_update
(the tutorial's: once, on the CPU); the towers' gradients are averaged,
applied, and the moving averages updated. Either way the checkpoints are
the same, under the tutorial's names, so `make eval` reads them and either
trainer resumes the other's run.

A training step (dequeue, gradients, update, moving averages, global step)
is built twice: once with the summaries, run alone every 100th step, and
once inside an in-graph loop that runs --steps_per_run steps per
session.run, so that on a GPU Python and the session are paid once per N
steps instead of every step.
"""
import collections
import contextlib

import tensorflow.compat.v1 as tf
from tensorflow.python.ops import data_flow_ops

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial import defaults
from cifar10_tutorial import machine
from cifar10_tutorial import records

# What build_graph makes and train runs.
TrainGraph = collections.namedtuple('TrainGraph', [
    'global_step', 'examples_per_step',   # batch size x towers
    'summary_step',   # a Step: one step that also computes the summaries
    'steps',          # how many steps `loop` runs (fed)
    'loop',           # (steps done, their losses): stops early at a NaN
    'prime',          # runs once before the first step (fills the staging)
    'saved',          # the variables a checkpoint holds (None: all)
    'settings',       # what the run's math depends on, beyond the flags
    'sync',           # a synchronous cluster's SyncSteps, or None
    'until',          # a cluster's loop also stops at this global step (fed);
                      # None elsewhere
])
# One training step: its update op, loss and summary items.
Step = collections.namedtuple('Step', ['train_op', 'total_loss', 'summaries'])
# What one tower builds: its gradients, total loss, loss-average update and
# summary items.
Tower = collections.namedtuple('Tower', ['grads', 'total_loss',
                                         'loss_update', 'summaries'])

_VARIABLE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


def _device(device):
  """tf.device(device), or no scope at all for None: tf.device(None) would
  clear the scopes around it (a cluster's replica_device_setter, say)."""
  return tf.device(device) if device else contextlib.nullcontext()


def _on(device, variables='/cpu:0'):
  """Places variables on `variables` (shared by all towers), the rest on
  `device`."""
  def place(op):
    return variables if op.type in _VARIABLE_OPS else device
  return place


def tower(images, labels, opt, lrn='matmul', precision='fp32', reuse=False,
          loss_averages=None, with_summaries=True,
          class_names=defaults.CLASS_NAMES):
  """The network, its loss and its gradients on one batch.

  Run inside a tower's device and name scope; the towers after the first,
  and every build after the first, pass `reuse=True`, so the network's
  variables exist once. Each tower keeps its own loss, loss averages
  (`loss_averages`, a cifar10.LossAverages kept across builds) and
  summaries.
  """
  with tf.variable_scope(tf.get_variable_scope(), reuse=reuse):
    model = cifar10.inference(images, lrn=lrn, precision=precision,
                              num_classes=len(class_names))
  total, losses = cifar10.loss(model, labels)
  loss_averages = loss_averages or cifar10.LossAverages()
  update, averages = loss_averages.update(losses + [total])
  grads = opt.compute_gradients(total, model.variables)
  items = []
  if with_summaries:
    items = (cifar10.loss_summaries(losses + [total], averages) +
             cifar10.activation_summaries(model, images, labels,
                                          class_names))
  return Tower(grads, total, update, items)


def tower_gradients(batches, devices, opt, lrn='matmul', precision='fp32'):
  """One tower per (images, labels) batch, on its device, `tower_i`."""
  towers = []
  for i, ((images, labels), device) in enumerate(zip(batches, devices)):
    with tf.device(_on(device)), tf.name_scope('tower_%d' % i):
      towers.append(tower(images, labels, opt, lrn, precision, reuse=i > 0))
  return towers


def average_gradients(tower_grads, device='/cpu:0'):
  """The mean over towers of each variable's gradient, computed on `device`.

  With equal tower batches, this is the gradient of the loss over all
  N x batch examples (weight decay included once, as each tower's loss has
  it whole).
  """
  averaged = []
  with _device(device), tf.name_scope('average_gradients'):
    for pairs in zip(*tower_grads):
      grads = [g for g, _ in pairs]
      averaged.append((tf.add_n(grads) / float(len(grads)), pairs[0][1]))
  return averaged


def all_reduce(tower_grads, devices):
  """For each tower, the mean gradient of each of its own variables,
  computed on its own device from all towers' gradients, in the same order
  everywhere, so that every copy of the variables gets the same update."""
  reduced = [[] for _ in devices]
  with tf.name_scope('all_reduce'):
    for pairs in zip(*tower_grads):
      grads = [g for g, _ in pairs]
      for mine, device, (_, var) in zip(reduced, devices, pairs):
        with _device(device):
          mine.append((tf.add_n(grads) / float(len(grads)), var))
  return reduced


def _renamed(prefix):
  """A variable getter that puts `prefix` before each variable's name (and
  nothing else: op names, so summary tags, stay the tutorial's)."""
  def rename(getter, name, *args, **kwargs):
    return getter(prefix + name, *args, **kwargs)
  return rename


def _replicas(devices):
  """(the first tower's variable, its copy) for each copy of the towers
  after the first: their names are the first's under `tower_i/`."""
  first = {v.op.name: v for v in tf.global_variables()}
  return [(first[v.op.name.split('/', 1)[1]], v)
          for i in range(1, len(devices))
          for v in tf.global_variables(scope='tower_%d/' % i)]


class Feed(object):
  """One tower's batches from the shared queue, on the tower's device.

  With `prefetch`, a staging area on `device` always holds the next batch:
  each step takes it and, in the same step, dequeues and copies the one
  after, so the copy overlaps the step instead of preceding it. `prime`
  puts the first batch in. A raw queue's images are preprocessed here, on
  the device.
  """

  def __init__(self, queue, batch_size, device, prefetch):
    self.queue, self.batch_size, self.device = queue, batch_size, device
    self._area, self.prime = None, tf.no_op()
    if prefetch:
      images, labels = queue.queue.dtypes
      image_shape = queue.queue.shapes[0].as_list()
      with tf.device(device):
        self._area = data_flow_ops.StagingArea(
            [images, labels], shapes=[[batch_size] + image_shape,
                                      [batch_size]])
      self.prime = self._refill()

  def _refill(self):
    batch = self.queue.dequeue(self.batch_size)
    with tf.device(self.device):
      return self._area.put(batch)

  def batch(self):
    """(images, labels, refill op) for one step."""
    if self._area is None:
      images, labels = self.queue.dequeue(self.batch_size)
      refill = tf.no_op()
    else:
      with tf.device(self.device):
        images, labels = self._area.get()
      refill = self._refill()
    with tf.device(self.device):
      return self.queue.finish(images), labels, refill


def build_graph(cfg, devices=None, queue=None, sync=None, cluster=False):
  """The training graph, in the current default graph.

  `devices` None: the single-device trainer. A list: one tower on each,
  the variables where --variable_update says (the tutorial's multi-GPU
  trainer: on the CPU). `cfg` has its 'auto' options resolved
  (machine.resolve). `queue` replaces the training queue (tests feed fixed
  batches). `sync` (a sync_steps.SyncSteps) makes each step wait for one
  batch's gradients from every worker of a cluster, averaged: then the step
  is built once, without the in-graph loop, and the moving averages are
  updated by the chief's releaser, once a step. `cluster`: the graph of a
  cluster's worker (its loop also stops at a global step: loop_graph).
  """
  update = cfg.variable_update if devices else None
  replicated = update == 'replicated'
  # Where the variables and their update go, for one copy of them.
  home = {'cpu': '/cpu:0', 'first_tower': devices and devices[0]}.get(update)
  # The global step, learning rate and mean loss: beside the (first copy
  # of the) variables, so that a step on GPUs never waits on the CPU for
  # them. (One GPU measured 41,800 examples/s with them on the CPU, against
  # 88,700 for the single-device trainer, which has them on the GPU.)
  shared = home or (devices and devices[0])
  with _device(shared):
    global_step = tf.train.get_or_create_global_step()
  data = None   # which data, for the run's settings; tests' queues: none
  if queue is None:
    queue = cifar10_input.train_queue(   # checks the record files first
        cfg.data_dir, cfg.batch_size, cfg.input_threads, cfg.input_pipeline,
        raw=cfg.preprocess_on == 'device')
    data = records.fingerprint(records.data_files(cfg.data_dir))
  towers = devices or [None]
  examples_per_step = cfg.batch_size * len(towers) * (
      sync.workers if sync else 1)
  default_device = '/gpu:0' if machine.gpu_count() else '/cpu:0'
  feeds = [Feed(queue, cfg.batch_size, device or default_device,
                cfg.prefetch_to_device) for device in towers]
  with _device(shared):
    averages = cifar10.moving_averages(global_step)
  loss_averages = [cifar10.LossAverages() for _ in towers]
  built = []   # how many steps have been built: the first makes variables

  def step(with_summaries):
    with _device(shared):
      lr = cifar10.learning_rate(global_step, examples_per_step,
                                 queue.num_records)
    opt = cifar10.gradient_descent(lr)
    parts, refills = [], []
    for i, (feed, device) in enumerate(zip(feeds, towers)):
      own_copy = replicated and i > 0   # variables under tower_i/
      copy_scope = (tf.variable_scope(
          tf.get_variable_scope(), auxiliary_name_scope=False,
          custom_getter=_renamed('tower_%d/' % i))
                    if own_copy else contextlib.nullcontext())
      with _device(_on(device, home) if home else device), \
          tf.name_scope('tower_%d' % i if devices else None), copy_scope:
        images, labels, refill = feed.batch()
        parts.append(tower(images, labels, opt, cfg.lrn, cfg.precision,
                           reuse=bool(built) or (i > 0 and not own_copy),
                           loss_averages=loss_averages[i],
                           with_summaries=with_summaries,
                           class_names=queue.class_names))
        refills.append(refill)
    built.append(with_summaries)
    tower_grads = [t.grads for t in parts]
    if replicated:
      reduced = all_reduce(tower_grads, devices)
      grads = reduced[0]
      # The copies after the first: the same update, no averages of their
      # own (the first copy's are the ones saved).
      refills += [cifar10.gradient_descent(lr).apply_gradients(g)
                  for g in reduced[1:]]
    elif devices:
      grads = average_gradients(tower_grads, home)
    else:
      grads = parts[0].grads
    extra_updates = [t.loss_update for t in parts] + refills
    with _device(shared):
      if sync:
        train_op = tf.group(
            sync.apply_gradients(grads, global_step,
                                 cifar10.gradient_descent(lr), averages),
            *extra_updates, name='train')
      else:
        train_op = cifar10.apply_and_average(grads, global_step, lr,
                                             averages, extra_updates)
      if devices:
        total_loss = tf.add_n([t.total_loss for t in parts],
                              name='mean_total_loss') / len(parts)
      else:
        total_loss = parts[0].total_loss
    items = []
    if with_summaries:
      items = cifar10.training_summaries(grads, lr)
      for t in parts:
        items += t.summaries
      items.append(queue.fill_summary())
    return Step(train_op, total_loss, items)

  graph = loop_graph(step, global_step, examples_per_step,
                     tf.group(*[f.prime for f in feeds]), with_loop=not sync,
                     bounded=cluster)
  graph = graph._replace(sync=sync)
  decay_steps = int(queue.num_records / examples_per_step *
                    defaults.NUM_EPOCHS_PER_DECAY)
  graph = graph._replace(settings={
      'training_records': queue.num_records, 'lr_decay_steps': decay_steps,
      'data': data, 'classes': list(queue.class_names)})
  if not replicated:
    return graph
  # One copy is saved, under the tutorial's names; the others start from it
  # (after initialization or a restore: `prime` runs after both).
  pairs = _replicas(devices)
  copies = {r for _, r in pairs}
  copy_first = tf.group(*[r.assign(v) for v, r in pairs])
  return graph._replace(
      prime=tf.group(graph.prime, copy_first),
      saved=[v for v in tf.global_variables() if v not in copies])


def loop_graph(step, global_step, examples_per_step, prime=None,
               with_loop=True, bounded=False):
  """A TrainGraph from `step(with_summaries)`, which builds one whole
  training step and returns a Step. It is built first with summaries
  (making the variables), then inside the in-graph loop without them
  (unless not `with_loop`: then every step runs the first build).
  `bounded`: the loop also stops once the global step reaches a fed value
  (`until`), for workers of a cluster, whose global step others advance
  too: else each would finish its run of steps past --max_steps."""
  summary_step = step(True)
  if not with_loop:
    return TrainGraph(global_step, examples_per_step, summary_step, None,
                      None, prime or tf.no_op(), None, {}, None, None)
  steps = tf.placeholder(tf.int32, [], name='steps_per_run')
  until = (tf.placeholder(global_step.dtype.base_dtype, [],
                          name='until_global_step') if bounded else None)

  def going(i, finite, losses):
    more = tf.logical_and(finite, i < steps)
    if until is None:
      return more
    # Read once the last iteration's step has counted itself: `finite`
    # comes after its update. (The loop counter alone would let the read
    # run ahead of that step, and each worker train one step more.)
    with tf.control_dependencies([finite]):
      reached = global_step.read_value()
    return tf.logical_and(more, reached < until)

  def body(i, finite, losses):
    s = step(False)
    with tf.control_dependencies([s.train_op]):
      loss = tf.identity(s.total_loss)
    return i + 1, tf.math.is_finite(loss), losses.write(i, loss)

  done, _, losses = tf.while_loop(
      going, body,
      [tf.constant(0), tf.constant(True),
       tf.TensorArray(tf.float32, size=steps, element_shape=[])],
      name='train_loop')
  return TrainGraph(global_step, examples_per_step, summary_step, steps,
                    (done, losses.stack()), prime or tf.no_op(), None, {},
                    None, until)
