"""The record reader and the preprocessing, on record files the tests write."""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from conftest import random_examples


def _run_queue(fetches, steps=None):
  """`fetches` `steps` times, or until the input runs out (steps=None)."""
  out = []
  with tf.Session() as sess:
    sess.run(tf.local_variables_initializer())
    coord = tf.train.Coordinator()
    threads = tf.train.start_queue_runners(sess, coord)
    try:
      while steps is None or len(out) < steps:
        out.append(sess.run(fetches))
    except tf.errors.OutOfRangeError:
      assert steps is None, 'the input ran out after %d runs' % len(out)
    coord.request_stop()
    coord.join(threads)
  return out


def test_records_round_trip_exactly(tmp_path):
  images, labels = random_examples(7, seed=3)
  path = str(tmp_path / 'one.bin')
  with open(path, 'wb') as f:
    f.write(records.encode(images, labels))
  with tf.Graph().as_default():
    files = tf.train.string_input_producer([path], shuffle=False)
    record = cifar10_input.read_cifar10(files)
    got = _run_queue([record.label, record.uint8image], 7)
  for i, (label, image) in enumerate(got):
    assert label == labels[i]
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image, images[i])


def test_distortions_give_standardized_24x24_crops():
  image = np.random.RandomState(0).uniform(0, 255, (32, 32, 3))
  with tf.Graph().as_default(), tf.Session() as sess:
    out = cifar10_input.distort(tf.constant(image, tf.float32))
    results = [sess.run(out) for _ in range(5)]
  for r in results:
    assert r.shape == (24, 24, 3)
    assert abs(r.mean()) < 1e-4
    assert abs(r.std() - 1) < 1e-3
  # Random: two draws differ.
  assert not np.allclose(results[0], results[1])


def test_eval_crop_is_the_standardized_centre():
  image = np.random.RandomState(1).uniform(0, 255, (32, 32, 3))
  with tf.Graph().as_default(), tf.Session() as sess:
    got = sess.run(cifar10_input.central_crop(tf.constant(image, tf.float32)))
  centre = image[4:28, 4:28]
  # TensorFlow's standardization: the std, floored at 1/sqrt(pixels).
  floor = 1 / np.sqrt(centre.size)
  expected = (centre - centre.mean()) / max(centre.std(), floor)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('pipeline', defaults.INPUT_PIPELINES)
def test_training_batches_have_the_right_shapes_and_labels(tiny_data,
                                                           pipeline):
  data_dir, (_, train_labels), _ = tiny_data
  with tf.Graph().as_default():
    queue = cifar10_input.train_queue(data_dir, batch_size=8, num_threads=2,
                                      pipeline=pipeline)
    assert queue.num_records == len(train_labels)
    assert queue.min_after_dequeue == int(len(train_labels) * 0.4)
    assert queue.capacity == queue.min_after_dequeue + 3 * 8
    images, labels = queue.dequeue(8)
    batches = _run_queue([images, labels], 3)
  for imgs, lbls in batches:
    assert imgs.shape == (8, 24, 24, 3) and imgs.dtype == np.float32
    assert lbls.shape == (8,) and set(lbls) <= set(train_labels)


@pytest.mark.parametrize('pipeline', defaults.INPUT_PIPELINES)
def test_a_raw_queue_serves_the_records_pixels_for_the_device_to_finish(
    tiny_data, pipeline):
  data_dir, (train_images, train_labels), _ = tiny_data
  with tf.Graph().as_default():
    tf.set_random_seed(2)
    queue = cifar10_input.train_queue(data_dir, batch_size=8, num_threads=2,
                                      pipeline=pipeline, raw=True)
    assert queue.raw
    images, labels = queue.dequeue(8)
    finished = queue.finish(images)
    batches = _run_queue([images, labels, finished], 3)
  records_by_bytes = {img.tobytes(): lbl for img, lbl in
                      zip(train_images, train_labels)}
  for raw, lbls, done in batches:
    assert raw.dtype == np.uint8 and raw.shape == (8, 32, 32, 3)
    # Each example is a record of the files, whole, with its own label.
    assert [records_by_bytes[img.tobytes()] for img in raw] == list(lbls)
    # Finished on the device: 24x24 crops, standardized (the distortions
    # are distort_batch's, whose draws tests/test_distortions.py reads back).
    assert done.shape == (8, 24, 24, 3) and done.dtype == np.float32
    np.testing.assert_allclose(done.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(done.std(axis=(1, 2, 3)), 1, atol=1e-3)


def test_warmup_is_forty_percent_of_the_real_epoch():
  assert cifar10_input.min_queue_examples(50000) == 20000
  assert cifar10_input.min_queue_examples(10000) == 4000
  # More records than the tutorial's epoch: its 20,000, so memory stays flat.
  assert cifar10_input.min_queue_examples(500000) == 20000


def test_data_dir_may_name_the_batches_folder_itself(tiny_data):
  data_dir = tiny_data[0]
  inner = os.path.join(data_dir, defaults.BATCHES_DIR)
  assert records.data_files(data_dir) == records.data_files(inner)
  assert records.check_data_dir(inner) == (80, 30)


@pytest.mark.parametrize('content, expected', [
    (b'', 'expected a non-empty multiple of 3073 bytes'),
    (b'\x01' * 3073 * 2 + b'\x01' * 100, 'found 6246 bytes (truncated?)'),
    (b'\x03' + b'\x00' * 3072 + b'\x0b' + b'\x00' * 3072,
     'expected label bytes 0-9, found 11 in record 1'),
])
def test_bad_record_files_are_named_with_what_was_found(tmp_path, content,
                                                        expected):
  path = str(tmp_path / 'data_batch_1.bin')
  with open(path, 'wb') as f:
    f.write(content)
  with pytest.raises(records.DataError) as e:
    records.check_record_files([path])
  assert path in str(e.value) and expected in str(e.value)


def test_missing_data_names_the_path_and_suggests_make_data(tmp_path):
  with pytest.raises(records.DataError) as e:
    records.check_data_dir(str(tmp_path / 'nowhere'))
  message = str(e.value)
  assert 'nowhere' in message and 'data_batch_1.bin' in message
  assert 'make data' in message


@pytest.mark.parametrize('pipeline', defaults.INPUT_PIPELINES)
def test_eval_inputs_read_every_record_once_in_file_order(tiny_data,
                                                          pipeline):
  data_dir, _, (images, labels) = tiny_data   # 30 test records
  with tf.Graph().as_default():
    batch = cifar10_input.eval_queue(data_dir, 8,
                                     pipeline=pipeline).dequeue(8)
    batches = _run_queue(batch)
  assert [len(l) for _, l in batches] == [8, 8, 8, 6]
  np.testing.assert_array_equal(np.concatenate([l for _, l in batches]),
                                labels)
  got_images = batches[-1][0]
  centre = images[-1, 4:28, 4:28].astype(np.float64)
  np.testing.assert_allclose(
      got_images[-1], (centre - centre.mean()) / centre.std(), atol=1e-4)


def test_chunked_reads_return_every_record_exactly(tmp_path):
  """Chunks of 4 over files of 7 and 3 records: short reads at file ends."""
  paths, examples = [], []
  for i, n in enumerate((7, 3)):
    images, labels = random_examples(n, seed=10 + i)
    paths.append(str(tmp_path / ('%d.bin' % i)))
    with open(paths[-1], 'wb') as f:
      f.write(records.encode(images, labels))
    examples += list(zip(images, labels))
  with tf.Graph().as_default():
    files = tf.train.string_input_producer(paths, num_epochs=1, shuffle=False)
    chunk = cifar10_input.read_cifar10_many(files, 4)
    got = _run_queue([chunk.uint8image, chunk.label])
  assert [len(labels) for _, labels in got] == [4, 3, 3]
  images = np.concatenate([i for i, _ in got])
  labels = np.concatenate([l for _, l in got])
  np.testing.assert_array_equal(images, np.stack([i for i, _ in examples]))
  np.testing.assert_array_equal(labels, [l for _, l in examples])


def test_unknown_pipeline_is_refused(tiny_data):
  with tf.Graph().as_default(), pytest.raises(ValueError) as e:
    cifar10_input.train_queue(tiny_data[0], 8, pipeline='fast')
  assert "found 'fast'" in str(e.value)


def test_the_training_queue_gives_distorted_batches(tiny_data):
  with tf.Graph().as_default():
    images, labels = cifar10_input.train_queue(tiny_data[0], 4, 1).dequeue(4)
    (got_images, got_labels), = _run_queue([images, labels], 1)
  assert got_images.shape == (4, 24, 24, 3) and got_labels.shape == (4,)
