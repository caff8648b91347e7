"""The matrix-product LRN gives tf.nn.lrn's numbers, forward and backward."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial.core import defaults
from conftest import on_the_cpu


def _lrn_both(x, upstream):
  with tf.Graph().as_default(), tf.Session(config=on_the_cpu()) as sess:
    inputs = tf.constant(x)
    ours = cifar10.lrn_matmul(inputs, 'norm')
    theirs = tf.nn.lrn(inputs, defaults.LRN_DEPTH_RADIUS, defaults.LRN_BIAS,
                       defaults.LRN_ALPHA, defaults.LRN_BETA)
    grads = [tf.gradients(out, inputs, tf.constant(upstream))[0]
             for out in (ours, theirs)]
    return sess.run([ours, theirs] + grads)


def _close(got, want):
  np.testing.assert_allclose(got, want, rtol=1e-5,
                             atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize('shape, scale', [
    ((4, 12, 12, 64), 1.0),     # norm1
    ((4, 12, 12, 64), 30.0),    # large activations: the window sum matters
    ((3, 6, 6, 64), 5.0),       # norm2's depth, other sizes
    ((2, 5, 5, 7), 10.0),       # fewer channels than the window
])
def test_forward_and_gradient_match_tf_nn_lrn(shape, scale):
  rng = np.random.RandomState(0)
  x = np.maximum(rng.normal(0, scale, shape), 0).astype(np.float32)  # ReLU'd
  upstream = rng.normal(size=shape).astype(np.float32)
  ours, theirs, our_grad, their_grad = _lrn_both(x, upstream)
  _close(ours, theirs)
  _close(our_grad, their_grad)
  # Not the identity: the normalization changes the values.
  assert np.abs(theirs - x).max() > 1e-3 * np.abs(x).max()


def test_the_network_gives_the_same_logits_with_either_lrn():
  images = np.random.RandomState(1).normal(size=(5, 24, 24, 3))
  outputs = []
  for impl in ('tf', 'matmul'):
    with tf.Graph().as_default():
      tf.set_random_seed(3)
      model = cifar10.inference(tf.constant(images, tf.float32), lrn=impl)
      with tf.Session(config=on_the_cpu()) as sess:
        sess.run(tf.global_variables_initializer())
        outputs.append(sess.run(model.logits))
  _close(outputs[1], outputs[0])
