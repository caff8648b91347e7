"""--precision bf16: bfloat16 products, float32 everything that is kept."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial.core import defaults
from cifar10_tutorial.engine import machine


def _logits_and_gradients(precision, images, labels):
  with tf.Graph().as_default() as graph:
    tf.set_random_seed(0)
    model = cifar10.inference(tf.constant(images), precision=precision)
    total, _ = cifar10.loss(model, tf.constant(labels))
    grads = tf.gradients(total, model.variables)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      values = sess.run([model.logits] + grads)
    ops = graph.get_operations()
    kept = {v.op.name: v.dtype.base_dtype for v in tf.global_variables()}
  # The forward products' dtypes, by layer (gradients come from these).
  products = {op.name.split('/')[0]: op.get_attr('T').name for op in ops
              if op.type in ('Conv2D', 'MatMul')
              and not op.name.startswith('gradients')}
  return values, products, kept


@pytest.fixture(scope='module')
def runs():
  rng = np.random.RandomState(0)
  images = rng.normal(size=(8, 24, 24, 3)).astype(np.float32)
  labels = rng.randint(0, 10, 8).astype(np.int32)
  return {p: _logits_and_gradients(p, images, labels)
          for p in defaults.PRECISIONS}


def _relative(a, b):
  return max(np.linalg.norm(x - y) / np.linalg.norm(y) for x, y in zip(a, b))


def test_bf16_multiplies_in_bfloat16_and_keeps_float32_state(runs):
  values, products, kept = runs['bf16']
  layers = ['conv1', 'conv2', 'local3', 'local4', 'softmax_linear']
  assert products == dict({l: 'bfloat16' for l in layers},
                          norm1='float32', norm2='float32')
  assert set(kept.values()) == {tf.float32}
  assert all(v.dtype == np.float32 for v in values)
  # The same variables as fp32: checkpoints are interchangeable.
  assert kept == runs['fp32'][2]
  assert set(runs['fp32'][1].values()) == {'float32'}


def test_bf16_stays_close_to_fp32(runs):
  fp32, bf16 = runs['fp32'][0], runs['bf16'][0]
  # bfloat16 keeps 8 significant bits: logits within about 2%; gradients,
  # rounded too, further.
  assert _relative(bf16[:1], fp32[:1]) < 0.03
  assert _relative(bf16[1:], fp32[1:]) < 0.3


def test_emulation_rounds_like_bf16(runs):
  fp32, bf16, emulated = (runs[p][0] for p in ('fp32', 'bf16',
                                               'bf16_emulated'))
  assert set(runs['bf16_emulated'][1].values()) == {'float32'}
  # Far closer to real bf16 than to fp32: it makes the same roundings.
  assert _relative(emulated, bf16) < 0.5 * _relative(emulated, fp32)
  assert _relative(emulated, fp32) > 1e-3


def test_bf16_warns_only_where_it_is_slow():
  avx2 = {'avx2', 'fma'}
  assert 'slow' in machine.precision_warning('bf16', 0, avx2)
  assert machine.precision_warning('bf16', 1, avx2) is None
  assert machine.precision_warning('bf16', 0, avx2 | {'avx512f'}) is None
  assert machine.precision_warning('fp32', 0, avx2) is None
  assert machine.precision_warning('bf16_emulated', 0, avx2) is None
