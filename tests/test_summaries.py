"""Summaries computed on the tower's device read back as TensorFlow's own."""
import gc
import weakref

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import summaries


def _values():
  rng = np.random.RandomState(0)
  return {
      'edges': np.array([0.0, -1.0, 1.0, 1e-13, 2.5, 2.5, 3.0, -0.5]),
      'weights': rng.normal(size=10000) * 0.05,
      'relu activations': np.maximum(rng.normal(size=(16, 12, 12, 8)), 0),
      'huge and tiny': np.array([1e25, -1e30, 5e-13, 0.0, 7.0]),
  }


@pytest.mark.parametrize('device', ['', '/device:GPU:0'])
@pytest.mark.parametrize('name', sorted(_values()))
def test_device_histograms_encode_as_histogram_summary_does(name, device):
  # Values on a GPU are counted another way (int64, into copies of the
  # buckets): built for one, run wherever this machine can.
  values = _values()[name].astype(np.float32)
  with tf.Graph().as_default(), tf.Session(config=tf.ConfigProto(
      allow_soft_placement=True)) as sess:
    x = tf.constant(values)
    reference = tf.Summary.FromString(sess.run(
        tf.raw_ops.HistogramSummary(tag='h', values=x))).value[0].histo
    with tf.device(device):
      x = tf.identity(x)
    item = summaries.histogram('h', x)
    got = summaries.to_summary([item], sess.run(summaries.fetches([item])))
  histo = got.value[0].histo
  assert got.value[0].tag == 'h'
  assert list(histo.bucket_limit) == list(reference.bucket_limit)
  assert list(histo.bucket) == list(reference.bucket)
  assert (histo.min, histo.max, histo.num) == (reference.min, reference.max,
                                               reference.num)
  # Sums in float64 on the device, in another order than C++'s loop.
  np.testing.assert_allclose([histo.sum, histo.sum_squares],
                             [reference.sum, reference.sum_squares],
                             rtol=1e-12)


def test_a_graphs_histograms_hold_the_bucket_limits_once_a_device():
  # A copy in each histogram made every graph file a third larger. The one
  # constant must not carry the first histogram's context along.
  values = _values()
  with tf.Graph().as_default() as graph, tf.Session(config=tf.ConfigProto(
      allow_soft_placement=True)) as sess:
    inputs = {name: tf.constant(v.astype(np.float32))
              for name, v in values.items()}
    items = []
    with tf.control_dependencies([tf.no_op(name='gate')]):
      items.append(summaries.histogram('edges', inputs['edges']))
    items.append(summaries.histogram('weights', inputs['weights']))
    with tf.device('/device:GPU:0'):
      items.append(summaries.histogram(
          'huge and tiny', tf.identity(inputs['huge and tiny'])))
    limits = [op for op in graph.get_operations() if op.type == 'Const' and
              op.outputs[0].shape.num_elements() == len(
                  summaries.BUCKET_LIMITS)]
    assert sorted(op.device for op in limits) == ['', '/device:GPU:0']
    assert not [op for op in limits if op.control_inputs]
    got = summaries.to_summary(items, sess.run(summaries.fetches(items)))
    references = sess.run([tf.raw_ops.HistogramSummary(tag=i.tag,
                                                       values=inputs[i.tag])
                           for i in items])
  for value, reference in zip(got.value, references):
    reference = tf.Summary.FromString(reference).value[0].histo
    assert list(value.histo.bucket) == list(reference.bucket)
    assert list(value.histo.bucket_limit) == list(reference.bucket_limit)
  # And a graph dropped is freed (a notebook builds one after another).
  with tf.Graph().as_default() as graph:
    summaries.histogram('w', tf.constant([1.0]))
  dropped = weakref.ref(graph)
  del graph
  gc.collect()
  assert dropped() is None


def test_scalars_images_and_summary_ops_go_into_one_summary():
  with tf.Graph().as_default(), tf.Session() as sess:
    items = [summaries.scalar('loss', tf.constant(2.5)),
             summaries.image('images', tf.zeros([2, 4, 4, 3], tf.uint8)),
             tf.summary.scalar('op', tf.constant(1.0))]
    got = summaries.to_summary(items, sess.run(summaries.fetches(items)))
  tags = [v.tag for v in got.value]
  assert tags == ['loss', 'images/image/0', 'images/image/1', 'op']
  assert got.value[0].simple_value == 2.5


def test_a_non_finite_histogram_names_its_tag():
  with tf.Graph().as_default(), tf.Session() as sess:
    item = summaries.histogram('conv1/weights', tf.constant([1.0, np.nan]))
    with pytest.raises(summaries.NonFiniteError) as e:
      summaries.to_summary([item], sess.run(summaries.fetches([item])))
  assert str(e.value) == ('conv1/weights: expected finite values, found 1 '
                          'NaN or infinite')
