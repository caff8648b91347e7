"""Summaries computed on the tower's device read back as TensorFlow's own."""
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
