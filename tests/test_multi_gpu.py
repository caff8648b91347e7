"""The multi-tower trainer, on virtual CPU devices or CPU processes (the
math of each mode: test_steps.py)."""
import re

import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import gpus
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import placement
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import train_graph
from cifar10_tutorial.shell import flags
from conftest import run_module, summary_tags
from test_steps import _fixed_queue

def test_variables_exist_once_under_the_tutorials_names():
  cfg = settings.resolve(flags.multi_gpu_config(batch_size=2, xla=False),
                        on_gpu=False)
  with tf.Graph().as_default():
    queue, _ = _fixed_queue(16)
    devices, _ = machine.tower_devices(3, 'cpu')
    train_graph.build_graph(cfg, placement.OnHome(devices, '/cpu:0'),
                            queue=queue)
    names = [v.op.name for v in tf.trainable_variables()]
    per_tower = [op.name for op in tf.get_default_graph().get_operations()
                 if op.name.startswith('tower_2/cross_entropy')]
  assert len(names) == 10 and not [n for n in names if 'tower' in n]
  assert per_tower   # each tower has its own loss


# (replicated's math and checkpoint: test_steps.py; on GPUs: test_gpu.py)
@pytest.mark.parametrize('update', ['cpu', 'collective'])
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
  # Each tower's own, not the last's; a process per tower: the chief's,
  # named as the single-device trainer names them.
  scopes = ['tower_0/', 'tower_1/'] if update != 'collective' else ['']
  for scope in scopes:
    for tag in ('cross_entropy', 'total_loss (raw)', 'conv2/conv2/sparsity',
                'images/image/0'):
      assert scope + tag in tags, sorted(tags)
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


@pytest.mark.skipif(gpus.count() >= 3, reason='this machine has 3 GPUs')
def test_asking_for_more_gpus_than_exist_is_a_clear_error(tiny_data, tmp_path):
  result = run_module('cifar10_multi_gpu_train', '--data_dir', tiny_data[0],
                      '--train_dir', str(tmp_path / 'train'), '--num_gpus',
                      '3')
  assert result.returncode == 1
  assert result.stdout.strip().splitlines()[-1].endswith(
      'error: --num_gpus 3: expected 3 GPUs, found %d (add --tower_device cpu '
      'to run 3 towers on virtual CPU devices)' % gpus.count())
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'train').exists()
