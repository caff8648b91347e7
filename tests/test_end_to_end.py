"""Train a few steps, checkpoint, evaluate, resume: as a user runs them."""
import glob
import json
import os
import re
import shutil
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import defaults
from cifar10_tutorial.engine import evaluation
from cifar10_tutorial.shell import flags
from conftest import Running, run_module, summary_tags


def _eval_cfg(run, tmp_path, **extra):
  return flags.eval_config(data_dir=run['data_dir'],
                           checkpoint_dir=run['train_dir'],
                           eval_dir=str(tmp_path / 'eval'), **extra)


def test_training_logs_and_checkpoints_without_shutdown_noise(trained_run):
  out, err = trained_run['result'].stdout, trained_run['result'].stderr
  assert 'starting a new run in ' + trained_run['train_dir'] in out
  for step in (2, 4, 6):
    assert re.search(r'step %d, loss = \d+\.\d\d \(\d+\.\d examples/sec; '
                     r'\d+\.\d{3} sec/batch\)' % step, out)
  assert 'saved checkpoint at step 6' in out
  assert tf.train.latest_checkpoint(trained_run['train_dir']).endswith('-6')
  assert glob.glob(os.path.join(trained_run['train_dir'], 'events.out.*'))
  tags = summary_tags(trained_run['train_dir'])
  for tag in ('cross_entropy', 'cross_entropy (raw)', 'total_loss',
              'learning_rate', 'conv1/weights', 'conv1/weights/gradients',
              'conv1/conv1/sparsity', 'images/image/0', 'examples_per_sec',
              'train_input/examples/fraction_full'):
    assert tag in tags, sorted(tags)
  assert tags['examples_per_sec'] == [2, 4, 6]
  # The averaged loss starts at the first loss (not at 0 or a tenth of it).
  first = {}
  for path in glob.glob(os.path.join(trained_run['train_dir'], 'events.*')):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag in ('total_loss', 'total_loss (raw)'):
          first.setdefault(value.tag, value.simple_value)
  # (Equal but for the last bit: XLA on a GPU may round it otherwise.)
  assert first['total_loss'] == pytest.approx(first['total_loss (raw)'],
                                              rel=1e-6)
  assert first['total_loss'] > 1
  with open(os.path.join(trained_run['train_dir'], 'config.json')) as f:
    assert json.load(f)['batch_size'] == 8
  for noise in ('Enqueue operation was cancelled', 'Traceback',
                'local_rendezvous', 'deprecated'):
    assert noise not in err, err


def test_eval_run_once_reports_precision_and_writes_a_summary(trained_run,
                                                              tmp_path):
  eval_dir = str(tmp_path / 'eval')
  result = run_module('cifar10_eval', '--data_dir', trained_run['data_dir'],
                      '--checkpoint_dir', trained_run['train_dir'],
                      '--eval_dir', eval_dir, '--run_once', '--batch_size',
                      '8')
  assert result.returncode == 0, result.stdout + result.stderr
  match = re.search(r'step 6: precision @ 1 = (0\.\d{3}|1\.000) '
                    r'\(30 examples', result.stdout)
  assert match, result.stdout
  events = glob.glob(os.path.join(eval_dir, 'events.out.*'))
  values = [(e.step, v.simple_value) for path in events
            for e in tf.train.summary_iterator(path) for v in e.summary.value
            if v.tag == 'Precision @ 1']
  assert len(values) == 1 and values[0][0] == 6
  assert abs(values[0][1] - float(match.group(1))) < 5e-4
  tags = summary_tags(eval_dir)
  for name in defaults.CLASS_NAMES:
    assert tags['per_class_precision/' + name] == [6]
  assert tags['confusion_matrix'] == [6]
  png = [v.image for path in events for e in tf.train.summary_iterator(path)
         for v in e.summary.value if v.tag == 'confusion_matrix'][0]
  pixels = tf.io.decode_png(png.encoded_image_string).numpy()
  assert pixels.shape[:2] == (png.height, png.width) and pixels.std() > 0


def test_eval_takes_relative_paths_like_make_eval(trained_run, tmp_path):
  # make eval passes paths relative to the working folder.
  shutil.copytree(trained_run['train_dir'], str(tmp_path / 'runs' / 'train'))
  shutil.copytree(trained_run['data_dir'], str(tmp_path / 'data'))
  result = run_module('cifar10_eval', '--data_dir', 'data', '--checkpoint_dir',
                      'runs/train', '--eval_dir', 'runs/eval', '--run_once',
                      cwd=str(tmp_path))
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'step 6: precision @ 1' in result.stdout


def test_eval_restores_the_moving_averages_not_the_raw_weights(trained_run,
                                                               tmp_path):
  graph = evaluation.EvalGraph(_eval_cfg(trained_run, tmp_path))
  path = tf.train.latest_checkpoint(trained_run['train_dir'])
  with graph.graph.as_default(), tf.Session() as sess:
    graph.saver.restore(sess, path)
    weights = {v.op.name: sess.run(v) for v in tf.trainable_variables()}
  assert len(weights) == 10
  for name, value in weights.items():
    shadow = tf.train.load_variable(path, name + '/ExponentialMovingAverage')
    np.testing.assert_array_equal(value, shadow)
  raw = tf.train.load_variable(path, 'conv1/weights')
  assert not np.array_equal(weights['conv1/weights'], raw)


def _independent_precision(path, images, labels):
  """Precision of the checkpoint's shadow weights, computed without queues."""
  with tf.Graph().as_default(), tf.Session() as sess:
    batch = tf.stack([cifar10_input.central_crop(tf.constant(i, tf.float32))
                      for i in images])
    model = cifar10.inference(batch)
    tf.train.Saver(cifar10.restore_map(model.variables)).restore(sess, path)
    predicted = sess.run(tf.argmax(model.logits, 1))
  return np.sum(predicted == labels) / float(len(labels))


def test_eval_counts_exactly_num_examples_with_a_partial_last_batch(
    trained_run, tmp_path):
  graph = evaluation.EvalGraph(
      _eval_cfg(trained_run, tmp_path, num_examples=13, batch_size=8))
  path = tf.train.latest_checkpoint(trained_run['train_dir'])
  images, labels = trained_run['test']
  expected = _independent_precision(path, images[:13], labels[:13])
  result = graph.run(path)
  assert result.precision_at_1 == expected
  # The confusion matrix counts the same 13 images, by their true class.
  assert result.confusion.sum() == 13
  np.testing.assert_array_equal(result.confusion.sum(axis=1),
                                np.bincount(labels[:13], minlength=10))
  assert np.trace(result.confusion) == round(expected * 13)
  # And the whole file (30) with a batch that does not divide it.
  graph = evaluation.EvalGraph(_eval_cfg(trained_run, tmp_path,
                                         batch_size=7))
  assert graph.num_examples == 30
  assert graph.run(path).precision_at_1 == _independent_precision(
      path, images, labels)


def test_second_run_resumes_at_the_saved_step(trained_run, tmp_path):
  train_dir = str(tmp_path / 'train')
  shutil.copytree(trained_run['train_dir'], train_dir)
  args = ['--data_dir', trained_run['data_dir'], '--train_dir', train_dir,
          '--batch_size', '8', '--log_frequency', '1']
  result = run_module('cifar10_train', '--max_steps', '8', *args)
  assert result.returncode == 0, result.stdout + result.stderr
  assert re.search(r'resuming from .*model\.ckpt-6 \(step 6\)', result.stdout)
  assert 'step 7, loss' in result.stdout and 'step 1,' not in result.stdout
  path = tf.train.latest_checkpoint(train_dir)
  assert tf.train.load_variable(path, 'global_step') == 8
  # Already there: nothing to do, nothing deleted.
  again = run_module('cifar10_train', '--max_steps', '8', *args)
  assert again.returncode == 0 and 'nothing to do' in again.stdout
  assert tf.train.latest_checkpoint(train_dir) == path


def test_eval_loop_waits_then_evaluates_each_new_checkpoint_once(
    trained_run, tmp_path):
  watched = str(tmp_path / 'not_yet' / 'train')
  run = Running('cifar10_eval', '--data_dir', trained_run['data_dir'],
                '--checkpoint_dir', watched, '--eval_dir',
                str(tmp_path / 'eval'), '--eval_interval_secs', '1',
                '--batch_size', '8')
  try:
    run.wait_for('waiting for a new checkpoint in ' + watched)
    # Appear at once, as the trainer's listed checkpoints do: a copy in
    # progress could list step 6 before its files are there.
    shutil.copytree(trained_run['train_dir'], watched + '.copy')
    os.rename(watched + '.copy', watched)
    run.wait_for('step 6: precision @ 1')
    run.wait_for('waiting for a new checkpoint', timeout=30)
    time.sleep(3)   # three more looks at the folder: nothing new to do
  finally:
    run.stop()
  # Every checkpoint listed (0 and 6) once, oldest first; none twice.
  steps = re.findall(r'step (\d+): precision', run.output)
  assert steps == ['0', '6'], run.output
  assert run.output.count('waiting for a new checkpoint') == 2
