"""Synchronous steps across the workers of a cluster: each step averages
one batch's gradients from every worker, then applies them once.

    sync = SyncSteps(workers=2, index=r.index, worker_device=...)
    train_op = sync.apply_gradients(grads_and_vars, global_step, opt,
                                    averages)
    # every worker: run(sync.worker_init) once, then train_op each step
    # the chief also: run(sync.chief_init), then its QueueRunner
    # sync.releaser

Each worker pushes its gradients into one accumulator per variable on the
parameter servers, then waits for a token of its own. The chief's releaser
takes the average once every worker has pushed, applies it (global step +1),
updates the moving averages, and gives each worker a token: the new global
step, from which its next gradients are computed.

Why not TensorFlow's SyncReplicasOptimizer: it counts gradients, not
workers, and hands out one pool of tokens. When a worker dies, a survivor
takes the dead worker's tokens and fills its place with a second batch of
its own, so the run goes on at half speed with no word. Here a token
belongs to one worker: a step waits for every worker, and a dead one makes
the others' step time out (--peer_timeout_secs), which they report.
"""
import tensorflow.compat.v1 as tf


class SyncSteps(object):
  """One synchronous step for `workers` workers, built in this worker's
  graph (`index`, its variables of its own on `worker_device`)."""

  def __init__(self, workers, index, worker_device):
    self.workers, self.index = workers, index
    self._worker_device = worker_device
    self.worker_init = self.chief_init = self.releaser = None

  def apply_gradients(self, grads_and_vars, global_step, optimizer,
                      averages=None):
    """This worker's step: push its gradients, wait for its token. Builds
    the chief's releaser too (a QueueRunner), which applies `optimizer` to
    the averaged gradients, then (where given) the moving `averages`.
    Returns the step, whose value is the global step the next gradients
    are for."""
    with tf.device(self._worker_device):
      # The global step this worker's gradients were computed at: a
      # variable of its own (local: not on the parameter servers, not
      # in checkpoints), set from each token.
      local_step = tf.Variable(0, trainable=False, dtype=tf.int64,
                               collections=[tf.GraphKeys.LOCAL_VARIABLES],
                               name='sync_local_step')
    pushes, averaged, accumulators = [], [], []
    for grad, var in grads_and_vars:
      with tf.device(var.device):
        # Shared by name: every worker's graph names the same accumulator.
        accumulator = tf.ConditionalAccumulator(
            grad.dtype, shape=var.shape, shared_name=var.op.name + '/sync')
      # Gradients from an older step than the accumulator's are dropped.
      pushes.append(accumulator.apply_grad(grad, local_step))
      averaged.append((accumulator.take_grad(self.workers), var))
      accumulators.append(accumulator)
    with tf.device(global_step.device):
      tokens = [tf.FIFOQueue(-1, tf.int64, shapes=[],
                             name='sync_tokens_%d' % i,
                             shared_name='sync_tokens_%d' % i)
                for i in range(self.workers)]
      with tf.control_dependencies(pushes):
        token = tokens[self.index].dequeue()
      step = tf.assign(local_step, token)
      applied = optimizer.apply_gradients(averaged, global_step)
      updates = [applied]
      if averages is not None:
        with tf.control_dependencies([applied]), \
            tf.name_scope('moving_averages'):
          updates.append(averages.apply([v for _, v in grads_and_vars]))
      with tf.control_dependencies(updates):
        new_step = tf.cast(global_step.read_value(), tf.int64)
        releaser = tf.group(*[q.enqueue(new_step) for q in tokens],
                            name='sync_release')
    with tf.device(self._worker_device):
      # A QueueRunner runs the releaser over and over in a thread; the
      # queue it closes when stopped is a stand-in (the real ones are
      # shared with the other workers and must stay open).
      self.releaser = tf.train.QueueRunner(
          tf.FIFOQueue(1, tf.int32, shapes=[], name='sync_release_stand_in'),
          [releaser])
    self.worker_init = tf.assign(local_step,
                                 tf.cast(global_step, tf.int64)).op
    self.chief_init = tf.group(*[
        a.set_global_step(global_step) for a in accumulators])
    return step
