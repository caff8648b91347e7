"""The batched and per-example input paths draw the same distortions.

Both paths distort a probe image whose pixels are r^2 + c^2 (row r, column
c). From an output, each draw can then be read back exactly: the contrast
factor and the crop's first row from the row differences, the crop's first
column and the flip from the column differences, and the brightness shift
from the mean. Over many draws those must follow the tutorial's
distributions, in both paths.
"""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import defaults

DRAWS = 2000
SIZE = defaults.IMAGE_SIZE
OFFSETS = defaults.SOURCE_HEIGHT - SIZE + 1      # 0..8
DELTA = defaults.MAX_BRIGHTNESS_DELTA
LOW, HIGH = defaults.CONTRAST_LOWER, defaults.CONTRAST_UPPER


def _probe():
  r = np.arange(32, dtype=np.float64)
  plane = r[:, None] ** 2 + r[None, :] ** 2
  return np.repeat(plane[:, :, None], 3, axis=2)


def _per_example_draws():
  copies = 100
  with tf.Graph().as_default():
    tf.set_random_seed(1)
    image = tf.constant(_probe(), tf.float32)
    out = tf.stack([cifar10_input.random_distortions(image)
                    for _ in range(copies)])
    with tf.Session() as sess:
      return np.concatenate([sess.run(out) for _ in range(DRAWS // copies)])


def _batched_draws():
  with tf.Graph().as_default():
    tf.set_random_seed(1)
    # Float, since the probe's pixels go up to 2 x 31^2.
    images = tf.constant(np.repeat(_probe()[None], DRAWS, axis=0), tf.float32)
    with tf.Session() as sess:
      return sess.run(cifar10_input.random_distortions_batch(images))


def _stateless_draws(seed=(1, 2)):
  with tf.Graph().as_default():
    images = tf.constant(np.repeat(_probe()[None], DRAWS, axis=0), tf.float32)
    with tf.Session() as sess:
      return sess.run(cifar10_input.random_distortions_batch(
          images, tf.constant(seed, tf.int64)))


DRAW = {'per_example': _per_example_draws, 'batched': _batched_draws,
        'stateless': _stateless_draws}


def test_stateless_draws_are_the_seed_s_alone():
  np.testing.assert_array_equal(_stateless_draws(), _stateless_draws())
  assert not np.allclose(_stateless_draws(), _stateless_draws((1, 3)))


def read_back(out):
  """(row offset, column offset, flipped, brightness, contrast) per draw."""
  out = out.astype(np.float64)
  assert out.shape[1:] == (SIZE, SIZE, 3)
  plane = out[..., 0]
  down = plane[:, 1:, 0] - plane[:, :-1, 0]      # f * (2 (row0 + i) + 1)
  factor = (down[:, 1] - down[:, 0]) / 2
  row0 = np.rint((down[:, 0] / factor - 1) / 2).astype(int)
  across = plane[:, 0, 1:] - plane[:, 0, :-1]
  flipped = across[:, 0] < 0
  col0 = np.where(flipped,
                  np.rint((-across[:, 0] / factor + 1) / 2 - (SIZE - 1)),
                  np.rint((across[:, 0] / factor - 1) / 2)).astype(int)
  span = np.arange(SIZE)
  rows = (row0[:, None] + span) ** 2                          # [n, 24]
  cols = (col0[:, None] + np.where(flipped[:, None], span[::-1], span)) ** 2
  crop = rows[:, :, None] + cols[:, None, :]                  # [n, 24, 24]
  mean = crop.mean(axis=(1, 2))
  shift = plane.mean(axis=(1, 2)) - mean
  # The read-back draws must explain every pixel of every channel.
  model = ((crop - mean[:, None, None]) * factor[:, None, None] +
           (mean + shift)[:, None, None])
  np.testing.assert_allclose(out, np.repeat(model[..., None], 3, axis=3),
                             atol=2e-3 * np.abs(model).max())
  return row0, col0, flipped, shift, factor


@pytest.fixture(scope='module', params=sorted(DRAW))
def draws(request):
  return read_back(DRAW[request.param]())


def _uniform_counts_ok(values, bins):
  counts = np.bincount(values, minlength=bins)
  expected = len(values) / bins
  chi2 = ((counts - expected) ** 2 / expected).sum()
  # Far above the 99.99th percentile of chi-square with 8 degrees of freedom
  # (about 31): passes for uniform draws, fails if any offset is missing.
  return len(counts) == bins and chi2 < 40, counts


def test_crop_offsets_are_uniform_over_all_nine_positions(draws):
  row0, col0 = draws[0], draws[1]
  for offsets in (row0, col0):
    assert offsets.min() == 0 and offsets.max() == OFFSETS - 1
    ok, counts = _uniform_counts_ok(offsets, OFFSETS)
    assert ok, counts


def test_half_of_the_images_are_flipped(draws):
  assert abs(draws[2].mean() - 0.5) < 0.05


def test_brightness_shift_is_uniform_within_63(draws):
  shift = draws[3]
  assert shift.min() >= -DELTA - 1e-3 and shift.max() <= DELTA + 1e-3
  assert abs(shift.mean()) < 4                       # sd of the mean: 0.8
  assert abs(shift.std() - 2 * DELTA / np.sqrt(12)) < 2.5
  # Reaches both ends of the range, not a narrower one.
  assert shift.min() < -DELTA + 2 and shift.max() > DELTA - 2


def test_contrast_factor_is_uniform_in_its_range(draws):
  factor = draws[4]
  assert factor.min() >= LOW - 1e-4 and factor.max() <= HIGH + 1e-4
  assert factor.min() < LOW + 0.01 and factor.max() > HIGH - 0.01
  assert abs(factor.mean() - (LOW + HIGH) / 2) < 0.04
  assert abs(factor.std() - (HIGH - LOW) / np.sqrt(12)) < 0.03


def test_every_draw_is_independent_of_the_others(draws):
  row0, col0, flipped, shift, factor = draws
  columns = np.stack([row0, col0, flipped, shift, factor])
  corr = np.corrcoef(columns)
  off_diagonal = corr[~np.eye(len(columns), dtype=bool)]
  assert np.abs(off_diagonal).max() < 0.1, corr
  # Consecutive examples (neighbours in one batch) do not share draws.
  assert np.mean(row0[1:] == row0[:-1]) < 0.2
  assert abs(np.corrcoef(shift[1:], shift[:-1])[0, 1]) < 0.1


def test_batched_crop_works_on_the_raw_bytes():
  """The batched path crops before the float cast: uint8 in, same result."""
  probe = np.random.RandomState(2).randint(0, 256, (64, 32, 32, 3))
  out = {}
  for dtype in (tf.uint8, tf.float32):
    with tf.Graph().as_default():
      tf.set_random_seed(5)
      with tf.Session() as sess:
        out[dtype] = sess.run(cifar10_input.distort_batch(
            tf.constant(probe, dtype)))
  np.testing.assert_allclose(out[tf.uint8], out[tf.float32], atol=1e-5)
  assert out[tf.uint8].shape == (64, SIZE, SIZE, 3)
  assert np.abs(out[tf.uint8].mean(axis=(1, 2, 3))).max() < 1e-4
  assert np.abs(out[tf.uint8].std(axis=(1, 2, 3)) - 1).max() < 1e-3


def test_batched_central_crop_matches_the_per_example_one():
  images = np.random.RandomState(3).randint(0, 256, (5, 32, 32, 3))
  with tf.Graph().as_default(), tf.Session() as sess:
    batched = sess.run(cifar10_input.central_crop_batch(
        tf.constant(images, tf.uint8)))
    single = sess.run([cifar10_input.central_crop(tf.constant(i, tf.float32))
                       for i in images])
  np.testing.assert_allclose(batched, np.stack(single), atol=1e-5)
