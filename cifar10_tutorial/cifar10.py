"""The tutorial's network, its loss, the training step and the update.

What every trainer and the eval loop build with:

  model = inference(images)                    # logits + what the loss needs
  total_loss, losses = loss(model, labels)
  lr = learning_rate(global_step, examples_per_step, examples_per_epoch)
  tower = train_step(images, labels, gradient_descent(lr))   # the two above,
                                               # and the gradients
  averages = moving_averages(global_step)      # once per trainer
  train_op = apply_and_average(tower.grads, global_step, lr, averages)

Summaries (loss_summaries, training_summaries, activation_summaries) are
made apart from the update ops, so the training loop can build a step with
them (every 100th step) and without them (the steps in between).

Variable names (`conv1/weights`, ..., `softmax_linear/biases`, and the shadow
`<var>/ExponentialMovingAverage`) are the tutorial's, so checkpoints read the
same. The code places no device: the caller's device scope decides.
"""
import collections

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import captions
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import summaries as summary

Model = collections.namedtuple(
    'Model', ['logits', 'weight_losses', 'activations', 'variables'])


def _to_bf16_and_back(x):
  return tf.cast(tf.cast(x, tf.bfloat16), tf.float32)


class _Layers(object):
  """Collects what each layer makes, so inference can return it.

  `precision` is what the convolutions and matrix products run in. With
  'bf16', each of them casts its input and weights to bfloat16 and its
  output back to float32; variables, biases, pooling, LRN, the loss and
  every gradient that reaches a variable stay float32. 'bf16_emulated'
  rounds the same tensors to bfloat16 (and the gradients through them, as
  the casts' gradients do) but multiplies in float32 kernels. Products of
  bfloat16 values are exact in float32 and bfloat16 matrix units accumulate
  in float32, so this gives bf16's numbers at float32's speed: for checking
  its accuracy on a CPU without bfloat16 units, where real bf16 is slow.
  """

  def __init__(self, precision='fp32'):
    self.weight_losses, self.activations, self.variables = [], [], []
    self.precision = precision

  def _product(self, op, inputs, weights):
    if self.precision == 'bf16':
      return tf.cast(op(tf.cast(inputs, tf.bfloat16),
                        tf.cast(weights, tf.bfloat16)), tf.float32)
    if self.precision == 'bf16_emulated':
      return _to_bf16_and_back(op(_to_bf16_and_back(inputs),
                                  _to_bf16_and_back(weights)))
    return op(inputs, weights)

  def variable(self, name, shape, stddev=None, bias=None, wd=0.0):
    """A truncated-normal weight (with optional L2 decay) or a constant bias."""
    if bias is None:
      init = tf.truncated_normal_initializer(stddev=stddev)
    else:
      init = tf.constant_initializer(bias)
    var = tf.get_variable(name, shape, tf.float32, initializer=init)
    if wd:
      # l2_loss is half the sum of squares, as in the tutorial.
      self.weight_losses.append(tf.multiply(tf.nn.l2_loss(var), wd,
                                            name='weight_loss'))
    self.variables.append(var)
    return var

  def conv(self, name, inputs, out_depth, bias):
    with tf.variable_scope(name) as scope:
      kernel = self.variable('weights', [5, 5, inputs.shape[-1], out_depth],
                             stddev=defaults.CONV_STDDEV)
      biases = self.variable('biases', [out_depth], bias=bias)
      conv = self._product(
          lambda x, k: tf.nn.conv2d(x, k, [1, 1, 1, 1], padding='SAME'),
          inputs, kernel)
      return self._relu(tf.nn.bias_add(conv, biases), scope.name)

  def dense(self, name, inputs, units, stddev, bias, wd, relu=True):
    with tf.variable_scope(name) as scope:
      weights = self.variable('weights', [inputs.shape[-1], units],
                              stddev=stddev, wd=wd)
      biases = self.variable('biases', [units], bias=bias)
      out = self._product(tf.matmul, inputs, weights) + biases
      if relu:
        return self._relu(out, scope.name)
      out = tf.identity(out, name=scope.name)
      self.activations.append(out)
      return out

  def _relu(self, x, name):
    out = tf.nn.relu(x, name=name)
    self.activations.append(out)
    return out


def _pool(x, name):
  return tf.nn.max_pool(x, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1],
                        padding='SAME', name=name)


def lrn_matmul(x, name):
  """tf.nn.lrn's local response normalization, as a matrix product.

  out = x / (bias + alpha * sum of x^2 over depth d-4..d+4) ^ 0.75. The
  window sums are one product of the squares, reshaped to [pixels, depth],
  with a banded 0/1 depth x depth matrix, so forward and gradient run on the
  fast matrix kernels; TensorFlow's own LRN gradient on the CPU is four times
  slower at norm1's size. Same numbers within float rounding (tested).
  """
  depth = int(x.shape[-1])
  offsets = np.arange(depth)
  band = (np.abs(offsets[:, None] - offsets[None, :]) <=
          defaults.LRN_DEPTH_RADIUS)
  with tf.name_scope(name):
    squares = tf.reshape(tf.square(x), [-1, depth])
    sums = tf.reshape(tf.matmul(squares, tf.constant(band, tf.float32)),
                      tf.shape(x))
    scale = defaults.LRN_BIAS + defaults.LRN_ALPHA * sums
    if defaults.LRN_BETA == 0.75:
      inverse_sqrt = tf.math.rsqrt(scale)   # s^-0.75 = s^-0.5 * s^-0.25
      return x * inverse_sqrt * tf.sqrt(inverse_sqrt)
    return x * tf.pow(scale, -defaults.LRN_BETA)


def _lrn(x, name, impl):
  if impl not in defaults.LRNS:
    raise ValueError('lrn: expected one of %s, found %r' %
                     (', '.join(defaults.LRNS), impl))
  if impl == 'matmul':
    return lrn_matmul(x, name)
  return tf.nn.lrn(x, defaults.LRN_DEPTH_RADIUS, bias=defaults.LRN_BIAS,
                   alpha=defaults.LRN_ALPHA, beta=defaults.LRN_BETA, name=name)


def inference(images, lrn='matmul', precision='fp32',
              num_classes=defaults.NUM_CLASSES):
  """Builds the network on a batch of 24x24x3 images of any batch size.

  `lrn` picks the local response normalization: 'matmul' (lrn_matmul, the
  default) or 'tf' (tf.nn.lrn, as the tutorial wrote it); same numbers.
  `precision` 'bf16' runs the convolutions and matrix products in bfloat16
  (for CPUs with bfloat16 matrix units, and GPUs); 'fp32' is the tutorial.
  Variables are created with get_variable, so a second call inside
  `tf.variable_scope(..., reuse=True)` (the multi-GPU towers) shares them.
  `num_classes` is the data's (10 for CIFAR-10; records.class_names).
  Returns a Model: logits [batch, num_classes] and the weight-decay losses,
  activations and variables that the loss and summaries need.
  """
  if precision not in defaults.PRECISIONS:
    raise ValueError('precision: expected one of %s, found %r' %
                     (', '.join(defaults.PRECISIONS), precision))
  layers = _Layers(precision)
  x = layers.conv('conv1', images, 64, bias=0.0)
  x = _lrn(_pool(x, 'pool1'), 'norm1', lrn)
  x = layers.conv('conv2', x, 64, bias=0.1)
  x = _pool(_lrn(x, 'norm2', lrn), 'pool2')
  # 6 x 6 x 64 = 2,304 features; -1 keeps the batch size free.
  x = tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
  x = layers.dense('local3', x, 384, defaults.LOCAL_STDDEV, bias=0.1,
                   wd=defaults.LOCAL_WEIGHT_DECAY)
  x = layers.dense('local4', x, 192, defaults.LOCAL_STDDEV, bias=0.1,
                   wd=defaults.LOCAL_WEIGHT_DECAY)
  # Linear logits: the softmax is inside the cross-entropy, for stability.
  logits = layers.dense('softmax_linear', x, num_classes,
                        defaults.SOFTMAX_STDDEV, bias=0.0, wd=0.0, relu=False)
  return Model(logits, layers.weight_losses, layers.activations,
               layers.variables)


def loss(model, labels):
  """Returns (total_loss, losses): mean cross-entropy plus weight decay."""
  cross_entropy = tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.cast(labels, tf.int64), logits=model.logits),
      name='cross_entropy')
  losses = [cross_entropy] + list(model.weight_losses)
  return tf.add_n(losses, name='total_loss'), losses


class LossAverages(object):
  """Moving averages of the losses (`<loss>/avg`, decay 0.9), for summaries.

  Zero-debiased, as TensorFlow 1.0 did by itself for averages of tensors:
  the first average is the first loss, not a tenth of it. The variables are
  local: the averages only smooth the summaries, so they stay out of
  checkpoints (they differ per tower) and both trainers save exactly the
  same state and can resume each other's runs.

  The first `update` makes the variables; later calls, with the same losses
  built again (inside the in-graph training loop), update the same ones.
  """

  def __init__(self, decay=defaults.LOSS_AVERAGE_DECAY):
    self.decay = decay
    self._slots = None

  def _slot(self, loss, what):
    return tf.Variable(0.0, trainable=False, name=loss.op.name + '/avg/' + what,
                       collections=[tf.GraphKeys.LOCAL_VARIABLES])

  def update(self, losses):
    """(update op, the averages after this step's update) for `losses`."""
    if self._slots is None:
      self._slots = [(self._slot(l, 'biased'), self._slot(l, 'count'))
                     for l in losses]
    # TensorFlow's own zero-debiasing arithmetic, in float32, so the first
    # average is exactly the first loss.
    rate = 1.0 - tf.constant(self.decay, tf.float32)
    updates, averages = [], []
    for l, (biased, count) in zip(losses, self._slots):
      new_biased = biased.assign_sub((biased - l) * rate)
      new_count = count.assign_add(1.0)
      updates += [new_biased.op, new_count.op]
      averages.append(new_biased / (1.0 - tf.pow(1.0 - rate, new_count)))
    return tf.group(*updates), averages


def loss_summaries(losses, averages):
  """Each loss raw and averaged (the raw per-batch value is noisy)."""
  items = []
  with summary.scope():
    for l, average in zip(losses, averages):
      items.append(summary.scalar(l.op.name + ' (raw)', l))
      items.append(summary.scalar(l.op.name, average))
  return items


# What one tower's training step makes: its gradients, total loss,
# loss-average update and summary items.
Tower = collections.namedtuple('Tower', ['grads', 'total_loss',
                                         'loss_update', 'summaries'])


def train_step(images, labels, opt, lrn='matmul', precision='fp32',
               reuse=False, loss_averages=None, with_summaries=True,
               class_names=defaults.CLASS_NAMES):
  """The training step of one tower: a batch through the network
  (inference), its loss (loss) and the gradients of that loss (`opt`'s);
  a Tower. Every trainer builds its steps from it (engine/train_graph.py:
  one tower, or several whose gradients are then combined).

  Run inside a tower's device and name scope; `reuse` once the network's
  variables exist. Each tower keeps its own loss, loss averages
  (`loss_averages`, a LossAverages kept across builds) and summaries.
  """
  with tf.variable_scope(tf.get_variable_scope(), reuse=reuse):
    model = inference(images, lrn=lrn, precision=precision,
                      num_classes=len(class_names))
  total, losses = loss(model, labels)
  loss_averages = loss_averages or LossAverages()
  update, averages = loss_averages.update(losses + [total])
  grads = opt.compute_gradients(total, model.variables)
  items = []
  if with_summaries:
    items = (loss_summaries(losses + [total], averages) +
             activation_summaries(model, images, labels, class_names))
  return Tower(grads, total, update, items)


def learning_rate(global_step, examples_per_step, examples_per_epoch):
  """0.1, times 0.1 every 350 epochs (staircase): 136,718 steps at batch 128."""
  batches_per_epoch = examples_per_epoch / float(examples_per_step)
  decay_steps = int(batches_per_epoch * defaults.NUM_EPOCHS_PER_DECAY)
  return tf.train.exponential_decay(defaults.INITIAL_LEARNING_RATE,
                                    global_step, decay_steps,
                                    defaults.LEARNING_RATE_DECAY_FACTOR,
                                    staircase=True, name='learning_rate')


def gradient_descent(lr):
  """The tutorial's optimizer: plain SGD, no momentum."""
  return tf.train.GradientDescentOptimizer(lr)


def moving_averages(global_step=None):
  """The weight averages eval restores (decay 0.9999, step as num_updates).

  A trainer makes one and applies it every step: its first `apply` makes
  the shadow variables, later ones update them.
  """
  return tf.train.ExponentialMovingAverage(defaults.MOVING_AVERAGE_DECAY,
                                           global_step)


def apply_and_average(grads_and_vars, global_step, lr, averages,
                      extra_updates=()):
  """Applies the gradients, then updates the weights' moving averages.

  `averages` is the trainer's moving_averages(). `extra_updates` (the loss
  averages) run in the same step. The averages read the weights after this
  step's update, and the global step after its increment, as in the
  tutorial. Returns the train op.
  """
  apply_op = gradient_descent(lr).apply_gradients(grads_and_vars, global_step)
  with tf.control_dependencies([apply_op]), tf.name_scope('moving_averages'):
    average_op = averages.apply([v for _, v in grads_and_vars])
  return tf.group(apply_op, average_op, *extra_updates, name='train')


def training_summaries(grads_and_vars, lr):
  """The learning rate, and histograms of each weight and its gradient."""
  with summary.scope():
    items = [summary.scalar('learning_rate', lr)]
    for grad, var in grads_and_vars:
      items.append(summary.histogram(var.op.name, var))
      items.append(summary.histogram(var.op.name + '/gradients', grad))
  return items


def captioned_images(images, labels, count=3, scale=3,
                     class_names=defaults.CLASS_NAMES):
  """The first `count` images as TensorBoard should show them: each
  stretched to 0..255, enlarged `scale` times (nearest pixel) and with its
  class name drawn underneath. uint8 [count, height, width, 3]."""
  images, labels = images[:count], labels[:count]
  low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
  high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
  pixels = tf.cast(tf.round(255.0 * (images - low) /
                            tf.maximum(high - low, 1e-6)), tf.uint8)
  pixels = tf.repeat(tf.repeat(pixels, scale, axis=1), scale, axis=2)
  names = tf.constant(captions.strips(class_names,
                                      int(images.shape[2]) * scale))
  return tf.concat([pixels, tf.gather(names, labels)], axis=1)


def activation_summaries(model, images, labels,
                         class_names=defaults.CLASS_NAMES):
  """Histograms and sparsity of each layer, and a few input images with
  their class names."""
  scope = tf.get_default_graph().get_name_scope()   # 'tower_1' in a tower
  with summary.scope():
    summaries = [summary.image(scope + '/images' if scope else 'images',
                               captioned_images(images, labels,
                                                class_names=class_names))]
    for x in model.activations:
      summaries.append(summary.histogram(x.op.name + '/activations', x))
      summaries.append(summary.scalar(x.op.name + '/sparsity',
                                      tf.nn.zero_fraction(x)))
  return summaries


class ClassCountError(ValueError):
  """A checkpoint that is not of this network (another program's), or
  whose network was made for another number of classes."""


LAYERS = ('conv1', 'conv2', 'local3', 'local4', 'softmax_linear')


def check_classes(checkpoint_path, class_names, where):
  """ClassCountError, in one line, unless the checkpoint holds this
  network, with one output per class of `class_names` (the classes of the
  data at `where`)."""
  shapes = tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map()
  missing = ['%s/%s' % (layer, part) for layer in LAYERS
             for part in ('weights', 'biases')
             if '%s/%s' % (layer, part) not in shapes]
  if missing:
    raise ClassCountError(
        '%s: expected a checkpoint of this tutorial\'s network, found one '
        'without %s%s (another program\'s?); use another folder' % (
            checkpoint_path, ', '.join(missing[:3]),
            ' and %d more' % (len(missing) - 3) if len(missing) > 3 else ''))
  found = shapes['softmax_linear/biases'][0]
  if found != len(class_names):
    raise ClassCountError(
        '%s: expected a network for %d classes (the classes of %s), found '
        'one for %s: a run made on other data? Train on this data in a '
        'folder of its own' % (checkpoint_path, len(class_names), where,
                               found))


def restore_map(model_variables):
  """Checkpoint names of the shadow weights -> the model's variables."""
  averages = moving_averages()
  return {averages.average_name(v): v for v in model_variables}
