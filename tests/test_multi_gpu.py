"""The multi-tower trainer, on virtual CPU devices."""
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import machine
from cifar10_tutorial import train_graph
from conftest import run_module, summary_tags

LEARNING_RATE = 0.1


def _one_step(images, labels, towers):
  """Trains one step from fixed initial weights; returns weights, shadows.

  With towers > 1 the batch is split evenly across towers on virtual CPU
  devices and the multi-GPU code averages their gradients; with towers == 1
  it is the single-device path on the whole batch.
  """
  with tf.Graph().as_default():
    tf.set_random_seed(7)   # the same initial weights in both graphs
    step = tf.train.get_or_create_global_step()
    opt = cifar10.gradient_descent(LEARNING_RATE)
    if towers == 1:
      model = cifar10.inference(tf.constant(images))
      total, _ = cifar10.loss(model, tf.constant(labels))
      grads = opt.compute_gradients(total, model.variables)
    else:
      batches = [(tf.constant(i), tf.constant(l)) for i, l in
                 zip(np.split(images, towers), np.split(labels, towers))]
      devices, cpus = machine.tower_devices(towers, 'cpu')
      towers_built = train_graph.tower_gradients(batches, devices, opt)
      grads = train_graph.average_gradients([t.grads for t in towers_built])
    train_op = cifar10.apply_and_average(grads, step,
                                         tf.constant(LEARNING_RATE),
                                         cifar10.moving_averages(step))
    variables = {v.op.name: v for v in tf.global_variables()}
    config = tf.ConfigProto(device_count={'CPU': towers})
    with tf.Session(config=config) as sess:
      sess.run(tf.global_variables_initializer())
      initial = sess.run(variables)
      sess.run(train_op)
      return initial, sess.run(variables)


def test_two_towers_train_like_one_tower_of_twice_the_batch():
  rng = np.random.RandomState(0)
  images = rng.normal(size=(8, 24, 24, 3)).astype(np.float32)
  labels = rng.randint(0, 10, 8).astype(np.int32)
  start_one, after_one = _one_step(images, labels, towers=1)
  start_two, after_two = _one_step(images, labels, towers=2)
  assert sorted(after_two) == sorted(after_one)   # the same variables, once
  for name in start_one:
    np.testing.assert_array_equal(start_one[name], start_two[name])
  moved = 0
  for name, value in after_one.items():
    np.testing.assert_allclose(after_two[name], value, rtol=1e-4, atol=1e-6,
                               err_msg=name)
    moved += not np.array_equal(value, start_one[name])
  assert moved == 21   # 10 weights, 10 shadows and the global step changed


def test_variables_exist_once_under_the_tutorials_names():
  with tf.Graph().as_default():
    batches = [(tf.zeros([2, 24, 24, 3]), tf.zeros([2], tf.int32))] * 3
    devices, _ = machine.tower_devices(3, 'cpu')
    train_graph.tower_gradients(batches, devices, cifar10.gradient_descent(0.1))
    names = [v.op.name for v in tf.trainable_variables()]
    per_tower = [op.name for op in tf.get_default_graph().get_operations()
                 if op.name.startswith('tower_2/cross_entropy')]
  assert len(names) == 10 and not [n for n in names if 'tower' in n]
  assert per_tower   # each tower has its own loss


@pytest.mark.parametrize('update', ['cpu', 'replicated'])
def test_two_tower_run_is_evaluated_and_resumed(tiny_data, tmp_path, update):
  data_dir = tiny_data[0]
  train_dir = str(tmp_path / 'train')
  args = ['--data_dir', data_dir, '--train_dir', train_dir, '--num_gpus', '2',
          '--tower_device', 'cpu', '--batch_size', '4', '--log_frequency', '2',
          '--variable_update', update]
  first = run_module('cifar10_multi_gpu_train', '--max_steps', '4', *args)
  assert first.returncode == 0, first.stdout + first.stderr
  assert '2 towers on /cpu:0, /cpu:1, 8 examples per step' in first.stdout
  assert re.search(r'step 4, loss = [\d.]+ \([\d.]+ examples/sec',
                   first.stdout)
  assert 'saved checkpoint at step 4' in first.stdout
  tags = summary_tags(train_dir)
  for tower in ('tower_0', 'tower_1'):   # each tower's own, not the last's
    for tag in ('cross_entropy', 'total_loss (raw)', 'conv2/conv2/sparsity',
                'images/image/0'):
      assert '%s/%s' % (tower, tag) in tags, sorted(tags)
  assert 'conv1/weights' in tags and 'tower_0/conv1/weights' not in tags
  # One copy of each variable in the checkpoint, under the tutorial's names.
  saved = [name for name, _ in tf.train.list_variables(
      tf.train.latest_checkpoint(train_dir))]
  assert not [n for n in saved if n.startswith('tower_')], saved
  evaluated = run_module('cifar10_eval', '--data_dir', data_dir,
                         '--checkpoint_dir', train_dir, '--eval_dir',
                         str(tmp_path / 'eval'), '--run_once')
  assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  assert 'step 4: precision @ 1 = ' in evaluated.stdout
  second = run_module('cifar10_multi_gpu_train', '--max_steps', '6', *args)
  assert second.returncode == 0, second.stdout + second.stderr
  assert re.search(r'resuming from .*model\.ckpt-4 \(step 4\)', second.stdout)
  assert 'saved checkpoint at step 6' in second.stdout
  # The single-device trainer resumes it too: the checkpoints are the same.
  # With the same examples per step (2 x 4 = 8), the same math.
  single = run_module('cifar10_train', '--data_dir', data_dir, '--train_dir',
                      train_dir, '--max_steps', '7', '--batch_size', '8')
  assert single.returncode == 0, single.stdout + single.stderr
  assert 'saved checkpoint at step 7' in single.stdout
  # With 4 it would be other math: refused, in one line, unless asked for.
  other = run_module('cifar10_train', '--data_dir', data_dir, '--train_dir',
                     train_dir, '--max_steps', '8', '--batch_size', '4')
  assert other.returncode == 1
  assert other.stdout.strip().splitlines()[-1].endswith(
      'found examples per step 4 (the run has 8), steps between '
      'learning-rate decays 7,000 (the run has 3,500); run with the same '
      'settings, or add --allow_changed_settings to go on with the new ones')


@pytest.mark.skipif(machine.gpu_count() >= 3, reason='this machine has 3 GPUs')
def test_asking_for_more_gpus_than_exist_is_a_clear_error(tiny_data, tmp_path):
  result = run_module('cifar10_multi_gpu_train', '--data_dir', tiny_data[0],
                      '--train_dir', str(tmp_path / 'train'), '--num_gpus',
                      '3')
  assert result.returncode == 1
  assert result.stdout.strip().splitlines()[-1].endswith(
      'error: --num_gpus 3: expected 3 GPUs, found %d (add --tower_device cpu '
      'to run 3 towers on virtual CPU devices)' % machine.gpu_count())
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'train').exists()
