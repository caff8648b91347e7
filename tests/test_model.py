"""The network, its loss, its schedule and its train op, on tiny batches."""
import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial.core import captions
from cifar10_tutorial.core import defaults
from conftest import on_the_cpu

TUTORIAL_VARIABLES = {
    'conv1/weights': (5, 5, 3, 64), 'conv1/biases': (64,),
    'conv2/weights': (5, 5, 64, 64), 'conv2/biases': (64,),
    'local3/weights': (2304, 384), 'local3/biases': (384,),
    'local4/weights': (384, 192), 'local4/biases': (192,),
    'softmax_linear/weights': (192, 10), 'softmax_linear/biases': (10,),
}


def test_network_names_shapes_and_parameter_count():
  with tf.Graph().as_default():
    images = tf.placeholder(tf.float32, [None, 24, 24, 3])
    model = cifar10.inference(images)
    assert model.logits.shape.as_list() == [None, 10]
    shapes = {v.op.name: tuple(v.shape.as_list()) for v in model.variables}
    assert shapes == TUTORIAL_VARIABLES
    assert sum(np.prod(s) for s in shapes.values()) == 1068298
    assert set(model.variables) == set(tf.trainable_variables())
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      logits = sess.run(model.logits, {images: np.zeros([5, 24, 24, 3])})
  assert logits.shape == (5, 10)


def test_initial_values_follow_the_fact_sheet():
  with tf.Graph().as_default():
    model = cifar10.inference(tf.zeros([1, 24, 24, 3]))
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      values = {v.op.name: sess.run(v) for v in model.variables}
  for name, bias in [('conv1', 0.0), ('conv2', 0.1), ('local3', 0.1),
                     ('local4', 0.1), ('softmax_linear', 0.0)]:
    np.testing.assert_array_equal(values[name + '/biases'], np.float32(bias))
  # Truncated normal: within two standard deviations, std a bit below stddev.
  for name, stddev in [('conv2', 0.05), ('local3', 0.04)]:
    w = values[name + '/weights']
    assert np.abs(w).max() <= 2 * stddev + 1e-6
    assert 0.8 * stddev < w.std() < 0.9 * stddev


def test_total_loss_is_cross_entropy_plus_weight_decay():
  rng = np.random.RandomState(0)
  images = rng.normal(size=(6, 24, 24, 3)).astype(np.float32)
  labels = rng.randint(0, 10, 6)
  with tf.Graph().as_default():
    model = cifar10.inference(tf.constant(images))
    total, losses = cifar10.loss(model, tf.constant(labels, tf.int32))
    assert [l.op.name for l in losses] == [
        'cross_entropy', 'local3/weight_loss', 'local4/weight_loss']
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      weights = {v.op.name: v for v in model.variables}
      got, logits, w3, w4 = sess.run([total, model.logits,
                                      weights['local3/weights'],
                                      weights['local4/weights']])
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  xent = -log_probs[np.arange(6), labels].mean()
  decay = 0.004 * (np.sum(w3 ** 2) / 2 + np.sum(w4 ** 2) / 2)
  np.testing.assert_allclose(got, xent + decay, rtol=1e-5)


def test_learning_rate_decays_tenfold_after_350_epochs():
  with tf.Graph().as_default():
    step = tf.placeholder(tf.int64, [])
    lr = cifar10.learning_rate(step, 128, defaults.EXAMPLES_PER_EPOCH_TRAIN)
    with tf.Session() as sess:
      rates = [sess.run(lr, {step: s}) for s in (0, 136717, 136718, 273436)]
  np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.001], rtol=1e-6)


def test_one_step_applies_sgd_then_updates_the_shadow_weights():
  rng = np.random.RandomState(0)
  images = rng.normal(size=(4, 24, 24, 3)).astype(np.float32)
  labels = np.array([1, 2, 3, 4], np.int32)
  with tf.Graph().as_default():
    step = tf.train.get_or_create_global_step()
    model = cifar10.inference(tf.constant(images))
    total, _ = cifar10.loss(model, tf.constant(labels))
    grads = tf.gradients(total, model.variables)
    train_op = cifar10.apply_and_average(
        list(zip(grads, model.variables)), step, tf.constant(0.1),
        cifar10.moving_averages(step))
    by_name = {v.op.name: v for v in tf.global_variables()}
    shadows = [by_name[v.op.name + '/ExponentialMovingAverage']
               for v in model.variables]
    with tf.Session(config=on_the_cpu()) as sess:
      sess.run(tf.global_variables_initializer())
      before, g = sess.run([model.variables, grads])
      sess.run(train_op)
      after, shadow, new_step = sess.run([model.variables, shadows, step])
  assert new_step == 1
  # num_updates = 1 (the step after its increment): decay = 2/11.
  decay = min(defaults.MOVING_AVERAGE_DECAY, 2.0 / 11)
  for b, gr, a, s in zip(before, g, after, shadow):
    np.testing.assert_allclose(a, b - 0.1 * gr, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s, decay * b + (1 - decay) * a, rtol=1e-5,
                               atol=1e-7)


def test_eval_restores_shadow_names():
  with tf.Graph().as_default():
    model = cifar10.inference(tf.zeros([1, 24, 24, 3]))
    names = sorted(cifar10.restore_map(model.variables))
  assert names == sorted(n + '/ExponentialMovingAverage'
                         for n in TUTORIAL_VARIABLES)


def test_summary_images_carry_their_class_names():
  rng = np.random.RandomState(4)
  images = rng.normal(size=(5, 24, 24, 3)).astype(np.float32)
  labels = np.array([3, 9, 3, 0, 1], np.int32)     # cat, truck, cat, ...
  with tf.Graph().as_default(), tf.Session() as sess:
    got = sess.run(cifar10.captioned_images(tf.constant(images),
                                            tf.constant(labels)))
  assert got.dtype == np.uint8 and got.shape[0] == 3
  height = 72 + captions.GLYPH + 2 * captions.MARGIN
  assert got.shape[1:] == (height, 72, 3)
  # The picture: the image stretched to 0..255 and enlarged 3 times.
  first = images[0]
  scaled = np.round(255 * (first - first.min()) / (first.max() - first.min()))
  np.testing.assert_array_equal(got[0, :72:3, :72:3], scaled)
  # Underneath: the class name, the same strip for the same class.
  for i, label in enumerate(labels[:3]):
    expected = captions.strip(defaults.CLASS_NAMES[label], 72)
    np.testing.assert_array_equal(got[i, 72:, :, 0], expected)
  assert not np.array_equal(got[0, 72:], got[1, 72:])


def test_every_class_name_fits_and_reads_differently():
  names = captions.strips(defaults.CLASS_NAMES, 72)
  assert names.shape[0] == 10
  flat = names.reshape(10, -1)
  assert len({row.tobytes() for row in flat}) == 10
  # Ink in each, never touching the sides.
  assert (flat.max(axis=1) == 255).all()
  assert not names[:, :, [0, -1]].any()
