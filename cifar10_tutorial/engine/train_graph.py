"""The training graph every trainer shares: one builder for 1..N towers.

    cfg, placement = settings.for_trainer(flag_values, devices)
    graph = build_graph(cfg, placement)   # one tower, towers, one process of N
    loop.train(graph, cfg, config)        # the loop: loop.py

A step's tower is cifar10.train_step (the network, its loss, its
gradients); this module builds the rest around it.

The placement (placement.py) says where the variables live and how the
towers' gradients are combined: with none, the graph is the single-device
trainer's: one tower, no tower scope, TensorFlow places the ops (on the GPU
if there is one). With towers (`tower_0` ... on `/gpu:i`), each dequeues
its own batch; the towers' gradients become one update, applied with the
moving averages. Either way the checkpoints are the same, under the
tutorial's names, so `make eval` reads them and every trainer resumes the
others' runs.

A training step (dequeue, gradients, update, moving averages, global step)
is built twice: once with the summaries, run alone every 100th step, and
once inside an in-graph loop that runs --steps_per_run steps per
session.run, so that on a GPU Python and the session are paid once per N
steps instead of every step. With --compiled_loop (the GPU default where a
process has one tower), that loop is one XLA program: a run's batches are
staged on the device the run before (Chunks), and the program's steps,
distortions included (stateless draws, seeded by the global step), never
return to the host.
"""
import collections
import functools
import logging

import tensorflow.compat.v1 as tf
from tensorflow.python.ops import data_flow_ops

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.core import gpus
from cifar10_tutorial.engine import placement as placements
from cifar10_tutorial.engine import settings

log = logging.getLogger('cifar10_tutorial')

# The first half of the seed of every stateless draw of a raw batch's
# distortions; the second is the global step and the tower's place among
# all of them.
DRAW_SEED = 20261130

# What build_graph makes and the loop runs; built with named fields, the
# ones after summary_step optional.
TrainGraph = collections.namedtuple('TrainGraph', [
    'global_step', 'examples_per_step',   # batch size x towers x processes
    'summary_step',   # a Step: one step that also computes the summaries
    'run_length',     # how many steps `loop` runs (fed); None: no loop
    'loop',           # (steps done, their losses); the losses are
                      # checked after the run (a NaN does not stop it).
                      # None: each run is summary_step's update, alone
    'prime',          # runs once before the first step (fills the staging)
    'saved',          # the variables a checkpoint holds (None: all)
    'settings',       # what the run's math depends on, beyond the flags
    'sync',           # a synchronous cluster's SyncSteps, or None
    'until',          # a cluster's loop also stops at this global step (fed);
                      # None elsewhere
    'agreement',      # processes that train together: their vote to stop
                      # (placement.Agreement), run before each run; or None
    'inputs',         # an Inputs: what the steps read, for the input watch
], defaults=(None,) * 9)
# The record files the training queue reads ([] for a test's queue), and
# the op that closes it (cancelling its readers), so that a step waiting
# for a batch that will never come returns.
Inputs = collections.namedtuple('Inputs', ['files', 'close'])
# One training step: its update op, loss and summary items.
Step = collections.namedtuple('Step', ['train_op', 'total_loss', 'summaries'])
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

  def batch(self, seed=None):
    """(images, labels, refill op) for one step; given `seed`, a raw
    queue's distortions are stateless draws of it (distort_batch)."""
    if self._area is None:
      images, labels = self.queue.dequeue(self.batch_size)
      refill = tf.no_op()
    else:
      with tf.device(self.device):
        images, labels = self._area.get()
      refill = self._refill()
    with tf.device(self.device):
      return self.queue.finish(images, seed), labels, refill


class Chunks(object):
  """One tower's batches for the compiled loop, a whole run's at once.

  The host dequeues `size` batches of the queue, one by one as every step
  does, and a staging area on `device` holds them: each run takes the
  chunk staged by the run before, and stages the next while its steps
  run. A run of fewer steps uses the first batches and drops the others
  (the last run before --max_steps, or one cut short by a stop); the steps
  of a run each still see a batch of their own. `prime` stages the first.
  """

  def __init__(self, queue, batch_size, size, device):
    self.queue, self.batch_size, self.size = queue, batch_size, size
    self.device = device
    images, labels = queue.queue.dtypes
    image_shape = queue.queue.shapes[0].as_list()
    with tf.device(device):
      self._area = data_flow_ops.StagingArea(
          [images, labels], shapes=[[size, batch_size] + image_shape,
                                    [size, batch_size]])
    self.prime = self._refill()

  def _refill(self):
    batches = []
    for _ in range(self.size):
      # One after the other, so the chunk holds them in the queue's order.
      with tf.control_dependencies([b[0] for b in batches[-1:]]):
        batches.append(self.queue.dequeue(self.batch_size))
    with tf.device('/cpu:0'):
      images = tf.stack([b[0] for b in batches])
      labels = tf.stack([b[1] for b in batches])
    with tf.device(self.device):
      return self._area.put([images, labels])

  def take(self, count):
    """The first `count` batches of the staged chunk, [count, batch, ...],
    and the op that stages the next chunk."""
    with tf.device(self.device):
      images, labels = self._area.get()
      return images[:count], labels[:count], self._refill()


def longest_run(cfg):
  """The most steps a trainer's run takes: --steps_per_run, but a run ends
  at each summary step, which runs alone (99 steps between two), and at
  each checkpoint step of --save_checkpoint_steps."""
  return min(cfg.steps_per_run, defaults.SAVE_SUMMARIES_STEPS - 1,
             getattr(cfg, 'save_checkpoint_steps', None) or float('inf'))


def seed(global_step, tower, towers):
  """Tower `tower`'s stateless seed (int64 [2]) for the step after
  `global_step`, one of `towers` in all the processes: no two towers nor
  steps draw alike, and the same run draws the same."""
  step = tf.cast(global_step, tf.int64)
  return tf.stack([tf.constant(DRAW_SEED, tf.int64),
                   step * towers + tower])


def _compiled_run(chunks, step, device, placement, count):
  """A compiled run's (steps done, their losses): the staged chunk's first
  `count` batches through compiled_loop, the next chunk staged meanwhile."""
  images, labels, refill = chunks.take(count)
  losses = compiled_loop(step, images, labels, device)
  with tf.control_dependencies([refill]):
    return placement.steps_done(tf.shape(losses)[0]), tf.identity(losses)


def compiled_loop(step, chunk_images, chunk_labels, device):
  """Losses [count] of `count` steps in one XLA program, `count` being
  the chunk's first dimension: step(images, labels) builds one whole step
  on batch i (a Step). The count is a shape, so XLA knows the trip count
  and the GPU runs the steps back to back (one program per count met)."""
  @tf.function(jit_compile=True, autograph=False)
  def steps(chunk_images, chunk_labels):
    count = tf.shape(chunk_images)[0]

    def body(i, losses):
      s = step(chunk_images[i], chunk_labels[i])
      with tf.control_dependencies([s.train_op]):
        return i + 1, losses.write(i, tf.identity(s.total_loss))

    _, losses = tf.while_loop(
        lambda i, _: i < count, body,
        [tf.constant(0), tf.TensorArray(tf.float32, size=count,
                                        element_shape=[])])
    return losses.stack()

  with placements.device(device):
    return steps(chunk_images, chunk_labels)


def build_graph(cfg, placement=None, queue=None, sync=None,
                parameter_servers=False):
  """The training graph, in the current default graph.

  `placement` (placement.py): where the variables live and how the towers'
  gradients are combined; None is the single-device trainer's. `cfg` is
  the run's Settings, every 'auto' decided (settings.py); nothing here
  changes them. `queue` replaces the training queue (tests feed fixed
  batches). `sync` (a sync_steps.SyncSteps) makes each step wait for one
  batch's gradients from every worker of a parameter-server cluster,
  averaged: then the step is built once, without the in-graph loop, and
  the moving averages are updated by the chief's releaser, once a step.
  `parameter_servers`: the graph of a parameter-server cluster's worker
  (its loop also stops at a global step, which the others advance too:
  loop_graph).
  """
  placement = placement or placements.OneDevice()
  with placements.device(placement.shared):
    global_step = tf.train.get_or_create_global_step()
  data = None   # which data, for the run's settings; tests' queues: none
  if queue is None:
    queue = cifar10_input.train_queue(   # checks the record files first
        cfg.data_dir, cfg.batch_size, cfg.input_threads, cfg.input_pipeline,
        raw=cfg.preprocess_on == 'device')
    data = records.fingerprint(records.data_files(cfg.data_dir))
  towers = placement.devices
  examples_per_step = (cfg.batch_size * len(towers) * placement.replicas *
                       (sync.workers if sync else 1))
  default_device = '/gpu:0' if gpus.count() else '/cpu:0'
  compiled = getattr(cfg, 'compiled_loop', False) is True
  why_not = compiled and settings.why_not_compiled(
      cfg, placement, parameter_servers=bool(sync or parameter_servers))
  if why_not or (compiled and not getattr(queue, 'raw', False)):
    raise ValueError('--compiled_loop true, but %s: the settings step '
                     'decides it (settings.for_trainer)' % (
                         why_not or 'a queue of distorted images'))
  # Compiled, only the summary steps use the feeds: they dequeue as they go.
  feeds = [Feed(queue, cfg.batch_size, device or default_device,
                cfg.prefetch_to_device and not compiled) for device in towers]
  steps = _Steps(cfg, placement, queue, feeds, global_step,
                 examples_per_step, sync,
                 stateless=not (sync or parameter_servers))
  primes = [f.prime for f in feeds]
  run = None
  if compiled:
    device = towers[0] or default_device
    chunks = Chunks(queue, cfg.batch_size, longest_run(cfg), device)
    primes.append(chunks.prime)
    run = functools.partial(
        _compiled_run, chunks,
        lambda images, labels: steps.step(False, [(images, labels)]), device,
        placement)
  # Runs of one step (the CPU's) need no loop: the summary step's update,
  # fetched without its summaries, is the step (one build of it, not two).
  graph = loop_graph(steps.step, global_step, examples_per_step,
                     tf.group(*primes),
                     with_loop=not sync and longest_run(cfg) > 1,
                     bounded=parameter_servers, run=run)
  decay_steps = int(queue.num_records / examples_per_step *
                    defaults.NUM_EPOCHS_PER_DECAY)
  graph = graph._replace(sync=sync, settings={
      'training_records': queue.num_records, 'lr_decay_steps': decay_steps,
      'data': data, 'classes': list(queue.class_names)},
                         inputs=Inputs(queue.files, queue.queue.close(
                             cancel_pending_enqueues=True)))
  return placement.finish(graph)


class _Steps(object):
  """Builds whole training steps for loop_graph: each tower's batch
  through the network (`tower`), the towers' gradients combined by the
  placement, applied with the moving averages. The first build makes the
  variables, the later ones share them."""

  def __init__(self, cfg, placement, queue, feeds, global_step,
               examples_per_step, sync, stateless):
    self.cfg, self.placement, self.queue = cfg, placement, queue
    self.feeds, self.global_step = feeds, global_step
    self.examples_per_step, self.sync = examples_per_step, sync
    self.stateless = stateless and getattr(queue, 'raw', False)
    with placements.device(placement.shared):
      self.averages = cifar10.moving_averages(global_step)
    self.loss_averages = [cifar10.LossAverages() for _ in feeds]
    self.built = []   # the builds so far: the first makes the variables

  def seeds(self):
    """Each tower's seed this step, for a raw batch's distortions:
    stateless draws, which XLA compiles with the step (as TensorFlow's
    stateful ones it does not), and the same run draws the same. Not for a
    parameter server's workers, which do not know their place among the
    others (and would draw alike at the same step): TensorFlow's own draws
    there (None)."""
    towers = len(self.feeds)
    if not self.stateless:
      return [None] * towers
    first = getattr(self.placement, 'rank', 0) * towers
    with placements.device(self.placement.shared):
      now = self.global_step.read_value()
      return [seed(now, first + i, towers * self.placement.replicas)
              for i in range(towers)]

  def step(self, with_summaries, batches=None):
    """One whole step (a Step); `batches`: each tower's (raw images,
    labels), else the feeds'."""
    cfg, placement, queue = self.cfg, self.placement, self.queue
    with placements.device(placement.shared):
      lr = cifar10.learning_rate(self.global_step, self.examples_per_step,
                                 queue.num_records)
    opt = cifar10.gradient_descent(lr)
    seeds = self.seeds()
    parts, refills = [], []
    for i, feed in enumerate(self.feeds):
      with placement.tower(i, bool(self.built)) as reuse:
        if batches is None:
          images, labels, refill = feed.batch(seeds[i])
        else:
          raw, labels = batches[i]
          images, refill = queue.finish(raw, seeds[i]), tf.no_op()
        parts.append(cifar10.train_step(
            images, labels, opt, cfg.lrn, cfg.precision, reuse=reuse,
            loss_averages=self.loss_averages[i],
            with_summaries=with_summaries, class_names=queue.class_names))
        refills.append(refill)
    self.built.append(with_summaries)
    update = placement.combine(parts, lr)
    train_op = self._apply(update, lr, [t.loss_update for t in parts] +
                           refills + update.extra)
    items = []
    if with_summaries:
      items = cifar10.training_summaries(update.grads, lr)
      for t in parts:
        items += t.summaries
      items.append(queue.fill_summary())
    return Step(train_op, update.total_loss, items)

  def _apply(self, update, lr, extra_updates):
    """The update applied, the moving averages after it, and
    `extra_updates`: one op (a synchronous cluster's step applies once
    every worker's gradients are in)."""
    with placements.device(self.placement.shared):
      if self.sync:
        return tf.group(
            self.sync.apply_gradients(update.grads, self.global_step,
                                      cifar10.gradient_descent(lr),
                                      self.averages),
            *extra_updates, name='train')
      return cifar10.apply_and_average(update.grads, self.global_step, lr,
                                       self.averages, extra_updates)


def loop_graph(step, global_step, examples_per_step, prime=None,
               with_loop=True, bounded=False, run=None):
  """A TrainGraph from `step(with_summaries)`, which builds one whole
  training step and returns a Step. It is built first with summaries
  (making the variables), then inside the in-graph loop without them
  (unless not `with_loop`: then every step runs the first build).
  `bounded`: the loop also stops once the global step reaches a fed value
  (`until`), for workers of a cluster, whose global step others advance
  too: else each would finish its run of steps past --max_steps. `run`:
  run(count) builds a loop of its own, (steps done, their losses)."""
  summary_step = step(True)
  made = dict(global_step=global_step, examples_per_step=examples_per_step,
              summary_step=summary_step, prime=prime or tf.no_op(),
              settings={})
  if not with_loop:
    return TrainGraph(**made)
  steps = tf.placeholder(tf.int32, [], name='steps_per_run')
  if run is not None:
    return TrainGraph(run_length=steps, loop=run(steps), **made)
  until = (tf.placeholder(global_step.dtype.base_dtype, [],
                          name='until_global_step') if bounded else None)

  def going(i, losses):
    more = i < steps
    if until is None:
      return more
    # Read once the last iteration's step has counted itself: `i` comes
    # after its update.
    with tf.control_dependencies([i]):
      reached = global_step.read_value()
    return tf.logical_and(more, reached < until)

  def body(i, losses):
    # The next step starts once this one's update is issued (a GPU runs
    # them in order), not once its loss is back on the host: a loss in the
    # loop's condition would make the host wait for the GPU every step.
    # The losses are checked after the run (loop.check_losses).
    s = step(False)
    with tf.control_dependencies([s.train_op]):
      return i + 1, losses.write(i, tf.identity(s.total_loss))

  done, losses = tf.while_loop(
      going, body,
      [tf.constant(0),
       tf.TensorArray(tf.float32, size=steps, element_shape=[])],
      name='train_loop')
  return TrainGraph(run_length=steps, loop=(done, losses.stack()),
                    until=until, **made)
