"""Where a trainer's variables live, and how its towers' gradients become
one update: one small class per way of placing them (--variable_update,
and a process's place among N), chosen by the settings step.

    cfg, placement = settings.for_trainer(flag_values, devices)
    graph = train_graph.build_graph(cfg, placement)

train_graph asks a placement, for each tower i, for the scope to build the
tower in (`tower(i, built)`, which also says whether the network's variables
exist already), then to turn the towers' gradients and losses into the
update (`combine`), and at the end which variables a checkpoint holds and
what must run once before the first step (`finish`).

| class | the variables | the towers' gradients |
|---|---|---|
| OneDevice | one copy, placed by TensorFlow | one tower: as they are |
| OnHome ('cpu', 'first_tower') | one copy on the CPU (the tutorial) or the first tower's device | averaged there, applied once |
| Replicated | a copy on each tower's device, in this process | summed on every device (NCCL on GPUs), each copy applying the same update |
| Collective ('collective', clusters) | a copy in each process, one tower each | summed across the processes by collective ops (NCCL on GPUs, rings over gRPC otherwise), each copy applying the same update |

Every mode makes the same update from the same batches (tests/test_steps.py),
and every checkpoint holds one copy under the tutorial's names.
"""
import collections
import contextlib
import itertools

import tensorflow.compat.v1 as tf
from tensorflow.python.ops import collective_ops
from tensorflow.python.ops import nccl_ops

from cifar10_tutorial import cifar10

# What `combine` returns: the update of the saved copy (grads and vars),
# ops that update other copies the same way, and the mean of the towers'
# total losses.
Update = collections.namedtuple('Update', ['grads', 'extra', 'total_loss'])

_VARIABLE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


def device(name):
  """tf.device(name), or no scope at all for None: tf.device(None) would
  clear the scopes around it (a cluster's replica_device_setter, say)."""
  return tf.device(name) if name else contextlib.nullcontext()


def _on(tower_device, variables):
  """Places variables on `variables`, every other op on `tower_device`."""
  def place(op):
    return variables if op.type in _VARIABLE_OPS else tower_device
  return place


def _mean_loss(towers, where):
  if len(towers) == 1:
    return towers[0].total_loss
  with device(where):
    return tf.add_n([t.total_loss for t in towers],
                    name='mean_total_loss') / len(towers)


def average_gradients(tower_grads, where='/cpu:0'):
  """The mean over towers of each variable's gradient, computed on `where`.

  With equal tower batches, this is the gradient of the loss over all
  N x batch examples (weight decay included once, as each tower's loss has
  it whole).
  """
  averaged = []
  with device(where), tf.name_scope('average_gradients'):
    for pairs in zip(*tower_grads):
      grads = [g for g, _ in pairs]
      averaged.append((tf.add_n(grads) / float(len(grads)), pairs[0][1]))
  return averaged


def pack(tensors):
  """One flat float32 vector of `tensors`, for one all-reduce instead of
  one per variable."""
  return tf.concat([tf.reshape(t, [-1]) for t in tensors], 0)


def unpack(flat, like):
  """The tensors shaped as `like` that pack(like) would have made."""
  sizes = [t.shape.num_elements() for t in like]
  return [tf.reshape(part, t.shape)
          for part, t in zip(tf.split(flat, sizes), like)]


class OneDevice(object):
  """The single-device trainer's: one tower, no tower scope, every op where
  TensorFlow puts it (on the GPU if there is one)."""

  replicas = 1   # processes that each train this graph's towers
  # Whether XLA compiles what `combine` builds (a compiled loop needs it).
  compiles_all_reduce = True

  def __init__(self):
    self.devices = [None]
    self.shared = None   # the global step, learning rate, moving averages

  def name(self, i):
    """The tower's name scope (None: none)."""
    return None

  @contextlib.contextmanager
  def tower(self, i, built):
    """Builds tower i in the block; yields whether the network's variables
    exist already (after the first build of a step, `built`)."""
    yield built

  def combine(self, towers, lr):
    return Update(towers[0].grads, [], towers[0].total_loss)

  def finish(self, graph):
    """The TrainGraph as it must run: what a checkpoint holds, what runs
    once before the first step."""
    return graph

  def steps_done(self, done):
    """`done`, the steps a compiled loop's run took, as its run fetches
    it."""
    return done


class OnHome(OneDevice):
  """One copy of the variables on `home`: the CPU (the tutorial's
  multi-GPU trainer) or the first tower's device; each tower on its own
  device; the gradients averaged on `home` and applied once."""

  compiles_all_reduce = False

  def __init__(self, devices, home):
    super(OnHome, self).__init__()
    self.devices, self.home, self.shared = list(devices), home, home

  def name(self, i):
    return 'tower_%d' % i

  @contextlib.contextmanager
  def tower(self, i, built):
    with tf.device(_on(self.devices[i], self.home)), \
        tf.name_scope(self.name(i)):
      yield built or i > 0

  def combine(self, towers, lr):
    grads = average_gradients([t.grads for t in towers], self.home)
    return Update(grads, [], _mean_loss(towers, self.shared))


def _renamed(prefix):
  """A variable getter that puts `prefix` before each variable's name (and
  nothing else: op names, so summary tags, stay the tutorial's)."""
  def rename(getter, name, *args, **kwargs):
    return getter(prefix + name, *args, **kwargs)
  return rename


def all_sum(tower_grads, devices):
  """Each tower's gradients summed over all towers, on its own device: one
  NCCL all-reduce of all of them packed together when the towers are GPUs,
  else an add_n per variable on each device."""
  if all(d.lower().startswith('/gpu') for d in devices):
    packed = []
    for grads, d in zip(tower_grads, devices):
      with tf.device(d):
        packed.append(pack([g for g, _ in grads]))
    summed = nccl_ops.all_sum(packed)
    out = []
    for s, grads, d in zip(summed, tower_grads, devices):
      with tf.device(d):
        out.append(unpack(s, [g for g, _ in grads]))
    return out
  out = [[] for _ in devices]
  for pairs in zip(*tower_grads):
    grads = [g for g, _ in pairs]
    for mine, d in zip(out, devices):
      with tf.device(d):
        mine.append(tf.add_n(grads))
  return out


class Replicated(OneDevice):
  """A copy of the variables on each tower's device, in this process (the
  first under the tutorial's names, the others under `tower_i/`); every
  tower gets the sum of all towers' gradients and applies the same update.
  A checkpoint holds the first copy; the others start from it."""

  compiles_all_reduce = False

  def __init__(self, devices):
    super(Replicated, self).__init__()
    self.devices = list(devices)
    self.shared = self.devices[0]

  def name(self, i):
    return 'tower_%d' % i

  @contextlib.contextmanager
  def tower(self, i, built):
    own = (tf.variable_scope(tf.get_variable_scope(),
                             auxiliary_name_scope=False,
                             custom_getter=_renamed('tower_%d/' % i))
           if i else contextlib.nullcontext())
    with tf.device(self.devices[i]), tf.name_scope(self.name(i)), own:
      yield built

  def combine(self, towers, lr):
    n = float(len(towers))
    with tf.name_scope('all_reduce'):
      summed = all_sum([t.grads for t in towers], self.devices)
    means = []
    for sums, t, d in zip(summed, towers, self.devices):
      with tf.device(d):
        means.append([(s / n, v) for s, (_, v) in zip(sums, t.grads)])
    extra = []
    for grads, d in zip(means[1:], self.devices[1:]):
      with tf.device(d):
        extra.append(cifar10.gradient_descent(lr).apply_gradients(grads))
    return Update(means[0], extra, _mean_loss(towers, self.shared))

  def finish(self, graph):
    first = {v.op.name: v for v in tf.global_variables()
             if not v.op.name.startswith('tower_')}
    copies = [(first[v.op.name.split('/', 1)[1]], v)
              for i in range(1, len(self.devices))
              for v in tf.global_variables(scope='tower_%d/' % i)]
    copy_first = tf.group(*[c.assign(v) for v, c in copies])
    return graph._replace(
        prime=tf.group(graph.prime, copy_first),
        saved=list(first.values()))


# Collective's groups: the gradients, on each process's tower device; and
# control (the first step's broadcast, the agreement to stop), on its CPU.
GRADIENT_GROUP, CONTROL_GROUP = 1, 2


class Collective(OneDevice):
  """A copy of the variables in each of `replicas` processes (this one is
  `rank`), one tower each on `tower_device` (a GPU of this task, or its
  CPU): each step, one all-reduce sums every process's gradients and total
  loss (NCCL between GPUs, a ring over gRPC between CPUs), and every copy
  applies the same mean. Rank 0, the chief, writes the checkpoints and
  summaries; `finish` makes the first step's broadcast of its variables (so
  a resumed run resumes everywhere) and the agreement to stop.

  Each process's ops are built in the same order, so each collective gets
  the same instance key everywhere. A peer that does not answer the first
  broadcast within `timeout_secs` is a DeadlineExceededError, not a hang
  (later runs have the session's deadline).
  """

  def __init__(self, rank, replicas, tower_device, cpu_device,
               timeout_secs=0, compiled=False):
    super(Collective, self).__init__()
    self.rank, self.replicas = rank, replicas
    self.devices = [tower_device]
    self.shared = tower_device
    self._cpu = cpu_device
    self._timeout = float(timeout_secs)
    self._hint = 'nccl' if 'gpu' in tower_device.lower() else 'auto'
    self._keys = itertools.count(1)
    self.compiles_all_reduce = compiled

  def _all_reduce(self, t, group, merge='Add', hint='auto', timeout=0.0):
    # No timeout on the collectives of every step or run: TensorFlow keeps
    # a sleeping thread per timed collective for the whole timeout (700
    # steps a second ran a process out of threads). A step that waits on a
    # dead peer ends at the session run's own deadline (loop.py).
    return collective_ops.all_reduce_v2(
        t, self.replicas, group, next(self._keys), merge_op=merge,
        final_op='Id', communication_hint=hint, timeout=timeout)

  def combine(self, towers, lr):
    (t,) = towers
    values = [g for g, _ in t.grads] + [t.total_loss]
    with tf.device(self.devices[0]), tf.name_scope('all_reduce'):
      # Compiled: inside the step's XLA program, which runs the NCCL
      # all-reduce on the GPU between the gradients and the update. Else
      # TensorFlow's kernel, which returns to the host in between.
      with tf.xla.experimental.jit_scope(
          compile_ops=self.compiles_all_reduce):
        summed = self._all_reduce(pack(values), GRADIENT_GROUP,
                                  hint=self._hint)
      means = unpack(summed / float(self.replicas), values)
    grads = [(m, v) for m, (_, v) in zip(means, t.grads)]
    return Update(grads, [], tf.identity(means[-1], name='mean_total_loss'))

  def steps_done(self, done):
    # A session sets a run up for collectives only where it sees a
    # collective op in the run's graph, and it does not look inside the
    # compiled loop's function, where the all-reduce is. So the run also
    # agrees on the steps done (the same everywhere) with TensorFlow's own
    # kernel: one small all-reduce a run.
    with tf.device(self._cpu):
      fewest = self._all_reduce(tf.cast(tf.reshape(done, [1]), tf.float32),
                                CONTROL_GROUP, merge='Min')
      return tf.cast(fewest[0], done.dtype)

  def _broadcast(self, variables):
    """Rank 0's values of `variables` into every process's: a sum in which
    the others add zeros (exact)."""
    assigns = []
    with tf.device(self._cpu), tf.name_scope('broadcast'):
      by_type = collections.defaultdict(list)
      for v in variables:
        by_type[v.dtype.base_dtype].append(v)
      for dtype in sorted(by_type, key=lambda d: d.name):
        group = by_type[dtype]
        values = [v.read_value() if self.rank == 0 else
                  tf.zeros(v.shape, dtype) for v in group]
        summed = self._all_reduce(pack(values) if len(values) > 1 else
                                  tf.reshape(values[0], [-1]),
                                  CONTROL_GROUP, timeout=self._timeout)
        for v, value in zip(group, unpack(summed, values)):
          assigns.append(v.assign(value))
    return tf.group(*assigns)

  def finish(self, graph):
    broadcast = self._broadcast(graph.saved or tf.global_variables())
    with tf.device(self._cpu):
      wants = tf.placeholder(tf.float32, [2], name='vote')
      anyone = self._all_reduce(wants, CONTROL_GROUP, merge='Max')
    return graph._replace(prime=tf.group(graph.prime, broadcast),
                          agreement=Agreement(wants, anyone))


# The processes' vote before each run: each feeds [1.0 if it was asked to
# stop else 0.0, -(the steps it plans to run)] to `wants`; `anyone` is the
# largest of each, the same in every process: whether any was asked to stop,
# and minus the fewest steps planned. So all of them run the same steps and
# stop at the same one.
Agreement = collections.namedtuple('Agreement', ['wants', 'anyone'])


def for_towers(update, devices):
  """The placement of --variable_update `update` ('cpu', 'first_tower',
  'replicated') for towers on `devices`; None (one device) for OneDevice."""
  if not devices:
    return OneDevice()
  if update == 'replicated':
    return Replicated(devices)
  if update in ('cpu', 'first_tower'):
    return OnHome(devices, '/cpu:0' if update == 'cpu' else devices[0])
  raise ValueError('variable_update: expected cpu, first_tower or '
                   'replicated for towers in one process, found %r' % update)
