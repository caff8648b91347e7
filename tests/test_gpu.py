"""What only a GPU machine can check: the GPU defaults (several steps per
session.run, XLA, batches staged on the GPU, distortions there) and towers
on real GPUs, summed with NCCL. On a machine without enough GPUs each test
is skipped and says why; the same code paths on the CPU are tested in
test_steps.py and test_multi_gpu.py."""
import json
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import gpus
from conftest import run_module
from test_steps import K, _train_raw, _two_ways, _weights

GPUS = gpus.count()
# float32 throughout, for every test here, from before the first: cuDNN
# keeps the algorithms it picked for a shape for the whole process, and one
# picked with TF32 on (TensorFlow's default: products rounded to 10 bits)
# would be used by a later test that turned TF32 off for itself.
tf.config.experimental.enable_tensor_float_32_execution(False)
needs_a_gpu = pytest.mark.skipif(
    GPUS < 1, reason='needs a GPU: this machine has none (the CPU path is '
    'tested everywhere else)')
needs_two_gpus = pytest.mark.skipif(
    GPUS < 2, reason='needs 2 GPUs: this machine has %d' % GPUS)


@needs_a_gpu
def test_the_gpu_defaults_train_resume_and_are_recorded(tiny_data, tmp_path):
  data_dir = tiny_data[0]
  train_dir = str(tmp_path / 'train')
  args = ['--data_dir', data_dir, '--train_dir', train_dir, '--batch_size',
          '8', '--log_frequency', '50']
  first = run_module('cifar10_train', '--max_steps', '250', *args,
                     timeout=240)
  assert first.returncode == 0, first.stdout + first.stderr
  # Steps 1..250 in runs of up to 100, each logged multiple of 50 shown.
  for step in (50, 100, 150, 200, 250):
    assert re.search(r'step %d, loss = [\d.]+ ' % step, first.stdout)
  assert 'saved checkpoint at step 250' in first.stdout
  with open(os.path.join(train_dir, 'config.json')) as f:
    settings = json.load(f)
  assert (settings['steps_per_run'], settings['xla'],
          settings['prefetch_to_device'], settings['preprocess_on'],
          settings['compiled_loop']) == (
              defaults.GPU_STEPS_PER_RUN, True, True, 'device', True)
  second = run_module('cifar10_train', '--max_steps', '260', *args,
                      timeout=240)
  assert second.returncode == 0, second.stdout + second.stderr
  assert re.search(r'resuming from .*model\.ckpt-250 \(step 250\)',
                   second.stdout)
  assert 'saved checkpoint at step 260' in second.stdout


@needs_a_gpu
def test_the_compiled_loop_trains_on_the_gpu_as_the_graph_s_loop_does():
  # test_steps.py's check, on the GPU: cuDNN's and XLA's choices of
  # algorithms differ, hence the tolerances.
  compiled, compiled_losses = _train_raw([K, K - 2], True, gpu=True)
  graph_loop, graph_losses = _train_raw([1] * (2 * K - 2), False, gpu=True)
  assert compiled['global_step'] == graph_loop['global_step'] == 2 * K - 2
  np.testing.assert_allclose(compiled_losses, graph_losses, rtol=1e-2)
  for name, value in compiled.items():
    np.testing.assert_allclose(graph_loop[name], value, rtol=1e-2, atol=1e-3,
                               err_msg=name)


@needs_two_gpus
def test_two_gpus_in_one_process_train_like_one_batch_of_twice_the_size():
  # NCCL sums the towers' gradients; float32 throughout (above), against
  # the reference on the CPU: cuDNN's algorithms differ in the last bits,
  # hence 1e-4.
  one, one_saved = _two_ways(1, 8, None)
  two, two_saved = _two_ways(2, 4, 'replicated', tower_device='gpu')
  assert two_saved == one_saved
  for name, start in _weights().items():
    assert not np.array_equal(one[name], start), name
  for name, value in one.items():
    np.testing.assert_allclose(two[name], value, rtol=1e-4, atol=1e-5,
                               err_msg=name)
  for name in [n for n in two if n.startswith('tower_1/')]:
    np.testing.assert_array_equal(two[name], two[name.split('/', 1)[1]])


def _a_process_per_gpu(program, tiny_data, tmp_path, *flags):
  data_dir = tiny_data[0]
  train_dir = str(tmp_path / 'train')
  args = ['--data_dir', data_dir, '--train_dir', train_dir, '--batch_size',
          '8', '--log_frequency', '50'] + list(flags)
  first = run_module(program, '--max_steps', '150', *args, timeout=300)
  assert first.returncode == 0, first.stdout + first.stderr
  assert 'saved checkpoint at step 150' in first.stdout
  assert re.search(r'^(tower|worker) 1 \| .*stopped at step 150$',
                   first.stdout, re.M), first.stdout
  evaluated = run_module('cifar10_eval', '--data_dir', data_dir,
                         '--checkpoint_dir', train_dir, '--eval_dir',
                         str(tmp_path / 'eval'), '--run_once')
  assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
  assert 'step 150: precision @ 1 = ' in evaluated.stdout
  # Two batches of 8 a step: make train resumes it with batches of 16.
  single = run_module('cifar10_train', '--data_dir', data_dir, '--train_dir',
                      train_dir, '--max_steps', '160', '--batch_size', '16',
                      timeout=240)
  assert single.returncode == 0, single.stdout + single.stderr
  assert 'saved checkpoint at step 160' in single.stdout
  return first


@needs_two_gpus
def test_the_multi_gpu_default_is_a_process_per_gpu_with_nccl(tiny_data,
                                                              tmp_path):
  first = _a_process_per_gpu('cifar10_multi_gpu_train', tiny_data, tmp_path,
                             '--num_gpus', '2')
  assert ('2 towers on /gpu:0, /gpu:1, 16 examples per step: a process each, '
          'their gradients summed by an all-reduce (NCCL)') in first.stdout


@needs_two_gpus
def test_an_all_reduce_cluster_gives_each_worker_a_gpu(tiny_data, tmp_path):
  _a_process_per_gpu('cluster.launch', tiny_data, tmp_path, '--workers', '2',
                     '--ps', '0')
